import type { Redis } from 'ioredis';
import { queueOfJobId, WORKER_LOST_REASON_PREFIX } from '../../shared/jobs/job-catalog.js';
import { WORKER_HEARTBEAT_TTL_MS, workersKey } from '../../shared/jobs/job-views.js';
import type { Logger } from '../../shared/logger.js';
import { appendEnd, ownerWorker, releaseStream, streamAliveKey, streamOwnerKey, tokenStreamKey, WORKER_LOST } from '../../shared/streams/token-stream.js';

interface Watched {
  refs: number;
  /** Since when a job whose worker died before its first token has been waiting to be run again. */
  retryWaitSince?: number;
}

const QUEUED_STATES = new Set(['waiting', 'prioritized', 'delayed', 'wait']);

/**
 * Tells the clients of a streaming job that its worker died, within seconds, instead of after
 * BullMQ's stalled check (which needs a lock to lapse, two passes of a check, and a live worker
 * on the same queue to run it: with none left, nobody would ever be told).
 *
 * Every streaming job this API instance follows (SSE, synchronous chat, Socket.IO) is checked
 * once per heartbeat interval: a job whose stream is claimed by a run whose heartbeat has lapsed
 * lost its worker. If the job had streamed text, its stream is ended at once with `worker_lost`
 * (a new run would repeat that text). If it had not, it can run again: the API waits for another
 * worker's stalled check to put it back in its queue (then it is an ordinary queued job), unless
 * no other worker consumes that queue, or the retry does not come within `retryWindowMs`; then
 * it ends it with `worker_lost` too. Ending is conditional in Redis on the heartbeat still being
 * absent, so a run that has just taken the job over is never cut off.
 */
export class StreamWatchdog {
  private readonly watched = new Map<string, Watched>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  /** No stream is ended before this time (see `heartbeatTtlMs`). */
  private judgeFrom = 0;

  constructor(
    private readonly deps: {
      redis: Redis;
      prefix: string;
      intervalMs: number;
      /** STREAM_HEARTBEAT_TTL_MS: after this API's own Redis trouble, workers get this long to beat again before anyone is judged. */
      heartbeatTtlMs: number;
      retryWindowMs: number;
      retentionSeconds: number;
      /** The job's BullMQ state (JobService.state). */
      jobState: (jobId: string) => Promise<string>;
      log: Logger;
    },
  ) {}

  /** Watches a job until the returned function is called (as many times as it was watched). */
  watch(jobId: string): () => void {
    let w = this.watched.get(jobId);
    if (!w) this.watched.set(jobId, (w = { refs: 0 }));
    w.refs++;
    this.timer ??= setInterval(() => void this.tick(), this.deps.intervalMs);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--w.refs === 0 && this.watched.get(jobId) === w) this.watched.delete(jobId);
      if (this.watched.size === 0) this.stopTimer();
    };
  }

  get watching(): number {
    return this.watched.size;
  }

  close(): void {
    this.watched.clear();
    this.stopTimer();
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.checking || this.watched.size === 0) return;
    this.checking = true;
    try {
      await this.check([...this.watched.keys()]);
    } catch (err) {
      // Redis away: requests are answered 503 elsewhere, and the next tick tries again. Heartbeats
      // may have lapsed meanwhile for want of Redis, not of workers: they get time to come back.
      this.judgeFrom = Date.now() + this.deps.heartbeatTtlMs;
      this.deps.log.debug({ err }, 'stream watchdog pass failed');
    } finally {
      this.checking = false;
    }
  }

  private async check(ids: string[]): Promise<void> {
    const { redis, prefix } = this.deps;
    const pipe = redis.pipeline();
    for (const id of ids) pipe.get(streamOwnerKey(prefix, id)).exists(streamAliveKey(prefix, id)).xlen(tokenStreamKey(prefix, id));
    const replies = (await pipe.exec()) ?? [];
    let live: Awaited<ReturnType<StreamWatchdog['liveWorkers']>> | undefined;
    for (const [n, id] of ids.entries()) {
      const w = this.watched.get(id);
      const [owner, alive, length] = [0, 1, 2].map((k) => replies[3 * n + k]?.[1]) as [string | null, number, number];
      if (!w || !owner) continue;
      if (alive === 1) {
        w.retryWaitSince = undefined;
        continue;
      }
      if (Date.now() < this.judgeFrom) continue;
      // Claimed, and its heartbeat has lapsed: the run's worker died or stopped answering.
      if (length > 0) {
        await this.end(id, `after streaming ${length} token${length === 1 ? '' : 's'}; the answer cannot be continued without repeating it`);
        continue;
      }
      if (w.retryWaitSince === undefined) {
        live ??= await this.liveWorkers();
        const queue = queueOfJobId(id);
        const dead = ownerWorker(owner);
        if (!live.some((b) => b.id !== dead && queue !== undefined && b.queues?.includes(queue))) {
          await this.end(id, 'before it produced any text, and no other worker serves its queue');
          continue;
        }
        w.retryWaitSince = Date.now();
        this.deps.log.info({ jobId: id, deadWorker: dead }, 'worker died before the first token: waiting for the job to run again');
        continue;
      }
      const state = await this.deps.jobState(id);
      if (QUEUED_STATES.has(state)) {
        // Back in its queue: the dead run's claim goes, and the job is an ordinary queued job again.
        await releaseStream(redis, prefix, id, owner);
        w.retryWaitSince = undefined;
      } else if (Date.now() - w.retryWaitSince > this.deps.retryWindowMs) {
        await this.end(id, `before it produced any text, and it was not taken up again within ${Math.round(this.deps.retryWindowMs / 1000)} s`);
      }
    }
  }

  private async end(jobId: string, detail: string): Promise<void> {
    const message = `${WORKER_LOST_REASON_PREFIX}: the worker running this job stopped responding ${detail}. Retry the request.`;
    const ended = await appendEnd(this.deps.redis, this.deps.prefix, jobId, { status: 'failed', error: { message, code: WORKER_LOST } }, this.deps.retentionSeconds, { onlyIfAbandoned: true });
    if (ended) this.deps.log.warn({ jobId, reason: message }, 'streaming job ended: worker lost');
    const w = this.watched.get(jobId);
    if (w) w.retryWaitSince = undefined;
  }

  private async liveWorkers(): Promise<{ id: string; queues?: string[] }[]> {
    const raw = await this.deps.redis.hgetall(workersKey(this.deps.prefix));
    const now = Date.now();
    return Object.values(raw)
      .map((json) => JSON.parse(json) as { id: string; at: number; queues?: string[] })
      .filter((b) => now - b.at <= WORKER_HEARTBEAT_TTL_MS);
  }
}
