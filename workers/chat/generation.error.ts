import { JobError } from '../jobs/job.error.js';

/** The local model failed to generate: its template, its thread, or the model shut down under the job. */
export class GenerationError extends JobError {
  readonly code = 'generation_failed';
}
