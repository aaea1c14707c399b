import type { Worker } from 'node:worker_threads';
import { spawnThread } from '../inference/spawn-thread.js';
import type { ParsedPage, ParseReply, ParseRequest } from './parse-thread.protocol.js';

export class ParseFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

interface Pending {
  resolve: (p: ParsedPage[]) => void;
  reject: (e: Error) => void;
  onProgress: (done: number, total: number) => void;
}

/**
 * Parse threads of a worker process, started on first use (the OCR models load on the first image).
 * A request goes to the thread with the fewest requests in flight. A thread that dies (a pathological
 * file can exhaust its heap) fails its requests as retryable and is replaced on the next request.
 */
export class ParsePool {
  private threads: { worker: Worker; pending: Map<number, Pending> }[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly ocrThreads: number,
  ) {}

  parse(req: Omit<ParseRequest, 'id'>, onProgress: (done: number, total: number) => void = () => {}): Promise<ParsedPage[]> {
    if (this.closed) return Promise.reject(new Error('parse pool is closed'));
    const thread = this.pick();
    const id = this.nextId++;
    return new Promise<ParsedPage[]>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject, onProgress });
      thread.worker.postMessage({ ...req, id } satisfies ParseRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.threads.map((t) => t.worker.terminate()));
    this.threads = [];
  }

  private pick() {
    if (this.threads.length < this.size) return this.spawn();
    return this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn() {
    const worker = spawnThread(import.meta.url, 'parse-thread', { ocrThreads: this.ocrThreads });
    const thread = { worker, pending: new Map<number, Pending>() };
    this.threads.push(thread);
    worker.on('message', (msg: ParseReply) => {
      const p = thread.pending.get(msg.id);
      if (!p) return;
      if (msg.type === 'progress') return p.onProgress(msg.pages_done, msg.pages_total);
      thread.pending.delete(msg.id);
      if (msg.type === 'result') p.resolve(msg.pages);
      else p.reject(new ParseFailure(msg.code, msg.message, msg.permanent));
    });
    const fail = (err: Error) => {
      this.threads = this.threads.filter((t) => t !== thread);
      for (const p of thread.pending.values()) p.reject(new ParseFailure('parse_thread_died', `the parse thread stopped: ${err.message}`, false));
      thread.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    worker.unref();
    return thread;
  }
}
