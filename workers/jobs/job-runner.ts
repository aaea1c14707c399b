import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import {
  CANCELLED_REASON_PREFIX,
  jobCatalog,
  jobEnvelopeSchema,
  type JobType,
} from '../../shared/jobs/job-catalog.js';
import { publicResult, type ReplyMessage } from '../../shared/jobs/job-views.js';
import type { JobHandler } from './job-handler.js';

/** Where finished jobs are announced: the synchronous caller's reply channel and the job's Socket.IO room. */
export interface ResultDelivery {
  reply(channel: string, message: ReplyMessage): Promise<void>;
  emitToJob(jobId: string, event: 'progress' | 'completed' | 'failed', data: unknown): void;
}

export interface JobWorkerOptions<K extends JobType> {
  queueName: string;
  type: K;
  handler: JobHandler<K>;
  connection: Redis;
  prefix: string;
  concurrency: number;
  log: Logger;
  delivery: ResultDelivery;
}

/**
 * The one adapter between BullMQ and handlers: it validates the job data again (a schema failure
 * is not retried: it would fail the same way every time), builds the handler's context, and
 * announces the outcome. Jobs submitted synchronously get their full result on the caller's reply
 * channel and keep only a summary in Redis, since nobody will read it back.
 */
export function createJobWorker<K extends JobType>(opts: JobWorkerOptions<K>): Worker {
  const { type, handler, delivery } = opts;
  const spec = jobCatalog[type];

  const processor = async (job: Job, _token?: string, signal?: AbortSignal): Promise<unknown> => {
    const jobId = job.id!;
    const attempt = job.attemptsMade + 1;
    const log = opts.log.child({ jobId, queue: opts.queueName, attempt });
    const envelope = jobEnvelopeSchema.safeParse(job.data);
    if (!envelope.success || envelope.data.type !== type) {
      log.error({ issues: envelope.error?.issues }, 'job data does not match the job catalog');
      throw new UnrecoverableError(`invalid job data for ${type} job`);
    }
    const { tenant, reply_to } = envelope.data;
    const payload = spec.payload.safeParse(envelope.data.payload);
    if (!payload.success) {
      const message = `invalid ${type} payload: ${payload.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
      announceFailure(jobId, reply_to, 'failed', { message, code: 'invalid_payload' });
      throw new UnrecoverableError(message);
    }
    const abort = signal ?? new AbortController().signal;
    const started = performance.now();
    try {
      const result = await handler(payload.data as never, {
        jobId,
        tenant,
        attempt,
        log,
        signal: abort,
        reportProgress: async (progress) => {
          await job.updateProgress(progress);
          delivery.emitToJob(jobId, 'progress', { id: jobId, progress });
        },
      });
      log.debug({ runMs: Math.round(performance.now() - started) }, 'job done');
      if (reply_to) {
        await delivery.reply(reply_to, { id: jobId, ok: true, result });
        return { delivered: 'reply' };
      }
      delivery.emitToJob(jobId, 'completed', { id: jobId, status: 'completed', result: publicResult(type, result as never) });
      return result;
    } catch (err) {
      if (abort.aborted) {
        const reason = `${CANCELLED_REASON_PREFIX}: ${String(abort.reason instanceof Error ? abort.reason.message : (abort.reason ?? 'by request'))}`;
        log.info({ reason }, 'job cancelled');
        announceFailure(jobId, reply_to, 'cancelled', { message: reason, code: 'cancelled' });
        throw new UnrecoverableError(reason);
      }
      const final = err instanceof UnrecoverableError || attempt >= (job.opts.attempts ?? 1);
      log.error({ err, final }, 'job failed');
      if (final) announceFailure(jobId, reply_to, 'failed', { message: (err as Error).message, code: 'job_failed' });
      throw err;
    }
  };

  function announceFailure(
    jobId: string,
    replyTo: string | undefined,
    status: 'failed' | 'cancelled',
    error: { message: string; code: string },
  ): void {
    if (replyTo) void delivery.reply(replyTo, { id: jobId, ok: false, error }).catch(() => {});
    else delivery.emitToJob(jobId, 'failed', { id: jobId, status, error });
  }

  return new Worker(opts.queueName, processor, {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    autorun: false,
    // Inference runs in model threads, so this thread stays free to renew locks on time.
    lockDuration: 30_000,
    maxStalledCount: 1,
  });
}
