import { JobError } from '../jobs/job.error.js';

/**
 * A stage failure the document is to blame for, or one recorded on it already (a stage before
 * failed, it was deleted): not retried, shown to the client as it is, with the code it was given.
 */
export class DocumentFailedError extends JobError {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
