import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { Socket } from 'socket.io-client';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { readSse, socketClient } from '../helpers/ops.js';
import { clusterCli, startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * The whole service on a three-node Redis Cluster (REDIS_CLUSTER_NODES, hash-tagged
 * QUEUE_PREFIX): embeddings through the API, async jobs with their Socket.IO outcome (also on
 * another API replica, through the Redis adapter), idempotency, cancellation, chat completions
 * whole and streamed, and chat tokens over Socket.IO.
 */
const messages = [{ role: 'user' as const, content: 'Say something.' }];

describe('Redis Cluster: BullMQ, token streams, pub/sub and Socket.IO on three nodes', () => {
  let cluster: RedisClusterHandle;
  let svc: ServiceHandle;
  let client: OpenAI;
  const prefix = `{t${randomBytes(4).toString('hex')}}`;
  const sockets: Socket[] = [];

  before(async () => {
    cluster = await startRedisCluster(3);
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-cluster-chat-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    svc = await startService({
      // REDIS_URL must still parse; with REDIS_CLUSTER_NODES set it is not used.
      redisUrl: `redis://127.0.0.1:${cluster.servers[0]!.port}`,
      modelsConfig: writeModelsConfig([
        useLiteModel(),
        // Not served: its jobs stay queued, for the cancellation test.
        useLiteModel({ id: 'parked' }),
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 128, default_max_tokens: 16 },
      ]),
      env: { REDIS_CLUSTER_NODES: cluster.nodes, QUEUE_PREFIX: prefix, WORKER_MODELS: 'use-lite,tiny-chat' },
      waitReady: false,
    });
    await waitFor('worker heartbeat on the cluster', async () => {
      const r = (await (await fetch(`${svc.baseUrl}/readyz`)).json()) as any;
      return r.checks?.redis === 'ok' && r.checks?.models?.['use-lite'] === 1 && r.checks?.models?.['tiny-chat'] === 1 ? true : undefined;
    }, 30_000, () => svc.api.output().slice(-2000));
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await cluster?.cleanup();
  });

  const socket = async (baseUrl = svc.baseUrl) => {
    const s = await socketClient(baseUrl);
    sockets.push(s);
    return s;
  };
  const getJob = async (id: string) => (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as any;

  test('the cluster is three masters, and every key of the service sits in the prefix\'s one slot', async () => {
    const ports = cluster.servers.map((s) => s.port);
    assert.equal(clusterCli(ports[0]!, 'cluster', 'info').match(/cluster_known_nodes:(\d+)/)?.[1], '3');
    // Something is in Redis by now (workers' heartbeats, queue metadata): find where.
    const slot = Number(clusterCli(ports[0]!, 'cluster', 'keyslot', `${prefix}:x`));
    const holders = ports.filter((p) => Number(clusterCli(p, 'cluster', 'countkeysinslot', String(slot))) > 0);
    assert.equal(holders.length, 1, 'one node holds the slot');
    const keys = clusterCli(holders[0]!, 'keys', `${prefix}:*`).split('\n').filter(Boolean);
    assert.ok(keys.some((k) => k.includes(':workers')) && keys.some((k) => k.includes('embedding.use-lite')), keys.join(' '));
  });

  test('embeddings through the API (official OpenAI client)', async () => {
    const r = await client.embeddings.create({ model: 'use-lite', input: ['hello cluster', 'a second text'] });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0]!.embedding.length, 512);
  });

  test('an async job: 202, Socket.IO completion on this replica and on another one (Redis adapter), GET, idempotency', async () => {
    const replica = await svc.startApi();
    const here = await socket();
    const there = await socket(replica.baseUrl);
    const body = { type: 'embedding', model: 'use-lite', input: ['one', 'two', 'three'] };
    const headers = { ...authHeaders(), 'idempotency-key': `cluster-${prefix}` };
    const r = await postJson(svc.baseUrl, '/v1/jobs', body, headers);
    assert.equal(r.status, 202, r.text);
    const id = r.json.id as string;
    const completions = [here, there].map((s) => new Promise<any>((resolve) => s.on('completed', (e) => e.id === id && resolve(e))));
    for (const s of [here, there]) assert.equal((await s.timeout(5000).emitWithAck('subscribe', id)).ok, true);
    const [a, b] = await Promise.all(completions);
    assert.ok(a.result && b.result, JSON.stringify({ a, b }));
    assert.equal(a.result.data.length, 3);
    assert.deepEqual(b.result, a.result);
    assert.equal((await getJob(id)).status, 'completed');
    const again = await postJson(svc.baseUrl, '/v1/jobs', body, headers);
    assert.equal(again.json.id, id, 'the idempotency key returns the same job');
  });

  test('cancelling a queued job leaves a tombstone; subscribers hear it', async () => {
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'parked', input: ['never run'] });
    const id = r.json.id as string;
    const s = await socket();
    const failed = new Promise<any>((resolve) => s.on('failed', (e) => e.id === id && resolve(e)));
    await s.timeout(5000).emitWithAck('subscribe', id);
    const del = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(((await del.json()) as any).status, 'cancelled');
    assert.equal((await failed).status, 'cancelled');
    assert.equal((await getJob(id)).status, 'cancelled');
  });

  test('chat completions, whole and streamed (token streams and their pub/sub on the cluster)', async () => {
    const whole = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 16, seed: 7 });
    assert.equal(whole.usage!.completion_tokens, 16);
    const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'tiny-chat', messages, max_tokens: 16, seed: 7, stream: true }),
    });
    const sse = await readSse(res);
    assert.equal(sse.done, true);
    const text = sse.events.map((e: any) => e.choices?.[0]?.delta?.content ?? '').join('');
    assert.equal(text, whole.choices[0]!.message.content);
  });

  test('a native chat job over Socket.IO: every token in order, then completed', async () => {
    const s = await socket();
    const tokens: number[] = [];
    s.on('token', (e) => tokens.push(e.index));
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, max_tokens: 24, seed: 3 });
    const id = r.json.id as string;
    const done = new Promise<any>((resolve) => s.on('completed', (e) => e.id === id && resolve(e)));
    await s.timeout(5000).emitWithAck('subscribe', id);
    const end = await done;
    assert.deepEqual(tokens, Array.from({ length: tokens.length }, (_, i) => i));
    assert.ok(tokens.length > 0);
    assert.equal(end.result.usage.completion_tokens, 24);
  });

  test('cancelling a running generation reaches its worker through the cancel channel', async () => {
    const s = await socket();
    let tokens = 0;
    s.on('token', () => tokens++);
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, max_tokens: 128 });
    const id = r.json.id as string;
    const failed = new Promise<any>((resolve) => s.on('failed', (e) => e.id === id && resolve(e)));
    await s.timeout(5000).emitWithAck('subscribe', id);
    await waitFor('first tokens', async () => (tokens >= 2 ? true : undefined), 10_000);
    const del = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(((await del.json()) as any).status, 'cancelled');
    assert.equal((await failed).status, 'cancelled');
    assert.ok(tokens < 128);
  });
});
