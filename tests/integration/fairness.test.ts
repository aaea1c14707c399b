import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { io as connect } from 'socket.io-client';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const text = (tenant: string, i: number, j: number) =>
  `${tenant} document ${i}.${j}: the committee reviewed the quarterly figures and drafted a plan for next year, noting supplier costs.`;

describe('fairness: one tenant flooding the queue cannot starve another', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let queue: Queue;
  let conn: Redis;

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel()]), env: { TENANT_MAX_JOBS: '2000', FAIRNESS_STEP: '50' } });
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue('embedding.use-lite', { connection: conn, prefix: svc.prefix });
  });
  after(async () => {
    await queue?.close();
    conn?.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  const submit = (key: string, input: string[]) => postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input }, authHeaders(key));
  const waiting = async () => {
    const c = await queue.getJobCounts('wait', 'prioritized');
    return (c.wait ?? 0) + (c.prioritized ?? 0);
  };

  test("tenant A submits 1,000 jobs, then tenant B 10: B's finish within a bounded wait, long before A's backlog", async () => {
    // A: 1,000 jobs of 8 texts each (16 clients submitting in parallel).
    const started = performance.now();
    let next = 0;
    const aIds: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 1000) {
          const i = next++;
          const r = await submit(KEYS.acme, Array.from({ length: 8 }, (_, j) => text('A', i, j)));
          assert.equal(r.status, 202, r.text);
          aIds.push(r.json.id);
        }
      }),
    );
    const submitSeconds = (performance.now() - started) / 1000;
    const backlogAtB = await waiting();

    // B: 10 jobs, submitted now, each timed until completed.
    const bStart = performance.now();
    const bJobs = await Promise.all(Array.from({ length: 10 }, (_, i) => submit(KEYS.globex, [text('B', i, 0)])));
    for (const r of bJobs) assert.equal(r.status, 202, r.text);
    const bDone: number[] = [];
    let backlogWhenBDone = 0;
    await Promise.all(
      bJobs.map(async (r) => {
        const done = await waitFor(
          `B job ${r.json.id}`,
          async () => {
            const j = await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(r.json.id)}`, { headers: authHeaders(KEYS.globex) })).json() as any;
            return j.status === 'completed' && j.result ? j : undefined; // (a read racing completion can see the state before the result)
          },
          30_000,
        );
        bDone.push((performance.now() - bStart) / 1000);
        assert.equal(done.result.data.length, 1);
      }),
    );
    backlogWhenBDone = await waiting();
    const bWorst = Math.max(...bDone);
    console.log(
      `# A: 1000 jobs x 8 texts submitted in ${submitSeconds.toFixed(1)} s; A's backlog when B submitted: ${backlogAtB} jobs waiting, ` +
        `when B's last job finished: ${backlogWhenBDone}; B's 10 jobs finished within ${bWorst.toFixed(2)} s`,
    );
    assert.ok(backlogAtB >= 300, `A had a real backlog (${backlogAtB} waiting)`);
    // Bounded wait, counted in A's jobs rather than seconds (a busy machine makes every job slower,
    // not B's place in line): B's jobs jump A's backlog, where FIFO would have put them behind all of it.
    assert.ok(backlogWhenBDone >= backlogAtB / 3, `most of A's backlog was still waiting when B was done (${backlogWhenBDone} of ${backlogAtB})`);

    // A's jobs all complete too (nothing starved the other way), and its in-flight count returns to 0.
    const drainStart = performance.now();
    await waitFor('A backlog drained', async () => {
      const c = await queue.getJobCounts('wait', 'prioritized', 'active');
      return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.active ?? 0) === 0 ? true : undefined;
    }, 120_000);
    console.log(`# A's remaining backlog took another ${((performance.now() - drainStart) / 1000).toFixed(1)} s to drain: under FIFO, B would have waited about that long`);
    await waitFor('tenant in-flight sets emptied', async () => ((await conn.zcard(`${svc.prefix}:tenant-jobs:acme`)) === 0 && (await conn.zcard(`${svc.prefix}:tenant-jobs:globex`)) === 0 ? true : undefined), 10_000);
    const sample = await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(aIds[aIds.length - 1]!)}`, { headers: authHeaders(KEYS.acme) })).json() as any;
    assert.equal(sample.status, 'completed');
  });
});

describe('bounded per-tenant queues and job deadlines', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      // use-lite takes one job at a time (so jobs queue behind a big one); nobody serves `parked`.
      modelsConfig: writeModelsConfig([useLiteModel({ concurrency: 1 }), useLiteModel({ id: 'parked' })]),
      env: { TENANT_MAX_JOBS: '5', WORKER_MODELS: 'use-lite' },
      waitReady: false,
    });
  });
  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const submit = (body: Record<string, unknown>, key = KEYS.acme) => postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'parked', input: ['x'], ...body }, authHeaders(key));

  test('past TENANT_MAX_JOBS queued+running jobs a tenant gets 429 with a wait estimate; others are unaffected; a cancel frees a place', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await submit({ input: [`capped ${i}`] });
      assert.equal(r.status, 202, r.text);
      ids.push(r.json.id);
    }
    const refused = await submit({ input: ['one too many'] });
    assert.equal(refused.status, 429);
    assert.equal(refused.json.error.code, 'tenant_queue_full');
    assert.match(refused.json.error.message, /5 jobs queued or running.*about \d+ s until there is room/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const sync = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'sync too' });
    assert.equal(sync.status, 429, 'synchronous requests count against the same cap');
    assert.equal((await submit({}, KEYS.globex)).status, 202, 'another tenant still gets in');
    const del = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(ids[0]!)}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(del.status, 200);
    assert.equal((await submit({ input: ['after a cancel'] })).status, 202);
    // Leave room for the next test.
    for (const id of ids.slice(1)) await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders() });
  });

  test('a job still queued at its deadline (timeout) is dropped as expired, not run late', async () => {
    // A big job occupies the only slot for a while...
    const big = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: Array.from({ length: 1500 }, (_, i) => text('big', i, 0)) }, authHeaders(KEYS.globex));
    assert.equal(big.status, 202, big.text);
    // ...so this one, with half a second to start, expires in the queue.
    const s = connect(svc.baseUrl, { auth: { token: KEYS.globex }, transports: ['websocket'], reconnection: false });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      const late = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['too late'], timeout: 0.5 }, authHeaders(KEYS.globex));
      assert.equal(late.status, 202, late.text);
      const failed = new Promise<any>((resolve) => s.on('failed', (e) => e.id === late.json.id && resolve(e)));
      assert.equal((await s.timeout(5000).emitWithAck('subscribe', late.json.id)).ok, true);
      const onTime = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['in time'], timeout: 600 }, authHeaders(KEYS.globex));
      const e = await failed;
      assert.equal(e.status, 'failed');
      assert.equal(e.error.code, 'expired');
      const view = await waitFor('expired job view', async () => {
        const j = await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(late.json.id)}`, { headers: authHeaders(KEYS.globex) })).json() as any;
        return j.status === 'failed' ? j : undefined;
      });
      assert.equal(view.error.code, 'expired');
      assert.match(view.error.message, /^expired: still queued/);
      assert.equal(view.result, undefined, 'it never ran');
      assert.equal(view.attempts, 1);
      const ok = await waitFor('job with a generous deadline', async () => {
        const j = await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(onTime.json.id)}`, { headers: authHeaders(KEYS.globex) })).json() as any;
        return j.status === 'completed' && j.result ? j : undefined; // (a read racing completion can see the state before the result)
      }, 60_000);
      assert.equal(ok.result.data.length, 1);
      assert.ok(svc.workers[0]!.output().includes('job expired before it ran'));
    } finally {
      s.disconnect();
    }
    const bad = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['x'], timeout: -1 }, authHeaders(KEYS.globex));
    assert.equal(bad.status, 400);
  });
});
