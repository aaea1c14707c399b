import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import { refreshHeartbeats } from '../../shared/streams/token-stream.js';

/**
 * Heartbeats of the streaming jobs this worker process runs: one round trip every `intervalMs`
 * refreshes all of them. BullMQ's lock says the same thing, but only to other workers' stalled
 * checks, every few seconds, and only while some worker runs: the API reads these keys itself
 * (api/jobs/stream-watchdog.ts), so a client learns of a dead worker even when no other worker is
 * left. The timer runs on the main thread, which inference never blocks (it runs in threads).
 */
export class StreamHeartbeats {
  private readonly running = new Map<string, { owner: string; onLost: () => void }>();
  private timer: NodeJS.Timeout | undefined;
  private beating = false;

  constructor(
    private readonly deps: { redis: Redis; prefix: string; intervalMs: number; ttlMs: number; log: Logger },
  ) {}

  get ttlMs(): number {
    return this.deps.ttlMs;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.beat(), this.deps.intervalMs);
  }

  /** Tracks a job whose stream `owner` has just claimed (the claim wrote its first heartbeat); `onLost` runs if the claim goes. */
  add(jobId: string, owner: string, onLost: () => void): void {
    this.running.set(jobId, { owner, onLost });
  }

  remove(jobId: string): void {
    this.running.delete(jobId);
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.running.clear();
  }

  private async beat(): Promise<void> {
    if (this.beating || this.running.size === 0) return;
    this.beating = true;
    try {
      const jobs = [...this.running].map(([jobId, { owner }]) => ({ jobId, owner }));
      const lost = await refreshHeartbeats(this.deps.redis, this.deps.prefix, jobs, this.deps.ttlMs);
      for (const jobId of lost) {
        const run = this.running.get(jobId);
        // Only the run that was asked about: the same job may have started again meanwhile.
        if (!run || run.owner !== jobs.find((j) => j.jobId === jobId)?.owner) continue;
        this.running.delete(jobId);
        this.deps.log.warn({ jobId }, 'lost the claim on a running job\'s stream: stopping it');
        run.onLost();
      }
    } catch (err) {
      // Redis being away is seen everywhere else; the next beat tries again.
      this.deps.log.debug({ err }, 'stream heartbeat failed');
    } finally {
      this.beating = false;
    }
  }
}
