import { WORKER_LOST_REASON_PREFIX } from '../../shared/jobs/job-catalog.js';
import { WORKER_LOST } from '../../shared/streams/token-stream.js';
import { JobError } from './job.error.js';

/**
 * A streaming job that must not go on in this run: its worker died after it had streamed text (a
 * new run would repeat it), or this run lost its claim on the job's token stream. The job fails
 * with code `worker_lost`, which the API answers with a retryable 503.
 */
export class WorkerLostError extends JobError {
  readonly code = WORKER_LOST;

  constructor(detail: string) {
    super(`${WORKER_LOST_REASON_PREFIX}: ${detail}`);
  }
}
