import { randomUUID } from 'node:crypto';
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { AppError, errors } from '../../shared/errors/app-error.js';
import { isRedisConnectionError } from '../../shared/redis/redis-errors.js';
import { sha256Hex } from '../../shared/sha256.js';
import {
  CANCELLED_REASON_PREFIX,
  jobCatalog,
  jobSpec,
  makeJobId,
  queueOfJobId,
  type JobEnvelope,
  type JobPayload,
  type JobResult,
  type JobType,
} from '../../shared/jobs/job-catalog.js';
import { cancelChannel, jobView, type JobView } from '../../shared/jobs/job-views.js';
import type { ModelConfig } from '../../shared/models/model-registry.js';
import type { ReplyHub } from './reply-hub.js';

export type { JobView };

/** Where a job goes: a model's queue, or another queue with the same bound (the chatbot's). */
export type QueueTarget = Pick<ModelConfig, 'id' | 'queueName' | 'max_queue'>;


export interface SubmitOptions {
  requestId?: string;
  idempotencyKey?: string;
  /** 1 (most urgent) to 10. BullMQ serves lower numbers first. */
  priority?: number;
  /**
   * How long the job may stay queued before it is dropped as expired instead of running late;
   * replaces the type's default (`deadlines.maxQueuedSeconds` in the job catalog).
   */
  maxQueuedMs?: number;
  /** Announce the job's outcome as a webhook event (jobs of POST /v1/jobs), also to `url` when given. */
  webhookEvents?: { url?: string };
}

/** Per-tenant admission (shared/limits/tenant-load.ts): caps a tenant's jobs in flight and turns its load into a priority. */
export interface TenantAdmission {
  admit(tenant: string, jobId: string, basePriority?: number): Promise<number>;
  release(jobId: string): Promise<void>;
}

const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

/**
 * Everything the API does with jobs: submit (bounded, idempotent), wait for a synchronous result,
 * read, cancel. Routes and the Socket.IO server go through here and never touch BullMQ directly.
 */
export class JobService {
  private readonly depthCache = new Map<string, { at: number; value: Promise<number> }>();

  constructor(
    private readonly deps: {
      queues: ReadonlyMap<string, Queue>;
      redis: Redis;
      replies: ReplyHub;
      prefix: string;
      retentionSeconds: number;
      /** Tells the job's Socket.IO room about outcomes the API decides itself (a queued job cancelled). */
      notify?: (jobId: string, type: JobType, event: 'failed', data: { id: string; status: 'cancelled'; error: { message: string; code: string } }) => void;
      admission?: TenantAdmission;
      /** Told of outcomes the API decides itself, with the job's envelope and final view (webhook events). */
      ended?: (envelope: JobEnvelope, view: JobView) => void;
    },
  ) {}

  /** Async submission: answers as soon as the job is stored. */
  async submit<K extends JobType>(
    type: K,
    tenant: string,
    model: QueueTarget,
    payload: JobPayload<K>,
    opts: SubmitOptions = {},
  ): Promise<{ view: JobView; created: boolean }> {
    const queue = this.queueFor(model);
    const idem = opts.idempotencyKey ? await this.claimIdempotencyKey(tenant, opts.idempotencyKey, type, payload, queue.name) : undefined;
    if (idem && !idem.claimed) {
      const existing = await this.get(tenant, idem.jobId);
      return { view: existing, created: false };
    }
    let admitted: string | undefined;
    try {
      await this.ensureRoom(queue, model);
      const jobId = idem?.jobId ?? makeJobId(queue.name, randomUUID());
      const priority = this.deps.admission ? await this.deps.admission.admit(tenant, jobId, opts.priority) : opts.priority;
      admitted = this.deps.admission ? jobId : undefined;
      const envelope: JobEnvelope<K> = {
        type,
        tenant,
        payload,
        request_id: opts.requestId,
        idempotency_key: opts.idempotencyKey,
        ...deadlineOf(type, opts.maxQueuedMs),
        ...(opts.webhookEvents ? { webhook_events: opts.webhookEvents } : {}),
      };
      const job = await queue.add(type, envelope, {
        ...jobCatalog[type].defaults,
        jobId,
        ...(priority ? { priority } : {}),
        removeOnComplete: { age: this.deps.retentionSeconds },
        removeOnFail: { age: this.deps.retentionSeconds },
      });
      return { view: await this.view(job, 'waiting'), created: true };
    } catch (err) {
      // A submission that did not happen must not hold its idempotency key hostage, nor a place in its tenant's quota.
      if (idem?.claimed) await this.deps.redis.del(idem.key).catch(() => {});
      if (admitted) await this.deps.admission?.release(admitted).catch(() => {});
      throw this.redisAware(err);
    }
  }

