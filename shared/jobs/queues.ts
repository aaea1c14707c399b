import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ModelRegistry } from '../models/model-registry.js';
import { fixedQueueNames, jobSpec, modelQueues, type JobType } from './job-catalog.js';

/**
 * Every queue of the job catalog: one per model, so a slow model's backlog never delays another's,
 * plus the queues of job types that have one of their own (the document pipeline's, the
 * chatbot's), less the types in `skip` (a chatbot nobody configured).
 */
export function queueNames(registry: ModelRegistry, skip: readonly JobType[] = []): string[] {
  return [...registry.models.flatMap((m) => modelQueues(m).map((q) => q.queueName)), ...fixedQueueNames(skip)];
}

/**
 * The API's queues (GET /v1/jobs/:id, Socket.IO and Bull Board see every one's jobs). The events
 * stream is kept short: results of async jobs live in the job itself, and the stream is only read
 * by dashboards and by the API's watch on streaming queues.
 */
export function createQueues(registry: ModelRegistry, connection: Redis, prefix: string, skip: readonly JobType[] = []): Map<string, Queue> {
  return new Map(queueNames(registry, skip).map((name) => [name, new Queue(name, { connection, prefix, streams: { events: { maxLen: 1000 } } })]));
}

/** How a queue's worker finds jobs whose worker died: BullMQ's lock and stalled-check settings. */
export interface StallOptions {
  lockDuration: number;
  stalledInterval: number;
  maxStalledCount: number;
}

export interface StallSettings {
  /** Worker deaths a `crash-marks` job (a document parse) may cause before BullMQ itself fails it. */
  DOCUMENTS_POISON_CRASHES: number;
  WORKER_LOCK_DURATION_MS: number;
  WORKER_STALLED_INTERVAL_MS: number;
  STREAM_LOCK_DURATION_MS: number;
  STREAM_STALLED_INTERVAL_MS: number;
}

/**
 * Streaming jobs (chat, chatbot) have someone waiting on every token, so their queues find a dead
 * worker's job within seconds (short lock, frequent check) and put it back once: the next run
 * starts it again if its worker died before its first token, and otherwise fails it as
 * `worker_lost` without generating (shared/streams/token-stream.ts, claims). A second death fails
 * it for good, so a request that itself kills workers takes at most two down. Locks this short
 * are safe because inference runs in threads and the worker's event loop stays free to renew
 * them; a worker that still misses a renewal loses its stream claim and cannot write twice.
 * Other jobs keep the long defaults and survive as many worker deaths as they have attempts.
 */
export function stallOptions(type: JobType, s: StallSettings): StallOptions {
  const spec = jobSpec(type);
  if (spec.stall === 'stream') {
    return { lockDuration: s.STREAM_LOCK_DURATION_MS, stalledInterval: s.STREAM_STALLED_INTERVAL_MS, maxStalledCount: 1 };
  }
  const long = { lockDuration: s.WORKER_LOCK_DURATION_MS, stalledInterval: s.WORKER_STALLED_INTERVAL_MS };
  if (spec.stall === 'crash-marks') return { ...long, maxStalledCount: s.DOCUMENTS_POISON_CRASHES };
  const attempts = spec.defaults.attempts ?? 1;
  return { ...long, maxStalledCount: attempts > 1 ? attempts : 0 };
}

/**
 * How long after its worker's heartbeat lapsed a streaming job can take to be back in its queue
 * (its lock expires, then up to two stalled checks), with a margin for a loaded machine: the API
 * waits this long for a retry before it answers `worker_lost`.
 */
export function streamRetryWindowMs(s: StallSettings): number {
  return s.STREAM_LOCK_DURATION_MS + 2 * s.STREAM_STALLED_INTERVAL_MS + 3000;
}
