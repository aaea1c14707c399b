import { UnrecoverableError, type Queue } from 'bullmq';
import { failedLineOutcome } from '../../shared/batches/batch-lines.js';
import { nowSeconds, TERMINAL_BATCH_STATUSES, type BatchLine, type BatchRecord, type LineOutcome } from '../../shared/batches/batch-store.js';
import { AppError } from '../../shared/errors/app-error.js';
import { failureCode, jobCatalog, makeJobId, type JobEnvelope, type JobPayload } from '../../shared/jobs/job-catalog.js';
import { BATCH_PRIORITY } from '../../shared/jobs/priorities.js';
import { DeferJob, type JobHandler } from '../jobs/job-handler.js';
import type { BatchDeps } from './batch-runtime.js';
import { announceBatchEnd, finishBatch } from './finish-batch.js';

const EXPIRED = { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' };

/**
 * A batch's driver: one job per batch, deferred between looks (BATCH_POLL_MS). Each look it
 * - accounts for lines whose job failed without answering (a worker died too often) or vanished
 *   (queued again under the same id),
 * - tops up the lines in flight to BATCH_LINES_IN_FLIGHT, as ordinary embedding and chat jobs at
 *   batch priority through the tenant's admission (fairness and TENANT_MAX_JOBS apply per line),
 * - on cancel, removes queued lines, stops running ones, and ends the batch `cancelled` with what
 *   finished; past the completion window, answers every unanswered line `batch_expired` and ends it
 *   `expired`; once every line is answered, finalizes it `completed`.
 * Lines answer themselves (recorded once by the worker that ran them), so this job holds no state a
 * crash could lose: after one, its next run picks up from Redis.
 */
export function createRunBatchHandler(deps: BatchDeps): JobHandler<'batch.run'> {
  return async ({ batch_id }) => {
    const b = await deps.batches.get(batch_id);
    if (!b) throw new UnrecoverableError(`batch ${batch_id} does not exist`);
    if (TERMINAL_BATCH_STATUSES.has(b.status)) {
      // Ended by an earlier run that may have died before announcing it (a repeat delivers nothing twice).
      await announceBatchEnd(deps, b);
      return { batch_id, status: b.status };
    }
    if (b.status === 'cancelling') {
      if (await stopPending(deps, b, 'cancel')) return { batch_id, status: (await finishBatch(deps, b, 'cancelled')).status };
      throw new DeferJob(deps.pollMs, 'cancelling: waiting for running lines to stop');
    }
    if (Date.now() >= b.expires_at * 1000) return { batch_id, status: (await expire(deps, b)).status };
    if (b.status === 'in_progress') {
      await reconcile(deps, b);
      await topUp(deps, b);
      const now = await deps.batches.get(batch_id);
      if (!now || now.completed + now.failed < now.total) throw new DeferJob(deps.pollMs, 'lines in flight');
      await deps.batches.transition(batch_id, 'finalizing', ['in_progress']);
    }
    const latest = (await deps.batches.get(batch_id)) ?? b;
    if (latest.status === 'finalizing') return { batch_id, status: (await finishBatch(deps, latest, 'completed')).status };
    throw new DeferJob(deps.pollMs, `waiting (${latest.status})`);
  };
}

/**
 * Texts one packed embedding job carries at most (a line with more runs alone). One job per line
 * would spend the same Redis round trips and worker bookkeeping on every text: several times what
 * the model spends on it. Packed, a job's texts go to the model's batcher together, as a
 * /v1/embeddings request of 64 texts would; twice the batcher's default run size, so runs stay full.
 */
export const EMBEDDING_TEXTS_PER_JOB = 64;

/** One job of a batch: one line, or several embedding lines of the same model and dimensions packed together. */
interface LineJob {
  /** Its lines, in input order; the first names the job. */
  lines: { index: number; line: BatchLine }[];
  queueName: string;
  jobId: string;
}

const indexesOf = (j: LineJob) => j.lines.map((l) => String(l.index));

/** Stored lines by index (undefined: answered at validation, or a model no longer served). */
async function readLines(deps: BatchDeps, b: BatchRecord, indexes: readonly number[]): Promise<({ index: number; line: BatchLine; queueName: string } | undefined)[]> {
  if (indexes.length === 0) return [];
  const raw = await deps.batches.redis.hmget(deps.batches.linesKey(b.id), ...indexes.map(String));
  return raw.map((r, i) => {
    if (!r) return undefined;
    const line = JSON.parse(r) as BatchLine;
    const model = deps.registry.get(line.payload.model);
    return model ? { index: indexes[i]!, line, queueName: model.queueName } : undefined;
  });
}

const jobIdFor = (b: BatchRecord, queueName: string, first: number) => makeJobId(queueName, `${b.id}-${first}`);

/** Embedding lines that may share a job: same model (queue) and dimensions. */
function packable(a: BatchLine, b: BatchLine): boolean {
  return a.type === 'embedding' && b.type === 'embedding' && a.payload.model === b.payload.model && a.payload.dimensions === b.payload.dimensions;
}

/** Consecutive lines into jobs: embedding lines packed up to EMBEDDING_TEXTS_PER_JOB texts, the others one per job. */
function packLines(b: BatchRecord, lines: readonly { index: number; line: BatchLine; queueName: string }[]): LineJob[] {
  const jobs: LineJob[] = [];
  let open: (LineJob & { texts: number }) | undefined;
  for (const l of lines) {
    const texts = l.line.type === 'embedding' ? l.line.payload.input.length : 0;
    if (open && packable(open.lines[0]!.line, l.line) && open.texts + texts <= EMBEDDING_TEXTS_PER_JOB) {
      open.lines.push({ index: l.index, line: l.line });
      open.texts += texts;
      continue;
    }
    open = { lines: [{ index: l.index, line: l.line }], queueName: l.queueName, jobId: jobIdFor(b, l.queueName, l.index), texts };
    jobs.push(open);
    if (l.line.type !== 'embedding') open = undefined;
  }
  return jobs.map(({ lines: ls, queueName, jobId }) => ({ lines: ls, queueName, jobId }));
}

/** The jobs of the lines queued and not yet answered, as they were packed when queued. */
async function pendingJobs(deps: BatchDeps, b: BatchRecord): Promise<LineJob[]> {
  const members = (await deps.batches.redis.smembers(deps.batches.pendingKey(b.id))).map(Number).sort((x, y) => x - y);
  if (members.length === 0) return [];
  const [lines, firsts] = await Promise.all([readLines(deps, b, members), deps.batches.redis.hmget(deps.batches.packKey(b.id), ...members.map(String))]);
  // A pending index without a runnable line cannot happen; drop it rather than wait on it forever.
  const orphans = members.filter((_, i) => !lines[i]);
  if (orphans.length) await deps.batches.redis.srem(deps.batches.pendingKey(b.id), ...orphans.map(String));
  const byJob = new Map<string, LineJob>();
  lines.forEach((l, i) => {
    if (!l) return;
    const first = firsts[i] ? Number(firsts[i]) : l.index;
    const jobId = jobIdFor(b, l.queueName, first);
    const job = byJob.get(jobId) ?? { lines: [], queueName: l.queueName, jobId };
    job.lines.push({ index: l.index, line: l.line });
    byJob.set(jobId, job);
  });
  return [...byJob.values()];
}

/** BullMQ's state of each job: whether it exists and how it ended. */
async function jobStates(deps: BatchDeps, jobs: readonly LineJob[]): Promise<{ exists: boolean; finished: boolean; failedReason: string | null; state: string }[]> {
  return Promise.all(
    jobs.map(async (j) => {
      const queue = deps.queues.get(j.queueName);
      const state = queue ? await queue.getJobState(j.jobId) : 'unknown';
      return { exists: state !== 'unknown', finished: state === 'completed' || state === 'failed', failedReason: state === 'failed' ? ((await queue!.getJob(j.jobId))?.failedReason ?? null) : null, state };
    }),
  );
}

/**
 * Removes queued lines and stops running ones. Cancel waits until the running ones have stopped
 * (answers `true` once nothing is pending); expiry does not wait (its caller answers them itself).
 */
async function stopPending(deps: BatchDeps, b: BatchRecord, mode: 'cancel' | 'expire'): Promise<boolean> {
  const jobs = await pendingJobs(deps, b);
  const states = await jobStates(deps, jobs);
  const done: string[] = [];
  for (const [i, j] of jobs.entries()) {
    const s = states[i]!;
    if (!s.exists || s.finished) {
      done.push(...indexesOf(j));
      continue;
    }
    if (s.state !== 'active') {
      const job = await deps.queues.get(j.queueName)!.getJob(j.jobId);
      const removed = await job?.remove().then(() => true, () => false);
      if (removed || !job) {
        await deps.admission.release(j.jobId).catch(() => {});
        done.push(...indexesOf(j));
        continue;
      }
    }
    await deps.cancelRunning(j.jobId);
    if (mode === 'expire') done.push(...indexesOf(j));
  }
  if (done.length) await deps.batches.redis.srem(deps.batches.pendingKey(b.id), ...done);
  return (await deps.batches.redis.scard(deps.batches.pendingKey(b.id))) === 0;
}

/** Lines whose job failed without answering are answered with its failure; vanished ones are queued again. */
async function reconcile(deps: BatchDeps, b: BatchRecord): Promise<void> {
  const jobs = await pendingJobs(deps, b);
  const states = await jobStates(deps, jobs);
  const vanished: LineJob[] = [];
  for (const [i, j] of jobs.entries()) {
    const s = states[i]!;
    if (s.state === 'failed') {
      const reason = s.failedReason ?? 'the job failed';
      const failed = failedLineOutcome(j.lines[0]!.line.type, j.jobId, { message: reason, code: failureCode(reason) });
      const n = await deps.batches.recordLines(b.id, j.lines.map((l) => [l.index, failed]));
      if (n) deps.onLines(b.tenant, b.endpoint, 'failed', n);
    } else if (!s.exists) {
      const answered = await deps.batches.redis.hmget(deps.batches.outKey(b.id), ...indexesOf(j));
      const done = j.lines.filter((_, k) => answered[k]);
      if (done.length) await deps.batches.redis.srem(deps.batches.pendingKey(b.id), ...done.map((l) => String(l.index)));
      const open = j.lines.filter((_, k) => !answered[k]);
      // Under its old id: the pack's first line still names it (in the pack hash).
      if (open.length) vanished.push({ ...j, lines: open });
    }
  }
  await enqueue(deps, b, vanished);
}

/**
 * Queues jobs through the tenant's admission (each is admitted, then all are added in one round
 * trip), their lines marked pending and packed lines mapped to their job first. Answers how many
 * were queued: admission stops at the tenant's job cap (429), and the rest wait for the next look.
 */
async function enqueue(deps: BatchDeps, b: BatchRecord, jobs: readonly LineJob[]): Promise<number> {
  const admitted: { job: LineJob; priority: number }[] = [];
  try {
    for (const job of jobs) admitted.push({ job, priority: await deps.admission.admit(b.tenant, job.jobId, BATCH_PRIORITY) });
  } catch (err) {
    // The tenant is at TENANT_MAX_JOBS: the rest waits for the next look, its other work goes on.
    if (!(err instanceof AppError && err.status === 429)) throw err;
  }
  if (admitted.length === 0) return 0;
  const multi = deps.batches.redis.multi();
  multi.sadd(deps.batches.pendingKey(b.id), ...admitted.flatMap(({ job }) => indexesOf(job)));
  const packed = admitted.filter(({ job }) => job.lines.length > 1).flatMap(({ job }) => job.lines.map((l) => [String(l.index), String(job.lines[0]!.index)]));
  if (packed.length) multi.hset(deps.batches.packKey(b.id), Object.fromEntries(packed));
  await multi.exec();
  const byQueue = new Map<string, Parameters<Queue['addBulk']>[0]>();
  for (const { job, priority } of admitted) {
    if (!deps.queues.get(job.queueName)) throw new Error(`no queue ${job.queueName} for batch line ${job.lines[0]!.index}`);
    const first = job.lines[0]!;
    const lineRef = { id: b.id, line: first.index, endpoint: b.endpoint };
    const envelope: JobEnvelope =
      job.lines.length === 1
        ? { type: first.line.type, tenant: b.tenant, payload: first.line.payload as never, batch: lineRef }
        : {
            type: 'embedding',
            tenant: b.tenant,
            payload: { ...(first.line.payload as JobPayload<'embedding'>), input: job.lines.flatMap((l) => (l.line.payload as JobPayload<'embedding'>).input) },
            batch: { ...lineRef, pack: job.lines.map((l) => ({ line: l.index, inputs: (l.line.payload as JobPayload<'embedding'>).input.length })) },
          };
    const bulk = byQueue.get(job.queueName) ?? [];
    // The job id is its first line's: queuing it twice (a driver retried after a crash) adds it once.
    bulk.push({
      name: envelope.type,
      data: envelope,
      opts: {
        ...jobCatalog[envelope.type].defaults,
        jobId: job.jobId,
        priority,
        // The outcome is in the batch; the job itself is not read back.
        removeOnComplete: true,
        removeOnFail: { age: deps.retentionSeconds },
      },
    });
    byQueue.set(job.queueName, bulk);
  }
  await Promise.all([...byQueue].map(([name, bulk]) => deps.queues.get(name)!.addBulk(bulk)));
  return admitted.length;
}

/** Queues the next lines until BATCH_LINES_IN_FLIGHT are pending, or the tenant is at its job cap. */
async function topUp(deps: BatchDeps, b: BatchRecord): Promise<void> {
  let cursor = b.dispatched;
  const room = deps.linesInFlight - (await deps.batches.redis.scard(deps.batches.pendingKey(b.id)));
  if (room <= 0 || cursor >= b.total) return;
  const indexes = Array.from({ length: Math.min(room, b.total - cursor) }, (_, i) => cursor + i);
  // Lines without a stored request were answered at validation.
  const jobs = packLines(b, (await readLines(deps, b, indexes)).filter((l) => l !== undefined));
  const queued = await enqueue(deps, b, jobs);
  // Past the last line queued; when every job was, past the lines answered at validation too.
  cursor = queued === jobs.length ? indexes[indexes.length - 1]! + 1 : jobs[queued]!.lines[0]!.index;
  if (cursor !== b.dispatched) await deps.batches.update(b.id, { dispatched: cursor });
}

/**
 * Called after a worker recorded lines of a batch: once half of BATCH_LINES_IN_FLIGHT or fewer are
 * pending, the driver's next look is brought forward (its delayed job promoted), so lines keep
 * flowing and a finished batch is finalized at once instead of at the end of BATCH_POLL_MS. The poll
 * stays the fallback: a driver that is running just now cannot be promoted, and looks again anyway.
 */
export async function wakeBatchDriver(deps: Pick<BatchDeps, 'batches' | 'queues' | 'linesInFlight'>, batchId: string): Promise<void> {
  const pending = await deps.batches.redis.scard(deps.batches.pendingKey(batchId));
  if (pending > deps.linesInFlight / 2) return;
  const queueName = jobCatalog['batch.run'].queue.name;
  const driver = await deps.queues.get(queueName)?.getJob(makeJobId(queueName, batchId));
  if (driver && (await driver.isDelayed())) await driver.promote().catch(() => {});
}

/** Past the completion window: unanswered lines are answered `batch_expired`, and the batch ends `expired`. */
async function expire(deps: BatchDeps, b: BatchRecord): Promise<BatchRecord> {
  await stopPending(deps, b, 'expire');
  const at = nowSeconds();
  const outcome: LineOutcome = { ok: false, error: EXPIRED, response: null, at };
  let expired = 0;
  for (let from = 0; from < b.total; from += 1000) {
    const idx = Array.from({ length: Math.min(1000, b.total - from) }, (_, i) => from + i);
    const answered = await deps.batches.redis.hmget(deps.batches.outKey(b.id), ...idx.map(String));
    const lines = await deps.batches.redis.hmget(deps.batches.linesKey(b.id), ...idx.map(String));
    const open = idx.filter((_, i) => !answered[i]).map((n) => [n, { ...outcome, custom_id: lines[n - from] ? (JSON.parse(lines[n - from]!) as BatchLine).custom_id : null }] as [number, LineOutcome]);
    expired += await deps.batches.recordLines(b.id, open);
  }
  if (expired) deps.onLines(b.tenant, b.endpoint, 'expired', expired);
  return finishBatch(deps, (await deps.batches.get(b.id)) ?? b, 'expired');
}
