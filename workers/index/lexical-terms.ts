/**
 * How text becomes terms for the lexical (BM25) index and for scoring sentences of extractive
 * answers. Made for technical text, where the rare exact words are the ones that matter:
 *
 * - An identifier stays whole *and* is split into its parts: `redis-server` gives `redis-server`,
 *   `redis` and `server`; `snake_case_name`, `config.json` and camelCase (`createApp` gives
 *   `createapp`, `create`, `app`) likewise; so the exact identifier matches best and its parts
 *   still match a question that spells them as words.
 * - Numbers and hex literals are kept as written (`0x1F` → `0x1f`, `128`, `3.14`, `v1.2`).
 * - Case is folded (`SIGTERM` matches `sigterm`); common English words are dropped; plural and
 *   a few verb endings are trimmed from plain words only, never from identifiers or numbers.
 * - Han, kana and hangul runs, which have no spaces, become overlapping character pairs.
 */

/** A token is letters/digits, possibly joined by `-`, `_`, `.`, `/` or `:` between them. */
const TOKEN = /[\p{L}\p{N}]+(?:[-_./:'][\p{L}\p{N}]+)*/gu;
const JOINERS = /[-_./:']/;
const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]+/gu;
/** A lower-case letter followed by a capital: `createApp`. Capital runs stay whole (`SIGTERMs`, `XMLnamespaces`), since acronyms are words of their own. */
const CAMEL_BOUNDARY = /(?<=\p{Ll})(?=\p{Lu})/u;

/** Splits text into raw tokens: whole identifiers, their parts, and CJK character pairs. */
export function tokenizeLexical(text: string): string[] {
  const out: string[] = [];
  for (const run of text.matchAll(CJK)) {
    const chars = [...run[0]];
    if (chars.length === 1) out.push(chars[0]!);
    for (let i = 0; i + 1 < chars.length; i++) out.push(chars[i]! + chars[i + 1]!);
  }
  for (const match of text.replace(CJK, ' ').matchAll(TOKEN)) {
    const token = match[0];
    // A possessive is its word ("server's" → "server"); other contractions ("don't") stay one word.
    if (/^\p{L}+'s$/iu.test(token)) {
      out.push(token.slice(0, -2));
      continue;
    }
    out.push(token);
    const parts = JOINERS.test(token) && !/^\p{L}+'\p{L}{1,2}$/u.test(token) ? token.split(/[-_./:']+/).filter(Boolean) : [token];
    for (const part of parts) {
      if (part !== token) out.push(part);
      if (CAMEL_BOUNDARY.test(part)) out.push(...part.split(CAMEL_BOUNDARY));
    }
  }
  return out;
}

const STOP_WORDS = new Set(
  (
    'a an and are as at be been but by can could did do does doing done for from had has have how i if in into is it its ' +
    'me my no not of on or our so such than that the their them then there these they this those to was we were what ' +
    'when where which who whom why will with would you your yours about after all also am any before being both each ' +
    'few he her here hers him his more most much must nor now off once only other own same she should some too under ' +
    'until up very us via over again against between during further s t'
  ).split(' '),
);

/** Normalises one raw token into its index term; null drops it. */
export function normalizeTerm(token: string): string | null {
  const term = token.toLowerCase();
  if (STOP_WORDS.has(term)) return null;
  // Identifiers, numbers and mixed tokens are matched exactly; only plain words are stemmed.
  if (!/^\p{L}+$/u.test(term) || /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u.test(term)) return term;
  return stem(term);
}

/** A light suffix trim (plurals, -ing, -ed) so "keys"/"key" and "rotating"/"rotate" meet; no dictionary. */
function stem(word: string): string {
  if (word.length <= 3) return word;
  if (word.endsWith('ies') && word.length > 4) return `${word.slice(0, -3)}y`;
  if (word.endsWith('sses')) return word.slice(0, -2);
  if (word.endsWith('ing') && word.length > 5) return trimDouble(word.slice(0, -3));
  if (word.endsWith('ed') && word.length > 4) return trimDouble(word.slice(0, -2));
  let w = word;
  if (/(?:ch|sh|x|z)es$/.test(w)) w = w.slice(0, -2);
  else if (w.endsWith('s') && !/(?:ss|us|is)$/.test(w)) w = w.slice(0, -1);
  // "rotate", "rotates", "rotated", "rotating" all become "rotat".
  if (w.endsWith('e') && w.length > 4) w = w.slice(0, -1);
  return w;
}

/** "stopped" → "stopp" → "stop", as "stop" itself. */
function trimDouble(stem: string): string {
  if (stem.length > 3 && stem.at(-1) === stem.at(-2) && !/[lsz]/.test(stem.at(-1)!)) return stem.slice(0, -1);
  return stem;
}

/** The terms of a text, in order, with repeats: what BM25 indexes and what sentence scoring compares. */
export function lexicalTerms(text: string): string[] {
  const out: string[] = [];
  for (const token of tokenizeLexical(text)) {
    const term = normalizeTerm(token);
    if (term) out.push(term);
  }
  return out;
}
