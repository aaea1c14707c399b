import { UnrecoverableError } from 'bullmq';
import { failedLineOutcome } from '../../shared/batches/batch-lines.js';
import { nowSeconds, TERMINAL_BATCH_STATUSES, type BatchLine, type BatchRecord, type LineOutcome } from '../../shared/batches/batch-store.js';
import { AppError } from '../../shared/errors/app-error.js';
import { failureCode, jobCatalog, makeJobId, type JobEnvelope } from '../../shared/jobs/job-catalog.js';
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

interface LineJob {
  index: number;
  line: BatchLine;
  queueName: string;
  jobId: string;
}

async function lineJobs(deps: BatchDeps, b: BatchRecord, indexes: readonly number[]): Promise<(LineJob | undefined)[]> {
  if (indexes.length === 0) return [];
  const raw = await deps.batches.redis.hmget(deps.batches.linesKey(b.id), ...indexes.map(String));
  return raw.map((r, i) => {
    if (!r) return undefined;
    const line = JSON.parse(r) as BatchLine;
    const model = deps.registry.get(line.payload.model);
    if (!model) return undefined;
    return { index: indexes[i]!, line, queueName: model.queueName, jobId: makeJobId(model.queueName, `${b.id}-${indexes[i]}`) };
  });
}

async function pendingJobs(deps: BatchDeps, b: BatchRecord): Promise<LineJob[]> {
  const members = (await deps.batches.redis.smembers(deps.batches.pendingKey(b.id))).map(Number);
  const jobs = await lineJobs(deps, b, members);
  // A pending index without a runnable line cannot happen; drop it rather than wait on it forever.
  const orphans = members.filter((_, i) => !jobs[i]);
  if (orphans.length) await deps.batches.redis.srem(deps.batches.pendingKey(b.id), ...orphans.map(String));
  return jobs.filter((j): j is LineJob => j !== undefined);
}

/** BullMQ's hash of a job: whether it exists and how it ended, in one round trip for many jobs. */
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
      done.push(String(j.index));
      continue;
    }
    if (s.state !== 'active') {
      const job = await deps.queues.get(j.queueName)!.getJob(j.jobId);
      const removed = await job?.remove().then(() => true, () => false);
      if (removed || !job) {
        await deps.admission.release(j.jobId).catch(() => {});
        done.push(String(j.index));
        continue;
      }
    }
    await deps.cancelRunning(j.jobId);
    if (mode === 'expire') done.push(String(j.index));
  }
  if (done.length) await deps.batches.redis.srem(deps.batches.pendingKey(b.id), ...done);
  return (await deps.batches.redis.scard(deps.batches.pendingKey(b.id))) === 0;
}

/** Lines whose job failed without answering are answered with its failure; vanished ones are queued again. */
async function reconcile(deps: BatchDeps, b: BatchRecord): Promise<void> {
  const jobs = await pendingJobs(deps, b);
  const states = await jobStates(deps, jobs);
  for (const [i, j] of jobs.entries()) {
    const s = states[i]!;
    if (s.state === 'failed') {
      const reason = s.failedReason ?? 'the job failed';
      if (await deps.batches.recordLine(b.id, j.index, failedLineOutcome(j.line.type, j.jobId, { message: reason, code: failureCode(reason) }))) {
        deps.onLines(b.tenant, b.endpoint, 'failed', 1);
      }
    } else if (!s.exists) {
      const answered = await deps.batches.redis.hexists(deps.batches.outKey(b.id), String(j.index));
      if (answered) await deps.batches.redis.srem(deps.batches.pendingKey(b.id), String(j.index));
      else await enqueue(deps, b, j);
    }
  }
}

async function enqueue(deps: BatchDeps, b: BatchRecord, j: LineJob): Promise<void> {
  const queue = deps.queues.get(j.queueName);
  if (!queue) throw new Error(`no queue ${j.queueName} for batch line ${j.index}`);
  const priority = await deps.admission.admit(b.tenant, j.jobId, BATCH_PRIORITY);
  await deps.batches.redis.sadd(deps.batches.pendingKey(b.id), String(j.index));
  const envelope: JobEnvelope = { type: j.line.type, tenant: b.tenant, payload: j.line.payload as never, batch: { id: b.id, line: j.index, endpoint: b.endpoint } };
  // The job id is the line's: queuing it twice (a driver retried after a crash) adds it once.
  await queue.add(j.line.type, envelope, {
    ...jobCatalog[j.line.type].defaults,
    jobId: j.jobId,
    priority,
    // The outcome is in the batch; the job itself is not read back.
    removeOnComplete: true,
    removeOnFail: { age: deps.retentionSeconds },
  });
}

/** Queues the next lines until BATCH_LINES_IN_FLIGHT are pending, or the tenant is at its job cap. */
async function topUp(deps: BatchDeps, b: BatchRecord): Promise<void> {
  let cursor = b.dispatched;
  let room = deps.linesInFlight - (await deps.batches.redis.scard(deps.batches.pendingKey(b.id)));
  try {
    while (room > 0 && cursor < b.total) {
      const indexes = Array.from({ length: Math.min(room, b.total - cursor) }, (_, i) => cursor + i);
      const jobs = await lineJobs(deps, b, indexes);
      for (const [i, j] of jobs.entries()) {
        // Lines without a stored request were answered at validation.
        if (j) {
          await enqueue(deps, b, j);
          room--;
        }
        cursor = indexes[i]! + 1;
      }
    }
  } catch (err) {
    // The tenant is at TENANT_MAX_JOBS: the rest waits for the next look, its other work goes on.
    if (!(err instanceof AppError && err.status === 429)) throw err;
  } finally {
    if (cursor !== b.dispatched) await deps.batches.update(b.id, { dispatched: cursor });
  }
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
