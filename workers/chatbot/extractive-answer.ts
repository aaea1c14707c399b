import { LexicalIndex } from '../index/lexical-index.js';

export interface ExtractiveAnswer {
  /** The chosen sentences with their citations, e.g. "Hold the power button for ten seconds. [1]". */
  text: string;
  /** Which source (0-based index into the sources given) each sentence came from, in the answer's order. */
  cited: number[];
}

export interface ExtractiveOptions {
  maxSentences?: number;
  maxChars?: number;
}

/** Sentences matching the question less than this fraction as well as the best one are left out: they only share a word with it. */
const MIN_RELATIVE_MATCH = 0.4;
/** How much a chunk's search rank adds to its sentences' scores: the first chunk's sentences get +RANK_WEIGHT, the second's half that, … */
const RANK_WEIGHT = 0.5;

/**
 * An answer made of the sources' own sentences, for when no model can write one (an untrained chat
 * model, or a bot that asks for extractive answers). Every sentence of the sources is scored by
 * BM25 against the question (the lexical index's terms: identifiers, numbers and stems), normalised
 * by the best sentence, plus a bonus for its chunk's search rank; the best few are kept (none that
 * matches less than MIN_RELATIVE_MATCH as well as the best), put back in
 * source order so they read as the document reads, and each source's run ends with its citation
 * [n] (n = its 1-based position in `sources`). When no sentence shares a term with the question the
 * first sentence of the best chunk stands in: the search ranked that chunk first for a reason.
 */
export function extractiveAnswer(question: string, sources: readonly { text: string }[], opts: ExtractiveOptions = {}): ExtractiveAnswer {
  const maxSentences = opts.maxSentences ?? 3;
  const maxChars = opts.maxChars ?? 700;
  const sentences: { source: number; position: number; text: string }[] = [];
  const seen = new Set<string>();
  sources.forEach((s, source) => {
    splitSentences(s.text).forEach((text, position) => {
      // Chunks overlap: the same sentence can come from two of them; it is cited from the better one.
      const key = text.toLowerCase().replace(/\W+/g, ' ');
      if (seen.has(key)) return;
      seen.add(key);
      sentences.push({ source, position, text });
    });
  });
  if (sentences.length === 0) return { text: '', cited: [] };

  const index = LexicalIndex.empty();
  sentences.forEach((s, i) => index.add(i, s.text));
  const matches = index.search(question, sentences.length);
  const best = matches[0]?.score ?? 0;
  const scored = matches
    .filter((m) => m.score >= best * MIN_RELATIVE_MATCH)
    .map((m) => ({ ...sentences[m.label]!, score: m.score / best + RANK_WEIGHT / (sentences[m.label]!.source + 1) }));
  scored.sort((a, b) => b.score - a.score);
  const chosen: typeof scored = [];
  let chars = 0;
  for (const s of scored) {
    if (chosen.length >= maxSentences) break;
    if (chosen.length > 0 && chars + s.text.length > maxChars) continue;
    chosen.push(s);
    chars += s.text.length;
  }
  if (chosen.length === 0) {
    const first = sentences[0]!;
    chosen.push({ ...first, score: 0, text: truncate(first.text, maxChars) });
  }
  chosen.sort((a, b) => a.source - b.source || a.position - b.position);

  const parts: string[] = [];
  const cited: number[] = [];
  chosen.forEach((s, i) => {
    const endOfRun = chosen[i + 1]?.source !== s.source;
    parts.push(endOfRun ? `${s.text} [${s.source + 1}]` : s.text);
    cited.push(s.source);
  });
  return { text: parts.join(' '), cited };
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'sentence' });

/**
 * Sentences of a chunk, whitespace tidied. A blank line ends a sentence (paragraphs, headings), and
 * so does a line break after sentence punctuation or after a short line (a heading, a list item);
 * other line breaks are wrapped lines (PDF text has one per printed line) and join with a space.
 */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    const blocks: string[] = [];
    let current = '';
    for (const line of paragraph.split('\n')) {
      const trimmed = line.trim();
      if (!trimmed) continue;
      current = current ? `${current} ${trimmed}` : trimmed;
      if (/[.!?:;。！？]$/.test(trimmed) || trimmed.length < 40) {
        blocks.push(current);
        current = '';
      }
    }
    if (current) blocks.push(current);
    for (const block of blocks) {
      for (const { segment } of segmenter.segment(block)) {
        const sentence = segment.replace(/\s+/g, ' ').trim();
        // A fragment without a letter or digit (a stray bullet, a rule) says nothing.
        if (/[\p{L}\p{N}]/u.test(sentence)) out.push(sentence);
      }
    }
  }
  return out;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}
