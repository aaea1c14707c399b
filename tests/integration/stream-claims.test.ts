import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { StreamWatchdog } from '../../api/jobs/stream-watchdog.js';
import { workersKey } from '../../shared/jobs/job-views.js';
import { createLogger } from '../../shared/logger.js';
import {
  appendEnd,
  appendTokens,
  claimStream,
  parseEntry,
  refreshHeartbeats,
  releaseStream,
  streamAliveKey,
  streamOwnerKey,
  tokenStreamKey,
} from '../../shared/streams/token-stream.js';
import { TokenWriter } from '../../workers/jobs/token-writer.js';
import { WorkerLostError } from '../../workers/jobs/worker-lost.error.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/service.js';

/**
 * Claims on token streams and the API's dead-worker watchdog, against a real Redis: a stream is
 * written by one run at a time, a job that streamed text is never run twice, and the watchdog
 * ends a dead worker's stream with `worker_lost` or waits for its retry, as the case may be.
 */
describe('token stream claims and the dead-worker watchdog', () => {
  let server: Awaited<ReturnType<typeof startPrivateRedis>>;
  let redis: Redis;
  let n = 0;
  const prefix = 'tclaims';
  const job = (queue = 'chat.tiny') => `${queue}~job-${++n}`;
  const opts = { ttlSeconds: 60, heartbeatTtlMs: 60_000 };
  const entries = async (jobId: string) => (await redis.xrange(tokenStreamKey(prefix, jobId), '-', '+')).map(([, f]) => parseEntry(f[1]!)!);

  before(async () => {
    server = await startPrivateRedis();
    redis = new Redis(server.url);
  });
  after(async () => {
    redis?.disconnect();
    await server?.cleanup();
  });

  test('one run writes at a time: a stream with text cannot be claimed again, and the old claim stops writing', async () => {
    const id = job();
    assert.deepEqual(await claimStream(redis, prefix, id, 'w1/a', opts), { claimed: true });
    assert.equal(await redis.get(streamAliveKey(prefix, id)), 'w1/a', 'the claim starts the heartbeat');
    assert.equal(await appendTokens(redis, prefix, id, 'w2/b', [{ i: 0, text: 'x' }], 60), false, 'another run cannot write');
    assert.equal(await appendTokens(redis, prefix, id, 'w1/a', [{ i: 0, text: 'Hel' }, { i: 1, text: 'lo' }], 60), true);
    // A second run of the job (its worker was thought dead) finds text: no claim, and the first run is fenced off.
    assert.deepEqual(await claimStream(redis, prefix, id, 'w2/b', opts), { claimed: false, tokens: 2, end: undefined });
    assert.equal(await appendTokens(redis, prefix, id, 'w1/a', [{ i: 2, text: '!' }], 60), false);
    assert.deepEqual((await entries(id)).map((e) => (e.kind === 'token' ? e.text : e.kind)), ['Hel', 'lo']);
  });

  test('a TokenWriter whose claim is gone writes nothing more and fails with worker_lost', async () => {
    const id = job();
    await claimStream(redis, prefix, id, 'w1/a', opts);
    const w = new TokenWriter(redis, prefix, id, 60, 'w1/a');
    w.push('one');
    await w.flush();
    await appendEnd(redis, prefix, id, { status: 'failed', error: { message: 'worker lost: test', code: 'worker_lost' } }, 60);
    w.push('two');
    await assert.rejects(w.flush(), (err: unknown) => err instanceof WorkerLostError && err.code === 'worker_lost');
    assert.deepEqual((await entries(id)).map((e) => e.kind), ['token', 'end']);
  });

  test('the end entry is written once, revokes the claim, and a later run gets it back instead of running', async () => {
    const id = job();
    await claimStream(redis, prefix, id, 'w1/a', opts);
    await appendTokens(redis, prefix, id, 'w1/a', [{ i: 0, text: 'done' }], 60);
    assert.equal(await appendEnd(redis, prefix, id, { status: 'completed', result: { text: 'done' } }, 60), true);
    assert.equal(await appendEnd(redis, prefix, id, { status: 'failed', error: { message: 'late', code: 'job_failed' } }, 60), false);
    assert.equal(await redis.exists(streamOwnerKey(prefix, id), streamAliveKey(prefix, id)), 0);
    assert.deepEqual(await claimStream(redis, prefix, id, 'w2/b', opts), { claimed: false, tokens: 1, end: { status: 'completed', result: { text: 'done' } } });
  });

  test('ending an abandoned stream is conditional on its heartbeat having lapsed', async () => {
    const id = job();
    const lost = { status: 'failed' as const, error: { message: 'worker lost: test', code: 'worker_lost' } };
    assert.equal(await appendEnd(redis, prefix, id, lost, 60, { onlyIfAbandoned: true }), false, 'not claimed: a queued job is not abandoned');
    await claimStream(redis, prefix, id, 'w1/a', { ttlSeconds: 60, heartbeatTtlMs: 300 });
    assert.equal(await appendEnd(redis, prefix, id, lost, 60, { onlyIfAbandoned: true }), false, 'heartbeat alive');
    await waitFor('heartbeat lapsed', async () => ((await redis.exists(streamAliveKey(prefix, id))) === 0 ? true : undefined), 10_000);
    assert.equal(await appendEnd(redis, prefix, id, lost, 60, { onlyIfAbandoned: true }), true);
    assert.deepEqual(await entries(id), [{ kind: 'end', ...lost }]);
  });

  test('a claim is given back only by its owner and only while the stream is empty', async () => {
    const id = job();
    await claimStream(redis, prefix, id, 'w1/a', opts);
    assert.equal(await releaseStream(redis, prefix, id, 'w2/b'), false);
    assert.equal(await releaseStream(redis, prefix, id, 'w1/a'), true);
    assert.deepEqual(await claimStream(redis, prefix, id, 'w2/b', opts), { claimed: true }, 'another run may start it from scratch');
    await appendTokens(redis, prefix, id, 'w2/b', [{ i: 0, text: 'x' }], 60);
    assert.equal(await releaseStream(redis, prefix, id, 'w2/b'), false, 'text streamed: the job cannot go back');
  });

  test('heartbeats refresh only claims still held, and name the runs that lost theirs', async () => {
    const [a, b] = [job(), job()];
    await claimStream(redis, prefix, a, 'w1/a', { ttlSeconds: 60, heartbeatTtlMs: 1000 });
    await claimStream(redis, prefix, b, 'w1/b', { ttlSeconds: 60, heartbeatTtlMs: 1000 });
    await appendEnd(redis, prefix, b, { status: 'failed', error: { message: 'worker lost: test', code: 'worker_lost' } }, 60);
    const lost = await refreshHeartbeats(redis, prefix, [{ jobId: a, owner: 'w1/a' }, { jobId: b, owner: 'w1/b' }], 30_000);
    assert.deepEqual(lost, [b]);
    assert.ok((await redis.pttl(streamAliveKey(prefix, a))) > 5000, 'the held claim got the new TTL');
    assert.equal(await redis.exists(streamAliveKey(prefix, b)), 0, 'an ended job stays without a heartbeat');
  });

  describe('watchdog', () => {
    const log = createLogger({ level: 'silent', name: 'test' });
    const states = new Map<string, string>();
    const watchdog = () =>
      new StreamWatchdog({ redis, prefix, intervalMs: 50, heartbeatTtlMs: 100, retryWindowMs: 1500, retentionSeconds: 60, jobState: async (id) => states.get(id) ?? 'active', log });
    const beat = (id: string, queues: string[]) => redis.hset(workersKey(prefix), id, JSON.stringify({ id, at: Date.now(), queues, models: [] }));
    const endOf = async (id: string) => {
      const last = (await entries(id)).at(-1);
      return last?.kind === 'end' ? last : undefined;
    };
    /** A run of `id` by worker `w` whose heartbeat lapses at once (its worker "died"). */
    const deadRun = async (id: string, w: string, tokens: number) => {
      await claimStream(redis, prefix, id, `${w}/run`, { ttlSeconds: 60, heartbeatTtlMs: 100 });
      for (let i = 0; i < tokens; i++) await appendTokens(redis, prefix, id, `${w}/run`, [{ i, text: `t${i}` }], 60);
    };

    test('a dead worker that had streamed text: the stream ends with worker_lost', async () => {
      const wd = watchdog();
      const id = job();
      await beat('w-other', ['chat.tiny']);
      await deadRun(id, 'w-dead', 3);
      const stop = wd.watch(id);
      try {
        const end = await waitFor('end entry', () => endOf(id), 10_000);
        assert.equal(end.status, 'failed');
        assert.equal(end.error?.code, 'worker_lost');
        assert.match(end.error!.message, /^worker lost: .*after streaming 3 tokens/);
      } finally {
        stop();
        wd.close();
      }
    });

    test('a dead worker before the first token, no other worker on the queue: worker_lost at once', async () => {
      const wd = watchdog();
      const id = job('chat.lonely');
      await beat('w-elsewhere', ['chat.other']);
      await deadRun(id, 'w-dead2', 0);
      const stop = wd.watch(id);
      try {
        const end = await waitFor('end entry', () => endOf(id), 10_000);
        assert.match(end.error!.message, /before it produced any text, and no other worker serves its queue/);
      } finally {
        stop();
        wd.close();
      }
    });

    test('a dead worker before the first token, another worker alive: the job is left to be retried, and its dead claim goes once it is queued again', async () => {
      const wd = watchdog();
      const id = job();
      await beat('w-alive', ['chat.tiny']);
      await deadRun(id, 'w-dead3', 0);
      const stop = wd.watch(id);
      try {
        // The stalled check of the live worker has not run yet: the job still reads as active.
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(await endOf(id), undefined, 'not ended while a retry can come');
        states.set(id, 'prioritized');
        await waitFor('dead claim released', async () => ((await redis.exists(streamOwnerKey(prefix, id))) === 0 ? true : undefined), 10_000);
        assert.deepEqual(await claimStream(redis, prefix, id, 'w-alive/run', opts), { claimed: true }, 'the retry starts from an empty stream');
        assert.equal(await endOf(id), undefined);
      } finally {
        stop();
        wd.close();
      }
    });

    test('a retry that does not come within the window ends the stream with worker_lost', async () => {
      const wd = watchdog();
      const id = job();
      await beat('w-alive2', ['chat.tiny']);
      await deadRun(id, 'w-dead4', 0);
      const stop = wd.watch(id);
      try {
        const end = await waitFor('end entry', () => endOf(id), 10_000);
        assert.match(end.error!.message, /not taken up again within 2 s/);
      } finally {
        stop();
        wd.close();
      }
    });
  });
});