  /** Synchronous submission: enqueues with this instance's reply channel and waits for the result. */
  async run<K extends JobType>(type: K, tenant: string, model: QueueTarget, payload: JobPayload<K>, timeoutMs: number, requestId?: string): Promise<JobResult<K>> {
    const queue = this.queueFor(model);
    await this.ensureRoom(queue, model);
    const jobId = makeJobId(queue.name, randomUUID());
    const priority = this.deps.admission ? await this.deps.admission.admit(tenant, jobId).catch((e) => Promise.reject(this.redisAware(e))) : undefined;
    const reply = this.deps.replies.expect<JobResult<K>>(jobId, timeoutMs);
    const envelope: JobEnvelope<K> = { type, tenant, payload, request_id: requestId, reply_to: this.deps.replies.channel, ...deadlineOf(type) };
    const jobOpts: JobsOptions = {
      ...jobCatalog[type].defaults,
      jobId,
      ...(priority ? { priority } : {}),
      // The caller holds the result; keeping it in Redis would only cost memory.
      removeOnComplete: true,
      removeOnFail: { age: this.deps.retentionSeconds },
    };
    try {
      await queue.add(type, envelope, jobOpts);
    } catch (err) {
      reply.cancel();
      if (this.deps.admission) await this.deps.admission.release(jobId).catch(() => {});
      throw this.redisAware(err);
    }
    try {
      return await reply.promise;
    } catch (err) {
      // Nobody waits for a timed-out job any more: take it out of the queue if it has not started.
      if (err instanceof AppError && err.status === 504) void this.cancel(tenant, jobId).catch(() => {});
      throw err;
    }
  }

  async get(tenant: string, jobId: string): Promise<JobView> {
    const job = await this.find(tenant, jobId);
    if (!job) {
      const tombstone = await this.deps.redis.get(this.tombstoneKey(jobId)).catch((e) => Promise.reject(this.redisAware(e)));
      if (tombstone) {
        const view = JSON.parse(tombstone) as JobView & { tenant: string };
        if (view.tenant === tenant) {
          const { tenant: _t, ...rest } = view;
          return rest;
        }
      }
      throw errors.notFound(`No job with id '${jobId}'.`, 'job_not_found', 'id');
    }
    const view = await this.view(job);
    // The job's data and its state are two reads: a job that finished in between would read as
    // finished without its result or reason. BullMQ records both at once, so a second read has them.
    if (!job.finishedOn && ['completed', 'failed', 'cancelled'].includes(view.status)) {
      const fresh = await this.find(tenant, jobId);
      if (fresh) return this.view(fresh);
    }
    return view;
  }

  /** Tenant of a job, or undefined when it does not exist: the Socket.IO server authorises with it. */
  async tenantOf(jobId: string): Promise<string | undefined> {
    const queue = this.queueById(jobId);
    if (!queue) return undefined;
    const job = await Job.fromId(queue, jobId);
    if (job) return (job.data as JobEnvelope).tenant;
    const tombstone = await this.deps.redis.get(this.tombstoneKey(jobId));
    return tombstone ? (JSON.parse(tombstone) as { tenant: string }).tenant : undefined;
  }

