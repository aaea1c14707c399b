import { eng, removeStopwords } from 'stopword';

/**
 * `rewrite_query` of vector store search. OpenAI rewrites the query with a language model; this
 * service may have no trained one (the generated default is untrained), so the rewrite is
 * rule-based and predictable: the conversational frame of a request ("could you tell me",
 * "I'd like to know", "please") and English stop words are dropped; content words, numbers and
 * identifiers stay as written (`maxLength`, `v1.2`, `$PATH`), in their order. A query made only of
 * stop words is kept as it was, so a rewrite never searches for nothing.
 *
 * What it changes: the vector side embeds the question's content rather than its phrasing, and
 * the lexical side no longer matches chunks on "what", "the" or "of".
 */
const FRAMES: readonly RegExp[] = [
  /^(?:please\s+)?(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:tell|show|explain|find|give|list)(?:\s+me)?\s+/i,
  /^i(?:'d|’d|\s+would)\s+like\s+to\s+(?:know|learn|find\s+out|understand)\s+/i,
  /^i\s+(?:want|need)\s+to\s+(?:know|learn|find\s+out|understand)\s+/i,
  /^(?:do\s+you\s+know|tell\s+me|show\s+me|please)\s+/i,
];

/** Punctuation around a word that is not part of it: quotes, brackets, sentence marks. */
const EDGES = /^[^\p{L}\p{N}_$.\-/]+|[^\p{L}\p{N}_$]+$/gu;

export function rewriteQuery(query: string): string {
  let framed = query.trim();
  for (const frame of FRAMES) framed = framed.replace(frame, '');
  const words = framed
    .split(/\s+/)
    .map((w) => w.replace(EDGES, ''))
    .filter(Boolean);
  const content = removeStopwords(words, eng);
  return content.length ? content.join(' ') : query.trim();
}
