import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import {
  chatCompletionRequestSchema,
  chatbotRequestSchema,
  completionRequestSchema,
  detokenizeRequestSchema,
  embeddingsRequestSchema,
  tokenizeRequestSchema,
} from '../../shared/api/request-schemas.js';
import type { ErrorType } from '../../shared/errors/app-error.js';
import { JOB_TYPES, chatResultSchema, chatTokenLogprobSchema } from '../../shared/jobs/job-catalog.js';
import { chatToolCallSchema } from '../../shared/chat/chat-options.js';
import { createJobRequestSchema } from '../../shared/jobs/job-requests.js';
import { securityOperations } from './openapi-security.js';
import { documentOperations } from './openapi-documents.js';
import { fileOperations } from './openapi-files.js';
import { vectorStoreOperations } from './openapi-vector-stores.js';
import { batchOperations } from './openapi-batches.js';
import { responsesOperations } from './openapi-responses.js';
import { webhookOperations } from './openapi-webhooks.js';
import { webhookEventBody } from '../../shared/webhooks/webhook-api.js';
import type { DescribeOperation, Operation } from './openapi-operation.js';
import { ROUTES, openApiPath, routeKey, type Access, type RouteKey, type RouteSpec } from './route-table.js';

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the route table (api/http/route-table.ts):
 * every route of the table is an operation, with the table's summary, tags and access (security
 * requirements, the scope, a 403 where one is needed). Request bodies are the very zod schemas the
 * routes validate with (shared/api/request-schemas.ts), so the contract cannot drift from the code;
 * the response shapes are described here (`op(...)` per route) and checked against real answers by
 * tests/integration/observability.test.ts. A table route without its `op` fails the build of the
 * document.
 */
const ERROR_TYPES = [
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'conflict_error',
  'rate_limit_error',
  'server_error',
  'service_unavailable',
  'timeout_error',
] as const satisfies readonly ErrorType[];
// Fails to compile when app-error.ts gains an error type that is not listed above.
const _everyErrorTypeListed: [Exclude<ErrorType, (typeof ERROR_TYPES)[number]>] extends [never] ? true : false = true;
void _everyErrorTypeListed;

const errorResponse = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.enum(ERROR_TYPES),
      code: z.string().nullable(),
      param: z.string().nullable(),
    }),
  })
  .meta({ id: 'ErrorResponse', description: "Every error answer, in OpenAI's shape." });

const embeddingObject = z.object({
  object: z.literal('embedding'),
  index: z.number().int().min(0),
  embedding: z.union([z.array(z.number()), z.string().meta({ description: 'base64 of little-endian float32 values' })]),
});
const usage = z.object({ prompt_tokens: z.number().int().min(0), total_tokens: z.number().int().min(0) });
const embeddingList = z
  .object({ object: z.literal('list'), data: z.array(embeddingObject), model: z.string(), usage })
  .meta({ id: 'CreateEmbeddingResponse' });

const jobStatus = z.enum(['queued', 'active', 'completed', 'failed', 'cancelled']);
const job = z
  .object({
    id: z.string().meta({ description: 'Public job id: `<queue>~<uuid>`', example: 'embedding.use-lite~0b6f1c1e-6b0e-4c55-9a8e-3f1f0d2f4a11' }),
    object: z.literal('job'),
    type: z.enum(JOB_TYPES as [string, ...string[]]),
    model: z.string(),
    status: jobStatus,
    progress: z.unknown().meta({ description: 'Job-type specific, e.g. `{texts_done, texts_total}` for large embedding jobs; null before any.' }),
    attempts: z.number().int().min(0),
    created_at: z.number().int().meta({ description: 'Unix seconds' }),
    started_at: z.number().int().nullable(),
    finished_at: z.number().int().nullable(),
    timings: z.object({ queued_ms: z.number().nullable(), run_ms: z.number().nullable() }),
    result: z.unknown().optional().meta({ description: 'When completed: the same body the synchronous endpoint answers with.' }),
    error: z.object({ message: z.string(), code: z.string() }).optional(),
  })
  .meta({ id: 'Job' });

const model = z
  .object({
    id: z.string(),
    object: z.literal('model'),
    created: z.number().int(),
    owned_by: z.string(),
    task: z.string(),
    format: z.string(),
    dimensions: z.number().int().nullable(),
    execution_providers: z.array(z.string()),
    description: z.string().nullable(),
  })
  .meta({ id: 'Model' });
const modelList = z.object({ object: z.literal('list'), data: z.array(model) }).meta({ id: 'ModelList' });

