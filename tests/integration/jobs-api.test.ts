import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { io as connect, type Socket } from 'socket.io-client';
import { jobCatalog, type JobEnvelope } from '../../shared/jobs/job-catalog.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const longText = (i: number) =>
  `Document ${i}: the quick brown fox jumps over the lazy dog while the committee reviews the quarterly figures and drafts a plan for next year, ` +
  `noting that shipping delays, supplier costs and the weather all played a part in the results that were reported on the ${i}th day.`;

describe('async jobs: submit, status, Socket.IO events, cancel, idempotency, bounds', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  const sockets: Socket[] = [];
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    redis = await startPrivateRedis();
    const config = writeModelsConfig([
      useLiteModel(),
      // Served too, but without `dimensions` in the config, so only the worker can refuse a bad one.
      useLiteModel({ id: 'use-lite-unchecked', dimensions: undefined, concurrency: 4 }),
      // Not served by any worker: its jobs stay queued, which is what cancel and bound tests need.
      useLiteModel({ id: 'parked', max_queue: 3 }),
    ]);
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: config,
      env: { WORKER_MODELS: 'use-lite,use-lite-unchecked', LOG_LEVEL: 'debug', SYNC_TIMEOUT_MS: '1500' },
      waitReady: false,
    });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  const submit = (body: unknown, headers: Record<string, string> = authHeaders()) => postJson(svc.baseUrl, '/v1/jobs', body, headers);
  const getJob = async (id: string, key = KEYS.acme) => {
    const r = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders(key) });
    return { status: r.status, json: (await r.json()) as any };
  };
  const cancelJob = async (id: string, key = KEYS.acme) => {
    const r = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders(key) });
    return { status: r.status, json: (await r.json()) as any };
  };
  const waitStatus = (id: string, statuses: string[]) =>
    waitFor(`job ${id} to reach ${statuses}`, async () => {
      const j = await getJob(id);
      return statuses.includes(j.json.status) ? j.json : undefined;
    }, 30_000);
  const socket = async (key = KEYS.acme) => {
    const s = connect(svc.baseUrl, { auth: { token: key }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', (e) => reject(e));
    });
    return s;
  };
  const subscribe = (s: Socket, id: string) => s.timeout(5000).emitWithAck('subscribe', id) as Promise<any>;

  test('/healthz is up, /readyz names the model that has no worker', async () => {
    assert.equal((await fetch(`${svc.baseUrl}/healthz`)).status, 200);
    const r = await fetch(`${svc.baseUrl}/readyz`);
    assert.equal(r.status, 503);
    const body = (await r.json()) as any;
    assert.equal(body.checks.redis, 'ok');
    assert.equal(body.checks.models['use-lite'], 1);
    assert.equal(body.checks.models.parked, 0);
  });

  test('POST /v1/jobs answers 202 at once; GET follows it to completed with result and timings', async () => {
    const r = await submit({ type: 'embedding', model: 'use-lite', input: ['first text', 'second text'] });
    assert.equal(r.status, 202);
    assert.match(r.json.id, /^embedding\.use-lite~[0-9a-f-]{36}$/);
    assert.equal(r.json.type, 'embedding');
    assert.ok(['queued', 'active', 'completed'].includes(r.json.status));
    assert.equal(typeof r.json.created_at, 'number');
    assert.equal(r.headers.get('location'), `/v1/jobs/${encodeURIComponent(r.json.id)}`);
    const done = await waitStatus(r.json.id, ['completed']);
    assert.equal(done.result.object, 'list');
    assert.equal(done.result.data.length, 2);
    assert.equal(done.result.data[1].embedding.length, 512);
    assert.ok(done.result.usage.prompt_tokens > 0);
    assert.equal(typeof done.timings.queued_ms, 'number');
    assert.equal(typeof done.timings.run_ms, 'number');
    assert.ok(done.timings.run_ms >= 0 && done.timings.queued_ms >= 0);
  });

  test('every worker log line about a job carries its job id', async () => {
    const r = await submit({ type: 'embedding', model: 'use-lite', input: ['log line test'] });
    await waitStatus(r.json.id, ['completed']);
    // The worker's last line about the job ('job done', at debug) is written around the time the job completes.
    const jobLines = () => svc.workers[0]!.output().split('\n').filter((l) => l.includes(r.json.id));
    await waitFor('the worker logged the job', async () => (jobLines().some((l) => l.includes('"msg":"job done"')) ? true : undefined), 10_000);
    const lines = jobLines();
    for (const l of lines) assert.equal(JSON.parse(l).jobId, r.json.id);
  });

  test('Socket.IO: a subscriber gets progress events and then completed', async () => {
    const s = await socket();
    const progress: any[] = [];
    s.on('progress', (e) => progress.push(e));
    const completed = new Promise<any>((resolve) => s.on('completed', resolve));
    const input = Array.from({ length: 1024 }, (_, i) => longText(i));
    const r = await submit({ type: 'embedding', model: 'use-lite', input });
    const ack = await subscribe(s, r.json.id);
    assert.equal(ack.ok, true);
    const done = await completed;
    assert.equal(done.id, r.json.id);
    assert.equal(done.status, 'completed');
    assert.equal(done.result.data.length, 1024);
    assert.ok(progress.length >= 1, 'at least one progress event');
    assert.ok(progress.every((p) => p.id === r.json.id && p.progress.texts_total === 1024));
  });

  test('Socket.IO: subscribing after the job finished still delivers how it ended', async () => {
    const r = await submit({ type: 'embedding', model: 'use-lite', input: 'late subscriber' });
    await waitStatus(r.json.id, ['completed']);
    const s = await socket();
    const completed = new Promise<any>((resolve) => s.once('completed', resolve));
    const ack = await subscribe(s, r.json.id);
    assert.deepEqual(ack, { ok: true, id: r.json.id, status: 'completed' });
    assert.equal((await completed).result.data[0].embedding.length, 512);
  });

  test('Socket.IO: a job that fails in the worker reaches subscribers as failed, with the reason', async () => {
    const s = await socket();
    const r = await submit({ type: 'embedding', model: 'use-lite-unchecked', input: 'x', dimensions: 9999 });
    assert.equal(r.status, 202);
    const failed = new Promise<any>((resolve) => s.once('failed', resolve));
    await subscribe(s, r.json.id);
    const e = await failed;
    assert.equal(e.status, 'failed');
    assert.match(e.error.message, /dimensions 9999 exceeds/);
    const j = await waitStatus(r.json.id, ['failed']);
    assert.match(j.error.message, /dimensions 9999 exceeds/);
    assert.equal(j.attempts, 1, 'a job that cannot succeed is not retried');
  });

  test('Socket.IO: bad or missing handshake keys are refused; other tenants cannot subscribe', async () => {
    await assert.rejects(socket('wrong-key-0123456789'), /invalid API key/);
    await assert.rejects(socket(''), /missing API key/);
    const r = await submit({ type: 'embedding', model: 'use-lite', input: 'acme only' });
    const other = await socket(KEYS.globex);
    const ack = await subscribe(other, r.json.id);
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, 'job_not_found');
  });

  test("another tenant's job id answers 404 to GET and DELETE", async () => {
    const r = await submit({ type: 'embedding', model: 'use-lite', input: 'private' });
    const g = await getJob(r.json.id, KEYS.globex);
    assert.equal(g.status, 404);
    assert.deepEqual(validError(g.json), []);
    assert.equal((await cancelJob(r.json.id, KEYS.globex)).status, 404);
    assert.equal((await getJob('embedding.use-lite~00000000-0000-0000-0000-000000000000')).status, 404);
    assert.equal((await getJob('garbage')).status, 404);
  });

  test('DELETE cancels a queued job; GET then says cancelled; subscribers hear it', async () => {
    const r = await submit({ type: 'embedding', model: 'parked', input: 'never runs' });
    assert.equal(r.status, 202);
    assert.equal(r.json.status, 'queued');
    const s = await socket();
    assert.equal((await subscribe(s, r.json.id)).status, 'queued');
    const heard = new Promise<any>((resolve) => s.once('failed', resolve));
    const c = await cancelJob(r.json.id);
    assert.equal(c.status, 200);
    assert.equal(c.json.status, 'cancelled');
    const g = await getJob(r.json.id);
    assert.equal(g.json.status, 'cancelled');
    const again = await cancelJob(r.json.id);
    assert.equal(again.json.status, 'cancelled');
    const e = await heard;
    assert.equal(e.id, r.json.id);
    assert.equal(e.status, 'cancelled');
  });

  test('DELETE stops a running job: it ends cancelled, not completed', async () => {
    const s = await socket();
    const input = Array.from({ length: 2048 }, (_, i) => longText(i) + longText(i + 1));
    const r = await submit({ type: 'embedding', model: 'use-lite', input });
    await subscribe(s, r.json.id);
    const failed = new Promise<any>((resolve) => s.once('failed', resolve));
    await waitStatus(r.json.id, ['active']);
    const c = await cancelJob(r.json.id);
    assert.equal(c.json.status, 'cancelled', JSON.stringify(c.json));
    const e = await failed;
    assert.equal(e.status, 'cancelled');
    // The worker is free again afterwards: the next job runs. (A synchronous request would have to
    // beat this suite's 1.5 s SYNC_TIMEOUT_MS behind the batch that was already running, which a
    // busy machine does not promise.)
    const next = await submit({ type: 'embedding', model: 'use-lite', input: 'after cancel' });
    assert.equal((await waitStatus(next.json.id, ['completed'])).result.data.length, 1);
    assert.equal((await getJob(r.json.id)).json.status, 'cancelled', 'still cancelled, never completed');
  });

  test('DELETE of a finished job is 409', async () => {
    const r = await submit({ type: 'embedding', model: 'use-lite', input: 'done soon' });
    await waitStatus(r.json.id, ['completed']);
    const c = await cancelJob(r.json.id);
    assert.equal(c.status, 409);
    assert.deepEqual(validError(c.json), []);
  });

  test('Idempotency-Key: a repeat returns the same job; the same key with another body is 409', async () => {
    const headers = { ...authHeaders(), 'idempotency-key': 'order-42' };
    const a = await submit({ type: 'embedding', model: 'use-lite', input: 'idempotent' }, headers);
    const b = await submit({ type: 'embedding', model: 'use-lite', input: 'idempotent' }, headers);
    assert.equal(a.status, 202);
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal(b.json.id, a.json.id);
    const c = await submit({ type: 'embedding', model: 'use-lite', input: 'something else' }, headers);
    assert.equal(c.status, 409);
    // Keys are per tenant: globex using the same key gets its own job.
    const d = await submit({ type: 'embedding', model: 'use-lite', input: 'idempotent' }, { ...authHeaders(KEYS.globex), 'idempotency-key': 'order-42' });
    assert.equal(d.status, 202);
    assert.notEqual(d.json.id, a.json.id);
  });

  test('a full queue refuses new work with 429 and Retry-After, and accepts again once drained', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await submit({ type: 'embedding', model: 'parked', input: `fill ${i}` });
      assert.equal(r.status, 202);
      ids.push(r.json.id);
      await new Promise((res) => setTimeout(res, 60));
    }
    const full = await submit({ type: 'embedding', model: 'parked', input: 'one too many' });
    assert.equal(full.status, 429);
    assert.ok(Number(full.headers.get('retry-after')) >= 1);
    assert.deepEqual(validError(full.json), []);
    assert.match(full.json.error.message, /queue .* is full/);
    for (const id of ids) assert.equal((await cancelJob(id)).json.status, 'cancelled');
    await new Promise((res) => setTimeout(res, 60));
    const again = await submit({ type: 'embedding', model: 'parked', input: 'room again' });
    assert.equal(again.status, 202);
    await cancelJob(again.json.id);
  });

  test('a synchronous request whose job does not finish in time is 504, and its job is withdrawn', async () => {
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'parked', input: 'waits forever' });
    assert.equal(r.status, 504);
    assert.deepEqual(validError(r.json), []);
    // Withdrawn (the API does so just after answering): the parked queue has room for three fresh jobs again.
    const parked = new Queue('embedding.parked', { connection: { host: '127.0.0.1', port: redis.port }, prefix: svc.prefix });
    try {
      await waitFor('the timed-out job withdrawn', async () => {
        const c = await parked.getJobCounts('wait', 'prioritized', 'delayed');
        return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) === 0 ? true : undefined;
      }, 10_000);
    } finally {
      await parked.close();
    }
    await new Promise((res) => setTimeout(res, 60)); // past the API's 50 ms cache of the queue's depth
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const j = await submit({ type: 'embedding', model: 'parked', input: `after 504 ${i}` });
      assert.equal(j.status, 202, JSON.stringify(j.json));
      ids.push(j.json.id);
      await new Promise((res) => setTimeout(res, 60));
    }
    for (const id of ids) await cancelJob(id);
  });

  test("a job's start deadline is its type's default time in the queue, or the request's timeout", async () => {
    const maxQueuedMs = jobCatalog.embedding.deadlines.maxQueuedSeconds * 1000;
    const parked = new Queue('embedding.parked', { connection: { host: '127.0.0.1', port: redis.port }, prefix: svc.prefix });
    try {
      const deadlineOf = async (body: Record<string, unknown>) => {
        const before = Date.now();
        const r = await submit({ type: 'embedding', model: 'parked', ...body });
        const after = Date.now();
        assert.equal(r.status, 202, r.text);
        const data = (await parked.getJob(r.json.id))!.data as JobEnvelope;
        await cancelJob(r.json.id);
        await new Promise((res) => setTimeout(res, 60)); // past the API's 50 ms cache of the queue's depth
        return { deadline: data.deadline!, before, after };
      };
      const byType = await deadlineOf({ input: 'no timeout' });
      assert.ok(byType.deadline >= byType.before + maxQueuedMs && byType.deadline <= byType.after + maxQueuedMs, 'the catalog default applies');
      const byRequest = await deadlineOf({ input: 'with a timeout', timeout: 30 });
      assert.ok(byRequest.deadline >= byRequest.before + 30_000 && byRequest.deadline <= byRequest.after + 30_000, "the request's timeout replaces it");
    } finally {
      await parked.close();
    }
  });

  test('bad job requests: unknown type, unknown model, bad input → 4xx, nothing enqueued', async () => {
    const t = await submit({ type: 'painting', model: 'use-lite', input: 'x' });
    assert.equal(t.status, 400);
    assert.deepEqual(validError(t.json), []);
    assert.equal((await submit({ type: 'embedding', model: 'nope', input: 'x' })).status, 404);
    assert.equal((await submit({ type: 'embedding', model: 'use-lite', input: [] })).status, 400);
    assert.equal((await submit({ type: 'embedding', model: 'use-lite', input: 'x', extra: true })).status, 400);
  });

  test('Bull Board is behind the admin key', async () => {
    const none = await fetch(`${svc.baseUrl}/admin/queues`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /Basic/);
    const tenant = await fetch(`${svc.baseUrl}/admin/queues`, { headers: authHeaders(KEYS.acme) });
    assert.equal(tenant.status, 403);
    const basic = `Basic ${Buffer.from(`admin:${KEYS.admin}`).toString('base64')}`;
    const page = await fetch(`${svc.baseUrl}/admin/queues`, { headers: { authorization: basic } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const api = await fetch(`${svc.baseUrl}/admin/queues/api/queues`, { headers: { authorization: basic } });
    assert.equal(api.status, 200);
    const names = ((await api.json()) as any).queues.map((q: any) => q.name);
    assert.ok(names.includes('embedding.use-lite') && names.includes('embedding.parked'), names.join(','));
  });
});
