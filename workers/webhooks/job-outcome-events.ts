import type { Job } from 'bullmq';
import type { JobEnvelope } from '../../shared/jobs/job-catalog.js';
import { jobView } from '../../shared/jobs/job-views.js';
import type { Logger } from '../../shared/logger.js';
import { announceJobOutcome, type WebhookSink } from '../../shared/webhooks/webhook-events.js';

/**
 * The worker's side of `job.completed` / `job.failed` webhook events: called by the worker factory
 * (workers/jobs/job-workers.ts) once BullMQ has recorded a job's final outcome, so the event's
 * data is the job exactly as GET /v1/jobs/:id shows it then. Only jobs submitted through
 * POST /v1/jobs carry `webhook_events`; the others announce nothing. Never throws: an event that
 * cannot be queued is logged, and the job's outcome stands.
 */
export function createJobOutcomeEvents(deps: { sink: WebhookSink; log: Logger }): (job: Job, state: 'completed' | 'failed') => void {
  return (job, state) => {
    const envelope = job.data as JobEnvelope;
    if (!envelope?.webhook_events) return;
    void announceJobOutcome(deps.sink, envelope, jobView(job, state)).catch((err) =>
      deps.log.warn({ err, jobId: job.id }, 'could not queue the webhook event of a job outcome'),
    );
  };
}
