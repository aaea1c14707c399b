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
 * Tokens more than this many nats (after temperature) below the best one get probability 0:
 * e^-40 ≈ 4e-18 of the best token's, so even 100k of them weigh less than float32 rounding of
 * the logits themselves. Skipping them saves most of the work on peaked distributions.
 */
const LOG_PROB_FLOOR = -40;
/** Top-p buckets tokens by log-probability, 1/16 nat wide, and sorts only the boundary bucket. */
const BUCKETS_PER_NAT = 16;
const BUCKETS = -LOG_PROB_FLOOR * BUCKETS_PER_NAT + 1;

const LOG2E = 1.4426950408889634;
const LN2 = 0.6931471805599453;
/** 2^-k for k = 0 … 64 (enough for exponents down to LOG_PROB_FLOOR). */
const POW2_NEG = Float64Array.from({ length: 65 }, (_, k) => Math.pow(2, -k));

/**
 * e^z for LOG_PROB_FLOOR ≤ z ≤ 0, relative error < 1e-8: z = (f - k) ln 2 with k a whole number
 * and |f| ≤ 1/2, then 2^-k from a table times a degree-7 Taylor polynomial of e^(f ln 2). Pure
 * arithmetic, so the same on every platform (Math.exp is not specified to the last bit), and
 * about 3x faster than Math.exp in V8, which matters on a 50k–150k-token vocabulary.
 */
function expNonPositive(z: number): number {
  const t = z * LOG2E;
  const k = (0.5 - t) | 0; // round(-t), as t ≤ 0 (Math.round is slow in V8)
  const g = (t + k) * LN2;
  const poly = 1 + g * (1 + g * (1 / 2 + g * (1 / 6 + g * (1 / 24 + g * (1 / 120 + g * (1 / 720 + g / 5040))))));
  return POW2_NEG[k]! * poly;
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  readonly seed: number;
  private readonly rng: Prng;
  /** Per-token work space: penalised logits, then unnormalised probabilities. */
  private probs = new Float64Array(0);
  private buckets = new Int16Array(0);
  private readonly bucketMass = new Float64Array(BUCKETS);

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
    const penalise = this.repetitionPenalty !== 1 && seen !== undefined;
    if (this.temperature === 0 && !penalise) return argmax(logits);

    if (this.probs.length !== vocab) {
      this.probs = new Float64Array(vocab);
      this.buckets = new Int16Array(vocab);
    }
    const x = this.probs;
    x.set(logits);
    if (penalise) {
      const penalty = this.repetitionPenalty;
      for (const id of seen) {
        if (id < 0 || id >= vocab) continue;
        const v = x[id]!;
        x[id] = v > 0 ? v / penalty : v * penalty;
      }
    }
    const best = argmax(x);
    if (this.temperature === 0) return best;

    const invT = 1 / this.temperature;
    const max = x[best]!;
    // Logits below `cut` are removed by top-k (−Infinity = keep all).
    const cut = this.topK > 0 && this.topK < vocab ? kthLargest(x, this.topK) : -Infinity;
    const nucleus = this.topP < 1;
    const buckets = this.buckets;

    let sum = 0;
    for (let i = 0; i < vocab; i++) {
      const v = x[i]!;
      const z = (v - max) * invT;
      if (v < cut || z < LOG_PROB_FLOOR) {
        x[i] = 0;
        continue;
      }
      const p = expNonPositive(z);
      x[i] = p;
      sum += p;
      if (nucleus) buckets[i] = Math.floor(-z * BUCKETS_PER_NAT);
    }
    if (nucleus) sum = this.keepNucleus(x, sum);

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
   * Zeroes every probability outside the nucleus (the most likely tokens whose mass first
   * reaches top_p of `sum`) and returns the nucleus's mass. Whole log-probability buckets are
   * kept or dropped; only the bucket where the mass crosses top_p is sorted.
   */
  private keepNucleus(p: Float64Array, sum: number): number {
    const vocab = p.length;
    const buckets = this.buckets;
    const mass = this.bucketMass.fill(0);
    for (let i = 0; i < vocab; i++) if (p[i] !== 0) mass[buckets[i]!]! += p[i]!;

    const target = this.topP * sum;
    let before = 0;
    let boundary = -1;
    for (let b = 0; b < BUCKETS; b++) {
      if (before + mass[b]! >= target) {
        boundary = b;
        break;
      }
      before += mass[b]!;
    }
    if (boundary < 0) return sum; // rounding: top_p of everything is everything

    const members: number[] = [];
    for (let i = 0; i < vocab; i++) if (p[i] !== 0 && buckets[i] === boundary) members.push(i);
    members.sort((a, b) => p[b]! - p[a]! || a - b);
    let kept = before;
    let count = 0;
    while (count < members.length && kept < target) kept += p[members[count++]!]!;
    for (let k = count; k < members.length; k++) p[members[k]!] = 0;
    for (let i = 0; i < vocab; i++) if (p[i] !== 0 && buckets[i]! > boundary) p[i] = 0;
    return kept;
  }
}

function argmax(x: Float32Array | Float64Array): number {
  let best = 0;
  let max = x[0]!;
  for (let i = 1; i < x.length; i++) {
    if (x[i]! > max) {
      max = x[i]!;
      best = i;
    }
  }
  return best;
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
