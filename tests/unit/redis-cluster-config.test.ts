import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadEnv } from '../../shared/config/env.js';
import { closeRedis, createRedis, isCluster, redisTarget } from '../../shared/redis/redis-connections.js';

test('REDIS_CLUSTER_NODES: host:port list, or URLs whose credentials and TLS apply to every node', () => {
  const env = loadEnv({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001,redis-3', QUEUE_PREFIX: '{qi}' });
  assert.deepEqual(env.REDIS_CLUSTER_NODES, {
    nodes: [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: 'redis-3', port: 6379 },
    ],
    username: undefined,
    password: undefined,
    tls: false,
  });
  const secure = loadEnv({ REDIS_CLUSTER_NODES: 'rediss://app:s%3Acret@a.example:6380,b.example:6380', QUEUE_PREFIX: 'prod-{qi}' });
  assert.deepEqual(secure.REDIS_CLUSTER_NODES, { nodes: [{ host: 'a.example', port: 6380 }, { host: 'b.example', port: 6380 }], username: 'app', password: 's:cret', tls: true });
  assert.equal(loadEnv({}).REDIS_CLUSTER_NODES, undefined);
  assert.equal(loadEnv({ REDIS_CLUSTER_NODES: '' }).REDIS_CLUSTER_NODES, undefined);
  assert.deepEqual(redisTarget(loadEnv({})), { url: 'redis://127.0.0.1:6379' });
  assert.equal(redisTarget(env).cluster?.nodes.length, 3);
});

test('on a cluster the queue prefix must carry a hash tag, and bad node entries are refused', () => {
  assert.throws(() => loadEnv({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' }), (err: unknown) => err instanceof ConfigError && /QUEUE_PREFIX.*hash tag.*\{qi\}/.test(err.message));
  assert.throws(() => loadEnv({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'qi' }), /hash tag/);
  assert.throws(() => loadEnv({ REDIS_CLUSTER_NODES: 'http://x:1', QUEUE_PREFIX: '{qi}' }), /REDIS_CLUSTER_NODES/);
  assert.throws(() => loadEnv({ REDIS_CLUSTER_NODES: 'host:notaport', QUEUE_PREFIX: '{qi}' }), /REDIS_CLUSTER_NODES/);
});

test('createRedis gives an ioredis Cluster for a cluster target and a Redis otherwise', async () => {
  const cluster = createRedis({ url: 'redis://127.0.0.1:1', cluster: { nodes: [{ host: '127.0.0.1', port: 1 }] } }, 'producer', 'unit');
  const single = createRedis('redis://127.0.0.1:1', 'producer', 'unit');
  assert.equal(isCluster(cluster), true);
  assert.equal(isCluster(single), false);
  await Promise.all([closeRedis(cluster, 100), closeRedis(single, 100)]);
});
