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
 * A grammar's bitmask (see `sample`) comes before all of them: a token it forbids has its logit set
 * to -Infinity, so no transform can bring it back and it is never drawn.
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
/** Above this top_k, selecting the k-th logit by heap costs more than by quickselect. */
const HEAP_TOP_K_LIMIT = 2048;

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

/**
 * Work space shared by every sampler of the thread: sampling is synchronous, one row at a time,
 * and one set of vocabulary-sized buffers stays in cache where one per sequence would not.
 */
const scratch = {
  logits: new Float64Array(0),
  probs: new Float64Array(0),
  buckets: new Int16Array(0),
  bucketMass: new Float64Array(BUCKETS),
  ensure(vocab: number): void {
    if (this.logits.length >= vocab) return;
    this.logits = new Float64Array(vocab);
    this.probs = new Float64Array(vocab);
    this.buckets = new Int16Array(vocab);
  },
};

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly repetitionPenalty: number;
  readonly seed: number;
  private readonly rng: Prng;

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
   * far (prompt + completion) for the repetition penalty. `allowed` is a grammar's bitmask (bit
   * id & 31 of word id >> 5 set = allowed); throws a RangeError if it allows nothing.
   */
  sample(logits: Float32Array, seen?: Iterable<number>, allowed?: Int32Array): number {
    const vocab = logits.length;
    const penalise = this.repetitionPenalty !== 1 && seen !== undefined;
    if (this.temperature === 0 && !penalise && allowed === undefined) return argmax32(logits);

    scratch.ensure(vocab);
    const x = scratch.logits.subarray(0, vocab);
    if (allowed === undefined) copyInto(x, logits);
    else if (copyMasked(x, logits, allowed) === 0) throw new RangeError('the grammar allows no next token');
    if (penalise) {
      const penalty = this.repetitionPenalty;
      for (const id of seen) {
        if (id < 0 || id >= vocab) continue;
        const v = x[id]!;
        x[id] = v > 0 ? v / penalty : v * penalty;
      }
    }
    const best = argmax64(x);
    if (this.temperature === 0) return best;
    const invT = 1 / this.temperature;
    const max = x[best]!;

    if (this.topK > 0 && this.topK < vocab) return this.sampleTopK(x, max, invT);

    const p = scratch.probs.subarray(0, vocab);
    if (this.topP >= 1) return draw(p, this.rng.next() * exponentiate(x, p, max, invT), best);

    const buckets = scratch.buckets.subarray(0, vocab);
    const mass = scratch.bucketMass.fill(0);
    const sum = exponentiateBucketed(x, p, max, invT, buckets, mass);
    // The nucleus: whole buckets from the top while their mass stays under top_p, then the
    // boundary bucket's tokens in order until the mass reaches it.
    const target = this.topP * sum;
    let before = 0;
    let boundary = BUCKETS - 1;
    for (let b = 0; b < BUCKETS; b++) {
      if (before + mass[b]! >= target) {
        boundary = b;
        break;
      }
      before += mass[b]!;
    }
    const members: number[] = [];
    for (let i = 0; i < vocab; i++) if (buckets[i] === boundary && p[i] !== 0) members.push(i);
    members.sort((a, b) => p[b]! - p[a]! || a - b);
    let kept = before;
    let count = 0;
    while (count < members.length && kept < target) kept += p[members[count++]!]!;
    for (let k = count; k < members.length; k++) p[members[k]!] = 0;
    return drawBelow(p, buckets, boundary, this.rng.next() * kept, best);
  }

  /** top_k (then top_p) on the k best tokens only: no pass over the vocabulary but the selection. */
  private sampleTopK(x: Float64Array, max: number, invT: number): number {
    const ids = topKIndices(x, this.topK);
    // Best first, lowest id on ties (the order HF's sort gives, and the order top_p needs).
    ids.sort((a, b) => x[b]! - x[a]! || a - b);
    const probs = ids.map((id) => ((x[id]! - max) * invT < LOG_PROB_FLOOR ? 0 : expNonPositive((x[id]! - max) * invT)));
    let total = 0;
    for (const q of probs) total += q;
    let n = probs.length;
    if (this.topP < 1) {
      const target = this.topP * total;
      let mass = 0;
      n = 0;
      while (n < probs.length && mass < target) mass += probs[n++]!;
      total = mass;
    }
    let r = this.rng.next() * total;
    for (let i = 0; i < n; i++) {
      r -= probs[i]!;
      if (r < 0) return ids[i]!;
    }
    return ids[0]!;
  }
}

