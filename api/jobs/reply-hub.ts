import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { errors } from '../../shared/errors/app-error.js';
import { replyChannel, type ReplyMessage } from '../../shared/jobs/job-views.js';

interface Waiter {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Request/reply over Redis pub/sub for synchronous endpoints. Each API instance listens on its own
 * channel; a job submitted synchronously names that channel, and the worker publishes the result
 * there. Results do not sit in Redis afterwards, and no other replica has to read them.
 */
export class ReplyHub {
  readonly instanceId = randomUUID();
  readonly channel: string;
  private readonly waiters = new Map<string, Waiter>();

  constructor(
    private readonly subscriber: Redis,
    prefix: string,
  ) {
    this.channel = replyChannel(prefix, this.instanceId);
  }

  async start(): Promise<void> {
    this.subscriber.on('message', (channel: string, raw: string) => {
      if (channel !== this.channel) return;
      let msg: ReplyMessage;
      try {
        msg = JSON.parse(raw) as ReplyMessage;
      } catch {
        return;
      }
      const w = this.waiters.get(msg.id);
      if (!w) return;
      this.waiters.delete(msg.id);
      clearTimeout(w.timer);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(jobFailure(msg.error));
    });
    await this.subscriber.subscribe(this.channel);
  }

  /**
   * Register before enqueueing, so a fast worker cannot answer before anyone listens. `T` is the
   * job's result type: the worker's handler is typed to return it (workers/jobs/job-handler.ts).
   */
  expect<T>(jobId: string, timeoutMs: number): { promise: Promise<T>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(jobId);
        reject(errors.timeout(`The job did not finish within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.waiters.set(jobId, { resolve: resolve as (result: unknown) => void, reject, timer });
      cancel = () => {
        clearTimeout(timer);
        this.waiters.delete(jobId);
      };
    });
    return { promise, cancel };
  }

  get waiting(): number {
    return this.waiters.size;
  }

  close(): void {
    for (const [id, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(errors.unavailable('The server is shutting down.', 'shutting_down'));
      this.waiters.delete(id);
    }
  }
}

function jobFailure(error: { message: string; code: string }): Error {
  if (error.code === 'invalid_payload') return errors.unprocessable(error.message, null, error.code);
  if (error.code === 'cancelled') return errors.conflict(error.message, 'cancelled');
  return errors.internal(`The job failed: ${error.message}`);
}
