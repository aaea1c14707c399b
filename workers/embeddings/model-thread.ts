import { parentPort, workerData } from 'node:worker_threads';
import { createEmbeddingSession, type EmbeddingFormat } from './embedding-formats.js';
import type { EmbeddingSessionOptions } from './embedding-model.js';
import type { ThreadReply, ThreadRequest } from './model-thread.protocol.js';

/**
 * Runs one ONNX session in its own thread. onnxruntime-node's run() does its work on the calling
 * thread, so on the worker's main thread a 1 s batch would freeze BullMQ's lock renewal and make
 * jobs look stalled; here it only occupies this thread.
 */
interface ModelThreadData {
  format: EmbeddingFormat;
  dir: string;
  options: EmbeddingSessionOptions;
}

const port = parentPort;
if (!port) throw new Error('model-thread.ts must run inside a worker thread');
const data = workerData as ModelThreadData;

try {
  const started = performance.now();
  const session = await createEmbeddingSession(data.format, data.dir, data.options);
  const provider = (session as { provider?: string }).provider ?? 'cpu';
  port.postMessage({ type: 'ready', dimensions: session.dimensions, provider, loadMs: performance.now() - started } satisfies ThreadReply);

  port.on('message', (msg: ThreadRequest) => {
    if (msg.type === 'close') {
      void session.release().finally(() => port.close());
      return;
    }
    void runBatch(msg.id, msg.lengths, msg.ids);
  });

  async function runBatch(id: number, lengths: Int32Array, flatIds: Int32Array): Promise<void> {
    try {
      const rows: number[][] = [];
      let offset = 0;
      for (const len of lengths) {
        rows.push(Array.from(flatIds.subarray(offset, offset + len)));
        offset += len;
      }
      const started = performance.now();
      const vectors = await session.embed(rows);
      const runMs = performance.now() - started;
      const flat = new Float32Array(vectors.length * session.dimensions);
      vectors.forEach((v, i) => flat.set(v, i * session.dimensions));
      port!.postMessage({ type: 'result', id, vectors: flat, runMs } satisfies ThreadReply, [flat.buffer]);
    } catch (err) {
      port!.postMessage({ type: 'error', id, message: (err as Error).message } satisfies ThreadReply);
    }
  }
} catch (err) {
  port.postMessage({ type: 'load-error', message: (err as Error).message } satisfies ThreadReply);
}
