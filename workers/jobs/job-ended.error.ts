import { JobError } from './job.error.js';

/**
 * A streaming job taken again after its worker died whose end had already been announced as a
 * failure: it is recorded again as it ended, with the code its subscribers were told.
 */
export class JobEndedError extends JobError {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
