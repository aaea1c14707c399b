import { errors } from '../errors/app-error.js';
import type { JobPayload } from '../jobs/job-catalog.js';
import { isChatModel, isEmbeddingModel, type ChatModelConfig, type EmbeddingModelConfig, type ModelRegistry } from '../models/model-registry.js';
import type { ChatParams, chatCompletionRequestSchema } from './request-schemas.js';
import type { z } from 'zod';

/**
 * The checks an OpenAI-compatible request goes through after its schema, beyond what a schema can
 * say (the model's task and limits): one copy, used by the online endpoints (api/routes) and by
 * batch validation (workers/batches), so a line is refused exactly when the endpoint would refuse it.
 */
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

export function resolveChatModel(registry: ModelRegistry, id: string): ChatModelConfig {
  const model = registry.get(id);
  if (!model) throw errors.modelNotFound(id);
  if (!isChatModel(model)) throw errors.invalidRequest(`Model '${id}' is not a chat model.`, 'model', 'wrong_model_task');
  return model;
}

/** Fields of POST /v1/chat/completions that OpenAI has and this service refuses rather than ignores. */
export function checkChatCompletionOptions(body: z.infer<typeof chatCompletionRequestSchema>): void {
  for (const p of ['presence_penalty', 'frequency_penalty'] as const) {
    if (body[p]) throw errors.invalidRequest(`'${p}' is not supported; use 'repetition_penalty'.`, p, 'unsupported_parameter');
  }
}

/** A chat job's payload from a validated request, within the model's limits; `prompt`: a legacy completion's raw prompt (see chatPayloadSchema). */
export function chatPayload(model: ChatModelConfig, p: ChatParams & { prompt?: string }): JobPayload<'chat'> {
  const maxTokens = p.max_tokens ?? model.default_max_tokens;
  if (maxTokens > model.max_tokens_limit) {
    throw errors.invalidRequest(`'max_tokens' is ${maxTokens}; model '${model.id}' allows at most ${model.max_tokens_limit}.`, 'max_tokens', 'max_tokens_too_large');
  }
  if (p.messages.every((m) => m.role !== 'user')) {
    throw errors.invalidRequest("'messages' must contain at least one message with role 'user'.", 'messages');
  }
  const n = p.n ?? 1;
  if (p.top_logprobs != null && p.logprobs !== true) {
    throw errors.invalidRequest("'top_logprobs' needs 'logprobs': true.", 'top_logprobs');
  }
  // An upstream's stream is read for one answer's text: several choices and logprobs need the local engine.
  if (model.format === 'openai-upstream' && (n > 1 || p.logprobs === true)) {
    const param = n > 1 ? 'n' : 'logprobs';
    throw errors.invalidRequest(`'${param}' is not supported for model '${model.id}', which an upstream serves.`, param, 'unsupported_parameter');
  }
  // The choices of a request decode together in one batch (workers/chat/generation-engine.ts).
  if (n > model.concurrency) {
    throw errors.invalidRequest(`'n' is ${n}; model '${model.id}' decodes at most ${model.concurrency} sequences together.`, 'n');
  }
  return {
    model: model.id,
    messages: p.messages,
    max_tokens: maxTokens,
    temperature: p.temperature ?? 1,
    top_p: p.top_p ?? 1,
    top_k: p.top_k ?? 0,
    repetition_penalty: p.repetition_penalty ?? 1,
    ...(p.seed === undefined ? {} : { seed: p.seed }),
    stop: p.stop ?? [],
    ...(p.logprobs === true ? { logprobs: true, ...(p.top_logprobs == null ? {} : { top_logprobs: p.top_logprobs }) } : {}),
    ...(n > 1 ? { n } : {}),
    ...(p.prompt === undefined ? {} : { prompt: p.prompt }),
  };
}
