import { UnrecoverableError } from 'bullmq';

/**
 * A job failure of a known kind, carrying the code its outcome is announced with (the API turns
 * codes into statuses, and an upstream's into a fallback). Terminal, like BullMQ's own
 * UnrecoverableError: no further attempt would end differently. One subclass per kind, each in a
 * file of its own as BullMQ keeps its errors. A failure of no known kind stays a plain Error: it is
 * retried where its job type allows, and announced as `job_failed` in the end.
 */
export abstract class JobError extends UnrecoverableError {
  abstract readonly code: string;
}

/** The code a failure is announced with, read from its type: a JobError's own, else `job_failed`. */
export function jobErrorCode(err: unknown): string {
  return err instanceof JobError ? err.code : 'job_failed';
}
