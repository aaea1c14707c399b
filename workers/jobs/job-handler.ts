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
  /**
   * Streaming jobs (chat, chatbot): this run's claim on the job's token stream, to give its
   * TokenWriter. Writes under any other claim are refused (shared/streams/token-stream.ts).
   */
  streamOwner?: string;
}

export type JobHandler<K extends JobType> = (payload: JobPayload<K>, ctx: JobContext) => Promise<JobResult<K>>;

export type JobHandlers = { [K in JobType]: JobHandler<K> };
