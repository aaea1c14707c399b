/**
 * One step at a time, granted round-robin across tenants (FIFO within a tenant).
 *
 * A parse process runs CPU-bound steps (a page rendered and read, a batch of text layers) that
 * cannot usefully overlap on its thread. Without this gate a tenant's 500-page scan would be parsed
 * start to finish while another tenant's one-page text waits; with it, the small document waits for
 * at most one step of every other tenant that has work, however many documents those tenants have.
 */
export class FairGate {
  private busy = false;
  /** Tenants with waiting steps, in the order they will be served (a Map keeps insertion order). */
  private readonly waiting = new Map<string, (() => void)[]>();

  acquire(tenant: string): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.busy = false;
          this.next();
        });
      };
      const queue = this.waiting.get(tenant);
      if (queue) queue.push(grant);
      else this.waiting.set(tenant, [grant]);
      if (!this.busy) this.next();
    });
  }

  /** Tenants with steps waiting, in serving order (for tests and logs). */
  get queued(): string[] {
    return [...this.waiting.keys()];
  }

  private next(): void {
    const first = this.waiting.entries().next();
    if (first.done) return;
    const [tenant, queue] = first.value;
    const grant = queue.shift()!;
    // The tenant just served goes to the back of the ring.
    this.waiting.delete(tenant);
    if (queue.length > 0) this.waiting.set(tenant, queue);
    this.busy = true;
    grant();
  }
}
