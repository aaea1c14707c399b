import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import {
  CANCELLED_REASON_PREFIX,
  failureCode,
  jobCatalog,
  jobEnvelopeSchema,
  jobSpec,
  scheduledRetryDelayMs,
  STREAMING_JOB_TYPES,
  type JobType,
} from '../../shared/jobs/job-catalog.js';
import { publicResult, type ReplyMessage } from '../../shared/jobs/job-views.js';
import type { StallOptions } from '../../shared/jobs/queues.js';
import type { BatchLineRef } from '../../shared/batches/batch-store.js';
import { claimStream, releaseStream, type StreamClaim } from '../../shared/streams/token-stream.js';
import { DeferJob, type JobHandler } from './job-handler.js';
import type { StreamHeartbeats } from './stream-heartbeats.js';
import { ExpiredError } from './expired.error.js';
import { JobEndedError } from './job-ended.error.js';
import { jobErrorCode } from './job.error.js';
import { WorkerLostError } from './worker-lost.error.js';

/**
 * Where job outcomes are announced: the synchronous caller's reply channel, or the job's
 * subscribers (a Socket.IO room, or for chat the end entry of its token stream).
 */
export interface ResultDelivery {
  reply(channel: string, message: ReplyMessage): Promise<void>;
  progress(jobId: string, progress: Record<string, unknown>): void;
  completed(type: JobType, jobId: string, result: unknown): Promise<void>;
  failed(type: JobType, jobId: string, status: 'failed' | 'cancelled', error: { message: string; code: string }): Promise<void>;
  /** A batch line's outcome, recorded once in its batch (workers/batches) instead of being announced. */
  batchLine(job: { type: JobType; id: string; tenant: string }, ref: BatchLineRef, outcome: { ok: true; result: unknown } | { ok: false; error: { message: string; code: string } }): Promise<void>;
}

/**
 * Abort reason the worker process gives its running jobs when its shutdown grace period is running
 * out (`worker.cancelAllJobs(WORKER_SHUTDOWN_REASON)`): retryable jobs are handed back to the queue
 * for another worker, the others fail with a reason instead of being left to stall.
 */
export const WORKER_SHUTDOWN_REASON = 'worker shutting down';

/** Who hears of a job's outcome: its synchronous caller, its batch, or (neither) its subscribers. */
interface Recipient {
  replyTo?: string;
  batch?: BatchLineRef;
  tenant: string;
}

/** Abort reason of a run that passed its job type's `deadlines.maxRunSeconds`. */
const RUN_DEADLINE_REASON = 'run deadline passed';

export interface JobWorkerOptions<K extends JobType> {
  queueName: string;
  type: K;
  handler: JobHandler<K>;
  connection: Redis;
  prefix: string;
  concurrency: number;
  log: Logger;
  delivery: ResultDelivery;
  /** Per-job timings for metrics; the runner knows nothing of Prometheus. */
  timings?: JobTimings;
  /** How long a job's lock lasts without renewal: a killed worker's jobs are found stalled after it. */
  lockDurationMs?: number;
  /** How often this worker looks for stalled jobs. */
  stalledIntervalMs?: number;
  /** Lock and stalled-check settings of this queue (shared/jobs/queues.ts); overrides the two above. */
  stall?: StallOptions;
  /** Longest run before the job is aborted as expired; default: the catalog's `deadlines.maxRunSeconds` of the type, else none. */
  maxRunMs?: number;
  /** Worker deaths a job survives (default: the queue's stall settings, else its attempts, or 0 when it has one). */
  maxStalledCount?: number;
  /**
   * Streaming jobs (chat, chatbot): each run claims the job's token stream before it starts and
   * keeps a heartbeat on it, so that a job whose worker died is retried only when it had streamed
   * nothing, and the API can tell a dead worker from a slow one.
   */
  streams?: StreamRuns;
  /** RETRY_SCHEDULE_SCALE: multiplies the type's `retrySchedule` (default 1). */
  retryScheduleScale?: number;
}

export interface StreamRuns {
  redis: Redis;
  heartbeats: StreamHeartbeats;
  /** Part of each run's owner id, so the API knows which worker a lapsed heartbeat was. */
  workerId: string;
  retentionSeconds: number;
}

