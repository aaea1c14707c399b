import type { Logger } from '../logger.js';

type Closer = { name: string; close: () => Promise<unknown> | unknown };

/**
 * One shutdown manager per process: closers run in reverse registration order (the last thing
 * opened closes first), each one runs even if an earlier one failed, the whole sequence has a
 * hard timeout, and a second signal exits at once. Exit codes follow 128 + signal number.
 */
export class ShutdownManager {
  private readonly closers: Closer[] = [];
  private shuttingDown: Promise<void> | undefined;
  private deadline = Infinity;

  constructor(
    private readonly log: Logger,
    private readonly graceMs: number,
  ) {}

  register(name: string, close: Closer['close']): void {
    this.closers.push({ name, close });
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown !== undefined;
  }

  /**
   * Milliseconds left of the grace period (Infinity before a signal). Closers that wait for
   * in-flight work use it to stop waiting in time for the closers after them to run.
   */
  remainingMs(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  /** Closes everything; safe to call more than once. */
  close(): Promise<void> {
    if (this.deadline === Infinity) this.deadline = Date.now() + this.graceMs;
    this.shuttingDown ??= (async () => {
      for (const c of [...this.closers].reverse()) {
        try {
          await c.close();
          this.log.debug({ closer: c.name }, 'closed');
        } catch (err) {
          this.log.error({ err, closer: c.name }, 'close failed');
        }
      }
    })();
    return this.shuttingDown;
  }

  installSignalHandlers(): void {
    const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
    for (const signal of Object.keys(codes) as NodeJS.Signals[]) {
      process.on(signal, () => {
        const code = codes[signal]!;
        if (this.isShuttingDown) {
          this.log.warn({ signal }, 'second signal: exiting now');
          process.exit(code);
        }
        this.log.info({ signal, graceMs: this.graceMs }, 'shutting down');
        const timer = setTimeout(() => {
          this.log.error('shutdown timed out: exiting');
          process.exit(code);
        }, this.graceMs);
        timer.unref();
        void this.close().then(() => {
          this.log.info({ signal, code }, 'shut down');
          process.exit(code);
        });
      });
    }
  }
}