  /**
   * Cancels a job that has not finished. A queued job is removed and leaves a tombstone so that
   * GET still answers `cancelled`; a running job is told to stop through the workers' cancel
   * channel, and this waits (briefly) until its worker has stopped it.
   */
  async cancel(tenant: string, jobId: string): Promise<JobView> {
    const job = await this.find(tenant, jobId);
    if (!job) return this.get(tenant, jobId);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      throw errors.conflict(`Job '${jobId}' has already finished (${(await this.view(job, state)).status}).`, 'job_finished');
    }
    if (state !== 'active') {
      try {
        await job.remove();
        const view = await this.view(job, state);
        const cancelled: JobView = { ...view, status: 'cancelled', finished_at: nowSeconds(), error: { message: `${CANCELLED_REASON_PREFIX}: by request`, code: 'cancelled' } };
        await this.deps.redis.set(this.tombstoneKey(jobId), JSON.stringify({ ...cancelled, tenant }), 'EX', this.deps.retentionSeconds);
        await this.deps.admission?.release(jobId).catch(() => {});
        this.deps.notify?.(jobId, view.type, 'failed', { id: jobId, status: 'cancelled', error: cancelled.error! });
        this.deps.ended?.(job.data as JobEnvelope, cancelled);
        return cancelled;
      } catch {
        // It became active (and locked) between getState and remove: cancel it as a running job.
      }
    }
    await this.deps.redis.publish(cancelChannel(this.deps.prefix), jobId);
    const deadline = Date.now() + 5000;
    for (;;) {
      // Through get(): the job ends while we poll, and a read racing its end must not report it
      // finished without its reason (a cancelled job then read as 'failed').
      const view = await this.get(tenant, jobId);
      if (view.status !== 'active' && view.status !== 'queued') return view;
      if (Date.now() > deadline) return view;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** BullMQ state of a job, whoever's it is ('unknown' when it does not exist): for the API's own watchers, never for answers. */
  async state(jobId: string): Promise<string> {
    const queue = this.queueById(jobId);
    return queue ? queue.getJobState(jobId) : 'unknown';
  }

  private async find(tenant: string, jobId: string): Promise<Job | undefined> {
    const queue = this.queueById(jobId);
    if (!queue) return undefined;
    let job: Job | undefined;
    try {
      job = await Job.fromId(queue, jobId);
    } catch (err) {
      throw this.redisAware(err);
    }
    // Another tenant's job is reported exactly like a job that does not exist.
    if (!job || (job.data as JobEnvelope).tenant !== tenant) return undefined;
    return job;
  }

  private queueById(jobId: string): Queue | undefined {
    const name = queueOfJobId(jobId);
    return name ? this.deps.queues.get(name) : undefined;
  }

  private queueFor(model: QueueTarget): Queue {
    const q = this.deps.queues.get(model.queueName);
    if (!q) throw errors.modelNotFound(model.id);
    return q;
  }

  /**
   * Bounded queues: past max_queue waiting jobs, refuse with 429 instead of growing without limit.
   * The depth is cached for 50 ms so a burst of requests costs Redis one count, not one each.
   */
  private async ensureRoom(queue: Queue, model: QueueTarget): Promise<void> {
    const now = Date.now();
    let cached = this.depthCache.get(queue.name);
    if (!cached || now - cached.at > 50) {
      cached = { at: now, value: queue.getJobCounts('wait', 'prioritized', 'delayed').then((c) => Object.values(c).reduce((a, b) => a + b, 0)) };
      this.depthCache.set(queue.name, cached);
    }
    let depth: number;
    try {
      depth = await cached.value;
    } catch (err) {
      this.depthCache.delete(queue.name);
      throw this.redisAware(err);
    }
    if (depth >= model.max_queue) {
      throw errors.tooManyRequests(`The queue for model '${model.id}' is full (${depth} jobs waiting); retry later.`, 1);
    }
  }

  private async claimIdempotencyKey(tenant: string, key: string, type: JobType, payload: unknown, queueName: string) {
    if (key.length > 255) throw errors.invalidRequest('Idempotency-Key must be at most 255 characters.', 'Idempotency-Key');
    const redisKey = `${this.deps.prefix}:idem:${sha256Hex(`${tenant}\n${key}`)}`;
    const fingerprint = sha256Hex(JSON.stringify({ type, payload }));
    const jobId = makeJobId(queueName, randomUUID());
    let claimed: string | null;
    try {
      claimed = await this.deps.redis.set(redisKey, JSON.stringify({ jobId, fingerprint }), 'EX', IDEMPOTENCY_TTL_SECONDS, 'NX');
    } catch (err) {
      throw this.redisAware(err);
    }
    if (claimed) return { key: redisKey, jobId, claimed: true };
    const existing = JSON.parse((await this.deps.redis.get(redisKey)) ?? '{}') as { jobId?: string; fingerprint?: string };
    if (!existing.jobId) return { key: redisKey, jobId, claimed: true };
    if (existing.fingerprint !== fingerprint) {
      throw errors.conflict('This Idempotency-Key was already used with a different request body.', 'idempotency_key_reused');
    }
    return { key: redisKey, jobId: existing.jobId, claimed: false };
  }

  private async view(job: Job, knownState?: string): Promise<JobView> {
    return jobView(job, knownState ?? (await job.getState()));
  }

  private tombstoneKey(jobId: string): string {
    return `${this.deps.prefix}:cancelled:${jobId}`;
  }

  /** Redis being down is the service being unavailable (503), not an internal error. */
  private redisAware(err: unknown): unknown {
    return isRedisConnectionError(err) ? errors.redisUnavailable('job store') : err;
  }
}

/**
 * The envelope's `deadline`: the job must start within `maxQueuedMs`, else the type's default time
 * in the queue (its catalog entry's `deadlines`); none when neither says. The worker fails a job
 * taken after it as expired.
 */
function deadlineOf(type: JobType, maxQueuedMs?: number): { deadline?: number } {
  const byType = jobSpec(type).deadlines?.maxQueuedSeconds;
  const ms = maxQueuedMs ?? (byType === undefined ? undefined : byType * 1000);
  return ms === undefined ? {} : { deadline: Date.now() + ms };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
