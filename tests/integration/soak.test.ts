import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue, QueueEvents } from 'bullmq';
import type { Socket } from 'socket.io-client';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { queueNameFor } from '../../shared/models/model-registry.js';
import { readSse, rssKb, sleep, socketClient } from '../helpers/ops.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, postJson, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Soak: a steady mixed load at a modest rate (synchronous embeddings, async embedding jobs
 * followed over Socket.IO, chat completions whole and streamed) for SOAK_SECONDS (60 by default),
 * loopback only. No answer may be a 5xx, no job may stall, every async job must complete, and the
 * resident memory of the API and the worker must stay under a generous bound. The figures are
 * printed (docs/RELIABILITY.md records them).
 */
const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const WARMUP_SECONDS = 8;
/** Requests per second by kind. */
const RATES = { embeddings: 8, jobs: 2, chat: 1, chatStream: 1 } as const;
/** Growth of resident memory allowed over the soak, per process. */
const MAX_GROWTH_MB = 120;

const sentence = (i: number) => `Request ${i}: the quick brown fox jumps over the lazy dog ${'again '.repeat(i % 9)}and the committee takes note.`;

describe('soak: steady mixed load', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let socket: Socket;
  const closers: { close(): Promise<unknown> }[] = [];

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-soak-chat-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        useLiteModel({ concurrency: 32 }),
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 64, default_max_tokens: 16 },
      ]),
      // Short locks, so a job that stalled would be noticed within the soak.
      env: { WORKER_LOCK_DURATION_MS: '5000', WORKER_STALLED_INTERVAL_MS: '2000', LOG_LEVEL: 'warn', JOB_RETENTION_SECONDS: '120' },
    });
    socket = await socketClient(svc.baseUrl);
  });

  after(async () => {
    socket?.disconnect();
    await Promise.all(closers.map((c) => c.close()));
    await svc?.stop();
    await redis?.cleanup();
  });

  test(`${SOAK_SECONDS} s of mixed load: no 5xx, no stalled job, bounded memory`, { timeout: (SOAK_SECONDS + WARMUP_SECONDS + 60) * 1000 }, async () => {
    const connection = { host: '127.0.0.1', port: redis.port };
    let stalled = 0;
    for (const name of [queueNameFor('embedding', 'use-lite'), queueNameFor('chat', 'tiny-chat')]) {
      const e = new QueueEvents(name, { connection, prefix: svc.prefix });
      e.on('stalled', () => stalled++);
      await e.waitUntilReady();
      closers.push(e);
    }
    const outcomes = new Map<string, string>();
    socket.on('completed', (d: any) => outcomes.set(d.id, 'completed'));
    socket.on('failed', (d: any) => outcomes.set(d.id, 'failed'));

    const statuses = new Map<string, Map<number, number>>();
    const latencies: Record<string, number[]> = {};
    const jobIds: string[] = [];
    const record = (kind: string, status: number, ms: number) => {
      const m = statuses.get(kind) ?? new Map<number, number>();
      m.set(status, (m.get(status) ?? 0) + 1);
      statuses.set(kind, m);
      (latencies[kind] ??= []).push(ms);
    };
    let inFlight = 0;
    let n = 0;
    const send = async (kind: keyof typeof RATES) => {
      const i = n++;
      const t = performance.now();
      inFlight++;
      try {
        if (kind === 'embeddings') {
          const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: Array.from({ length: 1 + (i % 8) }, (_, j) => sentence(i + j)) });
          record(kind, r.status, performance.now() - t);
        } else if (kind === 'jobs') {
          const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: Array.from({ length: 16 }, (_, j) => sentence(i + j)) });
          record(kind, r.status, performance.now() - t);
          if (r.status === 202) {
            jobIds.push(r.json.id);
            await socket.timeout(5000).emitWithAck('subscribe', r.json.id);
          }
        } else if (kind === 'chat') {
          const r = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages: [{ role: 'user', content: sentence(i) }], max_tokens: 16 });
          record(kind, r.status, performance.now() - t);
        } else {
          const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, {
            method: 'POST',
            headers: authHeaders(),
            body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: sentence(i) }], max_tokens: 24, stream: true }),
          });
          const body = res.status === 200 ? await readSse(res) : undefined;
          if (res.status !== 200) await res.text();
          record(kind, body && !body.done ? 599 : res.status, performance.now() - t);
        }
      } catch {
        record(kind, 0, performance.now() - t);
      } finally {
        inFlight--;
      }
    };

    // Paced load: each kind at its own rate, spread over the second.
    const pending = new Set<Promise<void>>();
    let skipped = 0;
    const run = async (seconds: number) => {
      const start = Date.now();
      const due: Record<string, number> = Object.fromEntries(Object.keys(RATES).map((k) => [k, start]));
      while (Date.now() - start < seconds * 1000) {
        const now = Date.now();
        for (const [kind, rate] of Object.entries(RATES) as [keyof typeof RATES, number][]) {
          while (due[kind]! <= now) {
            due[kind]! += 1000 / rate;
            // A modest rate, not a flood: never more than 32 requests open at once.
            if (inFlight >= 32) {
              skipped++;
              continue;
            }
            const p = send(kind);
            pending.add(p);
            void p.finally(() => pending.delete(p));
          }
        }
        await sleep(10);
      }
      await Promise.all(pending);
    };

    const workerPid = svc.workers[0]!.child.pid!;
    const apiPid = svc.api.child.pid!;
    await run(WARMUP_SECONDS);
    const start = { api: rssKb(apiPid), worker: rssKb(workerPid) };
    const max = { ...start };
    const sampler = setInterval(() => {
      max.api = Math.max(max.api, rssKb(apiPid));
      max.worker = Math.max(max.worker, rssKb(workerPid));
    }, 1000);
    const requestsBefore = n;
    await run(SOAK_SECONDS);
    clearInterval(sampler);
    const end = { api: rssKb(apiPid), worker: rssKb(workerPid) };

    // Every async job completes and its subscriber hears so.
    const deadline = Date.now() + 20_000;
    while (jobIds.some((id) => !outcomes.has(id)) && Date.now() < deadline) await sleep(100);
    const counts = await Promise.all(
      [queueNameFor('embedding', 'use-lite'), queueNameFor('chat', 'tiny-chat')].map(async (name) => {
        const q = new Queue(name, { connection, prefix: svc.prefix });
        const c = await q.getJobCounts('active', 'wait', 'prioritized', 'delayed', 'failed');
        await q.close();
        return c;
      }),
    );

    const pct = (xs: number[], p: number) => {
      const s = [...xs].sort((a, b) => a - b);
      return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0);
    };
    const mb = (kb: number) => Math.round(kb / 102.4) / 10;
    const fiveXx = [...statuses.values()].reduce((sum, m) => sum + [...m].filter(([s]) => s >= 500 || s === 0).reduce((a, [, c]) => a + c, 0), 0);
    const figures = {
      seconds: SOAK_SECONDS,
      requests: n - requestsBefore,
      requests_including_warmup: n,
      skipped_at_32_in_flight: skipped,
      statuses: Object.fromEntries([...statuses].map(([k, m]) => [k, Object.fromEntries(m)])),
      latency_ms: Object.fromEntries(Object.entries(latencies).map(([k, xs]) => [k, { p50: pct(xs, 50), p99: pct(xs, 99) }])),
      async_jobs: jobIds.length,
      async_jobs_completed: [...outcomes.values()].filter((o) => o === 'completed').length,
      stalled_jobs: stalled,
      five_xx: fiveXx,
      queue_counts_after: counts,
      rss_mb: {
        api: { start: mb(start.api), end: mb(end.api), max: mb(max.api), growth: mb(end.api - start.api) },
        worker: { start: mb(start.worker), end: mb(end.worker), max: mb(max.worker), growth: mb(end.worker - start.worker) },
      },
    };
    console.log(`SOAK ${JSON.stringify(figures)}`);

    assert.equal(fiveXx, 0, 'no 5xx (nor a failed connection)');
    for (const [kind, m] of statuses) for (const status of m.keys()) assert.ok(status === 200 || status === 202, `${kind}: status ${status}`);
    assert.equal(stalled, 0, 'no job stalled');
    assert.equal(figures.async_jobs_completed, jobIds.length, 'every async job completed');
    for (const c of counts) for (const [state, k] of Object.entries(c)) assert.equal(k, 0, `${state} jobs left`);
    for (const p of ['api', 'worker'] as const) {
      assert.ok(figures.rss_mb[p].growth < MAX_GROWTH_MB, `${p} resident memory grew ${figures.rss_mb[p].growth} MB (bound ${MAX_GROWTH_MB} MB)`);
    }
  });
});
