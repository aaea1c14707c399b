import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import type { Socket } from 'socket.io-client';
import { freePort } from '../../scripts/lib/redis-server.js';
import { queueNameFor } from '../../shared/models/model-registry.js';
import { exitOf, isRunning, readSse, sleep, socketClient, startFakeUpstream } from '../helpers/ops.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, postJson, spawnEntry, startService, useLiteModel, waitFor, writeModelsConfig, type ProcessHandle, type ServiceHandle } from '../helpers/service.js';

/**
 * Graceful shutdown of real API and worker processes: SIGTERM drains in-flight work (HTTP
 * requests, SSE streams, Socket.IO subscriptions; running jobs) and exits 143; running jobs that
 * outlast the grace period are handed back (retryable) or failed with a reason, never lost; a
 * second signal exits at once; SIGINT exits 130.
 */
const text = (i: number) =>
  `Document ${i}: the quick brown fox jumps over the lazy dog while the committee reviews the quarterly figures and drafts a plan for next year, noting shipping delays ${i}.`;
const texts = (n: number) => Array.from({ length: n }, (_, i) => text(i));

describe('graceful shutdown: API and worker processes', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let upstream: Awaited<ReturnType<typeof startFakeUpstream>>;
  let svc: ServiceHandle;
  const extra: ProcessHandle[] = [];
  const sockets: Socket[] = [];

  before(async () => {
    redis = await startPrivateRedis();
    upstream = await startFakeUpstream();
    const config = writeModelsConfig([
      useLiteModel(),
      // One text per ONNX run on one thread: about 5 ms a text, so a job's length is set by its size.
      useLiteModel({ id: 'use-lite-slow', threads: 1, concurrency: 4, batching: { max_batch_size: 1 } }),
      // 100 ms per token: a generation of N tokens takes N/10 seconds.
      { id: 'slow-chat', task: 'chat', format: 'openai-upstream', base_url: upstream.baseUrl, upstream_model: 'slow-100', timeout_ms: 10_000 },
      // Never answers: a job that keeps a grace period waiting.
      { id: 'stuck-chat', task: 'chat', format: 'openai-upstream', base_url: upstream.baseUrl, upstream_model: 'hang', timeout_ms: 120_000 },
    ]);
    // No worker yet: each test starts the workers it needs, so it knows which one holds its jobs.
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: config,
      workers: 0,
      waitReady: false,
      env: { WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000', SHUTDOWN_GRACE_MS: '15000' },
    });
    await svc.startWorker();
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await upstream?.close();
    await Promise.all(extra.map((p) => p.stop('SIGKILL')));
    await svc?.stop();
    await redis?.cleanup();
  });

  const startApi = async (env: NodeJS.ProcessEnv = {}) => {
    const port = await freePort();
    const api = Object.assign(spawnEntry('api/main.ts', { ...svc.env, PORT: String(port), ...env }), { baseUrl: `http://127.0.0.1:${port}` });
    extra.push(api);
    await waitFor('api /healthz', async () => ((await fetch(`${api.baseUrl}/healthz`)).ok ? true : undefined), 60_000, () => api.output().slice(-2000));
    return api;
  };
  const socket = async (baseUrl: string, transport: 'websocket' | 'polling' = 'websocket') => {
    const s = await socketClient(baseUrl, undefined, transport);
    sockets.push(s);
    return s;
  };
  const getJob = async (id: string, baseUrl = svc.baseUrl) =>
    (await (await fetch(`${baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as any;
  const submit = async (body: Record<string, unknown>) => {
    const r = await postJson(svc.baseUrl, '/v1/jobs', body);
    assert.equal(r.status, 202, r.text);
    return r.json.id as string;
  };
  const waitStatus = (id: string, statuses: string[], timeoutMs = 30_000) =>
    waitFor(`job ${id} ${statuses.join('/')}`, async () => {
      const j = await getJob(id);
      return statuses.includes(j.status) ? j : undefined;
    }, timeoutMs);
  /** Subscribes a socket to a job; resolves with the job's outcome event. */
  const outcome = async (s: Socket, id: string) => {
    const ended = new Promise<{ event: string; data: any }>((resolve) => {
      s.on('completed', (data) => data.id === id && resolve({ event: 'completed', data }));
      s.on('failed', (data) => data.id === id && resolve({ event: 'failed', data }));
    });
    const ack = await s.timeout(5000).emitWithAck('subscribe', id);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    return ended;
  };

  test('API, SIGTERM: stops accepting, finishes an SSE stream, a synchronous request and a Socket.IO subscription, exits 143', { timeout: 60_000 }, async () => {
    // The grace period only caps the drain: what the test checks is that the drain ends by itself
    // (the log says "shut down", not "shutdown timed out"), so it must outlast the work in flight
    // however slow the machine is.
    const api = await startApi({ SHUTDOWN_GRACE_MS: '40000' });
    const s = await socket(api.baseUrl);
    // Long-polling needs new requests, which a closed listener refuses: such a client must not hold the shutdown.
    const polling = await socket(api.baseUrl, 'polling');
    const pollingGone = new Promise<void>((resolve) => polling.once('disconnect', () => resolve()));
    // A 4 s generation followed over Socket.IO, and a 4 s SSE stream (the fake upstream paces them by the clock).
    const TOKENS = 40;
    const jobId = await submit({ type: 'chat', model: 'slow-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: TOKENS });
    const jobEnded = outcome(s, jobId);
    void outcome(polling, jobId);
    const sse = await fetch(`${api.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'slow-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: TOKENS, stream: true }),
    });
    assert.equal(sse.status, 200);
    let sseEnded = false;
    const sseRead = readSse(sse).finally(() => (sseEnded = true));
    // About 2.5 s of embedding work, waited for synchronously; the signal comes once its job is
    // queued (a fixed pause could signal before the API even took the request on a busy machine).
    const sync = postJson(api.baseUrl, '/v1/embeddings', { model: 'use-lite-slow', input: texts(500) });
    const slowQueue = new Queue(queueNameFor('embedding', 'use-lite-slow'), { connection: { host: '127.0.0.1', port: redis.port }, prefix: svc.prefix });
    try {
      await waitFor('the synchronous job queued', async () => {
        const c = await slowQueue.getJobCounts('wait', 'prioritized', 'active');
        return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.active ?? 0) > 0 ? true : undefined;
      });
    } finally {
      await slowQueue.close();
    }

    const exited = exitOf(api);
    const signalledAt = Date.now();
    api.child.kill('SIGTERM');
    // It stops accepting connections at once: while the SSE stream is still running.
    await waitFor('listener closed', async () => {
      try {
        await fetch(`${api.baseUrl}/healthz`);
        return undefined;
      } catch {
        return true;
      }
    });
    assert.equal(sseEnded, false, 'the listener closed while the SSE stream was still open');

    const stream = await sseRead;
    assert.equal(stream.error, undefined);
    assert.equal(stream.done, true, 'the SSE stream ended with [DONE]');
    const content = stream.events.map((e: any) => e.choices?.[0]?.delta?.content ?? '').join('');
    assert.equal(content.trim().split(' ').length, TOKENS, 'every token of the stream arrived');
    const r = await sync;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.data.length, 500);
    const end = await jobEnded;
    assert.equal(end.event, 'completed');
    assert.equal(end.data.result.usage.completion_tokens, TOKENS);

    const { code, at } = await exited;
    assert.equal(code, 143);
    assert.ok(at - signalledAt > 1500, 'it waited for the work in flight');
    await pollingGone;
    assert.match(api.output(), /"msg":"shut down"/);
    assert.doesNotMatch(api.output(), /shutdown timed out/, `nothing held it to the end of the grace period (it exited after ${at - signalledAt} ms)`);
    assert.doesNotMatch(api.output(), /close failed/, 'Socket.IO, queues and Redis closed cleanly');
  });

  test('API: a second SIGTERM during a grace period that is stuck exits at once', { timeout: 60_000 }, async () => {
    const api = await startApi({ SHUTDOWN_GRACE_MS: '60000' });
    // A request that never ends by itself: the model's upstream never answers.
    const pending = fetch(`${api.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'stuck-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    }).catch((e) => e);
    await waitFor('upstream request open', async () => (upstream.open() > 0 ? true : undefined), 10_000);
    const exited = exitOf(api);
    api.child.kill('SIGTERM');
    // The first signal must have been taken before the second is sent (on a busy machine the two
    // could otherwise arrive together); then a while in which a wrong drain would have exited.
    await waitFor('first signal taken', async () => (/"msg":"shutting down"/.test(api.output()) ? true : undefined));
    await sleep(1000);
    assert.ok(isRunning(api), 'still draining the stuck request');
    const second = Date.now();
    api.child.kill('SIGTERM');
    const { code, at } = await exited;
    assert.equal(code, 143);
    assert.match(api.output(), /second signal: exiting now/);
    // "At once" as opposed to the end of its 60 s grace period.
    assert.doesNotMatch(api.output(), /shutdown timed out/);
    assert.ok(at - second < 10_000, `exited ${at - second} ms after the second signal`);
    await pending;
    upstream.release();
  });

  test('API: SIGINT exits 130', { timeout: 30_000 }, async () => {
    const api = await startApi();
    const exited = exitOf(api);
    api.child.kill('SIGINT');
    assert.equal((await exited).code, 130);
  });

  test('worker, SIGTERM: stops taking jobs, finishes a long embedding job and a long generation, exits 143', { timeout: 60_000 }, async () => {
    // Whatever earlier tests left running finishes on the first worker before it goes.
    const [first] = svc.workers;
    assert.equal(await first!.stop('SIGTERM'), 143);
    // A grace period that outlasts the jobs on a slow machine: this test is about draining, the next one about the cut-off.
    const worker = await svc.startWorker({ SHUTDOWN_GRACE_MS: '40000' });
    const s = await socket(svc.baseUrl);
    const embedId = await submit({ type: 'embedding', model: 'use-lite-slow', input: texts(600) });
    const chatId = await submit({ type: 'chat', model: 'slow-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 40 });
    const embedEnded = outcome(s, embedId);
    const chatEnded = outcome(s, chatId);
    await waitStatus(embedId, ['active']);
    await waitStatus(chatId, ['active']);

    const exited = exitOf(worker);
    worker.child.kill('SIGTERM');
    await waitFor('the worker stops taking jobs', async () => (/no new jobs are taken/.test(worker.output()) ? true : undefined));
    // Submitted once it stopped taking jobs: the draining worker must leave it in the queue.
    const lateId = await submit({ type: 'embedding', model: 'use-lite', input: ['late'] });

    const e = await embedEnded;
    assert.equal(e.event, 'completed');
    assert.equal(e.data.result.data.length, 600);
    const c = await chatEnded;
    assert.equal(c.event, 'completed');
    assert.equal(c.data.result.usage.completion_tokens, 40);
    const { code } = await exited;
    assert.equal(code, 143);
    assert.doesNotMatch(worker.output(), /shutdown timed out|handing running jobs back/, 'the jobs finished within the grace period');
    assert.equal((await getJob(embedId)).status, 'completed');
    assert.equal((await getJob(chatId)).status, 'completed');
    assert.equal((await getJob(lateId)).status, 'queued', 'a draining worker takes no new job');

    // The next worker serves it.
    await svc.startWorker();
    assert.equal((await waitStatus(lateId, ['completed'])).status, 'completed');
  });

  test('worker, SIGTERM with jobs longer than the grace period: the embedding job is handed back and completes elsewhere, the generation fails with a reason', { timeout: 60_000 }, async () => {
    for (const w of svc.workers) if (isRunning(w)) assert.equal(await w.stop('SIGTERM'), 143);
    const worker = await svc.startWorker({ SHUTDOWN_GRACE_MS: '3000' });
    const s = await socket(svc.baseUrl);
    // About 5 s of embedding work and a 10 s generation, against a 3 s grace period.
    const embedId = await submit({ type: 'embedding', model: 'use-lite-slow', input: texts(1000) });
    const chatId = await submit({ type: 'chat', model: 'slow-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100 });
    const embedEnded = outcome(s, embedId);
    const chatEnded = outcome(s, chatId);
    await waitStatus(embedId, ['active']);
    await waitStatus(chatId, ['active']);

    const exited = exitOf(worker);
    const signalledAt = Date.now();
    worker.child.kill('SIGTERM');
    const { code, at } = await exited;
    assert.equal(code, 143);
    // Cut off at the grace period, not after the jobs: the generation alone runs 10 s by the
    // upstream's clock (the bound leaves room for a busy machine's late timers, not for the jobs).
    assert.ok(at - signalledAt < 8000, `exited at the end of the grace period (${at - signalledAt} ms), not after the jobs`);
    assert.match(worker.output(), /handed back to the queue/);

    const handedBack = await getJob(embedId);
    assert.equal(handedBack.status, 'queued', 'back in the queue, not stuck active');
    assert.equal(handedBack.attempts, 0, 'handing back costs no attempt');
    const c = await chatEnded;
    assert.equal(c.event, 'failed');
    assert.match(c.data.error.message, /worker shut down before the job finished/);
    assert.equal((await getJob(chatId)).status, 'failed');

    await svc.startWorker();
    const e = await embedEnded;
    assert.equal(e.event, 'completed');
    assert.equal(e.data.result.data.length, 1000);
  });

  test('worker: a second SIGTERM during a grace period that is stuck exits at once; SIGINT exits 130', { timeout: 60_000 }, async () => {
    for (const w of svc.workers) if (isRunning(w)) assert.equal(await w.stop('SIGTERM'), 143);
    const worker = await svc.startWorker({ SHUTDOWN_GRACE_MS: '60000', WORKER_MODELS: 'stuck-chat' });
    const id = await submit({ type: 'chat', model: 'stuck-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    await waitStatus(id, ['active']);
    const exited = exitOf(worker);
    worker.child.kill('SIGTERM');
    await waitFor('first signal taken', async () => (/"msg":"shutting down"/.test(worker.output()) ? true : undefined));
    await sleep(1000);
    assert.ok(isRunning(worker), 'still waiting for the stuck job');
    const second = Date.now();
    worker.child.kill('SIGTERM');
    const { code, at } = await exited;
    assert.equal(code, 143);
    assert.match(worker.output(), /second signal: exiting now/);
    // "At once" as opposed to the end of its 60 s grace period.
    assert.doesNotMatch(worker.output(), /shutdown timed out/);
    assert.ok(at - second < 10_000, `exited ${at - second} ms after the second signal`);
    upstream.release();

    const idle = await svc.startWorker({ WORKER_MODELS: 'use-lite' });
    const idleExit = exitOf(idle);
    idle.child.kill('SIGINT');
    assert.equal((await idleExit).code, 130);
  });
});
