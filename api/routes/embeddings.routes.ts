import { embeddingsRequestSchema } from '../../shared/api/request-schemas.js';
import { checkEmbeddingInput, resolveEmbeddingModel } from '../../shared/api/openai-requests.js';
import { embeddingList } from '../../shared/jobs/job-views.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import { cacheContext, type Embedder } from '../cache/response-cache.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/** POST /v1/embeddings, OpenAI's shape: enqueue an embedding job and answer with its result. */
export function embeddingsRoutes(deps: { coalescer: Embedder; registry: ModelRegistry; maxInputs: number }): TableRoutes {
  const router = tableRoutes();
  router.post('/v1/embeddings', async (req, res) => {
    const body = embeddingsRequestSchema.parse(req.body);
    const model = resolveEmbeddingModel(deps.registry, body.model);
    checkEmbeddingInput(body.input, body.dimensions, model, deps.maxInputs);
    const result = await deps.coalescer.embed(req.principal!.tenant, model, body.input, body.dimensions, String(req.id), cacheContext(req, res));
    res.json(embeddingList(result, body.encoding_format));
  });
  return router;
}

// jobs.routes.ts takes them from here.
export { checkEmbeddingInput, resolveEmbeddingModel };
