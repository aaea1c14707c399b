import { ZodError } from 'zod';
import { checkChatCompletionOptions, checkEmbeddingInput, chatPayload, resolveChatModel, resolveEmbeddingModel } from '../api/openai-requests.js';
import { chatCompletionBody, chatFailure } from '../api/openai-responses.js';
import { chatCompletionRequestSchema, embeddingsRequestSchema } from '../api/request-schemas.js';
import { createResponseRequestSchema } from '../api/responses-schemas.js';
import { settledResponse } from '../responses/responses-events.js';
import { chatPayload as responsesChatPayload, checkSupported, createdResponse, inputItems, newMessageId, newResponseId } from '../responses/responses-request.js';
import { AppError, errors } from '../errors/app-error.js';
import { fromZod } from '../errors/zod-errors.js';
import { embeddingList } from '../jobs/job-views.js';
import type { JobResult } from '../jobs/job-catalog.js';
import type { ModelRegistry } from '../models/model-registry.js';
import { batchRequestId, type BatchEndpoint, type BatchLine, type LineOutcome } from './batch-store.js';

export type ValidatedLine = { ok: true; line: BatchLine } | { ok: false; outcome: Extract<LineOutcome, { ok: false }> };

/**
 * One line of a batch input file, checked exactly as its endpoint checks a request (the same
 * schemas and functions, shared/api), into either a job to run or the error line it gets. A line
 * that is not a request at all (bad JSON, no custom_id, another method or url) gets `response: null`;
 * a request the endpoint refuses gets the endpoint's own 4xx answer as its `response`.
 */
