import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { pinoHttp } from 'pino-http';
import { createBullBoardRouter } from '../dashboards/bull-board.js';
import type { Logger } from '../shared/logger.js';
import type { ModelRegistry } from '../shared/models/model-registry.js';
import { requireAdmin, requireApiKey, type ApiKeyAuthenticator } from './auth/api-key.auth.js';
import { errorHandler, notFoundRoute } from './http/error-handler.js';
import { buildOpenApiDocument } from './http/openapi.js';
import type { ChatService } from './jobs/chat-service.js';
import type { EmbeddingCoalescer } from './jobs/embedding-coalescer.js';
import type { JobService } from './jobs/job-service.js';
import type { ApiMetrics } from './metrics/api-metrics.js';
import { chatRoutes } from './routes/chat.routes.js';
import { docsRoutes } from './routes/docs.routes.js';
import { embeddingsRoutes } from './routes/embeddings.routes.js';
import { healthRoutes } from './routes/health.routes.js';
import { playgroundRoutes } from './routes/playground.routes.js';
import { jobsRoutes } from './routes/jobs.routes.js';
import { metricsRoutes } from './routes/metrics.routes.js';
import { modelsRoutes } from './routes/models.routes.js';

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
  coalescer: EmbeddingCoalescer;
  chat: ChatService;
  isShuttingDown: () => boolean;
  metrics: ApiMetrics;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
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

  app.use(playgroundRoutes());
  app.use(healthRoutes({ redis: deps.redis, registry: deps.registry, prefix: deps.prefix, isShuttingDown: deps.isShuttingDown }));
  app.use(metricsRoutes({ metrics: deps.metrics, auth: deps.auth }));
  app.use(docsRoutes({ document: () => buildOpenApiDocument() }));
  app.use('/admin/queues', requireAdmin(deps.auth, { basicChallenge: true }), createBullBoardRouter(deps.queues.values(), '/admin/queues'));

  // Authenticate before parsing, so an anonymous caller cannot make us parse megabytes of JSON.
  app.use('/v1', requireApiKey(deps.auth));
  app.use('/v1', express.json({ limit: deps.maxBodyBytes, type: ['application/json', 'application/*+json'] }));
  app.use(modelsRoutes({ registry: deps.registry, startedAt: Date.now() }));
  app.use(embeddingsRoutes({ coalescer: deps.coalescer, registry: deps.registry, maxInputs: deps.maxInputs }));
  app.use(chatRoutes({ chat: deps.chat }));
  app.use(jobsRoutes({ jobs: deps.jobs, chat: deps.chat, registry: deps.registry, maxInputs: deps.maxInputs }));

  app.use(notFoundRoute);
  app.use(errorHandler(deps.log));
  return app;
}
