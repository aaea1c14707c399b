import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { errors } from '../errors/app-error.js';
import { queueOfJobId } from '../jobs/job-catalog.js';
import type { Logger } from '../logger.js';

/** BullMQ serves lower numbers first; 1 is the most urgent priority a request can ask for. */
export const MAX_FAIRNESS_PENALTY = 10;

/**
 * Atomically: refuse when the tenant already has `cap` jobs in flight, else record the job.
 * KEYS[1] = the tenant's set of in-flight job ids (score = admission time, ms), KEYS[2] = job → tenant.
 * Returns the in-flight count before this job, or -count when refused.
 */
const RESERVE = `
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return -n end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return n`;

/** KEYS[1] = job → tenant hash; ARGV[1] = job id, ARGV[2] = the per-tenant set prefix. Returns the tenant or false. */
const RELEASE = `
local t = redis.call('HGET', KEYS[1], ARGV[1])
if not t then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', ARGV[2] .. t, ARGV[1])
return t`;

/**
 * Per-tenant load: how many of a tenant's jobs are queued or running, across every queue and API
 * replica (a Redis sorted set per tenant). It bounds them (TENANT_MAX_JOBS: 429 with a wait
 * estimate past it) and turns them into BullMQ priorities, so that one tenant's backlog cannot
 * starve the others:
 *
 *   priority = base + min(10, floor(in_flight / FAIRNESS_STEP))
 *
 * `base` is what the request asked for (chat: 1 interactive, 5 batch, or the client's 1-10;
 * embeddings: 1). A tenant with few jobs in flight therefore goes ahead of a tenant with
 * thousands, while within one tenant, and between tenants of similar load, the interactive/batch
 * order of chat is kept. Jobs leave the set when their queue reports them completed or failed
 * (QueueEvents), when they are cancelled, and, should an event be missed, when a reconciliation
 * finds them finished or gone.
 */
export class TenantLoad {
  private readonly lastReconcile = new Map<string, number>();
  /** Completion times per tenant (this replica's view), for wait estimates. */
  private readonly finishedAt = new Map<string, number[]>();
  private events: QueueEvents[] = [];
  private connections: Redis[] = [];

  constructor(
    private readonly deps: { redis: Redis; prefix: string; maxJobs: number; fairnessStep: number; log: Logger },
  ) {}

  private setKey(tenant: string): string {
    return `${this.deps.prefix}:tenant-jobs:${tenant}`;
  }

  private get ownerKey(): string {
    return `${this.deps.prefix}:job-tenant`;
  }

  /** BullMQ priority for a tenant with `inFlight` jobs already queued or running. */
  priorityFor(basePriority: number | undefined, inFlight: number): number {
    return Math.max(1, basePriority ?? 1) + Math.min(MAX_FAIRNESS_PENALTY, Math.floor(inFlight / this.deps.fairnessStep));
  }

  /**
   * Records a job about to be enqueued and returns its priority; 429 when the tenant is at its cap
   * (after checking, once, that the jobs counted are really still in flight).
   */
  async admit(tenant: string, jobId: string, basePriority?: number): Promise<number> {
    let n = await this.reserve(tenant, jobId);
    if (n < 0) {
      await this.reconcile(tenant);
      n = await this.reserve(tenant, jobId);
    } else {
      void this.maybeReconcile(tenant);
    }
    if (n < 0) {
      const inFlight = -n;
      const wait = this.waitEstimate(tenant, inFlight - this.deps.maxJobs + 1);
      throw errors.tooManyRequests(
        `Tenant '${tenant}' has ${inFlight} jobs queued or running, the most it may have (TENANT_MAX_JOBS); about ${wait} s until there is room.`,
        wait,
        'tenant_queue_full',
      );
    }
    return this.priorityFor(basePriority, n);
  }

  async release(jobId: string): Promise<void> {
    const tenant = (await this.deps.redis.eval(RELEASE, 1, this.ownerKey, jobId, `${this.deps.prefix}:tenant-jobs:`)) as string | null;
    if (tenant) this.noteFinished(tenant);
  }

  async inFlight(tenant: string): Promise<number> {
    return this.deps.redis.zcard(this.setKey(tenant));
  }

  /** Listens to every queue's completed/failed events to release jobs (one blocking connection per queue). */
  watch(queueNames: Iterable<string>, connect: (name: string) => Redis): void {
    for (const name of queueNames) {
      const connection = connect(`api-load:${name}`);
      this.connections.push(connection);
      const events = new QueueEvents(name, { connection, prefix: this.deps.prefix });
      const release = ({ jobId }: { jobId: string }) => void this.release(jobId).catch(() => {});
      events.on('completed', release);
      events.on('failed', release);
      events.on('removed', release);
      events.on('error', (err) => this.deps.log.debug({ err: err.message, queue: name }, 'tenant load: queue events error'));
      this.events.push(events);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.events.map((e) => e.close()));
    await Promise.allSettled(this.connections.map((c) => c.quit().catch(() => c.disconnect())));
    this.events = [];
    this.connections = [];
  }

  private async reserve(tenant: string, jobId: string): Promise<number> {
    return (await this.deps.redis.eval(RESERVE, 2, this.setKey(tenant), this.ownerKey, jobId, String(Date.now()), String(this.deps.maxJobs), tenant)) as number;
  }

  /** Drops jobs that finished or vanished without their event reaching us (admitted > 10 s ago only: younger ones may not be added yet). */
  async reconcile(tenant: string): Promise<number> {
    this.lastReconcile.set(tenant, Date.now());
    const members = await this.deps.redis.zrangebyscore(this.setKey(tenant), 0, Date.now() - 10_000);
    if (members.length === 0) return 0;
    const pipe = this.deps.redis.pipeline();
    for (const id of members) pipe.hmget(`${this.deps.prefix}:${queueOfJobId(id) ?? '?'}:${id}`, 'timestamp', 'finishedOn');
    const replies = (await pipe.exec()) ?? [];
    const gone = members.filter((_, i) => {
      const [ts, finished] = (replies[i]?.[1] as (string | null)[] | undefined) ?? [null, null];
      return !ts || !!finished;
    });
    for (const id of gone) await this.release(id);
    return gone.length;
  }

  private async maybeReconcile(tenant: string): Promise<void> {
    const last = this.lastReconcile.get(tenant) ?? 0;
    if (Date.now() - last < 15_000) return;
    this.lastReconcile.set(tenant, Date.now());
    try {
      const oldest = await this.deps.redis.zrange(this.setKey(tenant), '0', '0', 'WITHSCORES');
      if (oldest.length === 2 && Date.now() - Number(oldest[1]) > 60_000) await this.reconcile(tenant);
    } catch (err) {
      this.deps.log.warn({ err, tenant }, 'tenant load: reconciliation failed');
    }
  }

  private noteFinished(tenant: string): void {
    const list = this.finishedAt.get(tenant) ?? [];
    list.push(Date.now());
    if (list.length > 2000) list.splice(0, list.length - 2000);
    this.finishedAt.set(tenant, list);
  }

  /** Seconds until `excess` of the tenant's jobs finish, at the rate they finished over the last 30 s. */
  private waitEstimate(tenant: string, excess: number): number {
    const since = Date.now() - 30_000;
    const recent = (this.finishedAt.get(tenant) ?? []).filter((t) => t >= since).length;
    if (recent === 0) return 30;
    return Math.min(600, Math.max(1, Math.ceil(excess / (recent / 30))));
  }
}