export function validateBatchLine(text: string, endpoint: BatchEndpoint, deps: { registry: ModelRegistry; maxInputs: number }): ValidatedLine {
  const notARequest = (code: string, message: string, customId: string | null = null): ValidatedLine => ({
    ok: false,
    outcome: { ok: false, custom_id: customId, error: { code, message }, response: null, at: Math.floor(Date.now() / 1000) },
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return notARequest('invalid_json', `The line is not valid JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return notARequest('invalid_request', 'The line must be a JSON object with custom_id, method, url and body.');
  const req = raw as { custom_id?: unknown; method?: unknown; url?: unknown; body?: unknown };
  if (typeof req.custom_id !== 'string' || req.custom_id === '') return notARequest('missing_custom_id', "The line has no 'custom_id' (a non-empty string).");
  const customId = req.custom_id;
  if (req.method !== 'POST') return notARequest('invalid_method', `'method' must be 'POST' (got ${JSON.stringify(req.method ?? null)}).`, customId);
  if (req.url !== endpoint) return notARequest('invalid_url', `'url' must be the batch's endpoint '${endpoint}' (got ${JSON.stringify(req.url ?? null)}).`, customId);
  try {
    return { ok: true, line: requestOf(customId, req.body ?? {}, endpoint, deps) };
  } catch (err) {
    const e = err instanceof ZodError ? fromZod(err) : err instanceof AppError ? err : errors.invalidRequest(String((err as Error).message ?? err));
    return { ok: false, outcome: { ok: false, custom_id: customId, error: { code: e.code, message: e.message }, response: { status_code: e.status, body: e.toBody() }, at: Math.floor(Date.now() / 1000) } };
  }
}

function requestOf(customId: string, body: unknown, endpoint: BatchEndpoint, deps: { registry: ModelRegistry; maxInputs: number }): BatchLine {
  switch (endpoint) {
    case '/v1/embeddings': {
      const b = embeddingsRequestSchema.parse(body);
      const model = resolveEmbeddingModel(deps.registry, b.model);
      checkEmbeddingInput(b.input, b.dimensions, model, deps.maxInputs);
      return { custom_id: customId, type: 'embedding', payload: { model: model.id, input: b.input, ...(b.dimensions ? { dimensions: b.dimensions } : {}) }, encoding_format: b.encoding_format };
    }
    case '/v1/chat/completions': {
      const b = chatCompletionRequestSchema.parse(body);
      checkChatCompletionOptions(b);
      if (b.stream) throw errors.invalidRequest("'stream' is not supported in a batch: each line's answer is written whole to the output file.", 'stream', 'unsupported_parameter');
      const model = resolveChatModel(deps.registry, b.model);
      return { custom_id: customId, type: 'chat', payload: chatPayload(model, { ...b, max_tokens: b.max_completion_tokens ?? b.max_tokens }) };
    }
    case '/v1/responses': {
      const b = createResponseRequestSchema.parse(body);
      if (b.stream) throw errors.invalidRequest("'stream' is not supported in a batch: each line's response is written whole to the output file.", 'stream', 'unsupported_parameter');
      if (b.background) throw errors.invalidRequest("'background' is not supported in a batch: a batch line already runs in the background.", 'background', 'unsupported_parameter');
      // A line runs on a worker, which cannot read the stored responses of the API.
      if (b.previous_response_id) throw errors.invalidRequest("'previous_response_id' is not supported in a batch: send the conversation as 'input' items.", 'previous_response_id', 'unsupported_parameter');
      // The search runs in the API before a response's job (it reads the tenant's vector stores); a
      // line would run without it, and answer as if the tool had found nothing.
      if (b.tools?.some((t) => t.type === 'file_search')) {
        throw errors.invalidRequest("The 'file_search' tool is not supported in a batch: send the search's results as 'input', or use POST /v1/responses.", 'tools', 'unsupported_parameter');
      }
      checkSupported(b);
      const model = resolveChatModel(deps.registry, b.model);
      const payload = responsesChatPayload(model, b, inputItems(b.input));
      // Not stored: GET /v1/responses/{id} cannot read a batch line's response (the output file holds it), and its body says so.
      const created = createdResponse(newResponseId(), b, payload, { background: false, store: false });
      return { custom_id: customId, type: 'chat', payload, response: { created, message_id: newMessageId() } };
    }
  }
}

/**
 * A line of the output or error file, in OpenAI's format: `{id, custom_id, response: {status_code,
 * request_id, body}, error}`. A successful line's body is exactly what the online endpoint answers.
 */
export function outputLine(batchId: string, index: number, customId: string | null, line: BatchLine | undefined, outcome: LineOutcome): string {
  const id = batchRequestId(batchId, index);
  if (outcome.ok) {
    const chat = outcome.result as JobResult<'chat'>;
    const body =
      line?.type === 'embedding'
        ? embeddingList(outcome.result as JobResult<'embedding'>, line.encoding_format)
        : line?.response
          ? settledResponse(line.response.created, line.response.message_id, { status: 'completed', jobId: outcome.job_id, model: chat.model, result: chat }, undefined, outcome.at)
          : chatCompletionBody(`chatcmpl-${id.slice('batch_req_'.length)}`, outcome.at, chat.model, chat);
    return JSON.stringify({ id, custom_id: customId, response: { status_code: 200, request_id: outcome.job_id, body }, error: null });
  }
  const response = outcome.response ? { status_code: outcome.response.status_code, request_id: outcome.job_id ?? null, body: outcome.response.body } : null;
  return JSON.stringify({ id, custom_id: customId, response, error: outcome.error });
}

/** The outcome of a line job that failed: the error its endpoint would have answered with. */
export function failedLineOutcome(type: string, jobId: string, error: { message: string; code: string }): Extract<LineOutcome, { ok: false }> {
  // Embedding jobs fail only on what the endpoint answers with a 500; chat maps its codes (context length: 400).
  const e = type === 'chat' ? chatFailure(error) : errors.internal(`The embedding job failed: ${error.message}`);
  return { ok: false, error: { code: error.code, message: error.message }, response: { status_code: e.status, body: e.toBody() }, job_id: jobId, at: Math.floor(Date.now() / 1000) };
}
