import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';

/**
 * The queue a job type travels on: one per model (the model's `max_queue` bounds it and the
 * registry names it, shared/models/model-registry.ts), or one of its own, bounded by `maxQueued`
 * waiting jobs where the API submits to it through JobService.
 */
export type JobQueueSpec =
  /**
   * One queue per model of `modelTask` (default: the type itself, i.e. the model's own queue,
   * `model.queueName`); a type whose name is not a task gets a queue per model of its own,
   * `modelQueueName(type, model.id)`, so its jobs never wait behind the model's main work.
   */
  | { perModel: true; modelTask?: 'chat' | 'embedding' }
  | { name: string; maxQueued?: number };

/**
 * How a queue finds a job whose worker died (shared/jobs/queues.ts, stallOptions):
 * - `stream`: short lock, put back once: someone waits on every token;
 * - `attempts`: long lock, the job survives as many worker deaths as it has attempts;
 * - `crash-marks`: long lock, and the job's own crash marks judge it (DOCUMENTS_POISON_CRASHES),
 *   BullMQ's stalled limit being only the backstop.
 */
export type JobStall = 'stream' | 'attempts' | 'crash-marks';

/**
 * Jobs one worker process runs at once on the type's queue: the model's `concurrency`, a number,
 * or an env setting (read by the worker's composition root).
 */
export type JobConcurrency = 'model' | number | { env: 'DOCUMENTS_PARSE_CONCURRENCY' };

/** The folder of workers/ that holds the type's handler (`workers/<domain>/*.handler.ts`). */
export type JobDomain = 'embeddings' | 'chat' | 'chatbot' | 'documents' | 'batches';

/** One entry of the job catalog (shared/jobs/job-catalog.ts). */
export interface JobSpec {
  payload: z.ZodType;
  result: z.ZodType;
  defaults: JobsOptions;
  queue: JobQueueSpec;
  /** Its worker streams tokens: subscribers follow the token stream, and its runs claim it. */
  streams: boolean;
  stall: JobStall;
  concurrency: JobConcurrency;
  domain: JobDomain;
}
