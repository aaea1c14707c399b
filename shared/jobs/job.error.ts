import { UnrecoverableError } from 'bullmq';

/**
 * A job failure of a known kind, carrying the code its outcome is announced with (the API turns
 * codes into statuses, and an upstream's into a fallback). Terminal, like BullMQ's own
 * UnrecoverableError: no further attempt would end differently. One subclass per kind, each in a
 * file of its own as BullMQ keeps its errors. A failure of no known kind stays a plain Error: it is
 * retried where its job type allows, and announced as `job_failed` in the end.
 *
 * In shared/ because code both sides use throws them (shared/documents/document-store.ts);
 * workers import them through workers/jobs/job.error.ts.
 */
export abstract class JobError extends UnrecoverableError {
  abstract readonly code: string;
}

/**
 * A failure of a known kind that another attempt may not meet (a parse process that crashed, a
 * commit that raced another attempt): retried where its job type allows, like a plain Error, and
 * announced with its own code when the last attempt ends with it.
 */
export abstract class TransientJobError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * The code a failure is announced with, read from its type: a JobError's or TransientJobError's
 * own, else `fallback` (what the failing code calls a failure of no known kind).
 */
export function jobErrorCode(err: unknown, fallback = 'job_failed'): string {
  return err instanceof JobError || err instanceof TransientJobError ? err.code : fallback;
}
