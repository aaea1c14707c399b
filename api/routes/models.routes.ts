import { errors } from '../../shared/errors/app-error.js';
import type { ModelConfig, ModelRegistry } from '../../shared/models/model-registry.js';
import { canUseModel } from '../auth/model-access.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/** GET /v1/models in OpenAI's list shape, with our serving details alongside. */
export function modelsRoutes(deps: { registry: ModelRegistry; startedAt: number }): TableRoutes {
  const router = tableRoutes();
  const view = (m: ModelConfig) => ({
    id: m.id,
    object: 'model' as const,
    created: Math.floor(deps.startedAt / 1000),
    owned_by: 'system',
    task: m.task,
    format: m.format,
    dimensions: 'dimensions' in m ? (m.dimensions ?? null) : null,
    execution_providers: 'execution_providers' in m ? m.execution_providers : ['upstream'],
    description: m.description ?? null,
  });
  // Only what the caller may use: models restricted to other tenants are neither listed nor found.
  router.get('/v1/models', (req, res) => {
    res.json({ object: 'list', data: deps.registry.models.filter((m) => canUseModel(m, req.principal)).map(view) });
  });
  // Model ids may contain '/', as Hugging Face ids do (BAAI/bge-small-en-v1.5): `*id` is every
  // segment after /v1/models/, each already decoded (an encoded '/' stays inside its segment).
  router.get('/v1/models/*id', (req, res) => {
    const segments = (req.params as { id?: string | string[] }).id ?? [];
    const id = Array.isArray(segments) ? segments.join('/') : segments;
    const m = deps.registry.get(id);
    if (!m || !canUseModel(m, req.principal)) throw errors.modelNotFound(id);
    res.json(view(m));
  });
  return router;
}
