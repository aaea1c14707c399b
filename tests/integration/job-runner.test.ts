import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Job, Queue, type Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { jobCatalog, makeJobId, type JobEnvelope, type JobResult } from '../../shared/jobs/job-catalog.js';
import type { ReplyMessage } from '../../shared/jobs/job-views.js';
import { createLogger } from '../../shared/logger.js';
import { createJobWorker, type ResultDelivery } from '../../workers/jobs/job-runner.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/service.js';

/**
 * The job runner against a real Redis, for what is hard to make happen on purpose with whole
 * processes: a job whose workers keep dying. A dead worker leaves its job active with a lock that
 * nobody renews, until a stalled check puts the job back; here the runner's own BullMQ worker takes
 * the job without running it (`getNextJob`, as a worker killed at once would), and its stalled
 * check, with the runner's settings, finds it.
 */
describe('job runner: a job whose workers keep dying', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let connection: Redis;
  let queue: Queue;
  let worker: Worker;
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const queueName = 'embedding.use-lite';
  const failed: { id: string; status: string; error: { message: string; code: string } }[] = [];
  const completed: string[] = [];
  const replies: { channel: string; message: ReplyMessage }[] = [];
  const ran: string[] = [];

  before(async () => {
    redis = await startPrivateRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(queueName, { connection, prefix });
    const delivery: ResultDelivery = {
      reply: async (channel, message) => void replies.push({ channel, message }),
      progress: () => {},
      completed: async (_type, jobId) => void completed.push(jobId),
      failed: async (_type, id, status, error) => void failed.push({ id, status, error }),
      batchLine: async () => {},
    };
    worker = createJobWorker({
      queueName,
      type: 'embedding',
      handler: async (payload, ctx): Promise<JobResult<'embedding'>> => {
        ran.push(ctx.jobId);
        return { model: payload.model, dimensions: 4, embeddings_b64: [], prompt_tokens: 0, input_tokens: [] };
      },
      connection,
      prefix,
      concurrency: 4,
      log: createLogger({ level: 'silent', name: 'test' }),
      delivery,
      // A dead worker's job is found about 1.5 s after it took it.
      lockDurationMs: 1000,
      stalledIntervalMs: 500,
    });
  });

  after(async () => {
    await worker?.close();
    await queue?.close();
    connection?.disconnect();
    await redis?.cleanup();
  });

  const add = async (replyTo?: string) => {
    const envelope: JobEnvelope<'embedding'> = { type: 'embedding', tenant: 'acme', payload: { model: 'use-lite', input: ['x'] }, ...(replyTo ? { reply_to: replyTo } : {}) };
    const jobId = makeJobId(queueName, randomUUID());
    await queue.add('embedding', envelope, { jobId, ...jobCatalog.embedding.defaults });
    return jobId;
  };

  test("survives as many worker deaths as it has attempts, then fails with a reason its subscribers and its synchronous caller hear", { timeout: 60_000 }, async () => {
    const attempts = jobCatalog.embedding.defaults.attempts;
    const doomed = await add();
    const doomedSync = await add('reply:test');
    const deaths = new Map<string, number>();
    let survivor: string | undefined;
    // The runner's stalled check runs; its worker takes no job on its own yet.
    void worker.startStalledCheckTimer();
    for (let round = 1; round <= attempts + 1; round++) {
      // One death fewer for the survivor: it joins after the first round.
      if (round === 2) survivor = await add();
      const taken: string[] = [];
      for (let job = await worker.getNextJob(`dead-${round}-0`, { block: false }); job; job = await worker.getNextJob(`dead-${round}-${taken.length}`, { block: false })) {
        taken.push(job.id!);
      }
      assert.deepEqual(taken.sort(), [doomed, doomedSync, ...(survivor ? [survivor] : [])].sort(), `round ${round}: every job taken by the worker about to die`);
      for (const id of taken) deaths.set(id, (deaths.get(id) ?? 0) + 1);
      // Its worker "dies" with them: nothing renews their locks, until the stalled check puts each back.
      await waitFor(`round ${round}: the jobs found stalled`, async () => {
        for (const id of taken) {
          const job = await Job.fromId(queue, id);
          if (!job || job.stalledCounter !== deaths.get(id) || (await job.getState()) !== 'waiting') return undefined;
        }
        return true;
      }, 20_000);
    }
    assert.equal(deaths.get(doomed), attempts + 1);
    assert.equal(deaths.get(survivor!), attempts);

    // A live worker takes them: the survivor runs; the others have died too often and fail without running.
    void worker.run();
    await waitFor('all three outcomes', async () => (completed.includes(survivor!) && failed.some((f) => f.id === doomed) && replies.some((r) => r.message.id === doomedSync) ? true : undefined), 20_000);
    assert.deepEqual(ran, [survivor], 'only the job within its allowance ran');
    assert.equal(await queue.getJobState(survivor!), 'completed');

    const announced = failed.find((f) => f.id === doomed)!;
    assert.equal(announced.status, 'failed');
    assert.match(announced.error.message, /stalled more than allowable limit/);
    const reply = replies.find((r) => r.message.id === doomedSync)!;
    assert.equal(reply.channel, 'reply:test');
    assert.equal(reply.message.ok, false);
    assert.match(!reply.message.ok ? reply.message.error.message : '', /stalled more than allowable limit/);
    for (const id of [doomed, doomedSync]) {
      const job = (await Job.fromId(queue, id))!;
      assert.equal(await job.getState(), 'failed');
      assert.match(job.failedReason, /stalled more than allowable limit/);
    }
    assert.equal(failed.filter((f) => f.id === doomed).length, 1, 'announced once');
  });
});

