import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';
import type { Scope } from '../api/scopes.js';

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
export type JobDomain = 'embeddings' | 'chat' | 'chatbot' | 'documents' | 'batches' | 'webhooks';

/**
 * A job type clients may submit themselves with POST /v1/jobs: its public request, less `type` and
 * `timeout`, which every type has (shared/jobs/job-requests.ts). The API validates the request
 * with it, then turns it into the payload (api/routes/job-submitters.ts: resolving the model, the
 * model's limits), so the request may differ from the payload.
 */
export interface JobSubmitSpec {
  request: z.ZodObject;
}

/** Bounds on a job's time, applied to every job of the type (api/jobs/job-service.ts, workers/jobs/job-runner.ts). */
export interface JobDeadlines {
  /**
   * A job still queued this long after its submission fails as `expired` instead of running late.
   * A POST /v1/jobs request's `timeout` replaces it for that job.
   */
  maxQueuedSeconds?: number;
  /** A run that goes on longer is aborted and fails as `expired`. */
  maxRunSeconds?: number;
}

/** One entry of the job catalog (shared/jobs/job-catalog.ts). */
export interface JobSpec {
  payload: z.ZodType;
  result: z.ZodType;
  defaults: JobsOptions;
  /**
   * Delays (ms) before each retry, for `defaults.backoff: { type: 'schedule' }`: the n-th retry
   * waits the n-th delay (the last one repeats), times RETRY_SCHEDULE_SCALE.
   */
  retrySchedule?: readonly number[];
  queue: JobQueueSpec;
  /** Its worker streams tokens: subscribers follow the token stream, and its runs claim it. */
  streams: boolean;
  stall: JobStall;
  concurrency: JobConcurrency;
  domain: JobDomain;
  /**
   * The scope a caller needs to submit, read or cancel the type's jobs through /v1/jobs; null: its
   * jobs are nobody's to reach there (webhook deliveries, which have an API of their own).
   */
  scope: Scope | null;
  /** Present when clients may submit the type with POST /v1/jobs; internal types have none. */
  submit?: JobSubmitSpec;
  deadlines?: JobDeadlines;
}
