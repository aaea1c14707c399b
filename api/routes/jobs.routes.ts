import { createJobRequestSchema } from '../../shared/api/request-schemas.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import type { ChatService } from '../jobs/chat-service.js';
import type { JobService, JobView } from '../jobs/job-service.js';
import { checkEmbeddingInput, resolveEmbeddingModel } from './embeddings.routes.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/** The async job API shared by every job type. */
export function jobsRoutes(deps: {
  jobs: JobService;
  chat: ChatService;
  registry: ModelRegistry;
  maxInputs: number;
  /** Checks a job's own `webhook` URL (api/routes/webhooks.routes.ts: the same rule as for endpoints). */
  checkWebhookUrl: (url: string, param: string) => Promise<string>;
}): TableRoutes {
  const router = tableRoutes();

  router.post('/v1/jobs', async (req, res) => {
    const body = createJobRequestSchema.parse(req.body);
    const tenant = req.principal!.tenant;
    const opts = {
      requestId: String(req.id),
      idempotencyKey: req.header('idempotency-key') || undefined,
      // `timeout` (seconds): a job still queued then is dropped as expired rather than run late.
      ...(body.timeout ? { deadline: Date.now() + body.timeout * 1000 } : {}),
      // Every job submitted here announces its outcome as a webhook event (docs/WEBHOOKS.md).
      webhookEvents: body.webhook ? { url: await deps.checkWebhookUrl(body.webhook, 'webhook') } : {},
    };
    let submitted: { view: JobView; created: boolean };
    switch (body.type) {
      case 'embedding': {
        const model = resolveEmbeddingModel(deps.registry, body.model);
        checkEmbeddingInput(body.input, body.dimensions, model, deps.maxInputs);
        submitted = await deps.jobs.submit('embedding', tenant, model, { model: model.id, input: body.input, dimensions: body.dimensions }, opts);
        break;
      }
      case 'chat': {
        const model = deps.chat.resolveModel(body.model);
        const { priority, timeout: _timeout, webhook: _webhook, max_completion_tokens, ...params } = body;
        const payload = deps.chat.payload(model, { ...params, max_tokens: max_completion_tokens ?? params.max_tokens });
        submitted = await deps.chat.submit(tenant, model, payload, { ...opts, ...(priority ? { priority } : {}) });
        break;
      }
    }
    const { view, created } = submitted;
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
