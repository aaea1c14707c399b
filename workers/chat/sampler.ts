import { randomInt } from 'node:crypto';

/**
 * Next-token choice from a row of logits, with Hugging Face `generate` semantics:
 *
 *   1. repetition_penalty (CTRL): every distinct id already in the sequence (prompt + completion)
 *      has its logit divided by the penalty when positive, multiplied by it when negative;
 *   2. temperature 0 → greedy (argmax, lowest id on ties); otherwise logits / temperature;
 *   3. top_k: keep the k highest logits (0 = off; ties at the k-th value are all kept);
 *   4. top_p: keep the smallest set of most likely tokens whose probability reaches top_p
 *      (the token that crosses the threshold is kept; at least one token always is);
 *   5. draw from what is left with the sequence's own PRNG.
 *
 * Each sampler owns a seeded generator (xoshiro128**), so one seed gives one text regardless of
 * what else runs in the same batch. Without a seed the state comes from crypto.randomInt.
 */

export interface SamplingParams {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** 0 or undefined = off. */
  topK?: number;
  /** 1 or undefined = off; must be in (0, 1]. */
  topP?: number;
  /** 1 or undefined = off; must be > 0. */
  repetitionPenalty?: number;
  /** Integer seed of this sequence's generator; random when left out. */
  seed?: number;
}

/** Throws a RangeError naming the first invalid parameter. */
export function validateSamplingParams(params: SamplingParams): void {
  const { temperature, topK, topP, repetitionPenalty, seed } = params;
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature >= 0)) {
    throw new RangeError(`temperature must be a number >= 0, got ${temperature}`);
  }
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) {
    throw new RangeError(`top_k must be an integer >= 0, got ${topK}`);
  }
  if (topP !== undefined && !(Number.isFinite(topP) && topP > 0 && topP <= 1)) {
    throw new RangeError(`top_p must be in (0, 1], got ${topP}`);
  }
  if (repetitionPenalty !== undefined && !(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) {
    throw new RangeError(`repetition_penalty must be a number > 0, got ${repetitionPenalty}`);
  }
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be an integer, got ${seed}`);
  }
}

/** xoshiro128** seeded through splitmix32; `next()` is uniform in [0, 1) with 53 random bits. */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // Both 32-bit halves of the (safe-integer) seed feed the state, so 1 and 2**32 + 1 differ.
    const high = Math.floor(seed / 4294967296) >>> 0;
    let x = (seed >>> 0) ^ Math.imul(high, 0x9e3779b9);
    const splitmix = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix() | 1; // never the all-zero state
  }

  /** Next 32 random bits. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  next(): number {
    return ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A seed for sequences that did not ask for one. */
export function randomSeed(): number {
  return randomInt(0, 2 ** 48 - 1);
}

/**
 * Logit gap below the best token beyond which top-p first ignores tokens (e^-12 ≈ 6e-6 of the
 * best one's probability); if the kept ones do not reach top_p the gap widens, so the result is
 * exact, and it rarely has to sort more than a few hundred candidates out of a 100k vocabulary.
 */
const TOP_P_FIRST_GAP = 12;

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  readonly seed: number;
  private readonly rng: Prng;
  private scratch = new Float64Array(0);

  constructor(params: SamplingParams = {}) {
    validateSamplingParams(params);
    this.temperature = params.temperature ?? 1;
    this.topK = params.topK ?? 0;
    this.topP = params.topP ?? 1;
    this.repetitionPenalty = params.repetitionPenalty ?? 1;
    this.seed = params.seed ?? randomSeed();
    this.rng = new Prng(this.seed);
  }

  get greedy(): boolean {
    return this.temperature === 0;
  }

  /**
   * Picks the next id. `logits` is not modified. `seen` holds the distinct ids of the sequence so
   * far (prompt + completion) for the repetition penalty.
   */
  sample(logits: Float32Array, seen?: Iterable<number>): number {
    const vocab = logits.length;
    if (this.scratch.length !== vocab) this.scratch = new Float64Array(vocab);
    const x = this.scratch;
    x.set(logits);

    if (this.repetitionPenalty !== 1 && seen !== undefined) {
      const penalty = this.repetitionPenalty;
      for (const id of seen) {
        if (id < 0 || id >= vocab) continue;
        const v = x[id]!;
        x[id] = v > 0 ? v / penalty : v * penalty;
      }
    }

    let best = 0;
    for (let i = 1; i < vocab; i++) if (x[i]! > x[best]!) best = i;
    if (this.temperature === 0) return best;

    const invT = 1 / this.temperature;
    const max = x[best]!;
    // Threshold below which logits are cut by top-k (−Infinity = keep all).
    let cut = -Infinity;
    if (this.topK > 0 && this.topK < vocab) cut = kthLargest(x, this.topK);

    // Unnormalised probabilities; cut tokens get 0.
    let sum = 0;
    for (let i = 0; i < vocab; i++) {
      const v = x[i]!;
      const p = v >= cut ? Math.exp((v - max) * invT) : 0;
      x[i] = p;
      sum += p;
    }

    if (this.topP < 1) sum = this.applyTopP(x, sum);

    let r = this.rng.next() * sum;
    let last = best;
    for (let i = 0; i < vocab; i++) {
      const p = x[i]!;
      if (p === 0) continue;
      r -= p;
      last = i;
      if (r < 0) return i;
    }
    return last; // rounding left r a hair above 0
  }

  /**
   * Zeroes every probability outside the nucleus and returns the nucleus's mass. `p` holds
   * unnormalised probabilities (the best token has 1) summing to `sum`.
   */
  private applyTopP(p: Float64Array, sum: number): number {
    const target = this.topP * sum;
    const vocab = p.length;
    let gap = TOP_P_FIRST_GAP;
    for (;;) {
      // Candidates: tokens within `gap` logits (after temperature) of the best one.
      const floor = Math.exp(-gap);
      const candidates: number[] = [];
      for (let i = 0; i < vocab; i++) if (p[i]! >= floor) candidates.push(i);
      candidates.sort((a, b) => p[b]! - p[a]! || a - b);
      let kept = 0;
      let mass = 0;
      while (kept < candidates.length && mass < target) mass += p[candidates[kept++]!]!;
      const exhausted = kept === candidates.length && mass < target;
      if (!exhausted || candidates.length === vocab || floor === 0) {
        const keep = new Set(candidates.slice(0, kept));
        for (let i = 0; i < vocab; i++) if (p[i] !== 0 && !keep.has(i)) p[i] = 0;
        return mass;
      }
      // Everything above the floor was not enough: widen the window (at the end: all tokens).
      gap = gap * 2 > 745 ? Infinity : gap * 2;
    }
  }
}

/** The k-th largest value of `x` (1-based), by quickselect on a copy. */
function kthLargest(x: Float64Array, k: number): number {
  const a = Float64Array.from(x);
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}
