import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadEnv } from '../shared/config/env.js';
import { jobRoom } from '../shared/events/job-events.js';
import { createQueues } from '../shared/jobs/queues.js';
import { ShutdownManager } from '../shared/lifecycle/shutdown.js';
import { createLogger } from '../shared/logger.js';
import { loadModelRegistry } from '../shared/models/model-registry.js';
import { createRedis, waitForRedis } from '../shared/redis/redis-connections.js';
import { createApp } from './app.js';
import { ApiKeyAuthenticator } from './auth/api-key.auth.js';
import { EmbeddingCoalescer } from './jobs/embedding-coalescer.js';
import { JobService } from './jobs/job-service.js';
import { ReplyHub } from './jobs/reply-hub.js';
import { createSocketServer } from './realtime/socket-server.js';

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
  // The Socket.IO server needs the job service to authorise subscriptions, and the job service
  // tells rooms about cancellations: the late-bound `notify` breaks that cycle.
  let notify: (jobId: string, event: 'failed', data: unknown) => void = () => {};
  const jobs = new JobService({
    queues,
    redis,
    replies,
    prefix: env.QUEUE_PREFIX,
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    notify: (jobId, event, data) => notify(jobId, event, data),
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
    coalescer: new EmbeddingCoalescer(jobs, { syncTimeoutMs: env.SYNC_TIMEOUT_MS, maxTextsPerJob: 256, windowMs: env.COALESCE_WINDOW_MS }),
    isShuttingDown: () => shutdown.isShuttingDown,
  });

  const httpServer = createServer(app);
  httpServer.keepAliveTimeout = 65_000;
  const io = createSocketServer({ httpServer, pubClient: socketPub, subClient: socketSub, auth, jobs, log });
  notify = (jobId, event, data) => io.to(jobRoom(jobId)).emit(event, data as never);
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
