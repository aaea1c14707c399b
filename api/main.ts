import { QueueEvents } from 'bullmq';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadEnv } from '../shared/config/env.js';
import { jobRoom } from '../shared/events/job-events.js';
import { createQueues } from '../shared/jobs/queues.js';
import { CANCELLED_REASON_PREFIX } from '../shared/jobs/job-catalog.js';
import { appendEnd } from '../shared/streams/token-stream.js';
import { ShutdownManager } from '../shared/lifecycle/shutdown.js';
import { createLogger } from '../shared/logger.js';
import { loadModelRegistry } from '../shared/models/model-registry.js';
import { errors } from '../shared/errors/app-error.js';
import { closeRedis, createRedis, redisTarget, waitForRedis } from '../shared/redis/redis-connections.js';
import { createApp } from './app.js';
import { ApiKeyAuthenticator } from './auth/api-key.auth.js';
import { ChatService } from './jobs/chat-service.js';
import { EmbeddingCoalescer } from './jobs/embedding-coalescer.js';
import { JobService } from './jobs/job-service.js';
import { ApiMetrics } from './metrics/api-metrics.js';
import { ReplyHub } from './jobs/reply-hub.js';
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

  const queues = createQueues(registry, redis, env.QUEUE_PREFIX);
  // While Redis is down every command fails and BullMQ re-emits it: requests answer 503 (see
  // JobService), and the process must not die of an unhandled 'error' event.
  for (const q of queues.values()) q.on('error', (err) => log.debug({ err: err.message, queue: q.name }, 'queue connection error'));
  shutdown.register('queues', () => Promise.allSettled([...queues.values()].map((q) => q.close())));

  const replies = new ReplyHub(subscriber, env.QUEUE_PREFIX);
  await replies.start();
  shutdown.register('reply hub', () => replies.close());

  const auth = new ApiKeyAuthenticator(env.API_KEYS, env.ADMIN_API_KEY);
  const relay = new TokenRelay(redis, subscriber, env.QUEUE_PREFIX);
  // The Socket.IO server needs the job service to authorise subscriptions, and the job service
  // tells rooms about cancellations: the late-bound `notify` breaks that cycle.
  let notify: NonNullable<ConstructorParameters<typeof JobService>[0]['notify']> = () => {};
  const jobs = new JobService({
    queues,
    redis,
    replies,
    prefix: env.QUEUE_PREFIX,
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    notify: (jobId, type, event, data) => notify(jobId, type, event, data),
  });
  const chat = new ChatService({ jobs, relay, registry });
  // A chat job can fail without its worker saying so (the worker was killed and the job was then
  // marked stalled): the queue's event stream still tells, and the stream gets its end entry here.
  const eventConnections: ReturnType<typeof createRedis>[] = [];
  const chatEvents = registry.models
    .filter((m) => m.task === 'chat')
    .map((m) => {
      const connection = createRedis(target, 'worker', `api-events:${m.queueName}`);
      eventConnections.push(connection);
      const events = new QueueEvents(m.queueName, { connection, prefix: env.QUEUE_PREFIX });
      events.on('error', (err) => log.debug({ err: err.message, queue: m.queueName }, 'queue events connection error'));
      events.on('failed', ({ jobId, failedReason }) => {
        const status = failedReason?.startsWith(CANCELLED_REASON_PREFIX) ? 'cancelled' : 'failed';
        void appendEnd(redis, env.QUEUE_PREFIX, jobId, { status, error: { message: failedReason ?? 'failed', code: status === 'cancelled' ? 'cancelled' : 'job_failed' } }, env.JOB_RETENTION_SECONDS).catch(() => {});
      });
      return events;
    });
  shutdown.register('chat queue events', async () => {
    await Promise.allSettled(chatEvents.map((e) => e.close()));
    await Promise.allSettled(eventConnections.map((c) => closeRedis(c)));
  });
  const app = createApp({
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
    coalescer: new EmbeddingCoalescer(jobs, { syncTimeoutMs: env.SYNC_TIMEOUT_MS, maxTextsPerJob: 256, windowMs: env.COALESCE_WINDOW_MS }),
    isShuttingDown: () => shutdown.isShuttingDown,
    metrics: new ApiMetrics({ queues, log }),
  });

  // Requests in flight are tracked so that shutdown can wait for them (SSE streams included).
  const httpServer = createServer((req, res) => {
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
  });
  const drain = new HttpDrain(httpServer);
  httpServer.keepAliveTimeout = 65_000;
  const io = createSocketServer({ httpServer, pubClient: socketPub, subClient: socketSub, auth, jobs, relay, log });
  notify = (jobId, type, event, data) => {
    // Chat subscribers follow the token stream, whose end entry says how the job ended.
    if (type === 'chat') void appendEnd(redis, env.QUEUE_PREFIX, jobId, { status: data.status, error: data.error }, env.JOB_RETENTION_SECONDS).catch(() => {});
    else io.to(jobRoom(jobId)).emit(event, data);
  };
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
  log.info({ port, host: env.HOST, models: registry.models.map((m) => m.id) }, 'api listening');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
