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
import { createRedis, waitForRedis } from '../shared/redis/redis-connections.js';
import { createApp } from './app.js';
import { ApiKeyAuthenticator } from './auth/api-key.auth.js';
import { ChatService } from './jobs/chat-service.js';
import { EmbeddingCoalescer } from './jobs/embedding-coalescer.js';
import { JobService } from './jobs/job-service.js';
import { ApiMetrics } from './metrics/api-metrics.js';
import { ReplyHub } from './jobs/reply-hub.js';
import { createSocketServer } from './realtime/socket-server.js';
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

  const redis = createRedis(env.REDIS_URL, 'producer', 'api');
  const subscriber = createRedis(env.REDIS_URL, 'subscriber', 'api-sub');
  const socketPub = createRedis(env.REDIS_URL, 'worker', 'api-io-pub');
  const socketSub = createRedis(env.REDIS_URL, 'subscriber', 'api-io-sub');
  shutdown.register('redis', () => Promise.allSettled([redis, subscriber, socketPub, socketSub].map((r) => r.quit())));
  await waitForRedis(redis, 30_000);

  const queues = createQueues(registry, redis, env.QUEUE_PREFIX);
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
  const chatEvents = registry.models
    .filter((m) => m.task === 'chat')
    .map((m) => {
      const events = new QueueEvents(m.queueName, { connection: createRedis(env.REDIS_URL, 'worker', `api-events:${m.queueName}`), prefix: env.QUEUE_PREFIX });
      events.on('failed', ({ jobId, failedReason }) => {
        const status = failedReason?.startsWith(CANCELLED_REASON_PREFIX) ? 'cancelled' : 'failed';
        void appendEnd(redis, env.QUEUE_PREFIX, jobId, { status, error: { message: failedReason ?? 'failed', code: status === 'cancelled' ? 'cancelled' : 'job_failed' } }, env.JOB_RETENTION_SECONDS).catch(() => {});
      });
      return events;
    });
  shutdown.register('chat queue events', () => Promise.allSettled(chatEvents.map((e) => e.close())));
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

  const httpServer = createServer(app);
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
    // Stop accepting, let in-flight requests finish, then drop idle keep-alive sockets.
    const closed = new Promise<void>((r) => httpServer.close(() => r()));
    httpServer.closeIdleConnections();
    await io.close().catch(() => {});
    await closed;
  });
  const port = (httpServer.address() as AddressInfo).port;
  log.info({ port, host: env.HOST, models: registry.models.map((m) => m.id) }, 'api listening');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
