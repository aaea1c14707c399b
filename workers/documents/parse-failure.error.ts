import { JobError, TransientJobError } from '../jobs/job.error.js';

/**
 * A document no parse can read, whichever attempt (corrupt, encrypted, too large, a poison input):
 * terminal, and shown to the client as it is; its code names the reason.
 */
export class ParseFailure extends JobError {
  readonly permanent = true;

  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A parse that failed for a passing reason (its process died reading another document, the pool closing): retried. */
export class TransientParseFailure extends TransientJobError {
  readonly permanent = false;

  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The failure a parse process reported, by the kind it said it was (parse-process.protocol.ts). */
export function parseFailure(code: string, message: string, permanent: boolean): ParseFailure | TransientParseFailure {
  return permanent ? new ParseFailure(code, message) : new TransientParseFailure(code, message);
}
