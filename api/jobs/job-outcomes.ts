import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Server } from 'socket.io';
import { jobRoom } from '../../shared/events/job-events.js';
import { CANCELLED_REASON_PREFIX, STREAMING_JOB_TYPES, failureCode, isStreamingQueue, type JobType } from '../../shared/jobs/job-catalog.js';
import type { Logger } from '../../shared/logger.js';
import { closeRedis } from '../../shared/redis/redis-connections.js';
import { appendEnd } from '../../shared/streams/token-stream.js';

type Outcome = { status: 'failed' | 'cancelled'; error: { message: string; code: string } };

/**
 * The API's half of how job outcomes reach subscribers (the worker's is workers/jobs/outcome-delivery.ts):
 * outcomes the API decides itself (a queued job cancelled), and failures no worker announced (a
 * streaming job whose worker was killed, then found stalled). Subscribers of a streaming type
 * follow its token stream, so they hear of an outcome from the stream's end entry; the others in
 * the job's Socket.IO room. Jobs whose worker stopped answering mid-stream are ended as
 * `worker_lost` by the StreamWatchdog (api/jobs/stream-watchdog.ts), through the same end entry.
 */
export class JobOutcomes {
  private rooms: Pick<Server, 'to'> | undefined;
  private readonly events: QueueEvents[] = [];
  private readonly connections: Redis[] = [];

  constructor(private readonly deps: { redis: Redis; prefix: string; retentionSeconds: number; log: Logger }) {}

  /**
   * The Socket.IO server needs the job service to authorise subscriptions, and the job service
   * tells rooms about cancellations: rooms are attached once the server exists, and an outcome
   * decided before then has no room subscribers to reach.
   */
  attachRooms(io: Pick<Server, 'to'>): void {
    this.rooms = io;
  }

  /** An outcome the API decided itself (JobService's `notify`). */
  announce(jobId: string, type: JobType, event: 'failed', data: { id: string } & Outcome): void {
    if (STREAMING_JOB_TYPES.has(type)) this.endStream(jobId, data);
    else this.rooms?.to(jobRoom(jobId)).emit(event, data);
  }

  /**
   * A streaming job can fail without its worker saying so (the worker was killed and the job was
   * then marked stalled): its queue's event stream still tells, and the token stream gets its end
   * entry here. `connect` opens one connection per queue, since QueueEvents blocks on it.
   */
  watchStreamingQueues(queueNames: Iterable<string>, connect: (name: string) => Redis): void {
    for (const queueName of queueNames) {
      if (!isStreamingQueue(queueName)) continue;
      const connection = connect(`api-events:${queueName}`);
      this.connections.push(connection);
      const events = new QueueEvents(queueName, { connection, prefix: this.deps.prefix });
      events.on('error', (err) => this.deps.log.debug({ err: err.message, queue: queueName }, 'queue events connection error'));
      events.on('failed', ({ jobId, failedReason }) => {
        const status = failedReason?.startsWith(CANCELLED_REASON_PREFIX) ? 'cancelled' : 'failed';
        this.endStream(jobId, { status, error: { message: failedReason ?? 'failed', code: failureCode(failedReason) } });
      });
      this.events.push(events);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.events.map((e) => e.close()));
    await Promise.allSettled(this.connections.map((c) => closeRedis(c)));
  }

  /** The end entry is written once whoever comes first (the script refuses a second), so this never rejects. */
  private endStream(jobId: string, outcome: Outcome): void {
    void appendEnd(this.deps.redis, this.deps.prefix, jobId, { status: outcome.status, error: outcome.error }, this.deps.retentionSeconds).catch(() => {});
  }
}
