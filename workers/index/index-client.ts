import type { Worker } from 'node:worker_threads';
import { spawnThread } from '../threads/spawn-thread.js';
import type { IndexMessage, IndexReply, IndexRequest, IndexResponse } from './index-thread.protocol.js';

type ReplyOf<O extends IndexRequest['op']> = Extract<IndexReply, { op: O }>;

/** The main thread's handle on the index thread: typed request/reply over postMessage. */
export class IndexThreadClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: IndexReply) => void; reject: (e: Error) => void }>();
  private dead: Error | undefined;

  constructor() {
    this.worker = spawnThread(import.meta.url, 'index-thread', {});
    this.worker.on('message', (msg: IndexResponse) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.reply);
      else p.reject(new Error(`index: ${msg.message}`));
    });
    const fail = (err: Error) => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`index thread exited with code ${code}`)));
  }

  request<R extends IndexRequest>(req: R, transfer: ArrayBuffer[] = []): Promise<ReplyOf<R['op']>> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: IndexReply) => void, reject });
      this.worker.postMessage({ id, req } satisfies IndexMessage, transfer);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
