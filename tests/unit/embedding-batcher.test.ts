import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EmbeddingBatcher, type BatchRunner, type BatchStats } from '../../workers/embeddings/embedding-batcher.js';
import type { BatchOutcome } from '../../workers/embeddings/model-thread-pool.js';

/** A model stand-in with one slot that records every batch and answers when told to. */
class RecordingRunner implements BatchRunner {
  batches: number[][][] = [];
  private busy = 0;
  private listeners = new Set<() => void>();
  private releases: (() => void)[] = [];
  constructor(private readonly slots = 1) {}
  get idleCount() {
    return this.slots - this.busy;
  }
  run(rows: readonly (readonly number[])[]): Promise<BatchOutcome> {
    this.busy++;
    this.batches.push(rows.map((r) => [...r]));
    return new Promise((resolve) => {
      this.releases.push(() => {
        this.busy--;
        // Each vector encodes its row's first id, so tests can check who got what.
        resolve({ vectors: rows.map((r) => Float32Array.of(r[0] ?? -1)), runMs: 1 });
        queueMicrotask(() => this.listeners.forEach((l) => l()));
      });
    });
  }
  onIdle(l: () => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  finishOne() {
    this.releases.shift()?.();
  }
}

const opts = { max_batch_size: 4, max_batch_tokens: 64, max_wait_ms: 0, length_ratio: 1.5 };
const row = (id: number, len: number) => [id, ...Array(len - 1).fill(0)];
const tick = () => new Promise((r) => setImmediate(r));

test('texts that arrive in the same turn share one batch, up to max_batch_size', async () => {
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, opts);
  const p = b.embed([row(1, 5), row(2, 5), row(3, 5), row(4, 5), row(5, 5), row(6, 5)]);
  await tick();
  assert.equal(runner.batches.length, 1);
  assert.equal(runner.batches[0]!.length, 4);
  runner.finishOne();
  await tick();
  await tick();
  assert.equal(runner.batches.length, 2);
  assert.equal(runner.batches[1]!.length, 2);
  runner.finishOne();
  const out = await p;
  assert.deepEqual(out.map((v) => v[0]), [1, 2, 3, 4, 5, 6]);
});

test('batches group texts of similar length; a long text does not pad short ones', async () => {
  const runner = new RecordingRunner();
  const stats: BatchStats[] = [];
  const b = new EmbeddingBatcher(runner, opts, (s) => stats.push(s));
  const p = b.embed([row(1, 4), row(2, 40), row(3, 5), row(4, 4)]);
  await tick();
  assert.deepEqual(runner.batches[0]!.map((r) => r[0]), [1, 3, 4]);
  runner.finishOne();
  await tick();
  await tick();
  assert.deepEqual(runner.batches[1]!.map((r) => r[0]), [2]);
  runner.finishOne();
  await p;
  assert.equal(stats[0]!.paddedTokens, 15);
  assert.equal(stats[0]!.realTokens, 13);
});

test('the padded-token budget caps a batch', async () => {
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, { ...opts, max_batch_size: 100, max_batch_tokens: 40 });
  const p = b.embed(Array.from({ length: 10 }, (_, i) => row(i + 1, 10)));
  await tick();
  assert.equal(runner.batches[0]!.length, 4, '4 rows x 10 tokens = 40');
  for (let i = 0; i < 3; i++) {
    runner.finishOne();
    await tick();
    await tick();
  }
  await p;
  assert.deepEqual(runner.batches.map((x) => x.length), [4, 4, 2]);
});

test('jobs that arrive while the model is busy are coalesced into the next batch', async () => {
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, opts);
  const first = b.embed([row(1, 5)]);
  await tick();
  const later = [b.embed([row(2, 5)]), b.embed([row(3, 5)]), b.embed([row(4, 5)])];
  await tick();
  assert.equal(runner.batches.length, 1, 'nothing runs while the only thread is busy');
  runner.finishOne();
  await first;
  await tick();
  assert.deepEqual(runner.batches[1]!.map((r) => r[0]), [2, 3, 4]);
  runner.finishOne();
  assert.deepEqual((await Promise.all(later)).map((v) => v[0]![0]), [2, 3, 4]);
});

