import type { BatchOutcome } from './model-thread-pool.js';

export interface BatchingOptions {
  max_batch_size: number;
  max_batch_tokens: number;
  max_wait_ms: number;
  length_ratio: number;
}

/** What the batcher needs of a model thread pool. */
export interface BatchRunner {
  readonly idleCount: number;
  run(rows: readonly (readonly number[])[]): Promise<BatchOutcome>;
  onIdle(listener: () => void): () => void;
}

export interface BatchStats {
  size: number;
  /** rows × longest row: the work the model actually does. */
  paddedTokens: number;
  realTokens: number;
  /** How long the oldest text of the batch waited for it. */
  queueMs: number;
  runMs: number;
}

/** How long after the last interactive text background runs stay short (a quarter of max_batch_size). */
const INTERACTIVE_RECENT_MS = 1000;
/** Background texts are packed from the oldest this many max_batch_size's worth. */
const BACKGROUND_WINDOW_BATCHES = 4;

/**
 * `interactive` texts (someone is waiting on the answer) always leave before `background` ones (batch
 * lines), and never share a run with them: an interactive run stays as short as its own texts make it.
 */
export type EmbeddingLane = 'interactive' | 'background';

interface PendingText {
  ids: readonly number[];
  lane: EmbeddingLane;
  enqueuedAt: number;
  owner: object;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

/**
 * Dynamic batching across jobs, as text-embeddings-inference does: every text of every job in
 * flight waits here, and whenever a model thread is idle the oldest text leaves with the texts of
 * similar length that fit the token budget. Grouping by length matters more than batch size on
 * small CPUs: padding a batch to its longest row can cost more than batching saves.
 */
export class EmbeddingBatcher {
  private pending: PendingText[] = [];
  /** When the last interactive text arrived (performance.now()); -Infinity: never. */
  private lastInteractiveAt = -Infinity;
  private scheduled = false;
  private waitTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly runner: BatchRunner,
    private readonly opts: BatchingOptions,
    private readonly onBatch: (s: BatchStats) => void = () => {},
  ) {
    this.unsubscribe = runner.onIdle(() => this.pump());
  }

  get queuedTexts(): number {
    return this.pending.length;
  }

  embed(rows: readonly (readonly number[])[], signal?: AbortSignal, lane: EmbeddingLane = 'interactive'): Promise<Float32Array[]> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const owner = {};
    const now = performance.now();
    if (lane === 'interactive') this.lastInteractiveAt = now;
    const promises = rows.map(
      (ids) =>
        new Promise<Float32Array>((resolve, reject) => {
          this.pending.push({ ids, lane, enqueuedAt: now, owner, resolve, reject });
        }),
    );
    const all = Promise.all(promises);
    if (signal) {
      const onAbort = () => {
        // Texts still waiting leave the queue; texts already inside a running batch finish there.
        const err = abortError(signal);
        this.pending = this.pending.filter((p) => {
          if (p.owner !== owner) return true;
          p.reject(err);
          return false;
        });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      void all.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
    }
    this.schedule();
    return all;
  }

  close(): void {
    this.unsubscribe();
    clearTimeout(this.waitTimer);
    const err = new Error('embedding batcher closed');
    for (const p of this.pending) p.reject(err);
    this.pending = [];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate lets every job that arrived in this turn of the event loop join the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.runner.idleCount > 0 && this.pending.length > 0) {
      const oldest = this.pending.find((p) => p.lane === 'interactive') ?? this.pending[0]!;
      const waited = performance.now() - oldest.enqueuedAt;
      if (this.opts.max_wait_ms > 0 && this.pending.length < this.opts.max_batch_size && waited < this.opts.max_wait_ms) {
        // An idle model with a partial batch waits a little for company, but never past max_wait_ms.
        if (!this.waitTimer) {
          this.waitTimer = setTimeout(() => {
            this.waitTimer = undefined;
            this.pump();
          }, this.opts.max_wait_ms - waited);
        }
        return;
      }
      this.dispatch(this.takeBatch());
    }
  }

  /**
   * The oldest text of the first lane that has any (so nothing starves within a lane) plus the
   * waiting texts of its lane closest to it in length, within length_ratio, while the batch fits
   * max_batch_size and max_batch_tokens. Closest-first packs batches with less padding than taking
   * similar texts in arrival order.
   */
  private takeBatch(): PendingText[] {
    const { max_batch_tokens, length_ratio } = this.opts;
    const firstInteractive = this.pending.findIndex((p) => p.lane === 'interactive');
    const headIndex = firstInteractive >= 0 ? firstInteractive : 0;
    const head = this.pending[headIndex]!;
    const background = head.lane === 'background';
    // While interactive texts keep coming, background runs are kept short: a text that arrives
    // during one waits for it to end, and a run's time grows with its size.
    const interactiveLately = performance.now() - this.lastInteractiveAt < INTERACTIVE_RECENT_MS;
    const max_batch_size = background && interactiveLately ? Math.max(1, Math.floor(this.opts.max_batch_size / 4)) : this.opts.max_batch_size;
    // Background texts are chosen among the oldest few only, so the jobs they belong to (batch lines
    // of many texts each) finish roughly in the order they came instead of all at the end together.
    const scanEnd = background ? Math.min(this.pending.length, headIndex + 1 + BACKGROUND_WINDOW_BATCHES * this.opts.max_batch_size) : this.pending.length;
    const headLen = Math.max(1, head.ids.length);
    const lo = headLen / length_ratio;
    const hi = headLen * length_ratio;
    const candidates: { index: number; len: number }[] = [];
    for (let i = headIndex + 1; i < scanEnd; i++) {
      const p = this.pending[i]!;
      const len = Math.max(1, p.ids.length);
      if (p.lane === head.lane && len >= lo && len <= hi) candidates.push({ index: i, len });
    }
    candidates.sort((a, b) => Math.abs(a.len - headLen) - Math.abs(b.len - headLen) || a.index - b.index);
    const chosen = new Set<number>([headIndex]);
    let longest = headLen;
    for (const c of candidates) {
      if (chosen.size >= max_batch_size) break;
      const nextLongest = Math.max(longest, c.len);
      if (nextLongest * (chosen.size + 1) > max_batch_tokens) continue;
      chosen.add(c.index);
      longest = nextLongest;
    }
    const batch: PendingText[] = [];
    const rest: PendingText[] = [];
    this.pending.forEach((p, i) => (chosen.has(i) ? batch : rest).push(p));
    this.pending = rest;
    return batch;
  }

  private dispatch(batch: PendingText[]): void {
    const queueMs = performance.now() - Math.min(...batch.map((p) => p.enqueuedAt));
    const longest = Math.max(...batch.map((p) => p.ids.length));
    const realTokens = batch.reduce((n, p) => n + p.ids.length, 0);
    this.runner.run(batch.map((p) => p.ids)).then(
      ({ vectors, runMs }) => {
        batch.forEach((p, i) => p.resolve(vectors[i]!));
        this.onBatch({ size: batch.length, paddedTokens: longest * batch.length, realTokens, queueMs, runMs });
      },
      (err: Error) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  return reason instanceof Error ? reason : new Error(typeof reason === 'string' ? reason : 'aborted');
}