const chatCompletion = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string().meta({ description: 'The model that answered: the requested one or its fallback' }),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({
          role: z.literal('assistant'),
          content: z.string().nullable().meta({ description: 'null when the reply is only tool calls' }),
          refusal: z.null(),
          tool_calls: z.array(chatToolCallSchema).optional(),
        }),
        finish_reason: z.string(),
        logprobs: z
          .object({ content: z.array(chatTokenLogprobSchema), refusal: z.null() })
          .nullable()
          .meta({ description: "With `logprobs: true`: each token's log-probability (the model's own distribution) and `top_logprobs` alternatives" }),
      }),
    ),
    usage: chatResultSchema.shape.usage,
    timings: chatResultSchema.shape.timings.optional().meta({ description: 'Extension: time to first token, total time, tokens per second' }),
  })
  .meta({ id: 'CreateChatCompletionResponse' });

const textCompletion = z
  .object({
    id: z.string(),
    object: z.literal('text_completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int().meta({ description: "Prompt p's choice c is choice p * n + c" }),
        text: z.string(),
        logprobs: z
          .object({
            tokens: z.array(z.string()),
            token_logprobs: z.array(z.number()),
            top_logprobs: z.array(z.record(z.string(), z.number())),
            text_offset: z.array(z.number().int()),
          })
          .nullable(),
        finish_reason: z.string(),
      }),
    ),
    usage: chatResultSchema.shape.usage,
  })
  .meta({ id: 'CreateCompletionResponse' });

const health = z.object({ status: z.literal('ok') });
const readiness = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.object({
      redis: z.string().optional(),
      workers: z.number().int().optional(),
      models: z.record(z.string(), z.number().int()).optional().meta({ description: 'Live workers per model' }),
      shutdown: z.string().optional(),
    }),
  })
  .meta({ id: 'Readiness' });

const jobIdParams = z.object({ id: z.string().meta({ param: { description: 'Job id as returned by POST /v1/jobs' } }) });

const json = (schema: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema } } });
const retryAfter = z.string().meta({ description: 'Seconds to wait before retrying' });
const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request (bad JSON, schema violation, too many inputs)',
  401: 'Missing or invalid API key',
  403: 'The key is valid but may not use this route',
  404: 'Unknown model, job or route',
  409: 'Conflict (job already finished, Idempotency-Key reused with another body)',
  413: 'Request body over MAX_BODY_BYTES',
  415: 'Unsupported body encoding',
  422: 'Well-formed request that cannot be processed',
  429: "Rate limit reached (x-ratelimit-* headers), the tenant's job cap (TENANT_MAX_JOBS) or the model's queue is full",
  500: 'Internal error',
  502: 'The upstream model server failed or timed out',
  503: 'Redis unreachable, shutting down, or (`worker_lost`) the worker running the job died: retry',
  504: 'No result within SYNC_TIMEOUT_MS',
};
function errorsFor(...statuses: number[]) {
  const out: Record<number, { description: string; content: { 'application/json': { schema: z.ZodType } }; headers?: z.ZodObject }> = {};
  for (const s of statuses) {
    out[s] = json(errorResponse, ERROR_DESCRIPTIONS[s] ?? 'Error');
    if (s === 429 || s === 503) out[s]!.headers = z.object({ 'Retry-After': retryAfter });
  }
  return out;
}

const adminSecurity: Record<string, string[]>[] = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { adminBasic: [] }];

/** Security requirements of an access declaration; OpenAPI 3.1 lets them name the role (scope) needed. */
function securityOf(access: Access): Record<string, string[]>[] {
  switch (access.kind) {
    case 'public':
      return [];
    case 'admin-key':
      return adminSecurity;
    case 'tenant': {
      const roles = typeof access.scope === 'string' && access.scope !== 'any' ? [access.scope] : [];
      return [{ bearerAuth: roles }, { apiKeyHeader: roles }, { signedRequest: roles }];
    }
  }
}

function accessSentence(access: Access): string {
  switch (access.kind) {
    case 'public':
      return 'Access: public.';
    case 'admin-key':
      return 'Access: the admin key (ADMIN_API_KEY) only.';
    case 'tenant': {
      if (access.globalAdmin) return 'Access: the admin key (ADMIN_API_KEY) only.';
      const scope = access.scope === 'any' ? 'any valid API key, token or signed request' : typeof access.scope === 'string' ? `the \`${access.scope}\` scope` : `a scope chosen ${access.scope.describe}`;
      return `Access: ${scope}.`;
    }
  }
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, unknown>>;
  components?: Record<string, unknown>;
  [k: string]: unknown;
}

