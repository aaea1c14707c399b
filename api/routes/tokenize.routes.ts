import { detokenizeRequestSchema, tokenizeRequestSchema } from '../../shared/api/request-schemas.js';
import type { ChatService } from '../jobs/chat-service.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * vLLM's /tokenize and /detokenize, under /v1 (where this API authenticates tenants): the chat
 * model's own tokenizer and template, run as a job by a worker that serves the model.
 */
export function tokenizeRoutes(deps: { chat: ChatService }): TableRoutes {
  const router = tableRoutes();

  router.post('/v1/tokenize', async (req, res) => {
    const body = tokenizeRequestSchema.parse(req.body);
    const model = deps.chat.resolveModel(body.model);
    const { tokens = [], count = 0, max_model_len } = await deps.chat.tokenize(req.principal!.tenant, model, { ...body, model: model.id }, String(req.id));
    res.json({ count, max_model_len, tokens });
  });

  router.post('/v1/detokenize', async (req, res) => {
    const body = detokenizeRequestSchema.parse(req.body);
    const model = deps.chat.resolveModel(body.model);
    const { prompt = '' } = await deps.chat.tokenize(req.principal!.tenant, model, { model: model.id, tokens: body.tokens }, String(req.id));
    res.json({ prompt });
  });

  return router;
}
