import type { Scope } from '../../shared/api/scopes.js';
import { errors } from '../../shared/errors/app-error.js';
import { JOB_TYPES, SUBMITTABLE_JOB_TYPES, jobSpec, jobTypeOfQueue, makeJobId, modelQueueName, queueOfJobId, type JobType } from '../../shared/jobs/job-catalog.js';

/**
 * Every HTTP route of the API, with who may call it. Authorization is a property of the route, not
 * of the path string: the route modules register their handlers through api/http/table-router.ts,
 * which accepts only paths listed here and puts the check of the entry in front of the handler,
 * and the OpenAPI document (api/http/openapi.ts) is generated from the same entries. So a route
 * cannot exist without a declared access, and what the document says is what is enforced.
 *
 * Paths are Express patterns, matched case-sensitively and strictly (no trailing slash), after
 * api/http/canonical-path.ts has refused every other spelling of a path: `:name` is one segment,
 * `*name` the rest of the path.
 */

export type Method = 'GET' | 'POST' | 'DELETE';

/** A request as a scope resolver sees it: its route parameters and its parsed body. */
export interface ScopeInput {
  params: Record<string, unknown>;
  body: unknown;
}

/** For routes whose scope depends on what the request is about (the job type, the job id). */
export interface ScopeResolver {
  /** How the scope is chosen, for the OpenAPI document. */
  describe: string;
  /** One request per scope it can give (tests/integration/access-matrix.test.ts sends each). */
  cases: readonly { params?: Record<string, string>; body?: Record<string, unknown>; scope: Scope | readonly Scope[] }[];
  /**
   * The scope (several: the caller must hold every one), or an AppError thrown when the request can
   * name none (it could never succeed).
   */
  resolve(req: ScopeInput): Scope | readonly Scope[];
}

export type Access =
  /** Anyone, without credentials: health, documentation, the playground. */
  | { kind: 'public' }
  /** ADMIN_API_KEY only, checked by the route itself (operations pages outside /v1, read by Prometheus and browsers). */
  | { kind: 'admin-key'; basicChallenge?: boolean }
  /**
   * A credential accepted by the /v1 chain (API key, JWT, signed request) holding `scope` ('any':
   * every valid credential); with `globalAdmin`, it must moreover be ADMIN_API_KEY.
   */
  | { kind: 'tenant'; scope: Scope | ScopeResolver | 'any'; globalAdmin?: boolean };

export interface RouteSpec {
  method: Method;
  path: string;
  access: Access;
  summary: string;
  tags: readonly string[];
  /** The task a body's `model` is for (tenant-specific models and `"model": "default"`); 'job-type': the body's `type`. */
  modelTask?: 'embedding' | 'chat' | 'job-type';
  /** A sub-application mounted at the path (Bull Board): every method and every path below it. */
  mount?: boolean;
}

/** The scope a job type needs to submit, read or cancel its jobs: its catalog entry's (undefined: none may). */
export function jobTypeScope(type: JobType): Scope | undefined {
  return jobSpec(type).scope ?? undefined;
}

/** Job types whose jobs /v1/jobs reaches, with the scope each needs. */
const SCOPED_JOB_TYPES = JOB_TYPES.flatMap((type) => {
  const scope = jobTypeScope(type);
  return scope ? [{ type, scope }] : [];
});

/** The scope that reads or cancels the job with this public id (from the job type of the queue it names), or undefined when no such queue exists. */
export function scopeOfJobId(id: string): Scope | undefined {
  const type = jobTypeOfQueue(queueOfJobId(id));
  return type === undefined ? undefined : jobTypeScope(type);
}

/** A queue of each job type, as a job id names it (a model's queue for per-model types). */
function exampleQueue(type: JobType): string {
  const q = jobSpec(type).queue;
  return 'name' in q ? q.name : modelQueueName(type, 'example');
}

/** One request per scope (the access matrix sends each case): the first type that needs it. */
function oneCasePerScope<C extends { scope: Scope }>(cases: C[]): C[] {
  return cases.filter((c, i) => cases.findIndex((d) => d.scope === c.scope) === i);
}

