import { isNotConnectionError } from 'bullmq';

/** Node's socket errors for a server that is down, unreachable or went away mid-command. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * ioredis's own refusals while it has no connection: a fail-fast producer (enableOfflineQueue
 * false, shared/redis/redis-connections.ts) on one server or a cluster, and a cluster with no node left.
 */
const CLIENT_OFFLINE = /isn't (writeable|ready) and enableOfflineQueue options is false|^None of startup nodes is available|^Cluster is disconnect/;

/**
 * Whether an error means Redis could not be reached, as opposed to Redis answering with an error
 * or a bug of ours: the first is the service being unavailable for a while (503, retry), the
 * others are not. BullMQ's `isNotConnectionError` knows the closed-connection cases; this adds the
 * ones ioredis gives a producer that fails fast, a command out of retries, and socket errors.
 */
export function isRedisConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (!isNotConnectionError(err)) return true;
  // Both are ioredis classes it does not export: their names are their identity.
  if (err.name === 'MaxRetriesPerRequestError' || err.name === 'ClusterAllFailedError') return true;
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && SOCKET_CODES.has(code)) || CLIENT_OFFLINE.test(err.message);
}
