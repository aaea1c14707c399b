import { randomUUID } from 'node:crypto';
import { Emitter } from '@socket.io/redis-emitter';
import path from 'node:path';
import { Queue, UnrecoverableError, type Worker } from 'bullmq';
import { loadEnv } from '../shared/config/env.js';
import { cancelChannel, workersKey } from '../shared/jobs/job-views.js';
import { ShutdownManager } from '../shared/lifecycle/shutdown.js';
import { createLogger } from '../shared/logger.js';
import { loadModelRegistry, type ModelConfig } from '../shared/models/model-registry.js';
import { JOB_TYPES, jobCatalog, jobSpec, modelQueues, scheduledRetryDelayMs, type JobDomain, type JobType } from '../shared/jobs/job-catalog.js';
import { WEBHOOK_QUEUE } from '../shared/webhooks/webhook-events.js';
import { WebhookStore } from '../shared/webhooks/webhook-store.js';
import { BatchStore } from '../shared/batches/batch-store.js';
import { FileStore } from '../shared/files/file-store.js';
import { TenantLoad } from '../shared/limits/tenant-load.js';
import { BlobStore } from '../shared/storage/blob-store.js';
import { batchLineRecorder } from './batches/batch-lines.js';
import type { BatchDeps } from './batches/batch-runtime.js';
import { createRunBatchHandler, wakeBatchDriver } from './batches/run-batch.handler.js';
import { createValidateBatchHandler } from './batches/validate-batch.handler.js';
import { loadChatbotConfig } from '../shared/chatbot/chatbot-config.js';
import { closeRedis, createRedis, redisTarget, waitForRedis } from '../shared/redis/redis-connections.js';
import { startEmbeddingEngine, type EmbeddingEngine } from './embeddings/embedding-engine.js';
import type { ChatBackend } from './chat/chat-backend.js';
import { startChatBackend } from './chat/chat-formats.js';
import { createChatHandler } from './chat/chat.handler.js';
import { createTokenizeHandler } from './chat/tokenize.handler.js';
import { createChatbotHandler } from './chatbot/chatbot.handler.js';
import { createKnowledgeSearch } from './chatbot/knowledge-search.js';
import { DocumentStore } from '../shared/documents/document-store.js';
import { createEmbedTextHandler } from './embeddings/embed-text.handler.js';
import type { JobHandler, JobHandlers } from './jobs/job-handler.js';
import { WORKER_SHUTDOWN_REASON, type StreamRuns } from './jobs/job-runner.js';
import { createWorkerFactory, type ServedQueue } from './jobs/job-workers.js';
import { createOutcomeDelivery } from './jobs/outcome-delivery.js';
import { StreamHeartbeats } from './jobs/stream-heartbeats.js';
import { startDocumentRuntime } from './documents/document-runtime.js';
import { WorkerMetrics } from './metrics/worker-metrics.js';
import { createDeliverWebhookHandler } from './webhooks/deliver-webhook.handler.js';
import { createJobOutcomeEvents } from './webhooks/job-outcome-events.js';