/** Submittable types that may be submitted: all of them, as long as the catalog gives each a scope (the wiring test checks). */
const SUBMITTABLE = SCOPED_JOB_TYPES.filter(({ type }) => SUBMITTABLE_JOB_TYPES.some((t) => t === type));

const byJobType: ScopeResolver = {
  describe: `by the body's \`type\`: ${SUBMITTABLE.map(({ type, scope }) => `${type} → \`${scope}\``).join(', ')}`,
  cases: oneCasePerScope(SUBMITTABLE.map(({ type, scope }) => ({ body: { type }, scope }))),
  resolve: ({ body }) => {
    const type = (body as { type?: unknown } | undefined)?.type;
    const submittable = SUBMITTABLE.find((t) => t.type === type);
    if (submittable) return submittable.scope;
    throw errors.invalidRequest(`'type' must be one of ${SUBMITTABLE.map((t) => `'${t.type}'`).join(', ')}.`, 'type');
  },
};

const byJobId: ScopeResolver = {
  describe: `by the job's type, which the queue in its id (the part before \`~\`) tells: ${SCOPED_JOB_TYPES.map(({ type, scope }) => `${type} → \`${scope}\``).join(', ')}`,
  cases: oneCasePerScope(SCOPED_JOB_TYPES.map(({ type, scope }) => ({ params: { id: makeJobId(exampleQueue(type), '00000000-0000-4000-8000-000000000000') }, scope }))),
  resolve: ({ params }) => {
    const id = typeof params.id === 'string' ? params.id : '';
    const scope = scopeOfJobId(id);
    if (scope) return scope;
    // No queue of this name exists, so neither does the job: the same answer as for a missing one.
    throw errors.notFound(`No job with id '${id}'.`, 'job_not_found', 'id');
  },
};

/** A chat request that searches the tenant's vector stores (the `file_search` tool) reads them: it needs both scopes. */
const CHAT_WITH_FILE_SEARCH: readonly Scope[] = ['chat', 'documents'];
const byChatTools: ScopeResolver = {
  describe: "by the body's `tools`: `chat`, and with a `file_search` tool `documents` too (the search reads the tenant's vector stores)",
  cases: [{ scope: 'chat' }, { body: { tools: [{ type: 'file_search' }] }, scope: CHAT_WITH_FILE_SEARCH }],
  resolve: ({ body }) => {
    const tools = (body as { tools?: unknown } | undefined)?.tools;
    const searches = Array.isArray(tools) && tools.some((t) => !!t && typeof t === 'object' && (t as { type?: unknown }).type === 'file_search');
    return searches ? CHAT_WITH_FILE_SEARCH : 'chat';
  },
};

const PUBLIC = { kind: 'public' } as const;
const ADMIN_KEY = { kind: 'admin-key' } as const;
const ANY = { kind: 'tenant', scope: 'any' } as const;
const scope = (s: Scope | ScopeResolver) => ({ kind: 'tenant', scope: s }) as const;
const GLOBAL_ADMIN = { kind: 'tenant', scope: 'admin', globalAdmin: true } as const;

