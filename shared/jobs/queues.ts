import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ModelRegistry } from '../models/model-registry.js';

/**
 * One BullMQ queue per model, so a slow model's backlog never delays another's. The events
 * stream is kept short: results of async jobs live in the job itself, and the stream is only
 * read by dashboards.
 */
export function createQueues(registry: ModelRegistry, connection: Redis, prefix: string): Map<string, Queue> {
  return new Map(
    registry.models.map((m) => [m.queueName, new Queue(m.queueName, { connection, prefix, streams: { events: { maxLen: 1000 } } })]),
  );
}
