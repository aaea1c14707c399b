import type { Redis } from 'ioredis';
import { appendTokens } from '../../shared/streams/token-stream.js';

/**
 * Writes a job's tokens into its token stream as they come. Tokens produced while a write is in
 * flight go out together in the next write, so a fast producer costs Redis one round trip per
 * burst rather than one per token, and order is kept.
 */
export class TokenWriter {
  private index = 0;
  private pending: { i: number; text: string }[] = [];
  private writing: Promise<void> | undefined;
  private error: unknown;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly jobId: string,
    private readonly ttlSeconds: number,
  ) {}

  get written(): number {
    return this.index;
  }

  push(text: string): void {
    this.pending.push({ i: this.index++, text });
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
      await appendTokens(this.redis, this.prefix, this.jobId, batch, this.ttlSeconds);
    }
  }
}
