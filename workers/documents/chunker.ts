import type { EmbeddingTokenizer } from '../embeddings/embedding-model.js';

export interface Chunk {
  index: number;
  page: number;
  /** Character offsets [start, end) in the page's extracted text. */
  start: number;
  end: number;
  text: string;
  tokens: number;
}

export interface ChunkOptions {
  /** Tokens of overlap between consecutive chunks of a page. */
  overlap: number;
}

/** Per-document chunking limits, in tokens. */
export interface ChunkLimits {
  maxTokens: number;
  overlap: number;
}

/**
 * Token-aware chunking with the embedding model's own tokenizer: every chunk fits the model's window
 * (128 tokens for USE-Lite, special tokens included), so nothing is silently truncated at embedding
 * time. Chunks never cross pages, consecutive chunks share `overlap` tokens, and a chunk prefers to
 * end at a sentence end in its last third. Word token counts are cached, and each chunk is checked
 * against the real tokenization of its text (pieces can merge across a space) and shrunk if needed.
 */
export class Chunker {
  private readonly specials: number;
  /** Text tokens the model takes before it truncates. */
  private readonly window: number;
  /** Tokens a chunk may have: one under the window, since a text the tokenizer cut to the window is indistinguishable from one that fills it. */
  readonly budget: number;
  private readonly cache = new Map<string, number>();

  constructor(
    private readonly tokenizer: EmbeddingTokenizer,
    private readonly opts: ChunkOptions,
  ) {
    this.specials = tokenizer.tokenize([''])[0]!.length;
    this.window = tokenizer.maxTokens - this.specials;
    this.budget = this.window - 1;
    if (this.budget < 8) throw new Error(`the tokenizer's window (${tokenizer.maxTokens}) is too small to chunk with`);
    if (opts.overlap >= this.budget / 2) throw new Error(`chunk overlap ${opts.overlap} must be under half of the ${this.budget}-token window`);
  }

  /** Tokens of a text; any text that reaches the window counts as `budget + 1` (too long). */
  count(text: string): number {
    const n = this.tokenizer.tokenize([text])[0]!.length - this.specials;
    return n >= this.window ? this.budget + 1 : n;
  }

  /**
   * `limits`: a document's own chunking (a vector store file's static `chunking_strategy`): chunks of
   * at most `maxTokens` (never more than the model's window takes) sharing `overlap` tokens.
   */
  chunk(pages: readonly { page: number; text: string }[], limits?: ChunkLimits): Chunk[] {
    const budget = Math.min(this.budget, limits?.maxTokens ?? this.budget);
    // Overlap stays under half a chunk so every step moves forward by at least half of one.
    const overlap = Math.min(limits?.overlap ?? this.opts.overlap, Math.floor((budget - 1) / 2));
    const out: Chunk[] = [];
    for (const { page, text } of pages) {
      for (const c of this.chunkPage(text, budget, overlap)) out.push({ ...c, page, index: out.length });
    }
    return out;
  }

  private wordTokens(word: string): number {
    let n = this.cache.get(word);
    if (n === undefined) {
      n = Math.max(1, this.count(word));
      if (this.cache.size < 200_000) this.cache.set(word, n);
    }
    return n;
  }

  private *chunkPage(text: string, budget: number, overlap: number): Generator<Omit<Chunk, 'page' | 'index'>> {
    const words = this.words(text);
    let i = 0;
    while (i < words.length) {
      // Greedy: as many words as the window takes.
      let j = i;
      let tokens = 0;
      while (j < words.length && tokens + words[j]!.tokens <= budget) tokens += words[j++]!.tokens;
      if (j === i) j = i + 1; // one oversized piece (already split to fit, so this is only a safety net)
      // Prefer ending at a sentence end in the last third, unless this is the page's end.
      if (j < words.length) {
        for (let k = j - 1; k > i + Math.floor((j - i) * 0.66); k--) {
          if (/[.!?:;][)"'\]]*$/.test(words[k]!.text)) {
            j = k + 1;
            break;
          }
        }
      }
      // The real tokenization may differ from the per-word sum: shrink until it fits.
      let start = words[i]!.start;
      let end = words[j - 1]!.end;
      let real = this.count(text.slice(start, end));
      while (real > budget && j - 1 > i) {
        j--;
        end = words[j - 1]!.end;
        real = this.count(text.slice(start, end));
      }
      yield { start, end, text: text.slice(start, end), tokens: real };
      if (j >= words.length) break;
      // Step back `overlap` tokens for the next chunk, but always move forward.
      let back = j;
      let overlapTokens = 0;
      while (back - 1 > i && overlapTokens + words[back - 1]!.tokens <= overlap) overlapTokens += words[--back]!.tokens;
      i = back;
      start = words[i]!.start;
    }
  }

  /** Whitespace-separated words with offsets; words too long for one chunk are cut into pieces that fit. */
  private words(text: string): { text: string; start: number; end: number; tokens: number }[] {
    const out: { text: string; start: number; end: number; tokens: number }[] = [];
    for (const m of text.matchAll(/\S+/g)) {
      const word = m[0];
      const tokens = this.wordTokens(word);
      if (tokens <= this.budget) {
        out.push({ text: word, start: m.index, end: m.index + word.length, tokens });
        continue;
      }
      // A "word" of hundreds of characters (a URL, base64, a table without spaces): cut by characters.
      let from = 0;
      while (from < word.length) {
        let len = Math.min(word.length - from, this.budget * 2);
        while (len > 1 && this.count(word.slice(from, from + len)) > this.budget) len = Math.floor(len * 0.7);
        const piece = word.slice(from, from + len);
        out.push({ text: piece, start: m.index + from, end: m.index + from + len, tokens: Math.max(1, this.count(piece)) });
        from += len;
      }
    }
    return out;
  }
}
