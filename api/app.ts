import type { FileSearchRunner } from './vector-stores/file-search-runner.js';
import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { pinoHttp } from 'pino-http';
import { createBullBoardRouter } from '../dashboards/bull-board.js';
import type { Logger } from '../shared/logger.js';
import type { ModelRegistry } from '../shared/models/model-registry.js';
import type { ApiKeyAuthenticator } from './auth/api-key.auth.js';
import { authenticate, completeSignature, recordBodyHash } from './auth/authenticate.js';
import { routeGuards } from './auth/authorize.js';
import type { IdentityService } from './auth/identity.js';
import type { JwtService } from './auth/jwt.js';
import type { KeyStore } from './auth/key-store.js';
import type { CacheableChatRunner, Embedder } from './cache/response-cache.js';
import { canonicalPath } from './http/canonical-path.js';
import { corsPolicy, dashboardSecurityHeaders, securityHeaders } from './http/security-headers.js';
import { mountTableRoutes, tableRoutes } from './http/table-router.js';
import type { RateLimits } from './limits/rate-limits.js';
import { adminRoutes, authRoutes } from './routes/admin.routes.js';
import { errorHandler, notFoundRoute } from './http/error-handler.js';
import { buildOpenApiDocument } from './http/openapi.js';
import type { ChatService } from './jobs/chat-service.js';
import type { JobService } from './jobs/job-service.js';
import type { ApiMetrics } from './metrics/api-metrics.js';
import { chatRoutes } from './routes/chat.routes.js';
import { completionsRoutes } from './routes/completions.routes.js';
import { tokenizeRoutes } from './routes/tokenize.routes.js';
import { chatbotRoutes } from './routes/chatbot.routes.js';
import { responsesRoutes } from './routes/responses.routes.js';
import type { ResponseService } from './responses/response-service.js';
import type { ChatbotConfig } from '../shared/chatbot/chatbot-config.js';
import type { TokenRelay } from './realtime/token-relay.js';
import { documentsRoutes, streamsRequestBody } from './routes/documents.routes.js';
import { filesRoutes } from './routes/files.routes.js';
import { vectorStoresRoutes } from './routes/vector-stores.routes.js';
import type { VectorStoreService } from './vector-stores/vector-store-service.js';
import { batchesRoutes } from './routes/batches.routes.js';
import type { BatchService } from './batches/batch-service.js';
import type { FileService } from './files/file-service.js';
import type { DocumentService } from './documents/document-service.js';
import { docsRoutes } from './routes/docs.routes.js';
import { embeddingsRoutes } from './routes/embeddings.routes.js';
import { healthRoutes } from './routes/health.routes.js';
import { playgroundRoutes } from './routes/playground.routes.js';
import { jobsRoutes } from './routes/jobs.routes.js';
import { metricsRoutes } from './routes/metrics.routes.js';
import { modelsRoutes } from './routes/models.routes.js';
import { webhookUrlChecker, webhooksRoutes, type WebhookDeps } from './routes/webhooks.routes.js';

export interface AppDeps {
  log: Logger;
  auth: ApiKeyAuthenticator;
  jobs: JobService;
  registry: ModelRegistry;
  queues: ReadonlyMap<string, Queue>;
  redis: Redis;
  prefix: string;
  maxBodyBytes: number;
  maxInputs: number;
  coalescer: Embedder;
  chat: ChatService;
  /** Runs chat requests to their end: `chat` behind the response cache. */
  chatRunner: CacheableChatRunner;
  /** The file_search tool of chat completions (the Responses API gets it through its service). */
  fileSearch?: FileSearchRunner;
  /** Absent: no tenant has a chatbot (every /v1/chatbot request is a 404). */
  chatbot?: { config: ChatbotConfig; relay: TokenRelay };
  /** OpenAI's Responses API on top of chat jobs (api/responses). */
  responses: ResponseService;
  isShuttingDown: () => boolean;
  /** Idle time after which an SSE stream gets a `: keep-alive` comment (SSE_KEEPALIVE_MS). */
  sseKeepAliveMs?: number;
  metrics: ApiMetrics;
  /** Documents and vector search (api/documents); without it those routes answer 503. */
  documents?: { service: DocumentService; maxBytes: number };
  /** The Files API (api/files). */
  files: FileService;
  /** OpenAI's vector stores over the collections (api/vector-stores). */
  vectorStores: VectorStoreService;
  /** The Batch API (api/batches). */
  batches: BatchService;
  /** Identity, limits and transport settings (README, "Security"). */
  security: SecurityDeps;
  /** Webhook endpoints and where their URLs may point (docs/WEBHOOKS.md). */
  webhooks: WebhookDeps;
}