/** Float32 → Float64 copy. A plain loop: TypedArray.set between element types is slow in V8. */
function copyInto(target: Float64Array, source: Float32Array): void {
  for (let i = 0; i < source.length; i++) target[i] = source[i]!;
}

/**
 * Float32 → Float64 copy that writes -Infinity where the bitmask's bit is 0; returns how many
 * tokens are allowed. Whole words (32 tokens) at a time: grammars allow all or nothing of most.
 */
function copyMasked(target: Float64Array, source: Float32Array, allowed: Int32Array): number {
  const vocab = source.length;
  let count = 0;
  for (let w = 0, base = 0; base < vocab; w++, base += 32) {
    const bits = allowed[w] ?? 0;
    const end = Math.min(base + 32, vocab);
    if (bits === -1) {
      for (let i = base; i < end; i++) target[i] = source[i]!;
      count += end - base;
    } else if (bits === 0) {
      for (let i = base; i < end; i++) target[i] = -Infinity;
    } else {
      for (let i = base; i < end; i++) {
        if ((bits >>> (i - base)) & 1) {
          target[i] = source[i]!;
          count++;
        } else {
          target[i] = -Infinity;
        }
      }
    }
  }
  return count;
}

/** Whether a grammar bitmask allows `id`. */
export function isAllowed(allowed: Int32Array, id: number): boolean {
  return ((allowed[id >> 5]! >>> (id & 31)) & 1) === 1;
}

/** One token's log-probability. */
export interface IdLogprob {
  id: number;
  logprob: number;
}

/**
 * Log-probabilities for OpenAI's `logprobs` / `top_logprobs`: the chosen token's, and the `top`
 * (0-20) most likely tokens', best first (lowest id on ties).
 *
 * Of which distribution: the model's own, i.e. log-softmax of the raw logits at temperature 1,
 * BEFORE the repetition penalty, temperature, top-k and top-p. OpenAI documents logprobs as "the
 * log probability of this token" (and its values do not move with `temperature`), and vLLM's
 * default (logprobs_mode "raw_logprobs") is the same. A grammar's bitmask IS applied: a token the
 * grammar forbids could not be produced, so it has probability 0 and is never listed (vLLM also
 * masks before computing them). So with a grammar the distribution is renormalised over the
 * allowed tokens; `top` never exceeds the number of allowed tokens.
 */
export function computeLogprobs(logits: Float32Array, chosen: number, top: number, allowed?: Int32Array): { logprob: number; top: IdLogprob[] } {
  const vocab = logits.length;
  const ok = (i: number): boolean => allowed === undefined || isAllowed(allowed, i);
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (logits[i]! > max && ok(i)) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < vocab; i++) {
    const z = logits[i]! - max;
    // Terms under e^-40 do not change a float64 sum of at least 1 (the best token's).
    if (z >= LOG_PROB_FLOOR && ok(i)) sum += expNonPositive(z);
  }
  const logZ = max + Math.log(sum);
  const best: IdLogprob[] = [];
  if (top > 0) {
    // Insertion into a sorted list of at most `top` (≤ 20): cheaper than sorting the vocabulary.
    for (let i = 0; i < vocab; i++) {
      const v = logits[i]!;
      if (best.length === top && v <= best[top - 1]!.logprob) continue;
      if (!ok(i)) continue;
      let at = best.length;
      while (at > 0 && best[at - 1]!.logprob < v) at--;
      best.splice(at, 0, { id: i, logprob: v });
      if (best.length > top) best.pop();
    }
    for (const entry of best) entry.logprob -= logZ;
  }
  return { logprob: logits[chosen]! - logZ, top: best };
}

