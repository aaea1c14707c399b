import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { Socket } from 'socket.io-client';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { jobCatalog } from '../../shared/jobs/job-catalog.js';
import { queueNameFor } from '../../shared/models/model-registry.js';
import { parseEntry, tokenStreamKey } from '../../shared/streams/token-stream.js';
import { sleep, socketClient } from '../helpers/ops.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Failure drill: 200 jobs (embeddings and chat) while one of two workers is SIGKILLed four times
 * and restarted each time. Every job must end completed or failed with a reason (embedding jobs
 * are retried and survive as many worker deaths as they have attempts; a chat job whose worker died
 * runs again only if it had streamed nothing, and otherwise fails as `worker_lost`, by design: its
 * subscribers already have part of its text), none may stay queued or active, no live worker may
 * lose a job, no Socket.IO client may get a job's outcome twice, and no chat job's token stream may
 * hold a token twice.
 *
 * Four kills can hit the same embedding job four times: BullMQ puts a stalled job back at the
 * head of the queue, and the replacement worker, started with every slot free, takes it first,
 * just before it becomes the next victim. Such a job has died more often than its attempts allow
 * and fails, as documented (a job that keeps killing its workers must not take them all down).
 * So the test asks of each embedding job what the product promises for the number of deaths
 * BullMQ counted for it, rather than assuming no job is ever hit more than three times.
 */
const BURSTS = 4;
const EMBED_PER_BURST = 35;
const CHAT_PER_BURST = 15;
const SOCKETS = 4;
const text = (i: number, j: number) => `Job ${i}, text ${j}: the committee reviews the quarterly figures and drafts a plan for the next year ${'and more '.repeat(j % 7)}.`;

