/**
 * Workers' error classes extend these (one file per kind beside its domain); they are defined in
 * shared/ only because shared code throws some of them too (shared/documents/document-store.ts).
 */
export { JobError, TransientJobError, jobErrorCode } from '../../shared/jobs/job.error.js';
