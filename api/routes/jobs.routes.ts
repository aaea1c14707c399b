import type { SubmittableJobType } from '../../shared/jobs/job-catalog.js';
import { createJobRequestSchema, type CreateJobRequest } from '../../shared/jobs/job-requests.js';
import type { JobService } from '../jobs/job-service.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';
import { jobSubmitters, type JobSubmitter, type JobSubmitterDeps } from './job-submitters.js';

/** The async job API shared by every job type; what POST accepts comes from the job catalog. */
export function jobsRoutes(
  deps: JobSubmitterDeps & {
    jobs: JobService;
    /** Checks a job's own `webhook` URL (api/routes/webhooks.routes.ts: the same rule as for endpoints). */
    checkWebhookUrl: (url: string, param: string) => Promise<string>;
  },
): TableRoutes {
  const router = tableRoutes();
  const submitters = jobSubmitters(deps);

  router.post('/v1/jobs', async (req, res) => {
    const body: CreateJobRequest = createJobRequestSchema.parse(req.body);
    const opts = {
      requestId: String(req.id),
      idempotencyKey: req.header('idempotency-key') || undefined,
      // `timeout` (seconds) replaces the type's default time in the queue (JobService applies it).
      ...(body.timeout ? { maxQueuedMs: body.timeout * 1000 } : {}),
      // Every job submitted here announces its outcome as a webhook event (docs/WEBHOOKS.md).
      webhookEvents: body.webhook ? { url: await deps.checkWebhookUrl(body.webhook, 'webhook') } : {},
    };
    // The submitter of the body's own type (TypeScript cannot pair a union's member with its map entry by itself).
    const submit = submitters[body.type] as JobSubmitter<SubmittableJobType>;
    const { view, created } = await submit(body, { tenant: req.principal!.tenant, opts });
    if (!created) res.setHeader('Idempotent-Replayed', 'true');
    res.status(created ? 202 : 200).location(`/v1/jobs/${encodeURIComponent(view.id)}`).json(view);
  });

  router.get('/v1/jobs/:id', async (req, res) => {
    res.json(await deps.jobs.get(req.principal!.tenant, req.params.id as string));
  });

  router.delete('/v1/jobs/:id', async (req, res) => {
    res.json(await deps.jobs.cancel(req.principal!.tenant, req.params.id as string));
  });

  return router;
}
