import { JobError } from '../jobs/job.error.js';

/** The conversation does not fit the model's context: the client's to shorten (400). */
export class ContextLengthError extends JobError {
  readonly code = 'context_length_exceeded';
}
