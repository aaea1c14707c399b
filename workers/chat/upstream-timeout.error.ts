import { JobError } from '../jobs/job.error.js';

/** An OpenAI-compatible upstream did not answer within its model's `timeout_ms`: its fallback may answer instead. */
export class UpstreamTimeoutError extends JobError {
  readonly code = 'upstream_timeout';
}
