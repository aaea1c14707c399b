import type { AttributeFilter } from '../shared/documents/search-ranking.js';
import type { AttributeValue } from './inference-client.js';

/**
 * `key=value` pairs as the CLI (`--attr`, `--filter`) and the playground take them, turned into
 * vector store file attributes and `eq` filters. Values are read as OpenAI's attribute scalars:
 * `true`/`false` are booleans and plain decimals numbers, so `year=2024` set on a file matches the
 * filter `year=2024`; a value in double quotes stays a string (`code="007"`).
 */
export function parseAttributeValue(text: string): AttributeValue {
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) return text.slice(1, -1);
  if (text === 'true' || text === 'false') return text === 'true';
  if (/^-?\d+(\.\d+)?$/.test(text) && Number.isFinite(Number(text))) return Number(text);
  return text;
}

/** One `key=value` pair; a pair without `=` or without a key is refused with the pair in the message. */
export function parseAttributePair(pair: string): [string, AttributeValue] {
  const eq = pair.indexOf('=');
  const key = eq > 0 ? pair.slice(0, eq).trim() : '';
  if (!key) throw new Error(`"${pair}" is not key=value`);
  return [key, parseAttributeValue(pair.slice(eq + 1).trim())];
}

export function parseAttributes(pairs: readonly string[]): Record<string, AttributeValue> {
  return Object.fromEntries(pairs.map(parseAttributePair));
}

/** The `eq` filter of each pair, joined by `and` when there are several; undefined for none. */
export function eqFilter(pairs: readonly string[]): AttributeFilter | undefined {
  const filters = pairs.map((p): AttributeFilter => {
    const [key, value] = parseAttributePair(p);
    return { type: 'eq', key, value };
  });
  if (filters.length <= 1) return filters[0];
  return { type: 'and', filters };
}

/** Comma-separated pairs as typed in one text box ("kind=notes, year=2024"); blanks are skipped. */
export function splitPairs(text: string): string[] {
  return text.split(',').map((p) => p.trim()).filter(Boolean);
}
