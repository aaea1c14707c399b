import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ModelRegistry } from '../models/model-registry.js';

/**
 * One BullMQ queue per model, so a slow model's backlog never delays another's, plus any other
 * queues the API submits to (the document pipeline's, the chatbot's). The events stream is kept
 * short: results of async jobs live in the job itself, and the stream is only read by dashboards.
 */
export function createQueues(registry: ModelRegistry, connection: Redis, prefix: string, extraQueues: Iterable<string> = []): Map<string, Queue> {
  const names = [...registry.models.map((m) => m.queueName), ...extraQueues];
  return new Map(names.map((name) => [name, new Queue(name, { connection, prefix, streams: { events: { maxLen: 1000 } } })]));
}
