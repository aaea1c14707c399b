import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { loadEnv } from '../shared/config/env.js';
import { createQueues, streamRetryWindowMs } from '../shared/jobs/queues.js';
import { loadChatbotConfig } from '../shared/chatbot/chatbot-config.js';
import { ShutdownManager } from '../shared/lifecycle/shutdown.js';
import { createLogger } from '../shared/logger.js';
import { loadModelRegistry } from '../shared/models/model-registry.js';
import { errors } from '../shared/errors/app-error.js';
import { closeRedis, createRedis, redisTarget, waitForRedis } from '../shared/redis/redis-connections.js';
import { BlobStore } from '../shared/storage/blob-store.js';
import { FileStore } from '../shared/files/file-store.js';
import { announceJobOutcome, WEBHOOK_QUEUE } from '../shared/webhooks/webhook-events.js';
import { WebhookStore } from '../shared/webhooks/webhook-store.js';
import { createApp } from './app.js';
import { FileService } from './files/file-service.js';
import { FileSearchRunner } from './vector-stores/file-search-runner.js';
import { VectorStoreService } from './vector-stores/vector-store-service.js';
import { VectorStoreStore } from './vector-stores/vector-store-store.js';
import { BatchService } from './batches/batch-service.js';
import { BatchStore } from '../shared/batches/batch-store.js';
import { DocumentService } from './documents/document-service.js';
import { ApiKeyAuthenticator } from './auth/api-key.auth.js';
import { IdentityService } from './auth/identity.js';
import { JwtService } from './auth/jwt.js';
import { KeyStore } from './auth/key-store.js';
import { CachingChatRunner, CachingEmbedder, ResponseCache } from './cache/response-cache.js';
import { RateLimits } from './limits/rate-limits.js';
import { TenantLoad } from '../shared/limits/tenant-load.js';
import { ChatService } from './jobs/chat-service.js';
import { ResponseService } from './responses/response-service.js';
import { ResponseStore } from './responses/response-store.js';
import { EmbeddingCoalescer } from './jobs/embedding-coalescer.js';
import { JobOutcomes } from './jobs/job-outcomes.js';
import { JobService } from './jobs/job-service.js';
import { ApiMetrics } from './metrics/api-metrics.js';
import { ReplyHub } from './jobs/reply-hub.js';
import { StreamWatchdog } from './jobs/stream-watchdog.js';
import { HttpDrain } from './http/drain.js';
import { createSocketServer, pendingStreams } from './realtime/socket-server.js';
import { TokenRelay } from './realtime/token-relay.js';

