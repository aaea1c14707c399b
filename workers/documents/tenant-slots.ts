/**
 * Per-tenant share of a worker's parse jobs. BullMQ hands out jobs in arrival order and open-source
 * BullMQ has no groups, so a tenant that uploads ten scans could fill every parse slot of every
 * worker and leave a second tenant's one-page text waiting behind them. A worker therefore runs at
 * most `perTenant` parse jobs of one tenant at once: a job past that is deferred (back to the queue
 * for a moment, no attempt spent), and the slot goes to the next job in line, another tenant's.
 */
export class TenantSlots {
  private readonly held = new Map<string, number>();

  constructor(readonly perTenant: number) {}

  /** A release function, or undefined when the tenant already holds its share. */
  tryAcquire(tenant: string): (() => void) | undefined {
    const n = this.held.get(tenant) ?? 0;
    if (n >= this.perTenant) return undefined;
    this.held.set(tenant, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(tenant) ?? 1) - 1;
      if (left <= 0) this.held.delete(tenant);
      else this.held.set(tenant, left);
    };
  }

  holding(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }
}
