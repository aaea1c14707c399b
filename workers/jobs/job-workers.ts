import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobSpec, type JobType } from '../../shared/jobs/job-catalog.js';
import { stallOptions, type StallSettings } from '../../shared/jobs/queues.js';
import type { Logger } from '../../shared/logger.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { JobHandler } from './job-handler.js';
import { createJobWorker, type ResultDelivery, type StreamRuns } from './job-runner.js';

/** One queue a worker process consumes: its name, the model its metrics are labelled with, and a model's own concurrency. */
export interface ServedQueue {
  queueName: string;
  /** The `model` label of its metrics: the model, or the job type where no model owns the queue (the chatbot). */
  model: string;
  /** The model's `concurrency`, for job types whose catalog entry says `concurrency: 'model'`. */
  concurrency?: number;
}

export type BuildWorker = <K extends JobType>(type: K, handler: JobHandler<K>, queue: ServedQueue) => Worker;

/**
 * The one place a worker process builds its BullMQ workers, whatever the job type: concurrency and
 * stall settings from the job catalog, the same outcome delivery and stream claims, and the same
 * metrics (worker_jobs_finished_total and the request timings count every queue) and logging.
 */
export function createWorkerFactory(deps: {
  connection: Redis;
  prefix: string;
  log: Logger;
  delivery: ResultDelivery;
  streams: StreamRuns;
  metrics: WorkerMetrics;
  settings: StallSettings & { DOCUMENTS_PARSE_CONCURRENCY: number; RETRY_SCHEDULE_SCALE: number };
  /** Told of every job's final outcome once BullMQ has recorded it (webhook events: workers/webhooks/job-outcome-events.ts). */
  onFinished?: (job: Job, state: 'completed' | 'failed') => void;
}): BuildWorker {
  return (type, handler, queue) => {
    const spec = jobSpec(type);
    const concurrency =
      spec.concurrency === 'model' ? queue.concurrency : typeof spec.concurrency === 'number' ? spec.concurrency : deps.settings[spec.concurrency.env];
    if (concurrency === undefined) throw new Error(`${type} jobs run at their model's concurrency, and queue ${queue.queueName} has no model`);
    const worker = createJobWorker({
      queueName: queue.queueName,
      type,
      handler,
      connection: deps.connection,
      prefix: deps.prefix,
      concurrency,
      log: deps.log,
      delivery: deps.delivery,
      stall: stallOptions(type, deps.settings),
      streams: deps.streams,
      timings: deps.metrics.jobTimings(queue.queueName, queue.model),
      retryScheduleScale: deps.settings.RETRY_SCHEDULE_SCALE,
    });
    worker.on('completed', (job) => {
      deps.metrics.jobsFinished.inc({ queue: queue.queueName, outcome: 'completed' });
      deps.onFinished?.(job, 'completed');
    });
    worker.on('failed', (job) => {
      deps.metrics.jobsFinished.inc({ queue: queue.queueName, outcome: 'failed' });
      // BullMQ tells of every failed attempt; only a job with finishedOn failed for good (no retry follows).
      if (job?.finishedOn) deps.onFinished?.(job, 'failed');
    });
    worker.on('error', (err) => deps.log.error({ err, queue: queue.queueName }, 'worker error'));
    return worker;
  };
}
