import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import type { Socket } from 'socket.io-client';
import { freePort, startRedisServer, type RedisServerHandle } from '../../scripts/lib/redis-server.js';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { queueNameFor } from '../../shared/models/model-registry.js';
import { exitOf, isRunning, sleep, socketClient } from '../helpers/ops.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Failure drill: Redis (append-only, fsync on every write) crashes while jobs are queued and
 * running, stays down for a few seconds, and comes back on the same port with the same data.
 * While it is down the API answers 503 in OpenAI's error shape within a bounded time (no crash,
 * no hang) and /readyz says not ready; once it is back, the queued jobs are all still there,
 * the workers reconnect and finish them, Socket.IO subscribers hear every outcome, and the API
 * serves again.
 */
const JOBS = 60;
const DOWN_MS = 5000;
const text = (i: number, j: number) => `Job ${i}, text ${j}: shipping delays, supplier costs and the weather all played a part in the results.`;

describe('drill: Redis stopped mid-run and restarted with its data', () => {
  let dir: string;
  let port: number;
  let redis: RedisServerHandle;
  let svc: ServiceHandle;
  let socket: Socket;
  const validError = openAiValidator('ErrorResponse');
  const startRedis = () => startRedisServer({ port, dir, appendOnly: true, extraArgs: ['--appendfsync', 'always'] });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'qi-drill-redis-'));
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-drill-redis-chat-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    port = await freePort();
    redis = await startRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        useLiteModel({ concurrency: 4 }),
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 4, max_tokens_limit: 64, default_max_tokens: 8 },
      ]),
      workers: 2,
      env: { WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000', SYNC_TIMEOUT_MS: '20000', LOG_LEVEL: 'warn' },
    });
    socket = await socketClient(svc.baseUrl);
  });

  after(async () => {
    socket?.disconnect();
    await svc?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('503s while Redis is down, nothing lost, full recovery once it is back', { timeout: 120_000 }, async () => {
    const outcomes = new Map<string, string[]>();
    for (const event of ['completed', 'failed'] as const) socket.on(event, (d: any) => outcomes.set(d.id, [...(outcomes.get(d.id) ?? []), event]));

    // Enough work to keep both workers busy for several seconds.
    const ids = await Promise.all(
      Array.from({ length: JOBS }, async (_, i) => {
        const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: Array.from({ length: 64 }, (_, j) => text(i, j)) });
        assert.equal(r.status, 202, r.text);
        assert.equal((await socket.timeout(5000).emitWithAck('subscribe', r.json.id)).ok, true);
        return r.json.id as string;
      }),
    );
    await sleep(300);
    const probe = new Queue(queueNameFor('embedding', 'use-lite'), { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: 0 }, prefix: svc.prefix });
    const c = await probe.getJobCounts('wait', 'prioritized', 'active', 'completed');
    await probe.close();
    const [waiting, active, completedBefore] = [(c.wait ?? 0) + (c.prioritized ?? 0), c.active ?? 0, c.completed ?? 0];
    assert.ok(waiting > 0, 'jobs are queued when Redis goes down');

    // Crash: no shutdown, no final write; fsync-always means every acknowledged job is on disk.
    const downAt = Date.now();
    const exited = exitOf({ child: redis.process } as never);
    redis.process.kill('SIGKILL');
    await exited;

    // While it is down: bounded 503s in OpenAI's shape, readiness off, liveness on, nobody crashed.
    const latencies: number[] = [];
    const statuses = new Map<string, Set<number>>();
    const timed = async (name: string, f: () => Promise<Response>) => {
      const t = Date.now();
      const res = await f();
      latencies.push(Date.now() - t);
      statuses.set(name, (statuses.get(name) ?? new Set()).add(res.status));
      return { status: res.status, json: (await res.json().catch(() => undefined)) as any };
    };
    let probes = 0;
    while (Date.now() - downAt < DOWN_MS) {
      const [emb, job, get, chat, chatStream, chatless, ready, health] = await Promise.all([
        timed('POST /v1/embeddings', () => fetch(`${svc.baseUrl}/v1/embeddings`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'use-lite', input: 'hello' }) })),
        timed('POST /v1/jobs', () => fetch(`${svc.baseUrl}/v1/jobs`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ type: 'embedding', model: 'use-lite', input: ['x'] }) })),
        timed('GET /v1/jobs/:id', () => fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(ids[0]!)}`, { headers: authHeaders() })),
        timed('POST /v1/chat/completions', () => fetch(`${svc.baseUrl}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }) })),
        timed('POST /v1/chat/completions (stream)', () => fetch(`${svc.baseUrl}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }) })),
        timed('GET /v1/models', () => fetch(`${svc.baseUrl}/v1/models`, { headers: authHeaders() })),
        timed('GET /readyz', () => fetch(`${svc.baseUrl}/readyz`)),
        timed('GET /healthz', () => fetch(`${svc.baseUrl}/healthz`)),
      ]);
      for (const r of [emb, job, get, chat, chatStream]) {
        assert.equal(r.status, 503, JSON.stringify(r.json));
        assert.deepEqual(validError(r.json), []);
        assert.equal(r.json.error.code, 'redis_unavailable');
      }
      assert.equal(chatless.status, 200, 'what does not need Redis still works');
      assert.equal(ready.status, 503);
      assert.equal(ready.json.status, 'not_ready');
      assert.equal(health.status, 200);
      probes++;
      await sleep(200);
    }
    assert.ok(isRunning(svc.api) && svc.workers.every(isRunning), 'no process died');
    const maxLatency = Math.max(...latencies);
    // Fail fast: every answer came while Redis was still down, none waited for it to come back (how
    // fast they came is a figure, printed below: a busy machine slows them all).
    assert.ok(maxLatency < DOWN_MS, `answers while Redis is down took at most ${maxLatency} ms`);

    // Back, same port, same data.
    redis = await startRedis();
    const downtimeMs = Date.now() - downAt;
    const restartedAt = Date.now();
    const acceptingAt = await waitFor('API accepts jobs again', async () => {
      const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['back again'] });
      return r.status === 202 ? Date.now() : undefined;
    }, 20_000);
    const readyAt = await waitFor('ready again', async () => ((await fetch(`${svc.baseUrl}/readyz`)).ok ? Date.now() : undefined), 20_000);
    const views = new Map<string, any>();
    await waitFor('every job finished', async () => {
      for (const id of ids) {
        if (views.has(id)) continue;
        const v = (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as any;
        if (v.status === 'completed' || v.status === 'failed') views.set(id, v);
      }
      return views.size === ids.length ? true : undefined;
    }, 60_000, () => `${ids.length - views.size} unfinished`);
    const allDoneAt = Date.now();
    const sync = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'served synchronously again' });
    assert.equal(sync.status, 200, sync.text);
    await waitFor('every outcome delivered', async () => (ids.every((id) => outcomes.has(id)) ? true : undefined), 10_000).catch(() => {});

    const figures = {
      jobs_submitted: ids.length,
      queued_when_redis_died: waiting,
      active_when_redis_died: active,
      completed_before: completedBefore,
      completed: [...views.values()].filter((v) => v.status === 'completed').length,
      failed: [...views.values()].filter((v) => v.status === 'failed').length,
      lost: ids.length - views.size,
      socket_outcomes: [...outcomes.values()].filter((o) => o.length === 1).length,
      duplicated_deliveries: [...outcomes.values()].filter((o) => o.length > 1).length,
      redis_down_ms: downtimeMs,
      probes_while_down: probes,
      max_latency_while_down_ms: maxLatency,
      statuses_while_down: Object.fromEntries([...statuses].map(([k, v]) => [k, [...v]])),
      api_accepting_ms_after_restart: acceptingAt - restartedAt,
      api_ready_ms_after_restart: readyAt - restartedAt,
      backlog_done_ms_after_restart: allDoneAt - restartedAt,
    };
    console.log(`DRILL redis-restart ${JSON.stringify(figures)}`);
    assert.equal(figures.completed, ids.length, 'every queued job completed after the restart');
    assert.equal(figures.duplicated_deliveries, 0);
    assert.equal(figures.socket_outcomes, ids.length, 'every subscriber heard its outcome');
  });
});
