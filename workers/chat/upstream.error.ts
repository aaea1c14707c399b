import { JobError } from '../jobs/job.error.js';

/** An OpenAI-compatible upstream refused, broke off or answered nonsense: its model's fallback may answer instead. */
export class UpstreamError extends JobError {
  readonly code = 'upstream_error';
}