export interface SecurityDeps {
  identity: IdentityService;
  store: KeyStore;
  jwt: JwtService;
  limits: RateLimits;
  tls: boolean;
  corsOrigins: readonly string[];
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  // One view of a path (api/http/canonical-path.ts): routes match only as written in the route
  // table. Set before the first app.use, which creates the app's router with these settings.
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(securityHeaders({ tls: deps.security?.tls ?? false }));
  const cors = corsPolicy(deps.security?.corsOrigins ?? []);
  if (cors) app.use(cors);
  // First, so every request is timed and counted (by route pattern, once a route matched).
  app.use(deps.metrics.httpMiddleware());
  app.use(
    pinoHttp({
      logger: deps.log,
      genReqId: (req, res) => {
        const incoming = req.headers['x-request-id'];
        const id = typeof incoming === 'string' && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
        res.setHeader('x-request-id', id);
        return id;
      },
      // Probes would drown the log.
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' },
    }),
  );

  app.use(canonicalPath());

  // Authenticate (and count the request) before parsing, so an anonymous or throttled caller cannot
  // make us parse megabytes of JSON; signed requests finish their check once the body is hashed.
  const sec = () => deps.security;
  app.use('/v1', authenticate(() => sec().identity));
  app.use('/v1', (req, res, next) => sec().limits.requests()(req, res, next));
  app.use('/v1', express.json({ limit: deps.maxBodyBytes, type: ['application/json', 'application/*+json'], verify: recordBodyHash }));
  app.use(
    '/v1',
    completeSignature(() => sec().identity, {
      maxBodyBytes: deps.maxBodyBytes,
      streamsBody: streamsRequestBody,
      countRequest: (identity, res) => sec().limits.consume(identity, 'requests', 1, res),
    }),
  );
  app.use('/v1', (req, res, next) => sec().limits.requests()(req, res, next));
  // Every route, each behind the check its entry in api/http/route-table.ts declares (scope, admin
  // key or public); the table refuses routes it does not list.
  mountTableRoutes(app, routeGuards({ auth: deps.auth, registry: deps.registry, limits: () => sec().limits }), [
    playgroundRoutes(),
    healthRoutes({ redis: deps.redis, registry: deps.registry, prefix: deps.prefix, isShuttingDown: deps.isShuttingDown }),
    metricsRoutes({ metrics: deps.metrics }),
    docsRoutes({ document: () => buildOpenApiDocument() }),
    tableRoutes().mount('/admin/queues', dashboardSecurityHeaders(), createBullBoardRouter(deps.queues.values(), '/admin/queues')),
    authRoutes({ jwt: () => sec().jwt }),
    adminRoutes({ store: () => sec().store, limits: () => sec().limits }),
    modelsRoutes({ registry: deps.registry, startedAt: Date.now() }),
    embeddingsRoutes({ coalescer: deps.coalescer, registry: deps.registry, maxInputs: deps.maxInputs }),
    chatRoutes({ chat: deps.chat, runner: deps.chatRunner, sseKeepAliveMs: deps.sseKeepAliveMs, ...(deps.fileSearch ? { fileSearch: deps.fileSearch } : {}) }),
    responsesRoutes({ responses: deps.responses, sseKeepAliveMs: deps.sseKeepAliveMs }),
    completionsRoutes({ chat: deps.chat, sseKeepAliveMs: deps.sseKeepAliveMs }),
    tokenizeRoutes({ chat: deps.chat }),
    chatbotRoutes({ jobs: deps.jobs, chatbot: deps.chatbot, sseKeepAliveMs: deps.sseKeepAliveMs }),
    jobsRoutes({
      jobs: deps.jobs,
      chat: deps.chat,
      registry: deps.registry,
      maxInputs: deps.maxInputs,
      checkWebhookUrl: (url, param) => webhookUrlChecker(deps.webhooks.policy)(url, param),
    }),
    webhooksRoutes({ webhooks: () => deps.webhooks }),
    documentsRoutes({ documents: () => deps.documents }),
    filesRoutes({ files: deps.files }),
    vectorStoresRoutes({ vectorStores: deps.vectorStores }),
    batchesRoutes({ batches: deps.batches }),
  ]);

  app.use(notFoundRoute);
  app.use(errorHandler(deps.log));
  return app;
}
