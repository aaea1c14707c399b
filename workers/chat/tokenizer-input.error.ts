import { JobError } from '../jobs/job.error.js';

/** A tokenize job's input the model's tokenizer cannot take (token ids outside its vocabulary): the caller's mistake, not the worker's. */
export class TokenizerInputError extends JobError {
  readonly code = 'invalid_payload';
}
