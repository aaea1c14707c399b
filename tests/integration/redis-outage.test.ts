import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/lib/redis-server.js';
import { errors } from '../../shared/errors/app-error.js';
import { closeRedis, createRedis } from '../../shared/redis/redis-connections.js';
import { isRedisConnectionError } from '../../shared/redis/redis-errors.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, KEYS, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/** The error a promise rejects with (the test fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => err,
  );
}

describe('isRedisConnectionError, on the errors ioredis and BullMQ really give', () => {
  test('unreachable: a fail-fast producer, a command out of retries, a queue whose Redis died', { timeout: 30_000 }, async () => {
    const nobody = `redis://127.0.0.1:${await freePort()}`;
    const producer = createRedis(nobody, 'producer', 'test-producer');
    const outOfRetries = new Redis(nobody, { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    outOfRetries.on('error', () => {});
    const redis = await startPrivateRedis();
    const live = createRedis(redis.url, 'producer', 'test-live');
    const queue = new Queue('outage-probe', { connection: live, prefix: 'qi-outage' });
    queue.on('error', () => {});
    try {
      assert.equal(isRedisConnectionError(await rejection(producer.get('k'))), true, 'producer with nothing listening');
      const exhausted = await rejection(outOfRetries.get('k'));
      assert.equal((exhausted as Error).name, 'MaxRetriesPerRequestError');
      assert.equal(isRedisConnectionError(exhausted), true, 'a command out of retries');

      await queue.add('before', {});
      await live.set('text', 'not a number');
      // Redis answering with an error is not Redis being away.
      const reply = await rejection(live.incr('text'));
      assert.match((reply as Error).message, /not an integer/);
      assert.equal(isRedisConnectionError(reply), false);

      await redis.stop();
      assert.equal(isRedisConnectionError(await rejection(queue.add('after', {}))), true, 'queue.add once Redis died');
      assert.equal(isRedisConnectionError(await rejection(live.get('k'))), true, 'a command once Redis died');
    } finally {
      await queue.close().catch(() => {});
      outOfRetries.disconnect();
      await Promise.all([closeRedis(producer, 200), closeRedis(live, 200)]);
      await redis.cleanup();
    }
  });

  test('anything else is not a connection error', () => {
    for (const e of [new Error('boom'), errors.internal(), errors.unavailable('busy'), new TypeError("Cannot read properties of undefined (reading 'x')"), 'ECONNREFUSED', undefined, null]) {
      assert.equal(isRedisConnectionError(e), false, String(e));
    }
  });
});

/**
 * Every route that reaches Redis answers an outage as 503 `redis_unavailable` in OpenAI's shape:
 * the job and key stores name themselves, the others (documents, admin) through the error
 * middleware. What needs no Redis keeps answering.
 */
describe('the API while Redis is down', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let managedKey: string;
  const validError = openAiValidator('ErrorResponse');
  const call = async (method: string, route: string, key: string, body?: unknown) => {
    const res = await fetch(`${svc.baseUrl}${route}`, { method, headers: authHeaders(key), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), json: (await res.json().catch(() => undefined)) as any };
  };

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel()]), workers: 0, waitReady: false, env: { LOG_LEVEL: 'warn' } });
    assert.equal((await call('POST', '/v1/admin/tenants', KEYS.admin, { id: 'outage' })).status, 201);
    const key = await call('POST', '/v1/admin/keys', KEYS.admin, { tenant: 'outage', scopes: ['embeddings', 'documents'] });
    assert.equal(key.status, 201, JSON.stringify(key.json));
    managedKey = key.json.key;
    assert.equal((await call('GET', '/v1/collections', managedKey)).status, 200, 'the managed key works while Redis is up');
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  test('503 redis_unavailable from every store, 200 from what needs none', { timeout: 60_000 }, async () => {
    await redis.stop();
    await waitFor('readiness to see the outage', async () => ((await fetch(`${svc.baseUrl}/readyz`)).status === 503 ? true : undefined), 20_000);
    const probes = {
      'POST /v1/jobs (job store)': await call('POST', '/v1/jobs', KEYS.acme, { type: 'embedding', model: 'use-lite', input: ['x'] }),
      'POST /v1/embeddings, managed key (key store)': await call('POST', '/v1/embeddings', managedKey, { model: 'use-lite', input: 'x' }),
      'GET /v1/collections (documents)': await call('GET', '/v1/collections', KEYS.acme),
      'GET /v1/documents/:id (documents)': await call('GET', '/v1/documents/3f2c1a9e-6a8b-4c1d-9e2f-0a1b2c3d4e5f', KEYS.acme),
      'GET /v1/admin/tenants (admin)': await call('GET', '/v1/admin/tenants', KEYS.admin),
    };
    for (const [what, r] of Object.entries(probes)) {
      assert.equal(r.status, 503, `${what}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, 'redis_unavailable', what);
      assert.equal(r.retryAfter, '2', what);
      assert.deepEqual(validError(r.json), [], what);
    }
    assert.equal((await call('GET', '/v1/models', KEYS.acme)).status, 200, 'what needs no Redis still works');
    assert.equal((await fetch(`${svc.baseUrl}/healthz`)).status, 200);
  });
});