test('an aborted job leaves the queue; other jobs are unaffected', async () => {
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, opts);
  const busy = b.embed([row(1, 5)]);
  await tick();
  const ac = new AbortController();
  const doomed = b.embed([row(2, 5), row(3, 5)], ac.signal);
  const kept = b.embed([row(4, 5)]);
  ac.abort(new Error('cancelled by test'));
  await assert.rejects(doomed, /cancelled by test/);
  assert.equal(b.queuedTexts, 1);
  runner.finishOne();
  await busy;
  await tick();
  assert.deepEqual(runner.batches[1]!.map((r) => r[0]), [4]);
  runner.finishOne();
  assert.equal((await kept)[0]![0], 4);
});

test('max_wait_ms holds a partial batch for company, never longer', async () => {
  // A wait long enough that a busy machine's late timers cannot make the second text miss it.
  const maxWaitMs = 500;
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, { ...opts, max_wait_ms: maxWaitMs });
  const started = performance.now();
  const p1 = b.embed([row(1, 5)]);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(runner.batches.length, 0);
  const p2 = b.embed([row(2, 5)]);
  // No third text comes: the partial batch still goes, once max_wait_ms has passed.
  while (runner.batches.length === 0 && performance.now() - started < 20 * maxWaitMs) await new Promise((r) => setTimeout(r, 10));
  assert.ok(performance.now() - started >= maxWaitMs - 1, 'it waited for company');
  assert.equal(runner.batches.length, 1);
  assert.equal(runner.batches[0]!.length, 2);
  runner.finishOne();
  await Promise.all([p1, p2]);
});

test('interactive texts leave before background ones (batch lines), and never share a run with them', async () => {
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, opts);
  // The model is busy with a background run when the rest arrives.
  const first = b.embed([row(1, 5)], undefined, 'background');
  await tick();
  assert.equal(runner.batches.length, 1);
  const background = b.embed([row(10, 5), row(11, 5), row(12, 5)], undefined, 'background');
  const interactive = b.embed([row(20, 5), row(21, 5)]);
  runner.finishOne();
  await tick();
  await tick();
  // Next run: only the two interactive texts, though the background ones waited longer and there was room for all.
  assert.deepEqual(runner.batches[1]!.map((r) => r[0]), [20, 21]);
  runner.finishOne();
  assert.deepEqual((await interactive).map((v) => v[0]), [20, 21]);
  // Interactive texts came a moment ago: background runs are a quarter of max_batch_size (4 / 4).
  for (let k = 0; k < 3; k++) {
    await tick();
    await tick();
    runner.finishOne();
  }
  assert.deepEqual(runner.batches.slice(2).map((batch) => batch.map((r) => r[0])), [[10], [11], [12]]);
  assert.deepEqual((await background).map((v) => v[0]), [10, 11, 12]);
  assert.deepEqual((await first).map((v) => v[0]), [1]);
});

test('background texts are packed from the oldest few, so their jobs finish in order rather than all at the end', async () => {
  const runner = new RecordingRunner();
  const b = new EmbeddingBatcher(runner, opts);
  const first = b.embed([row(1, 5)], undefined, 'background');
  await tick();
  // Behind the running text: 100 (5 tokens), 16 texts of 7 tokens (101–116), then 8 of 5 tokens (117–124).
  // Closest length alone would put 117–119 with 100; the window (4 batches' worth after the head) keeps to 101–116.
  const rows = [row(100, 5), ...Array.from({ length: 16 }, (_, i) => row(101 + i, 7)), ...Array.from({ length: 8 }, (_, i) => row(117 + i, 5))];
  const rest = b.embed(rows, undefined, 'background');
  for (let k = 0; k < 8; k++) {
    runner.finishOne();
    await tick();
    await tick();
  }
  assert.deepEqual(runner.batches[1]!.map((r) => r[0]), [100, 101, 102, 103]);
  assert.equal((await rest).length, 25);
  assert.equal((await first).length, 1);
  assert.ok(runner.batches.slice(1).every((batch) => batch.length === 4 || batch === runner.batches.at(-1)), 'full runs (no interactive text lately)');
});
