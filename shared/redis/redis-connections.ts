import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * Redis connections by role (BullMQ's production guide):
 * - `producer` (API): fails fast while Redis is down, so the API can answer 503 instead of
 *   holding requests in an offline queue;
 * - `worker`: retries forever, since a worker's only job is to wait for Redis to come back;
 * - `subscriber`: pub/sub only, reconnects and re-subscribes by itself.
 */
export type RedisRole = 'producer' | 'worker' | 'subscriber';

/**
 * Where Redis is: one server (`url`), or a Redis Cluster (`cluster`: its seed nodes; the client
 * discovers the rest). `username`, `password` and `tls` apply to every cluster node.
 */
export interface RedisTarget {
  url: string;
  cluster?: { nodes: { host: string; port: number }[]; username?: string; password?: string; tls?: boolean };
}

/** The target named by the environment: REDIS_CLUSTER_NODES when set, REDIS_URL otherwise. */
export function redisTarget(env: { REDIS_URL: string; REDIS_CLUSTER_NODES?: RedisTarget['cluster'] }): RedisTarget {
  return env.REDIS_CLUSTER_NODES ? { url: env.REDIS_URL, cluster: env.REDIS_CLUSTER_NODES } : { url: env.REDIS_URL };
}

/**
 * A connection for `role`. On a cluster target this is an ioredis `Cluster`, which has the same
 * command interface as `Redis` (the callers here use nothing else), so it is typed as `Redis`;
 * BullMQ, the Socket.IO adapter and the emitter detect a cluster client themselves. Every key our
 * own code touches starts with the queue prefix, which on a cluster carries a hash tag (`{qi}`),
 * so multi-key scripts and pipelines stay within one slot.
 */
export function createRedis(target: string | RedisTarget, role: RedisRole, name: string): Redis {
  const t: RedisTarget = typeof target === 'string' ? { url: target } : target;
  const common: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  };
  const byRole: RedisOptions =
    role === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 }
      : role === 'worker'
        ? { maxRetriesPerRequest: null, enableReadyCheck: true }
        : { maxRetriesPerRequest: null };
  if (!t.cluster) return quiet(new Redis(t.url, { ...common, ...byRole }));

  const { nodes, username, password, tls } = t.cluster;
  const options: ClusterOptions = {
    // Per-node connections: the same role options, minus the ones only the Cluster itself takes.
    redisOptions: { connectionName: name, maxRetriesPerRequest: byRole.maxRetriesPerRequest, username, password, ...(tls ? { tls: {} } : {}) },
    enableOfflineQueue: byRole.enableOfflineQueue ?? true,
    enableReadyCheck: true,
    clusterRetryStrategy: (times) => Math.min(times * 200, 2000),
    slotsRefreshTimeout: 2000,
    // A node that went away (failover, restart) is refreshed from the others.
    retryDelayOnClusterDown: 300,
    retryDelayOnFailover: 200,
  };
  return quiet(new Cluster(nodes, options) as unknown as Redis);
}

/**
 * Connection errors while Redis is away are expected: the client reconnects by itself, BullMQ and
 * the health checks report the outage. Without a listener ioredis prints every failed attempt.
 */
function quiet(redis: Redis): Redis {
  redis.on('error', () => {});
  return redis;
}

export function isCluster(redis: Redis): boolean {
  return (redis as unknown as { isCluster?: boolean }).isCluster === true || redis instanceof Cluster;
}

/**
 * SCAN MATCH over every key space: on a cluster a plain SCAN reaches one (random) node, so this
 * scans each master in turn. Yields the keys found, batch by batch.
 */
export async function* scanKeys(redis: Redis, match: string, count = 1000): AsyncGenerator<string[]> {
  const nodes = isCluster(redis) ? (redis as unknown as Cluster).nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', match, 'COUNT', count);
      cursor = next;
      if (found.length) yield found;
    } while (cursor !== '0');
  }
}

/** QUIT, bounded: a connection to a Redis that is down would otherwise wait for it forever. */
export async function closeRedis(redis: Redis, timeoutMs = 2000): Promise<void> {
  if (redis.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([redis.quit(), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  } catch {
    /* already closed, or Redis unreachable */
  } finally {
    clearTimeout(timer);
    if ((redis.status as string) !== 'end') redis.disconnect();
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
