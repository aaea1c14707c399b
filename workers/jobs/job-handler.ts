import type { Logger } from '../../shared/logger.js';
import type { JobPayload, JobResult, JobType } from '../../shared/jobs/job-catalog.js';

/** What a handler gets besides its payload. Handlers never see BullMQ. */
export interface JobContext {
  jobId: string;
  tenant: string;
  attempt: number;
  log: Logger;
  /** Aborted when the job is cancelled or the worker shuts down. */
  signal: AbortSignal;
  reportProgress(progress: Record<string, unknown>): Promise<void>;
  /** A batch line (Batch API): nobody waits on it, so it yields to interactive work where the model can tell (the embedding batcher). */
  background?: boolean;
  /**
   * Streaming jobs (chat, chatbot): this run's claim on the job's token stream, to give its
   * TokenWriter. Writes under any other claim are refused (shared/streams/token-stream.ts).
   */
  streamOwner?: string;
}

export type JobHandler<K extends JobType> = (payload: JobPayload<K>, ctx: JobContext) => Promise<JobResult<K>>;

export type JobHandlers = { [K in JobType]: JobHandler<K> };

/**
 * Thrown by a handler that should not run its job yet (a tenant already holds its share of a scarce
 * resource): the job goes back to the queue for `delayMs` without spending an attempt, and the slot
 * goes to the next job in line.
 */
export class DeferJob extends Error {
  constructor(
    readonly delayMs: number,
    message: string,
  ) {
    super(message);
    this.name = 'DeferJob';
  }
}