/** Composition root of a worker process: load config, models, connections; run; shut down. */
async function main(): Promise<void> {
  const env = loadEnv();
  const log = createLogger({ level: env.LOG_LEVEL, name: 'worker' });
  const registry = loadModelRegistry(env.MODELS_CONFIG);
  const workerId = `${process.pid}-${randomUUID().slice(0, 8)}`;
  const shutdown = new ShutdownManager(log, env.SHUTDOWN_GRACE_MS);
  shutdown.installSignalHandlers();

  const unknown = env.WORKER_MODELS.filter((id) => !registry.get(id));
  if (unknown.length) throw new Error(`WORKER_MODELS names models not in ${env.MODELS_CONFIG}: ${unknown.join(', ')}`);
  const served = registry.models.filter((m) => env.WORKER_MODELS.length === 0 || env.WORKER_MODELS.includes(m.id));

  const metrics = new WorkerMetrics();
  shutdown.register('metrics', () => metrics.close());

  // Models load before any job is taken, so a worker that heartbeats is a worker that can serve.
  const engines = new Map<string, EmbeddingEngine>();
  const chatBackends = new Map<string, ChatBackend>();
  // One entry per model task (exhaustive), each loading the model where its handlers look for it.
  const startModel: { [T in ModelConfig['task']]: (model: Extract<ModelConfig, { task: T }>) => Promise<{ close(): Promise<void> }> } = {
    embedding: async (model) => {
      const engine = await startEmbeddingEngine(model, log, (m, stats) => metrics.recordBatch(m.id, stats));
      engines.set(model.id, engine);
      return engine;
    },
    chat: async (model) => {
      const backend = await startChatBackend(model, log);
      chatBackends.set(model.id, backend);
      return backend;
    },
  };
  for (const model of served) {
    const loadStarted = performance.now();
    // The record pairs each task with its own config type; indexing by a union widens that pairing away.
    const started = await (startModel[model.task] as (m: ModelConfig) => Promise<{ close(): Promise<void> }>)(model);
    shutdown.register(`model ${model.id}`, () => started.close());
    metrics.modelLoadSeconds.set({ model: model.id }, (performance.now() - loadStarted) / 1000);
  }

  const target = redisTarget(env);
  const connection = createRedis(target, 'worker', `worker:${workerId}`);
  const publisher = createRedis(target, 'worker', `worker-pub:${workerId}`);
  const subscriber = createRedis(target, 'subscriber', `worker-sub:${workerId}`);
  shutdown.register('redis', () => Promise.allSettled([connection, publisher, subscriber].map((r) => closeRedis(r))));
  await Promise.all([waitForRedis(connection, 60_000), waitForRedis(publisher, 60_000)]);

  // Webhook events (shared/webhooks): deliveries are jobs on the `webhooks` queue, which this worker also consumes.
  const webhookStore = new WebhookStore(publisher, env.QUEUE_PREFIX);
  const webhookQueue = new Queue(WEBHOOK_QUEUE, { connection: publisher, prefix: env.QUEUE_PREFIX });
  webhookQueue.on('error', (err) => log.debug({ err: err.message }, 'webhook queue connection error'));
  shutdown.register('webhook queue', () => webhookQueue.close());
  const webhookSink = { queue: webhookQueue, store: webhookStore, retentionSeconds: env.JOB_RETENTION_SECONDS };

  const batches = new BatchStore(publisher, env.QUEUE_PREFIX);
  const delivery = createOutcomeDelivery({
    publisher,
    emitter: new Emitter(publisher),
    prefix: env.QUEUE_PREFIX,
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    batchLine: batchLineRecorder(
      batches,
      (labels, lines, tokens) => {
        metrics.batchLinesFinished.inc(labels, lines);
        if (tokens.input) metrics.batchLineTokens.inc({ tenant: labels.tenant, endpoint: labels.endpoint, kind: 'input' }, tokens.input);
        if (tokens.output) metrics.batchLineTokens.inc({ tenant: labels.tenant, endpoint: labels.endpoint, kind: 'output' }, tokens.output);
      },
      (batchId) => wakeBatchDriver(batchDeps, batchId),
    ),
  });
  // The Batch API's own jobs (workers/batches): they queue lines on every model's queue, served here or not.
  const batchQueues = new Map(
    [...registry.models.map((m) => m.queueName), jobCatalog['batch.run'].queue.name].map((name) => [name, new Queue(name, { connection: publisher, prefix: env.QUEUE_PREFIX })]),
  );
  shutdown.register('batch queues', () => Promise.allSettled([...batchQueues.values()].map((q) => q.close())));
  const files = new FileStore(publisher, env.QUEUE_PREFIX, new BlobStore(path.resolve(env.DOCUMENTS_DIR)));
  // Files past their expires_after are hidden by every read; this frees their records and bytes.
  const sweep = setInterval(
    () => void files.sweepExpired().then((n) => n && log.info({ files: n }, 'expired files removed'), (err: unknown) => log.warn({ err }, 'expired files sweep failed')),
    env.FILES_SWEEP_INTERVAL_MS,
  );
  shutdown.register('expired files sweep', async () => clearInterval(sweep));
  const batchDeps: BatchDeps = {
    batches,
    files,
    registry,
    maxInputs: env.MAX_EMBEDDING_INPUTS,
    queues: batchQueues,
    admission: new TenantLoad({ redis: publisher, prefix: env.QUEUE_PREFIX, maxJobs: env.TENANT_MAX_JOBS, fairnessStep: env.FAIRNESS_STEP, log }),
    cancelRunning: async (jobId) => void (await publisher.publish(cancelChannel(env.QUEUE_PREFIX), jobId)),
    pollMs: env.BATCH_POLL_MS,
    linesInFlight: env.BATCH_LINES_IN_FLIGHT,
    retentionSeconds: env.JOB_RETENTION_SECONDS,
    log,
    webhooks: webhookSink,
    onLines: (tenant, endpoint, outcome, n) => metrics.batchLinesFinished.inc({ tenant, endpoint, outcome }, n),
  };

  // Streaming jobs claim their token stream and keep a heartbeat on it (docs/RELIABILITY.md, "Dead workers and streams").
  const heartbeats = new StreamHeartbeats({ redis: publisher, prefix: env.QUEUE_PREFIX, intervalMs: env.STREAM_HEARTBEAT_MS, ttlMs: env.STREAM_HEARTBEAT_TTL_MS, log });
  heartbeats.start();
  shutdown.register('stream heartbeats', () => heartbeats.close());
  const streams: StreamRuns = { redis: publisher, heartbeats, workerId, retentionSeconds: env.JOB_RETENTION_SECONDS };

  // Documents and vector search (workers/documents, workers/index): served where DOCUMENTS_EMBEDDING_MODEL is.
  const documents = startDocumentRuntime({ env, log, engines, connection, announce: delivery, workerId });
  shutdown.register('documents', () => documents.close());
  // The chatbot's queue is consumed where every bot's embedding and chat model is served.
  const chatbotConfig = loadChatbotConfig(env.CHATBOT_CONFIG);
  const bots = Object.values(chatbotConfig.tenants);
  const servesChatbot = bots.length > 0 && bots.every((b) => engines.has(b.embedding_model) && chatBackends.has(b.chat_model));
  if (bots.length > 0 && !servesChatbot) log.info('not serving the chatbot: this worker lacks the embedding or chat model of some bot');

  // Every job type has a handler (the compiler checks); one that this worker does not serve refuses, and has no worker below.
  const handlers = {
    ...documents.handlers,
    chatbot: servesChatbot
      ? createChatbotHandler({
          config: chatbotConfig,
          engines,
          chatBackends,
          redis: publisher,
          prefix: env.QUEUE_PREFIX,
          retentionSeconds: env.JOB_RETENTION_SECONDS,
          untrainedChatModels: new Set(registry.models.filter((m) => m.task === 'chat' && 'untrained' in m && m.untrained).map((m) => m.id)),
          // Knowledge answers search the tenant's document collections where this worker serves them.
          ...(engines.has(env.DOCUMENTS_EMBEDDING_MODEL)
            ? { knowledge: createKnowledgeSearch({ store: new DocumentStore(publisher, env.QUEUE_PREFIX), search: documents.handlers['document.search'], model: env.DOCUMENTS_EMBEDDING_MODEL, log }) }
            : {}),
        })
      : async () => {
          throw new UnrecoverableError('chatbot jobs are served by workers that serve every bot\'s models');
        },
    embedding: createEmbedTextHandler(engines),
    'batch.validate': createValidateBatchHandler(batchDeps),
    'batch.run': createRunBatchHandler(batchDeps),
    tokenize: createTokenizeHandler(chatBackends),
    'webhook.deliver': createDeliverWebhookHandler({
      store: webhookStore,
      allowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
      timeoutMs: env.WEBHOOK_TIMEOUT_MS,
      circuit: { failures: env.WEBHOOK_CIRCUIT_FAILURES, openMs: env.WEBHOOK_CIRCUIT_OPEN_SECONDS * 1000 },
      retryDelayMs: (attemptsMade) => scheduledRetryDelayMs('webhook.deliver', attemptsMade, env.RETRY_SCHEDULE_SCALE),
    }),
    chat: createChatHandler({
      backends: chatBackends,
      redis: publisher,
      prefix: env.QUEUE_PREFIX,
      retentionSeconds: env.JOB_RETENTION_SECONDS,
      onFinished: (model, timings) => metrics.recordChat(model, timings),
    }),
  } satisfies JobHandlers;

  /**
   * The queues this process consumes: its models' queues, and the fixed queue of every job type
   * whose domain it serves, with the model its metrics are labelled with. A new domain must say
   * where it is served: the record is exhaustive.
   */
  const domains: Record<JobDomain, { model: string } | undefined> = {
    embeddings: undefined,
    chat: undefined,
    chatbot: servesChatbot ? { model: 'chatbot' } : undefined,
    documents: documents.serves ? { model: env.DOCUMENTS_EMBEDDING_MODEL } : undefined,
    // Validation and the drivers need no model: every worker serves them.
    batches: { model: 'batches' },
    // Every worker delivers webhooks: deliveries wait on the network, not on a model.
    webhooks: { model: 'webhooks' },
  };
  const servedQueues = (type: JobType): ServedQueue[] => {
    const spec = jobSpec(type);
    const domain = domains[spec.domain];
    if ('name' in spec.queue) return domain ? [{ queueName: spec.queue.name, model: domain.model }] : [];
    return served.flatMap((m) =>
      modelQueues(m)
        .filter((q) => q.type === type)
        .map((q) => ({ queueName: q.queueName, model: m.id, concurrency: m.concurrency })),
    );
  };
  const buildWorker = createWorkerFactory({
    connection,
    prefix: env.QUEUE_PREFIX,
    log,
    delivery,
    streams,
    metrics,
    settings: env,
    onFinished: createJobOutcomeEvents({ sink: webhookSink, log }),
  });
  const workers: Worker[] = JOB_TYPES.flatMap((type) => servedQueues(type).map((queue) => buildWorker(type, handlers[type] as JobHandler<typeof type>, queue)));
  // Closing a Worker stops it taking jobs and waits for its active ones, which need the engines:
  // so workers close first. Jobs still running when the grace period is nearly over are handed
  // back to the queue (retryable ones) or failed with a reason, never left to stall.
  shutdown.register('job workers', async () => {
    const closed = Promise.allSettled(workers.map((w) => w.close()));
    // Said once every worker has stopped fetching, so operators (and tests) know when a job added now stays queued.
    log.info({ queues: workers.length }, 'job workers closing: no new jobs are taken');
    const reserveMs = Math.min(2000, env.SHUTDOWN_GRACE_MS / 4);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), Math.max(0, shutdown.remainingMs() - reserveMs)))),
    ]);
    clearTimeout(timer);
    if (late) {
      log.warn('grace period nearly over: handing running jobs back');
      for (const w of workers) w.cancelAllJobs(WORKER_SHUTDOWN_REASON);
      await closed;
    }
  });

  // Cancellation of running jobs: the API publishes the job id; whichever worker holds it aborts it.
  await subscriber.subscribe(cancelChannel(env.QUEUE_PREFIX));
  subscriber.on('message', (_channel, jobId: string) => {
    for (const w of workers) if (w.cancelJob(jobId, 'by request')) log.info({ jobId }, 'cancelling running job');
  });

  const heartbeat = async () => {
    const info = {
      id: workerId,
      pid: process.pid,
      // The API waits for a dead worker's job to be retried only where another worker consumes its queue.
      queues: workers.map((w) => w.name),
      models: [
        ...[...engines.values()].map((e) => ({ id: e.model.id, provider: e.provider, dimensions: e.dimensions })),
        ...[...chatBackends.keys()].map((id) => ({ id, provider: 'chat' })),
      ],
      at: Date.now(),
    };
    await connection.hset(workersKey(env.QUEUE_PREFIX), workerId, JSON.stringify(info));
  };
  await heartbeat();
  const beat = setInterval(() => void heartbeat().catch((err) => log.warn({ err }, 'heartbeat failed')), 2000);
  shutdown.register('heartbeat', async () => {
    clearInterval(beat);
    await connection.hdel(workersKey(env.QUEUE_PREFIX), workerId).catch(() => {});
  });

  if (env.WORKER_METRICS_PORT !== undefined) {
    const { server, port } = await metrics.serve(env.WORKER_METRICS_PORT, env.HOST, () => ({
      ok: workers.every((w) => w.isRunning()),
      detail: { workerId, models: served.map((m) => m.id), queuedTexts: [...engines.values()].map((e) => e.batcher.queuedTexts) },
    }));
    shutdown.register('metrics server', () => new Promise((r) => server.close(r)));
    log.info({ port }, 'worker metrics listening');
  }

  for (const w of workers) void w.run().catch((err) => log.error({ err }, 'worker stopped'));
  log.info({ workerId, models: served.map((m) => m.id) }, 'worker ready');
}

main().catch((err) => {
  // The logger may not exist yet (config errors), so the entry point reports on stderr itself.
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