/** Seconds are measured from BullMQ's own timestamps: `timestamp` (added), `processedOn` (taken). */
export interface JobTimings {
  /** A job was taken from the queue after waiting `queuedSeconds` (processedOn - timestamp). */
  taken(queuedSeconds: number): void;
  /** A job's handler ended after `runSeconds`; `totalSeconds` runs from when it was added. */
  finished(outcome: 'completed' | 'failed' | 'cancelled', runSeconds: number, totalSeconds: number): void;
}

/**
 * The one adapter between BullMQ and handlers: it validates the job data again (a schema failure
 * is not retried: it would fail the same way every time), builds the handler's context, and
 * announces the outcome. Jobs submitted synchronously get their full result on the caller's reply
 * channel and keep only a summary in Redis, since nobody will read it back.
 */
export function createJobWorker<K extends JobType>(opts: JobWorkerOptions<K>): Worker {
  const { type, handler, delivery } = opts;
  const spec = jobSpec(type);

  const retryable = (jobCatalog[type].defaults as { attempts: number }).attempts > 1;
  const maxRunMs = opts.maxRunMs ?? (jobSpec(type).deadlines?.maxRunSeconds ?? 0) * 1000;
  const processor = async (job: Job, token?: string, signal?: AbortSignal): Promise<unknown> => {
    const jobId = job.id!;
    const attempt = job.attemptsMade + 1;
    opts.timings?.taken(Math.max(0, (job.processedOn ?? Date.now()) - job.timestamp) / 1000);
    const log = opts.log.child({ jobId, queue: opts.queueName, attempt });
    const envelope = jobEnvelopeSchema.safeParse(job.data);
    if (!envelope.success || envelope.data.type !== type) {
      log.error({ issues: envelope.error?.issues }, 'job data does not match the job catalog');
      throw new UnrecoverableError(`invalid job data for ${type} job`);
    }
    const { tenant, reply_to, deadline, batch } = envelope.data;
    const to: Recipient = { replyTo: reply_to, batch, tenant };
    // A job still queued at its deadline is dropped, not run late (the catalog's `deadlines.maxQueuedSeconds`, a request's `timeout`).
    if (deadline !== undefined && Date.now() > deadline) {
      const err = new ExpiredError(`still queued ${Math.ceil((Date.now() - deadline) / 1000)} s past its deadline`);
      log.info({ deadline }, 'job expired before it ran');
      await announceFailure(jobId, to, 'failed', { message: err.message, code: err.code });
      throw err;
    }
    const payload = spec.payload.safeParse(envelope.data.payload);
    if (!payload.success) {
      const message = `invalid ${type} payload: ${payload.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
      await announceFailure(jobId, to, 'failed', { message, code: 'invalid_payload' });
      throw new UnrecoverableError(message);
    }
    const streams = STREAMING_JOB_TYPES.has(type) ? opts.streams : undefined;
    // Aborted when this run loses its claim on the job's stream: it must stop writing at once.
    const lost = new AbortController();
    let owner: string | undefined;
    if (streams) {
      owner = `${streams.workerId}/${token ?? randomUUID()}`;
      const claim = await claimStream(streams.redis, opts.prefix, jobId, owner, { ttlSeconds: streams.retentionSeconds, heartbeatTtlMs: streams.heartbeats.ttlMs });
      if (!claim.claimed) return settleStarted(jobId, to, claim, log);
      streams.heartbeats.add(jobId, owner, () => lost.abort());
    }
    const stopBeat = () => streams?.heartbeats.remove(jobId);
    // Aborted when the run passes the type's `deadlines.maxRunSeconds`.
    const overtime = new AbortController();
    const overtimeTimer = maxRunMs > 0 ? setTimeout(() => overtime.abort(RUN_DEADLINE_REASON), maxRunMs) : undefined;
    const abort = AbortSignal.any([...(signal ? [signal] : []), lost.signal, overtime.signal]);
    const started = performance.now();
    let outcome: 'completed' | 'failed' | 'cancelled' | 'deferred' = 'failed';
    try {
      const result = await handler(payload.data as never, {
        jobId,
        tenant,
        attempt,
        log,
        signal: abort,
        reportProgress: async (progress) => {
          await job.updateProgress(progress);
          delivery.progress(jobId, progress);
        },
        background: batch !== undefined,
        ...(owner ? { streamOwner: owner } : {}),
      });
      // Before the end entry goes out: a heartbeat after it would read the ended claim as lost.
      stopBeat();
      outcome = 'completed';
      log.debug({ runMs: Math.round(performance.now() - started) }, 'job done');
      if (reply_to) {
        await delivery.reply(reply_to, { id: jobId, ok: true, result });
        return { delivered: 'reply' };
      }
      if (batch) {
        // Recorded before the job completes: a worker killed in between leaves a job that runs
        // again and records nothing the second time.
        await delivery.batchLine({ type, id: jobId, tenant }, batch, { ok: true, result });
        return { delivered: 'batch' };
      }
      await delivery.completed(type, jobId, publicResult(type, result as never));
      return result;
    } catch (err) {
      stopBeat();
      if (lost.signal.aborted || err instanceof WorkerLostError) {
        // The API ended the job for us (our heartbeat lapsed), or another run took it over: either
        // way the stream is not ours to end, so nothing is announced.
        const e = err instanceof WorkerLostError ? err : new WorkerLostError('this run lost its claim on the job\'s token stream (its heartbeat lapsed)');
        log.warn({ reason: e.message }, 'job stopped: stream claim lost');
        throw e;
      }
      if (err instanceof DeferJob && token && !abort.aborted) {
        outcome = 'deferred';
        log.debug({ delayMs: err.delayMs, reason: err.message }, 'job deferred');
        await job.moveToDelayed(Date.now() + err.delayMs, token);
        throw new DelayedError();
      }
      if (abort.aborted && abort.reason === WORKER_SHUTDOWN_REASON) {
        // A streaming job can go back only while it has streamed nothing: releasing its claim checks that.
        const handBack = streams && owner ? await releaseStream(streams.redis, opts.prefix, jobId, owner).catch(() => false) : retryable;
        if (handBack && token) {
          // Back to the queue as it was (no attempt spent): another worker takes it from the start.
          log.warn('worker shutting down: job handed back to the queue');
          await job.moveToWait(token);
          throw new WaitingError();
        }
        const message = 'the worker shut down before the job finished';
        log.warn(message);
        await announceFailure(jobId, to, 'failed', { message, code: 'worker_shutdown' });
        throw new UnrecoverableError(message);
      }
      if (abort.aborted && abort.reason === RUN_DEADLINE_REASON) {
        const expired = new ExpiredError(`still running after its ${maxRunMs / 1000} s limit`);
        log.warn({ maxRunMs }, 'job aborted: it ran past its deadline');
        await announceFailure(jobId, to, 'failed', { message: expired.message, code: expired.code });
        throw expired;
      }
      if (abort.aborted) {
        outcome = 'cancelled';
        const reason = `${CANCELLED_REASON_PREFIX}: ${String(abort.reason instanceof Error ? abort.reason.message : (abort.reason ?? 'by request'))}`;
        log.info({ reason }, 'job cancelled');
        await announceFailure(jobId, to, 'cancelled', { message: reason, code: 'cancelled' });
        throw new UnrecoverableError(reason);
      }
      const final = err instanceof UnrecoverableError || attempt >= (job.opts.attempts ?? 1);
      log.error({ err, final }, 'job failed');
      if (final) await announceFailure(jobId, to, 'failed', { message: (err as Error).message, code: jobErrorCode(err) });
      throw err;
    } finally {
      clearTimeout(overtimeTimer);
      stopBeat();
      if (outcome !== 'deferred') opts.timings?.finished(outcome, (performance.now() - started) / 1000, Math.max(0, Date.now() - job.timestamp) / 1000);
    }
  };

  /**
   * A streaming job taken again after its worker died, whose stream is not empty: it is never
   * generated twice. An outcome that was already announced is recorded as it was; a stream with
   * text and no end fails as `worker_lost` (the API has usually told its clients already).
   */
  async function settleStarted(jobId: string, to: Recipient, claim: Extract<StreamClaim, { claimed: false }>, log: Logger): Promise<unknown> {
    const { end, tokens } = claim;
    if (end?.status === 'completed') {
      log.warn('taken again after its worker died, but its result had been announced: recorded as it was');
      if (to.batch) await delivery.batchLine({ type, id: jobId, tenant: to.tenant }, to.batch, { ok: true, result: end.result });
      return end.result;
    }
    if (end) {
      log.warn({ reason: end.error?.message }, 'taken again after its worker died, but it had already ended: recorded as it was');
      throw new JobEndedError(end.error?.code ?? 'job_failed', end.error?.message ?? end.status);
    }
    const err = new WorkerLostError(`the worker running this job stopped after streaming ${tokens} token${tokens === 1 ? '' : 's'}; it is not run again, since its text would repeat`);
    log.warn({ tokens }, 'taken again after its worker died mid-stream: failed as worker_lost');
    await announceFailure(jobId, { ...to, replyTo: undefined }, 'failed', { message: err.message, code: err.code });
    throw err;
  }

  /** Never rejects: an announcement that cannot be made is logged, and the job's outcome still stands. */
  async function announceFailure(jobId: string, to: Recipient, status: 'failed' | 'cancelled', error: { message: string; code: string }): Promise<void> {
    try {
      if (to.replyTo) await delivery.reply(to.replyTo, { id: jobId, ok: false, error });
      // A cancelled line was stopped by its batch (cancel, expiry), which accounts for it itself.
      else if (to.batch) {
        if (status === 'failed') await delivery.batchLine({ type, id: jobId, tenant: to.tenant }, to.batch, { ok: false, error });
      } else await delivery.failed(type, jobId, status, error);
    } catch (err) {
      opts.log.warn({ err, jobId }, 'could not announce failure');
    }
  }

  const stall: StallOptions = {
    ...(opts.stall ?? {
      lockDuration: opts.lockDurationMs ?? 30_000,
      stalledInterval: opts.stalledIntervalMs ?? 30_000,
      // Retryable jobs survive as many worker deaths as they have attempts; the others fail when stalled.
      maxStalledCount: retryable ? (jobCatalog[type].defaults as { attempts: number }).attempts : 0,
    }),
    ...(opts.maxStalledCount !== undefined ? { maxStalledCount: opts.maxStalledCount } : {}),
  };
  // A type with a retry schedule in its catalog entry retries on it (backoff type 'schedule').
  const settings = spec.retrySchedule
    ? { backoffStrategy: (attemptsMade: number) => scheduledRetryDelayMs(type, attemptsMade, opts.retryScheduleScale ?? 1) }
    : undefined;
  const worker = new Worker(opts.queueName, processor, {
    connection: opts.connection,
    ...(settings ? { settings } : {}),
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    autorun: false,
    // Inference runs in model threads, so this thread stays free to renew locks on time.
    ...stall,
    // After a Redis outage, look for jobs again within a second (BullMQ's default waits 15 s).
    runRetryDelay: 1000,
  });
  // A job found stalled more often than maxStalledCount allows (it was on that many workers that
  // died) is failed by BullMQ itself when a worker next takes it, without running the processor:
  // nothing above announced it, so its subscribers, or its synchronous caller, would wait forever.
  // Streaming jobs are left out: the API ends their token stream from the queue's events.
  // Batch lines of streaming types are recorded here too: their batch, not the API, accounts for them.
  worker.on('failed', (job, err) => {
    if (!job?.id || !job.deferredFailure || err.message !== job.deferredFailure) return;
    const envelope = jobEnvelopeSchema.safeParse(job.data);
    const data = envelope.success ? envelope.data : undefined;
    if (STREAMING_JOB_TYPES.has(type) && !data?.batch) return;
    opts.log.warn({ jobId: job.id, queue: opts.queueName, reason: err.message }, 'job failed: its workers died too often');
    void announceFailure(job.id, { replyTo: data?.reply_to, batch: data?.batch, tenant: data?.tenant ?? '' }, 'failed', { message: err.message, code: failureCode(err.message) });
  });
  return worker;
}
