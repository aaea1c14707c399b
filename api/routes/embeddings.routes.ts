import { embeddingsRequestSchema } from '../../shared/api/request-schemas.js';
import { errors } from '../../shared/errors/app-error.js';
import { embeddingList } from '../../shared/jobs/job-views.js';
import { isEmbeddingModel, type EmbeddingModelConfig, type ModelRegistry } from '../../shared/models/model-registry.js';
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

export function resolveEmbeddingModel(registry: ModelRegistry, id: string): EmbeddingModelConfig {
  const model = registry.get(id);
  if (!model) throw errors.modelNotFound(id);
  if (!isEmbeddingModel(model)) throw errors.invalidRequest(`Model '${id}' is not an embedding model.`, 'model', 'wrong_model_task');
  return model;
}

export function checkEmbeddingInput(input: string[], dimensions: number | undefined, model: EmbeddingModelConfig, maxInputs: number): void {
  if (input.length > maxInputs) {
    throw errors.invalidRequest(`'input' has ${input.length} items; at most ${maxInputs} are allowed per request.`, 'input', 'too_many_inputs');
  }
  if (dimensions !== undefined && model.dimensions !== undefined && dimensions > model.dimensions) {
    throw errors.invalidRequest(`'dimensions' must be at most ${model.dimensions} for model '${model.id}'.`, 'dimensions');
  }
}