describe('job runner: deadlines', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let connection: Redis;
  let queue: Queue;
  let worker: Worker;
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const queueName = 'embedding.deadlines';
  const failed: { id: string; status: string; error: { message: string; code: string } }[] = [];
  const ran: string[] = [];

  before(async () => {
    redis = await startPrivateRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(queueName, { connection, prefix });
    worker = createJobWorker({
      queueName,
      type: 'embedding',
      // Runs until aborted, as a stuck model would (but one that listens to its signal).
      handler: async (_payload, ctx) => {
        ran.push(ctx.jobId);
        await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
        throw new Error('unreachable');
      },
      connection,
      prefix,
      concurrency: 2,
      log: createLogger({ level: 'silent', name: 'test' }),
      delivery: {
        reply: async () => {},
        progress: () => {},
        completed: async () => {},
        failed: async (_type, id, status, error) => void failed.push({ id, status, error }),
        batchLine: async () => {},
      },
      maxRunMs: 300,
    });
    void worker.run();
  });

  after(async () => {
    await worker?.close();
    await queue?.close();
    connection?.disconnect();
    await redis?.cleanup();
  });

  const add = async (deadline?: number) => {
    const envelope: JobEnvelope<'embedding'> = { type: 'embedding', tenant: 'acme', payload: { model: 'use-lite', input: ['x'] }, ...(deadline ? { deadline } : {}) };
    const jobId = makeJobId(queueName, randomUUID());
    await queue.add('embedding', envelope, { jobId, ...jobCatalog.embedding.defaults });
    return jobId;
  };
  const failedJob = async (id: string) => ((await queue.getJobState(id)) === 'failed' ? Job.fromId(queue, id) : undefined);

  test('a run past its limit is aborted and fails as expired, without a retry', { timeout: 30_000 }, async () => {
    const id = await add();
    const job = (await waitFor('the overlong run to fail', () => failedJob(id), 20_000))!;
    assert.match(job.failedReason, /^expired: still running after its 0.3 s limit/);
    assert.equal(job.attemptsMade, 1, 'expired is terminal although the type has retries');
    assert.deepEqual(failed.filter((f) => f.id === id).map((f) => [f.status, f.error.code]), [['failed', 'expired']]);
    assert.deepEqual(ran.filter((r) => r === id), [id]);
  });

  test('a job taken after its deadline fails as expired without running', { timeout: 30_000 }, async () => {
    const id = await add(Date.now() - 2000);
    const job = (await waitFor('the late job to fail', () => failedJob(id), 20_000))!;
    assert.match(job.failedReason, /^expired: still queued \d+ s past its deadline/);
    assert.equal(failed.find((f) => f.id === id)?.error.code, 'expired');
    assert.ok(!ran.includes(id), 'it never ran');
  });
});