export function buildOpenApiDocument(opts: { version?: string } = {}): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  const operations = new Map<RouteKey, Operation>();
  const op: DescribeOperation = (key, operation) => {
    if (operations.has(key)) throw new Error(`route ${key} is described twice in the OpenAPI document`);
    operations.set(key, operation);
  };
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description:
      'A tenant API key (API_KEYS or /v1/admin/keys), a JWT from POST /v1/auth/token or the configured identity provider, or (on admin routes) ADMIN_API_KEY: `Authorization: Bearer <key or token>`.',
    bearerFormat: 'API key or JWT',
  });
  registry.registerComponent('securitySchemes', 'signedRequest', {
    type: 'apiKey',
    in: 'header',
    name: 'X-QI-Signature',
    description:
      'HMAC-SHA256 signed request (docs/SIGNED_REQUESTS.md): X-QI-Key-Id, X-QI-Timestamp, X-QI-Nonce and X-QI-Signature instead of the key; required for keys created with `require_signature`.',
  });
  registry.registerComponent('securitySchemes', 'apiKeyHeader', {
    type: 'apiKey',
    in: 'header',
    name: 'X-API-Key',
    description: 'The same key in the X-API-Key header.',
  });
  registry.registerComponent('securitySchemes', 'adminBasic', {
    type: 'http',
    scheme: 'basic',
    description: 'Admin routes only, for browsers: any user name, ADMIN_API_KEY as the password.',
  });

  op('POST /v1/embeddings', {
    description: 'Enqueues an embedding job and answers with its result; 504 after SYNC_TIMEOUT_MS.',
    request: { body: { required: true, content: { 'application/json': { schema: embeddingsRequestSchema.meta({ id: 'CreateEmbeddingRequest' }) } } } },
    responses: { 200: json(embeddingList, 'The embeddings, one per input, in input order'), ...errorsFor(400, 401, 404, 413, 429, 500, 503, 504) },
  });

  op('POST /v1/chat/completions', {
    description:
      'With `stream: true` the answer is server-sent `chat.completion.chunk` events ending with `data: [DONE]`; closing the stream cancels the job. ' +
      'Extensions: `top_k`, `repetition_penalty`, `priority`; a `file_search` entry among `tools` (the Responses API\'s flat tool: `{type: "file_search", vector_store_ids, max_num_results, filters, ranking_options}`, needs the `documents` scope too) ' +
      'searches the tenant\'s vector stores first and grounds the answer in the hits; the answer then carries `choices[].message.file_citations` (`file_citation` objects) and a top-level `file_search_call` with its results (streamed: in one chunk before the finish).',
    request: { body: { required: true, content: { 'application/json': { schema: chatCompletionRequestSchema.meta({ id: 'CreateChatCompletionRequest' }) } } } },
    responses: {
      200: {
        description: 'The completion, or (stream: true) its chunks as server-sent events',
        headers: z.object({ 'x-job-id': z.string().meta({ description: 'The job that produced the answer' }) }),
        content: {
          'application/json': { schema: chatCompletion },
          'text/event-stream': {
            schema: z.string().meta({
              description:
                '`data: {chat.completion.chunk}` lines, then `data: [DONE]`; a failure after the stream opened is a `data: {"error": {...}}` line before `[DONE]` (code `worker_lost`: retry). `: keep-alive` comments come after SSE_KEEPALIVE_MS without data.',
            }),
          },
        },
      },
      ...errorsFor(400, 401, 404, 409, 413, 429, 500, 502, 503, 504),
    },
  });

  op('POST /v1/completions', {
    description:
      "OpenAI's legacy text completions on the chat models: the prompt is tokenized as is, without the chat template. `prompt` is a string or a list of up to 8 (each gets `n` choices); " +
      '`logprobs` (0-5) gives `{tokens, token_logprobs, top_logprobs, text_offset}`; `echo` puts the prompt before the text (not together with `logprobs`); `suffix` is refused. ' +
      'With `stream: true` the answer is server-sent `text_completion` chunks ending with `data: [DONE]`.',
    request: { body: { required: true, content: { 'application/json': { schema: completionRequestSchema.meta({ id: 'CreateCompletionRequest' }) } } } },
    responses: {
      200: {
        description: 'The completion, or (stream: true) its chunks as server-sent events',
        headers: z.object({ 'x-job-id': z.string().meta({ description: 'The jobs that produced the answer, one per prompt, comma-separated' }) }),
        content: {
          'application/json': { schema: textCompletion },
          'text/event-stream': { schema: z.string().meta({ description: '`data: {text_completion}` lines, then `data: [DONE]`' }) },
        },
      },
      ...errorsFor(400, 401, 404, 409, 413, 429, 500, 502, 503, 504),
    },
  });

  op('POST /v1/tokenize', {
    description:
      "vLLM's /tokenize: `{model, prompt}` (special tokens added unless `add_special_tokens: false`) or `{model, messages}` (through the model's chat template, the assistant's turn opened unless `add_generation_prompt: false`) → the ids generation would see. " +
      'Runs as a job on the model\'s tokenize queue, where the tokenizer lives; upstream models have none (400).',
    request: { body: { required: true, content: { 'application/json': { schema: tokenizeRequestSchema.meta({ id: 'TokenizeRequest' }) } } } },
    responses: {
      200: json(z.object({ count: z.number().int(), max_model_len: z.number().int(), tokens: z.array(z.number().int()) }).meta({ id: 'TokenizeResponse' }), 'The token ids, their count, and the context the model serves'),
      ...errorsFor(400, 401, 404, 429, 500, 503, 504),
    },
  });

  op('POST /v1/detokenize', {
    description: "vLLM's /detokenize: `{model, tokens}` → `{prompt}`, special tokens kept. Ids outside the vocabulary are a 422.",
    request: { body: { required: true, content: { 'application/json': { schema: detokenizeRequestSchema.meta({ id: 'DetokenizeRequest' }) } } } },
    responses: {
      200: json(z.object({ prompt: z.string() }).meta({ id: 'DetokenizeResponse' }), 'The text'),
      ...errorsFor(400, 401, 404, 422, 429, 500, 503, 504),
    },
  });

  op('POST /v1/chatbot', {
    description:
      'Answers `{reply, intent, confidence, session_id, sources, tool_calls, metadata}`. With `stream: true`: server-sent `{"type":"token","text"}` events, then `{"type":"result", ...}` and `[DONE]`. ' +
      'The `x-job-id` header names the job, which Socket.IO clients can follow.',
    request: { body: { required: true, content: { 'application/json': { schema: chatbotRequestSchema.meta({ id: 'ChatbotRequest' }) } } } },
    responses: {
      200: {
        description: 'The reply, or (stream: true) its pieces as server-sent events',
        content: {
          'application/json': { schema: z.object({ reply: z.string(), intent: z.string(), confidence: z.number(), session_id: z.string(), sources: z.array(z.object({}).passthrough()), tool_calls: z.array(z.object({}).passthrough()), metadata: z.object({}).passthrough() }) },
          'text/event-stream': { schema: z.string() },
        },
      },
      ...errorsFor(400, 401, 404, 409, 429, 500, 503),
    },
  });

  op('POST /v1/jobs', {
    description:
      'The body is one of the job types clients may submit, chosen by `type` (each a `Create…JobRequest`, from the job catalog). ' +
      'Answers 202 as soon as the job is stored. With an Idempotency-Key, a repeated request returns the first job (200, `Idempotent-Replayed: true`); the same key with another body is a 409.',
    request: {
      headers: z.object({
        'Idempotency-Key': z.string().max(255).optional().meta({ param: { description: 'Client-chosen key; the same key returns the same job for 24 h' } }),
      }),
      body: { required: true, content: { 'application/json': { schema: createJobRequestSchema.meta({ id: 'CreateJobRequest' }) } } },
    },
    responses: {
      202: { ...json(job, 'The job was queued'), headers: z.object({ Location: z.string().meta({ description: '/v1/jobs/{id}' }) }) },
      200: { ...json(job, 'Idempotent replay: the job first submitted with this key'), headers: z.object({ 'Idempotent-Replayed': z.literal('true') }) },
      ...errorsFor(400, 401, 404, 409, 413, 429, 500, 503),
    },
  });

  op('GET /v1/jobs/:id', {
    request: { params: jobIdParams },
    responses: { 200: json(job, 'The job'), ...errorsFor(401, 404, 500, 503) },
  });

  op('DELETE /v1/jobs/:id', {
    description: 'A queued job is removed; a running one is aborted in its worker. 409 when it already finished.',
    request: { params: jobIdParams },
    responses: { 200: json(job, 'The job, now cancelled'), ...errorsFor(401, 404, 409, 500, 503) },
  });

  op('GET /v1/models', {
    responses: { 200: json(modelList, 'Every model this deployment serves'), ...errorsFor(401) },
  });

  op('GET /v1/models/*id', {
    description: 'Model ids may contain `/` (Hugging Face ids such as `BAAI/bge-small-en-v1.5`); send them as they are or URL-encoded.',
    request: { params: z.object({ id: z.string().meta({ param: { description: 'Model id' } }) }) },
    responses: { 200: json(model, 'The model'), ...errorsFor(401, 404) },
  });

  op('GET /', {
    responses: { 200: { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
  });

  op('GET /playground.js', {
    responses: { 200: { description: 'JavaScript module', content: { 'application/javascript': { schema: { type: 'string' } } } } },
  });

  documentOperations(op, { json, errorsFor });
  fileOperations(op, { json, errorsFor });
  vectorStoreOperations(op, { json, errorsFor });
  batchOperations(op, { json, errorsFor });
  responsesOperations(op, { json, errorsFor });

  op('GET /healthz', {
    responses: { 200: json(health, 'Up') },
  });

  op('GET /readyz', {
    responses: { 200: json(readiness, 'Ready'), 503: json(readiness, 'Not ready, with the failing checks') },
  });

  op('GET /metrics', {
    responses: {
      200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: z.string() } } },
      ...errorsFor(401, 403),
    },
  });

  op('GET /openapi.json', {
    responses: { 200: { description: 'OpenAPI 3.1 document', content: { 'application/json': { schema: z.object({ openapi: z.string() }).passthrough() } } } },
  });

  op('GET /docs', {
    responses: { 200: { description: 'HTML page', content: { 'text/html': { schema: z.string() } } } },
  });

  op('GET /docs/:asset', {
    request: { params: z.object({ asset: z.string() }) },
    responses: { 200: { description: 'Static file' }, ...errorsFor(404) },
  });

  op('GET /admin/queues', {
    responses: { 200: { description: 'HTML page', content: { 'text/html': { schema: z.string() } } }, ...errorsFor(401, 403) },
  });

  securityOperations(op, { json, errorsFor });
  webhookOperations(op, { json, errorsFor });
  // What the service sends to registered endpoints: OpenAPI 3.1's `webhooks` section.
  registry.registerWebhook({
    method: 'post',
    path: 'event',
    summary: 'A webhook event, as POSTed to an endpoint (Standard Webhooks signature headers)',
    request: {
      headers: z.object({
        'webhook-id': z.string().meta({ param: { description: 'Message id, the same on every retry: drop duplicates by it' } }),
        'webhook-timestamp': z.string().meta({ param: { description: 'Unix seconds of this attempt' } }),
        'webhook-signature': z.string().meta({ param: { description: 'Space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret in use' } }),
      }),
      body: { required: true, content: { 'application/json': { schema: webhookEventBody } } },
    },
    responses: { 200: { description: 'Any 2xx answer acknowledges the event; anything else (or no answer in WEBHOOK_TIMEOUT_MS) is retried' } },
  });

  for (const spec of ROUTES as readonly RouteSpec[]) {
    const key = routeKey(spec) as RouteKey;
    const operation = operations.get(key);
    if (!operation) throw new Error(`route ${key} of the route table is not described in the OpenAPI document`);
    const { access } = spec;
    const needsScope = access.kind === 'tenant' && (access.scope !== 'any' || access.globalAdmin);
    registry.registerPath({
      ...operation,
      method: spec.method.toLowerCase() as 'get' | 'post' | 'delete',
      path: openApiPath(spec.path),
      tags: [...spec.tags],
      summary: spec.summary,
      description: [operation.description, accessSentence(access)].filter(Boolean).join(' '),
      security: securityOf(access),
      responses: { ...(needsScope ? errorsFor(403) : {}), ...operation.responses },
    });
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'queue-inference',
      version: opts.version ?? '0.0.0',
      description:
        "OpenAI-compatible inference behind a queue. Errors always have OpenAI's shape (`ErrorResponse`). " +
        'Realtime job events are on Socket.IO at the same origin (see the README).',
    },
    tags: [
      { name: 'embeddings', description: 'OpenAI-compatible synchronous endpoints' },
      { name: 'chat', description: 'OpenAI-compatible chat completions' },
      { name: 'responses', description: "OpenAI's Responses API, with background responses on the queue" },
      { name: 'jobs', description: 'Asynchronous jobs shared by every job type' },
      { name: 'models', description: 'The model registry' },
      { name: 'documents', description: 'Documents, collections and vector search' },
      { name: 'files', description: "OpenAI's Files API (batch input and output files)" },
      { name: 'batches', description: "OpenAI's Batch API: JSONL files of requests run as low-priority jobs" },
      { name: 'webhooks', description: 'Signed event deliveries (Standard Webhooks) to endpoints a tenant registers' },
      { name: 'auth', description: 'Short-lived tokens for API keys' },
      { name: 'admin', description: 'Tenants and API keys (admin key, or a key with the admin scope for its own tenant)' },
      { name: 'operations', description: 'Health, metrics, documentation and dashboards' },
    ],
  }) as unknown as OpenApiDocument;
}
