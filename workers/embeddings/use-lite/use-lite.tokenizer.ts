import { readFile } from 'node:fs/promises';
import path from 'node:path';

import type { EmbeddingTokenizer } from '../embedding-model.js';

/** One vocabulary entry as stored in vocab.json: [piece, log-probability score]. */
type VocabEntry = [string, number];

/** Ids below this are reserved (unknown, <s>, </s>, extra ids) and never matched as pieces. */
const RESERVED_PIECES = 6;
/** Id the model uses for characters no piece covers. */
const UNKNOWN_ID = 0;
/** SentencePiece word-boundary marker, prefixed to the text and substituted for spaces. */
const WORD_BOUNDARY = '\u2581';
/** Code points are < 0x110000, so `node * CP_RANGE + codePoint` is a unique, exact edge key. */
const CP_RANGE = 0x110000;
/** With a token limit, how often (in code points) to check whether the first ids are settled. */
const EARLY_EXIT_INTERVAL = 1024;
/** With a token limit, texts longer than this many UTF-16 units per token are first tried on a prefix. */
const PREFIX_CHARS_PER_TOKEN = 32;

/**
 * Tokenizer of Universal Sentence Encoder Lite: SentencePiece unigram segmentation (Viterbi over
 * piece log-probabilities) over an 8,000-piece vocabulary.
 *
 * It reproduces, id for id, the segmentation the TF.js reference (`@energetic-ai/embeddings`) feeds
 * the model, including that implementation's quirks, because the model was used with those ids:
 * - a best score of exactly 0 counts as "not reached yet", so any later candidate replaces it
 *   (unknown characters score 0, as does the piece ":00");
 * - among equal scores the candidate with the later start wins (`>=`);
 * - an unknown character (no piece starts with it) becomes id 0 and runs of them collapse to one;
 * - the backtrack steps back by the piece's UTF-16 length while the lattice is indexed by code
 *   point (identical for every piece in this vocabulary, kept for exactness).
 * Texts are NFKC-normalised, prefixed with U+2581 and have ASCII spaces replaced by U+2581; the
 * result is truncated to the first `maxTokens` ids, as the model graph does.
 */
export class UseLiteTokenizer implements EmbeddingTokenizer {
  readonly maxTokens: number;

  /** Trie edges: key `node * CP_RANGE + codePoint` -> child node. Node 0 is the root. */
  private readonly edges = new Map<number, number>();
  /** Piece id ending at each trie node, or -1. */
  private nodePiece: Int32Array;
  private nodeCount = 1;
  private readonly scores: Float64Array;
  /** UTF-16 length of each piece (what the reference backtrack subtracts). */
  private readonly pieceLengths: Int32Array;
  /** Longest backtrack step (UTF-16 length of the longest piece). */
  private readonly maxStep: number;

  constructor(vocabulary: readonly (readonly [string, number])[], maxTokens = 128) {
    this.maxTokens = maxTokens;
    this.scores = new Float64Array(vocabulary.length);
    this.pieceLengths = new Int32Array(vocabulary.length);
    this.nodePiece = new Int32Array(1024).fill(-1);
    vocabulary.forEach(([piece, score], id) => {
      this.scores[id] = score;
      this.pieceLengths[id] = piece.length;
      // Later duplicates overwrite earlier ones, as in the reference trie.
      if (id >= RESERVED_PIECES) this.insert(piece, id);
    });
    this.maxStep = Math.max(1, ...this.pieceLengths);
  }

  static async load(modelDir: string, maxTokens = 128): Promise<UseLiteTokenizer> {
    const raw = await readFile(path.join(modelDir, 'vocab.json'), 'utf8');
    const vocabulary = JSON.parse(raw) as VocabEntry[];
    if (!Array.isArray(vocabulary) || vocabulary.length <= RESERVED_PIECES) {
      throw new Error(`use-lite: ${modelDir}/vocab.json is not a SentencePiece vocabulary`);
    }
    return new UseLiteTokenizer(vocabulary, maxTokens);
  }

  tokenize(texts: readonly string[]): number[][] {
    return texts.map((text) => this.encode(text, this.maxTokens));
  }

  /**
   * Segmentation of one text: all of it, or its first `limit` ids. With a limit, a long text is
   * only segmented as far as needed to know those ids exactly (see `settledPosition`), and a very
   * long one is first tried on a prefix cut before an ASCII space: NFKC never composes across
   * such a cut, so the prefix's symbols are exactly the start of the whole text's.
   */
  encode(text: string, limit = Number.POSITIVE_INFINITY): number[] {
    if (limit <= 0) return [];
    const prefixLength = PREFIX_CHARS_PER_TOKEN * limit;
    if (text.length > prefixLength) {
      const cut = text.indexOf(' ', prefixLength);
      if (cut > 0) {
        const ids = this.segment(text.slice(0, cut), limit, true);
        if (ids) return ids;
      }
    }
    return this.segment(text, limit, false)!;
  }

