import { EXPIRED_REASON_PREFIX } from '../../shared/jobs/job-catalog.js';
import { JobError } from './job.error.js';

/**
 * A job past one of its deadlines (its catalog entry's `deadlines`, or a request's `timeout`):
 * still queued when it had to start, or still running when it had to end. Its reason keeps the
 * prefix failureCode() reads back as `expired`.
 */
export class ExpiredError extends JobError {
  readonly code = 'expired';

  constructor(detail: string) {
    super(`${EXPIRED_REASON_PREFIX}: ${detail}`);
  }
}