/**
 * Unnormalised probabilities (best token 1, tokens under LOG_PROB_FLOOR 0) into `p`; returns
 * their sum. Small and separate so that V8 inlines expNonPositive into the loop.
 */
function exponentiate(x: Float64Array, p: Float64Array, max: number, invT: number): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const z = (x[i]! - max) * invT;
    const q = z < LOG_PROB_FLOOR ? 0 : expNonPositive(z);
    p[i] = q;
    sum += q;
  }
  return sum;
}

/** exponentiate, also recording each token's log-probability bucket and each bucket's mass. */
function exponentiateBucketed(
  x: Float64Array,
  p: Float64Array,
  max: number,
  invT: number,
  buckets: Int16Array,
  mass: Float64Array,
): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const z = (x[i]! - max) * invT;
    if (z < LOG_PROB_FLOOR) {
      p[i] = 0;
      buckets[i] = BUCKETS - 1;
      continue;
    }
    const q = expNonPositive(z);
    const b = (-z * BUCKETS_PER_NAT) | 0; // floor, as -z ≥ 0
    p[i] = q;
    buckets[i] = b;
    mass[b]! += q;
    sum += q;
  }
  return sum;
}

/** The token where the running sum of `p` passes `r` (r uniform in [0, sum of p)). */
function draw(p: Float64Array, r: number, fallback: number): number {
  for (let i = 0; i < p.length; i++) {
    r -= p[i]!;
    if (r < 0) return i;
  }
  // Rounding left r a hair above 0: the last token with any probability.
  for (let i = p.length - 1; i >= 0; i--) if (p[i]! > 0) return i;
  return fallback;
}

/** `draw` over the tokens whose bucket is at most `boundary` (branch-free on the bucket test). */
function drawBelow(p: Float64Array, buckets: Int16Array, boundary: number, r: number, fallback: number): number {
  for (let i = 0; i < p.length; i++) {
    r -= p[i]! * +(buckets[i]! <= boundary);
    if (r < 0) return i;
  }
  for (let i = p.length - 1; i >= 0; i--) if (p[i]! > 0 && buckets[i]! <= boundary) return i;
  return fallback;
}

/** Index of the largest value, lowest index on ties (one function per array type keeps V8 monomorphic). */
function argmax32(x: Float32Array): number {
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

function argmax64(x: Float64Array): number {
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

/**
 * Ids of the k largest values, plus any tied with the k-th (HF keeps ties: it removes only
 * values strictly below the k-th largest). Unordered.
 */
function topKIndices(x: Float64Array, k: number): number[] {
  const cut = kthLargest(x, k);
  const ids: number[] = [];
  for (let i = 0; i < x.length; i++) if (x[i]! >= cut) ids.push(i);
  return ids;
}

/** The k-th largest value of `x` (1-based): a k-element min-heap for small k, else quickselect. */
function kthLargest(x: Float64Array, k: number): number {
  if (k <= HEAP_TOP_K_LIMIT) {
    const heap = new Float64Array(k);
    for (let i = 0; i < k; i++) heap[i] = x[i]!;
    for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(heap, i, k);
    for (let i = k; i < x.length; i++) {
      const v = x[i]!;
      if (v > heap[0]!) {
        heap[0] = v;
        siftDown(heap, 0, k);
      }
    }
    return heap[0]!;
  }
  const a = Float64Array.from(x);
  const target = k - 1; // index in descending order
  let lo = 0;
  let hi = a.length - 1;
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

/** Min-heap sift-down of heap[i] within heap[0, size). */
function siftDown(heap: Float64Array, i: number, size: number): void {
  const v = heap[i]!;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap[child + 1]! < heap[child]!) child++;
    if (heap[child]! >= v) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = v;
}