/** Composition root of an API process. */
async function main(): Promise<void> {
  const env = loadEnv();
  const log = createLogger({ level: env.LOG_LEVEL, name: 'api' });
  const registry = loadModelRegistry(env.MODELS_CONFIG);
  const shutdown = new ShutdownManager(log, env.SHUTDOWN_GRACE_MS);
  shutdown.installSignalHandlers();
  if (env.API_KEYS.length === 0) log.warn('API_KEYS is empty: every /v1 request will be refused with 401');
  if (!env.ADMIN_API_KEY) log.warn('ADMIN_API_KEY is not set: Bull Board and admin routes are closed');

  const target = redisTarget(env);
  const redis = createRedis(target, 'producer', 'api');
  const subscriber = createRedis(target, 'subscriber', 'api-sub');
  const socketPub = createRedis(target, 'worker', 'api-io-pub');
  const socketSub = createRedis(target, 'subscriber', 'api-io-sub');
  shutdown.register('redis', () => Promise.allSettled([redis, subscriber, socketPub, socketSub].map((r) => closeRedis(r))));
  await waitForRedis(redis, 30_000);

  const chatbotConfig = loadChatbotConfig(env.CHATBOT_CONFIG);
  // Every queue of the job catalog; the chatbot's only where some tenant has a bot.
  const queues = createQueues(registry, redis, env.QUEUE_PREFIX, Object.keys(chatbotConfig.tenants).length > 0 ? [] : ['chatbot']);
  // While Redis is down every command fails and BullMQ re-emits it: requests answer 503 (see
  // JobService), and the process must not die of an unhandled 'error' event.
  for (const q of queues.values()) q.on('error', (err) => log.debug({ err: err.message, queue: q.name }, 'queue connection error'));
  shutdown.register('queues', () => Promise.allSettled([...queues.values()].map((q) => q.close())));

  const replies = new ReplyHub(subscriber, env.QUEUE_PREFIX);
  await replies.start();
  shutdown.register('reply hub', () => replies.close());

  const auth = new ApiKeyAuthenticator(env.API_KEYS, env.ADMIN_API_KEY);
  // Security (README, "Security"): managed keys and tenants, JWTs, signed requests, limits, cache.
  const store = new KeyStore({ redis, prefix: env.QUEUE_PREFIX });
  await store.ensureBootstrapTenants(env.API_KEYS.map((k) => k.tenant));
  const jwt = new JwtService({ secret: env.JWT_SECRET, jwksUrl: env.JWT_JWKS_URL, issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE, ttlSeconds: env.JWT_TTL_SECONDS });
  const identity = new IdentityService({ bootstrap: auth, store, jwt, redis, prefix: env.QUEUE_PREFIX, signatureWindowSeconds: env.SIGNATURE_WINDOW_SECONDS });
  const limits = new RateLimits({
    redis,
    prefix: env.QUEUE_PREFIX,
    log,
    defaults: { keyRpm: env.RATE_LIMIT_RPM, keyTpm: env.RATE_LIMIT_TPM, tenantRpm: env.TENANT_RATE_LIMIT_RPM, tenantTpm: env.TENANT_RATE_LIMIT_TPM },
  });
  const tenantLoad = new TenantLoad({ redis, prefix: env.QUEUE_PREFIX, maxJobs: env.TENANT_MAX_JOBS, fairnessStep: env.FAIRNESS_STEP, log });
  tenantLoad.watch(queues.keys(), (name) => createRedis(target, 'worker', name));
  shutdown.register('tenant load events', () => tenantLoad.close());
  const metrics = new ApiMetrics({ queues, log });
  const cache = new ResponseCache({ redis, prefix: env.QUEUE_PREFIX, ttlSeconds: env.CACHE_TTL_SECONDS, counters: metrics, log });
  // Every followed streaming job is watched for a dead worker (docs/RELIABILITY.md, "Dead workers and streams").
  const watchdog = new StreamWatchdog({
    redis,
    prefix: env.QUEUE_PREFIX,
    intervalMs: env.STREAM_HEARTBEAT_MS,
    heartbeatTtlMs: env.STREAM_HEARTBEAT_TTL_MS,
    retryWindowMs: streamRetryWindowMs(env),
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    jobState: (jobId) => jobs.state(jobId),
    log,
  });
  shutdown.register('stream watchdog', () => watchdog.close());
  const relay = new TokenRelay(redis, subscriber, env.QUEUE_PREFIX, (jobId) => watchdog.watch(jobId));
  // How outcomes reach Socket.IO rooms and token streams, where no worker announces them (api/jobs/job-outcomes.ts).
  const outcomes = new JobOutcomes({ redis, prefix: env.QUEUE_PREFIX, retentionSeconds: env.JOB_RETENTION_SECONDS, log });
  outcomes.watchStreamingQueues(queues.keys(), (name) => createRedis(target, 'worker', name));
  shutdown.register('streaming queue events', () => outcomes.close());
  // Webhooks (docs/WEBHOOKS.md): endpoints in Redis; events go out as jobs on the `webhooks` queue.
  const webhookStore = new WebhookStore(redis, env.QUEUE_PREFIX);
  const webhookSink = { queue: queues.get(WEBHOOK_QUEUE)!, store: webhookStore, retentionSeconds: env.JOB_RETENTION_SECONDS };
  const jobs = new JobService({
    queues,
    redis,
    replies,
    prefix: env.QUEUE_PREFIX,
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    notify: (jobId, type, event, data) => outcomes.announce(jobId, type, event, data),
    admission: tenantLoad,
    // A queued job cancelled here has no worker to announce it: its webhook event goes from here.
    ended: (envelope, view) => void announceJobOutcome(webhookSink, envelope, view).catch((err) => log.warn({ err, jobId: view.id }, 'could not queue the webhook event of a cancelled job')),
  });
  const chat = new ChatService({ jobs, relay, registry, syncTimeoutMs: env.SYNC_TIMEOUT_MS });
  // Uploaded bytes of documents and files: one data root every replica mounts (shared/storage/blob-store.ts).
  const blobs = new BlobStore(path.resolve(env.DOCUMENTS_DIR));
  const documents = new DocumentService({
    redis,
    prefix: env.QUEUE_PREFIX,
    jobs,
    blobs,
    model: env.DOCUMENTS_EMBEDDING_MODEL,
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    searchTimeoutMs: env.SYNC_TIMEOUT_MS,
    maxImagePixels: env.DOCUMENTS_MAX_IMAGE_PIXELS,
  });
  shutdown.register('documents', () => documents.close());
  const files = new FileService(new FileStore(redis, env.QUEUE_PREFIX, blobs), { maxBytes: env.FILES_MAX_BYTES, maxBatchLines: env.BATCH_MAX_LINES });
  const vectorStores = new VectorStoreService({ store: new VectorStoreStore(redis, env.QUEUE_PREFIX), documents, files });
  // The file_search tool of /v1/responses and /v1/chat/completions: the vector stores' search.
  const fileSearch = new FileSearchRunner({ vectorStores });
  const responses = new ResponseService({
    chat,
    jobs,
    relay,
    store: new ResponseStore({ redis, prefix: env.QUEUE_PREFIX, retentionSeconds: env.RESPONSES_RETENTION_SECONDS }),
    log,
    webhooks: webhookSink,
    fileSearch,
  });
  shutdown.register('background responses', () => responses.close());
  const app = createApp({
    chatbot: { config: chatbotConfig, relay },
    log,
    auth,
    jobs,
    registry,
    queues,
    redis,
    prefix: env.QUEUE_PREFIX,
    maxBodyBytes: env.MAX_BODY_BYTES,
    maxInputs: env.MAX_EMBEDDING_INPUTS,
    chat,
    chatRunner: new CachingChatRunner(chat, cache),
    fileSearch,
    responses,
    coalescer: new CachingEmbedder(new EmbeddingCoalescer(jobs, { syncTimeoutMs: env.SYNC_TIMEOUT_MS, maxTextsPerJob: 256, windowMs: env.COALESCE_WINDOW_MS }), cache),
    isShuttingDown: () => shutdown.isShuttingDown,
    sseKeepAliveMs: env.SSE_KEEPALIVE_MS,
    metrics,
    security: { identity, store, jwt, limits, tls: Boolean(env.TLS_CERT_FILE), corsOrigins: env.CORS_ORIGINS },
    documents: { service: documents, maxBytes: env.DOCUMENTS_MAX_BYTES },
    files,
    vectorStores,
    batches: new BatchService({ batches: new BatchStore(redis, env.QUEUE_PREFIX), files: files.store, jobs, windowSeconds: env.BATCH_COMPLETION_WINDOW_S }),
    webhooks: { store: webhookStore, policy: { allowPrivate: env.WEBHOOK_ALLOW_PRIVATE }, maxEndpoints: env.WEBHOOK_MAX_ENDPOINTS },
  });

  // Requests in flight are tracked so that shutdown can wait for them (SSE streams included).
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    drain.track(req, res);
    if (shutdown.isShuttingDown) {
      // Draining: connections close after this answer, and new API work goes elsewhere.
      if (req.url?.startsWith('/v1/')) {
        const e = errors.unavailable('The server is shutting down; retry the request.', 'shutting_down');
        res.writeHead(503, { ...e.headers, 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(e.toBody()));
        return;
      }
    }
    app(req, res);
  };
  // HTTPS when given a certificate and key (TLS_CERT_FILE, TLS_KEY_FILE); plain HTTP otherwise.
  // TCP keep-alive on every connection: a synchronous request waiting for its job (a JSON answer
  // cannot carry SSE comments) keeps its connection known to NATs and load balancers that drop
  // idle flows, and a client that vanished is found by the probes.
  const tcpKeepAlive = { keepAlive: true, keepAliveInitialDelay: env.SSE_KEEPALIVE_MS };
  const httpServer = env.TLS_CERT_FILE && env.TLS_KEY_FILE
    ? createHttpsServer({ cert: readFileSync(env.TLS_CERT_FILE), key: readFileSync(env.TLS_KEY_FILE), ...tcpKeepAlive }, handler)
    : createServer(tcpKeepAlive, handler);
  const drain = new HttpDrain(httpServer);
  httpServer.keepAliveTimeout = 65_000;
  const io = createSocketServer({ httpServer, pubClient: socketPub, subClient: socketSub, auth, jobs, relay, log, identity, corsOrigins: env.CORS_ORIGINS });
  drain.watchSocketIo(httpServer);
  outcomes.attachRooms(io);
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(env.PORT, env.HOST, () => resolve());
  });
  shutdown.register('http server', async () => {
    // Stop accepting connections; let in-flight requests (SSE streams included) and Socket.IO
    // subscriptions waiting for their job's outcome finish, until shortly before the grace period
    // ends, closing keep-alive connections as they go idle. Then close Socket.IO and what is left.
    const closed = new Promise<void>((r) => httpServer.close(() => r()));
    const draining = drain;
    draining.start();
    const reserveMs = Math.min(2000, env.SHUTDOWN_GRACE_MS / 4);
    const until = Date.now() + Math.max(0, shutdown.remainingMs() - reserveMs);
    const busy = () => draining.inFlight > 0 || pendingStreams(io) > 0;
    while (busy() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    if (busy()) {
      log.warn({ requests: draining.inFlight, streams: pendingStreams(io) }, 'grace period nearly over: closing what is still open');
      // Requests waiting for a synchronous result get a 503 rather than a cut connection.
      replies.close();
      await new Promise((r) => setTimeout(r, 100));
    }
    // Socket.IO closes its clients (and waits for the server's connections to end).
    const ioClosed = io.close().catch(() => {});
    await Promise.race([Promise.all([ioClosed, closed]), new Promise((r) => setTimeout(r, reserveMs / 2))]);
    draining.destroyAll();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 200))]);
  });
  const port = (httpServer.address() as AddressInfo).port;
  log.info({ port, host: env.HOST, tls: Boolean(env.TLS_CERT_FILE), models: registry.models.map((m) => m.id) }, 'api listening');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
