import type { Redis } from 'ioredis';
import type { DocumentKeys } from '../../shared/documents/documents.js';

/** Marks outlive any attempt by far, and go away by themselves with the document's other leftovers. */
const MARK_TTL_SECONDS = 7 * 86_400;

/**
 * Per-document counters of risky steps begun and not ended, in Redis. `begin` raises the count
 * before a step runs and `end` lowers it after, so what remains is the number of times the step
 * never ended: its process crashed, hung and was killed, or the whole worker died. Because the
 * mark is in Redis, the next attempt on any worker reads it before running anything.
 */
export class CrashMarks {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Pick<DocumentKeys, 'crashMarks'>,
  ) {}

  /** Raises the mark; answers it, this step included (1 on a document that never crashed). */
  async begin(docId: string, stage: string): Promise<number> {
    const key = this.keys.crashMarks(docId);
    const res = await this.redis.multi().hincrby(key, stage, 1).expire(key, MARK_TTL_SECONDS).exec();
    return Number(res?.[0]?.[1] ?? 1);
  }

  async end(docId: string, stage: string): Promise<void> {
    await this.redis.hincrby(this.keys.crashMarks(docId), stage, -1);
  }

  /** The stage finished (well or with a reason of its own): its crashes no longer matter. */
  async clear(docId: string, stage: string): Promise<void> {
    await this.redis.hdel(this.keys.crashMarks(docId), stage);
  }

  async count(docId: string, stage: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.crashMarks(docId), stage)) ?? 0);
  }
}
