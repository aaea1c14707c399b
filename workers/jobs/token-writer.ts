import type { Redis } from 'ioredis';
import { appendTokens, type TokenExtras } from '../../shared/streams/token-stream.js';
import { WorkerLostError } from './worker-lost.error.js';

/**
 * Writes a job's tokens into its token stream as they come. Tokens produced while a write is in
 * flight go out together in the next write, so a fast producer costs Redis one round trip per
 * burst rather than one per token, and order is kept. Every write is checked against this run's
 * claim on the stream (`owner`): once the claim is gone nothing more is written, and `flush`
 * throws a WorkerLostError.
 */
export class TokenWriter {
  private index = 0;
  private pending: ({ i: number; text: string } & TokenExtras)[] = [];
  private writing: Promise<void> | undefined;
  private error: unknown;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly jobId: string,
    private readonly ttlSeconds: number,
    private readonly owner: string,
  ) {}

  get written(): number {
    return this.index;
  }

  push(text: string, extras: TokenExtras = {}): void {
    if (this.error) return;
    this.pending.push({ i: this.index++, text, ...extras });
    this.schedule();
  }

  /** Waits until every pushed token is in Redis; rethrows a write failure. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.error) throw this.error;
  }

  private schedule(): void {
    this.writing ??= this.drain()
      .catch((err) => {
        this.error = err;
      })
      .finally(() => {
        this.writing = undefined;
        if (this.pending.length > 0 && !this.error) this.schedule();
      });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const written = await appendTokens(this.redis, this.prefix, this.jobId, this.owner, batch, this.ttlSeconds);
      if (!written) throw new WorkerLostError('this run no longer owns the job\'s token stream (the job was ended for it, or another worker took it over)');
    }
  }
}