  /**
   * Viterbi segmentation. With `isPrefix`, `text` is only the start of the real text: returns
   * the first `limit` ids if they are already settled, otherwise null.
   */
  private segment(text: string, limit: number, isPrefix: boolean): number[] | null {
    const normalized = text.normalize('NFKC');
    if (normalized.length === 0) return isPrefix ? null : [];
    const symbols = toCodePoints(WORD_BOUNDARY + normalized.replaceAll(' ', WORD_BOUNDARY));
    const n = symbols.length;

    // best[i]: score of the best segmentation of symbols[0..i); words[i]: last piece of it.
    const best = new Float64Array(n + 1);
    const words = new Int32Array(n + 1);
    const { edges, nodePiece, scores } = this;
    let nextCheck = Number.isFinite(limit) ? EARLY_EXIT_INTERVAL : n;

    // Candidates are relaxed by ascending start; best[start] is final by then, and every end
    // position sees its candidates in the same order as the reference's lattice walk.
    for (let start = 0; start < n; start++) {
      if (start === nextCheck) {
        // words[0..start] are final here; stop once they alone fix the first `limit` ids.
        const settled = this.settledPosition(words, start);
        if (settled > 0) {
          const prefix = this.backtrack(words, settled);
          if (prefix.length >= limit) return prefix.slice(0, limit);
        }
        nextCheck += EARLY_EXIT_INTERVAL;
      }
      const base = best[start]!;
      let node = 0;
      let matched = false;
      for (let end = start; end < n; end++) {
        const next = edges.get(node * CP_RANGE + symbols[end]!);
        if (next === undefined) break;
        node = next;
        const id = nodePiece[node]!;
        if (id < 0) continue;
        matched = true;
        const score = scores[id]! + base;
        const current = best[end + 1]!;
        if (current === 0 || score >= current) {
          best[end + 1] = score;
          words[end + 1] = id;
        }
      }
      if (!matched) {
        // No piece starts here: one unknown symbol with score 0.
        const current = best[start + 1]!;
        if (current === 0 || base >= current) {
          best[start + 1] = base;
          words[start + 1] = UNKNOWN_ID;
        }
      }
    }

    if (isPrefix) {
      // The real text goes on, so even position n is only a frontier.
      const settled = this.settledPosition(words, n);
      const prefix = settled > 0 ? this.backtrack(words, settled) : [];
      return prefix.length >= limit ? prefix.slice(0, limit) : null;
    }
    const ids = this.backtrack(words, n);
    return ids.length > limit ? ids.slice(0, limit) : ids;
  }

  /**
   * Ids of the best path ending at `end`, in order, with runs of unknowns collapsed. The step
   * back is the piece's UTF-16 length, as in the reference.
   */
  private backtrack(words: Int32Array, end: number): number[] {
    const reversed: number[] = [];
    let previousUnknown = false;
    for (let pos = end; pos > 0; ) {
      const id = words[pos]!;
      if (!(previousUnknown && id === UNKNOWN_ID)) reversed.push(id);
      previousUnknown = id === UNKNOWN_ID;
      pos -= this.pieceLengths[id]!;
    }
    return reversed.reverse();
  }

  /**
   * A position every complete backtrack must pass through, given that words[0..frontier] are final;
   * 0 if none is known yet. The backtrack from the text's end steps back at most `maxStep`
   * positions at a time, so it lands somewhere in (frontier - maxStep, frontier]; backtracks from
   * all of those positions are followed until they meet. The path up to the meeting point is then
   * fixed whatever follows, and so are the ids it yields (collapsing unknowns only ever drops ids
   * after an unknown, never earlier ones).
   */
  private settledPosition(words: Int32Array, frontier: number): number {
    const heads: number[] = [];
    for (let pos = Math.max(1, frontier - this.maxStep + 1); pos <= frontier; pos++) heads.push(pos);
    while (heads.length > 1) {
      let top = 0;
      for (let i = 1; i < heads.length; i++) if (heads[i]! > heads[top]!) top = i;
      const stepped = heads[top]! - this.pieceLengths[words[heads[top]!]!]!;
      if (stepped <= 0) return 0;
      if (heads.includes(stepped)) heads.splice(top, 1);
      else heads[top] = stepped;
    }
    return heads[0] ?? 0;
  }

  private insert(piece: string, id: number): void {
    let node = 0;
    let any = false;
    for (const cp of toCodePoints(piece)) {
      const key = node * CP_RANGE + cp;
      let child = this.edges.get(key);
      if (child === undefined) {
        child = this.nodeCount++;
        if (child >= this.nodePiece.length) {
          const grown = new Int32Array(this.nodePiece.length * 2).fill(-1);
          grown.set(this.nodePiece);
          this.nodePiece = grown;
        }
        this.edges.set(key, child);
      }
      node = child;
      any = true;
    }
    if (any) this.nodePiece[node] = id;
  }
}

/** Code points of a string, as `for...of` yields them (lone surrogates stay single units). */
function toCodePoints(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        out.push((unit - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000);
        i++;
        continue;
      }
    }
    out.push(unit);
  }
  return out;
}
