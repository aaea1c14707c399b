import type { Worker } from 'node:worker_threads';
import type { EmbeddingFormat } from './embedding-formats.js';
import type { EmbeddingSessionOptions } from './embedding-model.js';
import type { ThreadReply, ThreadRequest } from './model-thread.protocol.js';
import { spawnThread, waitForThreadReady } from '../threads/spawn-thread.js';

export interface BatchOutcome {
  vectors: Float32Array[];
  runMs: number;
}

interface ModelThread {
  worker: Worker;
  busy: boolean;
  pending: Map<number, { resolve: (o: BatchOutcome) => void; reject: (e: Error) => void }>;
}

/**
 * A fixed set of model threads for one model, each holding one ONNX session and running one
 * batch at a time. The batcher asks for an idle thread; nothing queues inside the pool, so the
 * batcher keeps the freedom to form the next batch from whatever arrived meanwhile.
 */
export class ModelThreadPool {
  readonly dimensions: number;
  readonly provider: string;
  readonly loadMs: number;
  private readonly threads: ModelThread[];
  private nextId = 1;
  private closed = false;
  private readonly idleListeners = new Set<() => void>();

  private constructor(threads: ModelThread[], info: { dimensions: number; provider: string; loadMs: number }) {
    this.threads = threads;
    this.dimensions = info.dimensions;
    this.provider = info.provider;
    this.loadMs = info.loadMs;
  }

  static async start(opts: {
    format: EmbeddingFormat;
    dir: string;
    replicas: number;
    session: EmbeddingSessionOptions;
  }): Promise<ModelThreadPool> {
    const threads: ModelThread[] = [];
    const infos: { dimensions: number; provider: string; loadMs: number }[] = [];
    try {
      for (let i = 0; i < opts.replicas; i++) {
        const worker = spawnModelThread({ format: opts.format, dir: opts.dir, options: opts.session });
        threads.push({ worker, busy: false, pending: new Map() });
        infos.push(await waitReady(worker));
      }
    } catch (err) {
      await Promise.allSettled(threads.map((t) => t.worker.terminate()));
      throw err;
    }
    const pool = new ModelThreadPool(threads, infos[0]!);
    for (const t of threads) pool.wire(t);
    return pool;
  }

  get idleCount(): number {
    return this.threads.filter((t) => !t.busy).length;
  }

  /** Called whenever a thread becomes idle. */
  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener);
    return () => this.idleListeners.delete(listener);
  }

  /** Runs a batch on an idle thread. Callers check idleCount first. */
  run(rows: readonly (readonly number[])[]): Promise<BatchOutcome> {
    if (this.closed) return Promise.reject(new Error('model thread pool is closed'));
    const thread = this.threads.find((t) => !t.busy);
    if (!thread) return Promise.reject(new Error('no idle model thread'));
    const total = rows.reduce((n, r) => n + r.length, 0);
    const lengths = new Int32Array(rows.length);
    const ids = new Int32Array(total);
    let offset = 0;
    rows.forEach((r, i) => {
      lengths[i] = r.length;
      ids.set(r, offset);
      offset += r.length;
    });
    const id = this.nextId++;
    thread.busy = true;
    return new Promise<BatchOutcome>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.postMessage({ type: 'embed', id, lengths, ids } satisfies ThreadRequest, [lengths.buffer, ids.buffer]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(
      this.threads.map(
        (t) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => void t.worker.terminate().then(() => resolve()), 2000);
            t.worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            t.worker.postMessage({ type: 'close' } satisfies ThreadRequest);
          }),
      ),
    );
  }

  private wire(thread: ModelThread): void {
    thread.worker.on('message', (msg: ThreadReply) => {
      if (msg.type !== 'result' && msg.type !== 'error') return;
      const waiter = thread.pending.get(msg.id);
      thread.pending.delete(msg.id);
      thread.busy = false;
      if (msg.type === 'result') {
        const vectors: Float32Array[] = [];
        for (let off = 0; off < msg.vectors.length; off += this.dimensions) {
          vectors.push(msg.vectors.subarray(off, off + this.dimensions));
        }
        waiter?.resolve({ vectors, runMs: msg.runMs });
      } else {
        waiter?.reject(new Error(`model run failed: ${msg.message}`));
      }
      for (const l of this.idleListeners) l();
    });
    const failAll = (err: Error) => {
      for (const w of thread.pending.values()) w.reject(err);
      thread.pending.clear();
    };
    thread.worker.on('error', (err) => failAll(err));
    thread.worker.on('exit', (code) => {
      if (!this.closed) failAll(new Error(`model thread exited with code ${code}`));
    });
  }
}

function spawnModelThread(workerData: unknown): Worker {
  return spawnThread(import.meta.url, 'model-thread', workerData);
}

function waitReady(worker: Worker): Promise<{ dimensions: number; provider: string; loadMs: number }> {
  return waitForThreadReady(
    worker,
    (msg: ThreadReply): msg is Extract<ThreadReply, { type: 'ready' }> => msg.type === 'ready',
    (msg) => (msg.type === 'load-error' ? `model failed to load: ${msg.message}` : undefined),
  );
}
