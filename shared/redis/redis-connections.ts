import { Redis, type RedisOptions } from 'ioredis';

/**
 * Redis connections by role (BullMQ's production guide):
 * - `producer` (API): fails fast while Redis is down, so the API can answer 503 instead of
 *   holding requests in an offline queue;
 * - `worker`: retries forever, since a worker's only job is to wait for Redis to come back;
 * - `subscriber`: pub/sub only, reconnects and re-subscribes by itself.
 */
export type RedisRole = 'producer' | 'worker' | 'subscriber';

export function createRedis(url: string, role: RedisRole, name: string): Redis {
  const common: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  };
  switch (role) {
    case 'producer':
      return new Redis(url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    case 'worker':
      return new Redis(url, { ...common, maxRetriesPerRequest: null, enableReadyCheck: true });
    case 'subscriber':
      return new Redis(url, { ...common, maxRetriesPerRequest: null });
  }
}

/** Resolves once the connection is ready; rejects after `timeoutMs` so boot fails loudly. */
export function waitForRedis(redis: Redis, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not reachable after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