export const ROUTES = [
  // Public pages: the playground, health, the API's own documentation.
  { method: 'GET', path: '/', access: PUBLIC, tags: ['playground'], summary: 'The web playground: chat with live tokens, embeddings, recent jobs (uses the public API with a pasted key)' },
  { method: 'GET', path: '/playground.js', access: PUBLIC, tags: ['playground'], summary: "The playground's script: the typed client bundled with its UI code" },
  { method: 'GET', path: '/healthz', access: PUBLIC, tags: ['operations'], summary: 'Liveness: the process is up' },
  { method: 'GET', path: '/readyz', access: PUBLIC, tags: ['operations'], summary: 'Readiness: Redis answers and every model has a live worker that loaded it' },
  { method: 'GET', path: '/openapi.json', access: PUBLIC, tags: ['operations'], summary: 'This document' },
  { method: 'GET', path: '/docs', access: PUBLIC, tags: ['operations'], summary: 'Interactive documentation of this document (Swagger UI, served locally)' },
  { method: 'GET', path: '/docs/:asset', access: PUBLIC, tags: ['operations'], summary: "Swagger UI's static files (scripts, styles, the page's initialiser)" },

  // Operations pages: the admin key only.
  { method: 'GET', path: '/metrics', access: ADMIN_KEY, tags: ['operations'], summary: 'Prometheus metrics of this API process (admin key)' },
  {
    method: 'GET',
    path: '/admin/queues',
    access: { kind: 'admin-key', basicChallenge: true },
    mount: true,
    tags: ['operations'],
    summary: 'Bull Board, the queue dashboard (admin key; its own pages and JSON API live under this path)',
  },

  // Any valid credential.
  { method: 'POST', path: '/v1/auth/token', access: ANY, tags: ['auth'], summary: 'Exchange the API key of this request for a short-lived JWT (HS256)' },
  { method: 'GET', path: '/v1/models', access: ANY, tags: ['models'], summary: 'The model registry (OpenAI list shape)' },
  { method: 'GET', path: '/v1/models/*id', access: ANY, tags: ['models'], summary: 'One model' },

  // Inference.
  { method: 'POST', path: '/v1/embeddings', access: scope('embeddings'), modelTask: 'embedding', tags: ['embeddings'], summary: 'Create embeddings (OpenAI-compatible), waiting for the result' },
  { method: 'POST', path: '/v1/chat/completions', access: scope(byChatTools), modelTask: 'chat', tags: ['chat'], summary: 'Create a chat completion (OpenAI-compatible), whole or streamed' },
  { method: 'POST', path: '/v1/responses', access: scope(byChatTools), modelTask: 'chat', tags: ['responses'], summary: "Create a response (OpenAI's Responses API): whole, streamed, or in the background on the queue" },
  { method: 'GET', path: '/v1/responses/:id', access: scope('chat'), tags: ['responses'], summary: 'A stored response; with `stream=true`, a background response\'s events from `starting_after` on' },
  { method: 'DELETE', path: '/v1/responses/:id', access: scope('chat'), tags: ['responses'], summary: 'Delete a stored response (a running one is cancelled first)' },
  { method: 'POST', path: '/v1/responses/:id/cancel', access: scope('chat'), tags: ['responses'], summary: 'Cancel a background response' },
  { method: 'GET', path: '/v1/responses/:id/input_items', access: scope('chat'), tags: ['responses'], summary: 'The items a stored response was generated from' },
  { method: 'POST', path: '/v1/completions', access: scope('chat'), modelTask: 'chat', tags: ['chat'], summary: 'Create a text completion (legacy OpenAI endpoint): a raw prompt, no chat template' },
  {
    method: 'POST',
    path: '/v1/tokenize',
    access: scope('chat'),
    modelTask: 'chat',
    tags: ['chat'],
    summary: "Token ids of a prompt or of messages through the chat template, with the model's own tokenizer (vLLM's /tokenize)",
  },
  { method: 'POST', path: '/v1/detokenize', access: scope('chat'), modelTask: 'chat', tags: ['chat'], summary: "Text of token ids, with the model's own tokenizer (vLLM's /detokenize)" },
  { method: 'POST', path: '/v1/chatbot', access: scope('chat'), tags: ['chat'], summary: "One turn of the tenant's chatbot: intent, dialogue state, tools, knowledge-base answer" },
  { method: 'POST', path: '/v1/jobs', access: scope(byJobType), modelTask: 'job-type', tags: ['jobs'], summary: 'Submit an asynchronous job' },
  { method: 'GET', path: '/v1/jobs/:id', access: scope(byJobId), tags: ['jobs'], summary: "A job's status, progress, timings and result" },
  { method: 'DELETE', path: '/v1/jobs/:id', access: scope(byJobId), tags: ['jobs'], summary: 'Cancel a job that has not finished' },

  // Documents and search.
  { method: 'POST', path: '/v1/documents', access: scope('documents'), tags: ['documents'], summary: 'Upload a document into a collection and start its ingestion' },
  { method: 'GET', path: '/v1/documents/:id', access: scope('documents'), tags: ['documents'], summary: "A document's status, progress and metadata" },
  { method: 'DELETE', path: '/v1/documents/:id', access: scope('documents'), tags: ['documents'], summary: 'Delete a document: its chunks leave search at once' },
  { method: 'GET', path: '/v1/collections', access: scope('documents'), tags: ['documents'], summary: "The tenant's collections" },
  { method: 'DELETE', path: '/v1/collections/:name', access: scope('documents'), tags: ['documents'], summary: 'Delete a collection with its documents, chunks and index' },
  { method: 'GET', path: '/v1/collections/:name/documents', access: scope('documents'), tags: ['documents'], summary: "A collection's documents" },
  { method: 'POST', path: '/v1/collections/:name/search', access: scope('documents'), tags: ['documents'], summary: 'Vector search in a collection' },

  // Vector stores (OpenAI's retrieval API) over the collections: the documents scope, the same data.
  { method: 'POST', path: '/v1/vector_stores', access: scope('documents'), tags: ['vector_stores'], summary: 'Create a vector store (a collection of the tenant), optionally with files' },
  { method: 'GET', path: '/v1/vector_stores', access: scope('documents'), tags: ['vector_stores'], summary: "The tenant's vector stores" },
  { method: 'GET', path: '/v1/vector_stores/:vector_store_id', access: scope('documents'), tags: ['vector_stores'], summary: 'One vector store with its file counts' },
  { method: 'POST', path: '/v1/vector_stores/:vector_store_id', access: scope('documents'), tags: ['vector_stores'], summary: 'Update a vector store (name, metadata, expiry)' },
  { method: 'DELETE', path: '/v1/vector_stores/:vector_store_id', access: scope('documents'), tags: ['vector_stores'], summary: 'Delete a vector store with its collection' },
  { method: 'POST', path: '/v1/vector_stores/:vector_store_id/search', access: scope('documents'), tags: ['vector_stores'], summary: 'Search a vector store (hybrid by default, attribute filters)' },
  { method: 'POST', path: '/v1/vector_stores/:vector_store_id/files', access: scope('documents'), tags: ['vector_stores'], summary: 'Attach a file (Files API) and ingest it' },
  { method: 'GET', path: '/v1/vector_stores/:vector_store_id/files', access: scope('documents'), tags: ['vector_stores'], summary: "A vector store's files" },
  { method: 'GET', path: '/v1/vector_stores/:vector_store_id/files/:file_id', access: scope('documents'), tags: ['vector_stores'], summary: 'One vector store file' },
  { method: 'POST', path: '/v1/vector_stores/:vector_store_id/files/:file_id', access: scope('documents'), tags: ['vector_stores'], summary: "Update a vector store file's attributes" },
  { method: 'DELETE', path: '/v1/vector_stores/:vector_store_id/files/:file_id', access: scope('documents'), tags: ['vector_stores'], summary: 'Remove a file from a vector store: its chunks leave search' },
  { method: 'GET', path: '/v1/vector_stores/:vector_store_id/files/:file_id/content', access: scope('documents'), tags: ['vector_stores'], summary: "A vector store file's parsed chunks" },
  { method: 'POST', path: '/v1/vector_stores/:vector_store_id/file_batches', access: scope('documents'), tags: ['vector_stores'], summary: 'Attach several files at once' },
  { method: 'GET', path: '/v1/vector_stores/:vector_store_id/file_batches/:batch_id', access: scope('documents'), tags: ['vector_stores'], summary: 'One file batch' },
  { method: 'POST', path: '/v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel', access: scope('documents'), tags: ['vector_stores'], summary: "Cancel a file batch's unfinished files" },
  { method: 'GET', path: '/v1/vector_stores/:vector_store_id/file_batches/:batch_id/files', access: scope('documents'), tags: ['vector_stores'], summary: "A file batch's files" },

  // Files (OpenAI's Files API): batch input and output files, and others.
  { method: 'POST', path: '/v1/files', access: scope('files'), tags: ['files'], summary: 'Upload a file (multipart, streamed; OpenAI-compatible)' },
  { method: 'GET', path: '/v1/files', access: scope('files'), tags: ['files'], summary: "The tenant's files, newest first" },
  { method: 'GET', path: '/v1/files/:file_id', access: scope('files'), tags: ['files'], summary: 'One file' },
  { method: 'GET', path: '/v1/files/:file_id/content', access: scope('files'), tags: ['files'], summary: "A file's bytes" },
  { method: 'DELETE', path: '/v1/files/:file_id', access: scope('files'), tags: ['files'], summary: 'Delete a file' },

  // Batches (OpenAI's Batch API): a JSONL file of requests run as low-priority jobs.
  { method: 'POST', path: '/v1/batches', access: scope('batches'), tags: ['batches'], summary: 'Create a batch from an uploaded JSONL file (OpenAI-compatible)' },
  { method: 'GET', path: '/v1/batches', access: scope('batches'), tags: ['batches'], summary: "The tenant's batches, newest first" },
  { method: 'GET', path: '/v1/batches/:batch_id', access: scope('batches'), tags: ['batches'], summary: 'One batch, with live request counts' },
  { method: 'POST', path: '/v1/batches/:batch_id/cancel', access: scope('batches'), tags: ['batches'], summary: 'Cancel a batch: queued lines are dropped, finished ones kept' },
  // Webhooks: the tenant's endpoints and their delivery logs (docs/WEBHOOKS.md).
  { method: 'POST', path: '/v1/webhooks', access: scope('webhooks'), tags: ['webhooks'], summary: 'Register a webhook endpoint; the answer is the only place its secret is shown' },
  { method: 'GET', path: '/v1/webhooks', access: scope('webhooks'), tags: ['webhooks'], summary: "The tenant's webhook endpoints (never their secrets)" },
  { method: 'GET', path: '/v1/webhooks/:id', access: scope('webhooks'), tags: ['webhooks'], summary: 'One webhook endpoint, with the state of its circuit breaker' },
  { method: 'DELETE', path: '/v1/webhooks/:id', access: scope('webhooks'), tags: ['webhooks'], summary: 'Delete a webhook endpoint with its delivery log; its pending deliveries are dropped' },
  { method: 'POST', path: '/v1/webhooks/:id/rotate_secret', access: scope('webhooks'), tags: ['webhooks'], summary: "Replace an endpoint's signing secret (shown once), optionally overlapping the old one" },
  { method: 'GET', path: '/v1/webhooks/:id/deliveries', access: scope('webhooks'), tags: ['webhooks'], summary: "An endpoint's delivery log, newest first" },

  // Identity administration: the admin key for tenants; the `admin` scope for a tenant's own keys.
  { method: 'POST', path: '/v1/admin/tenants', access: GLOBAL_ADMIN, tags: ['admin'], summary: 'Create a tenant (admin key only)' },
  { method: 'GET', path: '/v1/admin/tenants', access: scope('admin'), tags: ['admin'], summary: 'List tenants (a tenant admin sees its own)' },
  { method: 'DELETE', path: '/v1/admin/tenants/:id', access: GLOBAL_ADMIN, tags: ['admin'], summary: 'Revoke a tenant: every key of it is refused from now on (admin key only)' },
  { method: 'POST', path: '/v1/admin/keys', access: scope('admin'), tags: ['admin'], summary: 'Create an API key; the answer is the only place the key is ever shown' },
  { method: 'GET', path: '/v1/admin/keys', access: scope('admin'), tags: ['admin'], summary: 'List API keys (never their secrets)' },
  { method: 'DELETE', path: '/v1/admin/keys/:id', access: scope('admin'), tags: ['admin'], summary: 'Revoke an API key at once (tokens minted from it die too)' },
  {
    method: 'POST',
    path: '/v1/admin/keys/:id/rotate',
    access: scope('admin'),
    tags: ['admin'],
    summary: 'Replace an API key with a new one of the same tenant, scopes, limits and signing rule',
  },
] as const satisfies readonly RouteSpec[];

export type RouteEntry = (typeof ROUTES)[number];
export type RouteKey = `${RouteEntry['method']} ${RouteEntry['path']}`;
export type RoutePath<M extends Method> = Extract<RouteEntry, { method: M; mount?: never }>['path'];
export type MountPath = Extract<RouteEntry, { mount: true }>['path'];

export function routeKey(r: { method: string; path: string }): string {
  return `${r.method} ${r.path}`;
}

/** The OpenAPI spelling of an Express path: `:id` and `*id` become `{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/[:*](\w+)/g, '{$1}');
}