describe('drill: workers killed with SIGKILL during a run of 200 jobs', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  const sockets: Socket[] = [];
  const events: QueueEvents[] = [];
  let queues: Queue[] = [];

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-drill-chat-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        useLiteModel({ concurrency: 16 }),
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 128, default_max_tokens: 16 },
      ]),
      workers: 2,
      // A dead worker's jobs are found stalled about 3 s after it died.
      env: { WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000', LOG_LEVEL: 'warn' },
    });
    const connection = { host: '127.0.0.1', port: redis.port };
    queues = [queueNameFor('embedding', 'use-lite'), queueNameFor('chat', 'tiny-chat')].map((q) => new Queue(q, { connection, prefix: svc.prefix }));
    for (let i = 0; i < SOCKETS; i++) sockets.push(await socketClient(svc.baseUrl));
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await Promise.all([...events, ...queues].map((e) => e.close()));
    await svc?.stop();
    await redis?.cleanup();
  });

  test('every job ends completed or failed with a reason; none is lost or delivered twice', { timeout: 120_000 }, async () => {
    const started = Date.now();
    // Stalled jobs, as BullMQ reports them: proof that the kills hit jobs in flight.
    const stalled = new Set<string>();
    for (const q of queues) {
      const e = new QueueEvents(q.name, { connection: { host: '127.0.0.1', port: redis.port }, prefix: svc.prefix });
      e.on('stalled', ({ jobId }) => stalled.add(jobId));
      await e.waitUntilReady();
      events.push(e);
    }
    // Outcome events per job id, over every socket.
    const outcomes = new Map<string, { event: string; message?: string }[]>();
    for (const s of sockets) {
      for (const event of ['completed', 'failed'] as const) {
        s.on(event, (data: any) => {
          const list = outcomes.get(data.id) ?? [];
          list.push({ event, message: data.error?.message });
          outcomes.set(data.id, list);
        });
      }
    }

    const jobs: { id: string; type: 'embedding' | 'chat' }[] = [];
    let submitErrors = 0;
    const submitOne = async (i: number, type: 'embedding' | 'chat') => {
      const body =
        type === 'embedding'
          ? { type, model: 'use-lite', input: Array.from({ length: 16 + (i % 33) }, (_, j) => text(i, j)) }
          : { type, model: 'tiny-chat', messages: [{ role: 'user', content: `Question ${i}?` }], max_tokens: 24 + (i % 41), seed: i };
      const r = await postJson(svc.baseUrl, '/v1/jobs', body);
      if (r.status !== 202) {
        submitErrors++;
        return;
      }
      jobs.push({ id: r.json.id, type });
      const ack = await sockets[i % SOCKETS]!.timeout(5000).emitWithAck('subscribe', r.json.id);
      assert.equal(ack.ok, true);
    };

    let kills = 0;
    let n = 0;
    for (let burst = 0; burst < BURSTS; burst++) {
      const submissions: Promise<void>[] = [];
      for (let k = 0; k < EMBED_PER_BURST + CHAT_PER_BURST; k++) {
        const type = k % 10 < 7 ? 'embedding' : 'chat';
        submissions.push(submitOne(n++, type));
        if (k % 10 === 9) await sleep(20);
      }
      await Promise.all(submissions);
      // The burst is in flight on both workers: kill one, start its replacement.
      const victim = svc.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).at(-1)!;
      victim.child.kill('SIGKILL');
      kills++;
      await svc.startWorker();
    }
    assert.equal(submitErrors, 0);
    assert.equal(jobs.length, BURSTS * (EMBED_PER_BURST + CHAT_PER_BURST));

    // Every job reaches an end.
    const views = new Map<string, any>();
    await waitFor(
      'every job finished',
      async () => {
        for (const j of jobs) {
          if (views.has(j.id)) continue;
          const v = (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(j.id)}`, { headers: authHeaders() })).json()) as any;
          if (v.status === 'completed' || v.status === 'failed') views.set(j.id, v);
        }
        return views.size === jobs.length ? true : undefined;
      },
      60_000,
      () => `${jobs.length - views.size} jobs not finished: ${jobs.filter((j) => !views.has(j.id)).slice(0, 5).map((j) => j.id)}`,
    );
    // Outcome events travel a little behind the state.
    await waitFor('every outcome delivered', async () => (jobs.every((j) => outcomes.has(j.id)) ? true : undefined), 10_000).catch(() => {});
    await sleep(500);

    const counts = await Promise.all(queues.map((q) => q.getJobCounts('active', 'wait', 'delayed', 'prioritized', 'waiting-children')));
    // How many times BullMQ found each job stalled (its own counter, kept in the job), i.e. how many worker deaths it went through.
    const deaths = new Map<string, number>();
    for (const j of jobs) deaths.set(j.id, (await Job.fromId(queues[j.type === 'embedding' ? 0 : 1]!, j.id))?.stalledCounter ?? 0);
    const deathsByJob: Record<string, number> = {};
    for (const j of jobs) {
      const key = `${j.type} ${deaths.get(j.id)}x`;
      deathsByJob[key] = (deathsByJob[key] ?? 0) + 1;
    }
    // A live worker that lost a job's lock (its event loop or Redis too slow to renew it) says so; a killed one cannot.
    const lockLosses = svc.workers.flatMap((w) => w.output().split('\n').filter((l) => /could not renew lock|Missing lock/.test(l)));
    const byType = (type: string, status: string) => jobs.filter((j) => j.type === type && views.get(j.id).status === status).length;
    const failed = jobs.filter((j) => views.get(j.id).status === 'failed');
    const duplicated = jobs.filter((j) => (outcomes.get(j.id)?.length ?? 0) > 1);
    const undelivered = jobs.filter((j) => !outcomes.has(j.id));
    const mismatched = jobs.filter((j) => {
      const o = outcomes.get(j.id)?.[0];
      return o && o.event !== views.get(j.id).status;
    });
    const figures = {
      jobs_submitted: jobs.length,
      embedding: { submitted: jobs.filter((j) => j.type === 'embedding').length, completed: byType('embedding', 'completed'), failed: byType('embedding', 'failed') },
      chat: { submitted: jobs.filter((j) => j.type === 'chat').length, completed: byType('chat', 'completed'), failed: byType('chat', 'failed') },
      failed_reasons: [...new Set(failed.map((j) => views.get(j.id).error?.message))],
      lost: jobs.length - views.size,
      duplicated_deliveries: duplicated.length,
      undelivered_outcomes: undelivered.length,
      mismatched_outcomes: mismatched.length,
      kills_survived: kills,
      stalled_jobs_recovered_or_failed: stalled.size,
      jobs_by_deaths: deathsByJob,
      lock_losses_of_live_workers: lockLosses.length,
      queue_counts_after: counts,
      seconds: Math.round((Date.now() - started) / 1000),
    };
    console.log(`DRILL worker-kill ${JSON.stringify(figures)}`);

    assert.ok(stalled.size > 0, 'the kills hit jobs in flight');
    // Every stall was a kill: no healthy worker lost a job, and no job stalled more often than workers died.
    assert.deepEqual(lockLosses, [], 'no live worker lost the lock of a job it was running');
    for (const j of jobs) assert.ok(deaths.get(j.id)! <= kills, `job ${j.id} stalled ${deaths.get(j.id)} times in ${kills} kills`);
    // Embedding jobs survive as many worker deaths as they have attempts (maxStalledCount), and fail with the reason after one more.
    const survivable = (jobCatalog.embedding.defaults as { attempts: number }).attempts;
    for (const j of jobs.filter((x) => x.type === 'embedding')) {
      const view = views.get(j.id);
      if (deaths.get(j.id)! <= survivable) assert.equal(view.status, 'completed', `embedding job ${j.id} survived ${deaths.get(j.id)} worker deaths: ${JSON.stringify(view.error)}`);
      else assert.match(view.error?.message ?? '', /stalled more than allowable limit/, `embedding job ${j.id} died ${deaths.get(j.id)} times`);
    }
    for (const j of failed.filter((x) => x.type === 'chat')) {
      assert.equal(views.get(j.id).error?.code, 'worker_lost', `failed chat job ${j.id} lost its worker`);
    }
    // Chat jobs that ran twice (their worker died before their first token) wrote their stream once.
    const inspect = new Redis(redis.url);
    try {
      for (const j of jobs.filter((x) => x.type === 'chat')) {
        const entries = (await inspect.xrange(tokenStreamKey(svc.prefix, j.id), '-', '+')).map(([, f]) => parseEntry(f[1]!)!);
        const indices = entries.flatMap((e) => (e.kind === 'token' ? [e.i] : []));
        assert.deepEqual(indices, indices.map((_, i) => i), `job ${j.id}: each token index once, in order`);
        assert.deepEqual(entries.filter((e) => e.kind === 'end').length, 1, `job ${j.id}: one end entry`);
        assert.equal(entries.at(-1)?.kind, 'end', `job ${j.id}: nothing after the end`);
        if (views.get(j.id).status === 'completed') assert.equal(entries.flatMap((e) => (e.kind === 'token' ? [e.text] : [])).join(''), views.get(j.id).result.message.content);
      }
    } finally {
      inspect.disconnect();
    }
    for (const j of failed) assert.ok(views.get(j.id).error?.message, `failed job ${j.id} has a reason`);
    for (const c of counts) for (const [state, n] of Object.entries(c)) assert.equal(n, 0, `${state} jobs left`);
    assert.deepEqual(duplicated.map((j) => [j.id, outcomes.get(j.id)]), [], 'no outcome delivered twice');
    assert.deepEqual(undelivered.map((j) => j.id), [], 'every outcome delivered');
    assert.deepEqual(mismatched.map((j) => [j.id, outcomes.get(j.id), views.get(j.id).status]), [], 'outcome events agree with the final state');
  });
});
