import MiniSearch from 'minisearch';
import { normalizeTerm, tokenizeLexical } from './lexical-terms.js';

/**
 * A collection's lexical index: BM25 (MiniSearch's BM25+) over chunk texts, keyed by the same labels
 * as the HNSW index. Exact terms only (no prefix or fuzzy matching): near-misses are what the vector
 * index already finds; this index is there for identifiers, numbers and rare words.
 *
 * Each chunk also has a title field, its document's file name: questions often name the document
 * ("under the Apache License", "in GPL-3") with words its chunks never repeat, and near-duplicate
 * documents (GPL-2 beside GPL-3) differ in little else. It counts half as much as the text: it
 * should tell documents apart, not outvote the passage that answers.
 */
const TITLE_BOOST = 0.5;
const OPTIONS = {
  fields: ['text', 'title'],
  idField: 'id',
  tokenize: (text: string) => tokenizeLexical(text),
  processTerm: (term: string) => normalizeTerm(term),
  searchOptions: { combineWith: 'OR' as const, prefix: false, fuzzy: false, boost: { title: TITLE_BOOST } },
};
type Chunk = { id: number; text: string; title: string };

export class LexicalIndex {
  private constructor(private readonly engine: MiniSearch<Chunk>) {}

  static empty(): LexicalIndex {
    return new LexicalIndex(new MiniSearch(OPTIONS));
  }

  /** Reads what `toJSON` wrote. */
  static fromJSON(json: string): LexicalIndex {
    return new LexicalIndex(MiniSearch.loadJSON(json, OPTIONS));
  }

  get size(): number {
    return this.engine.documentCount;
  }

  has(label: number): boolean {
    return this.engine.has(label);
  }

  add(label: number, text: string, title = ''): void {
    if (!this.engine.has(label)) this.engine.add({ id: label, text, title });
  }

  remove(label: number): void {
    // discard needs no copy of the text; MiniSearch vacuums the dropped terms in the background.
    if (this.engine.has(label)) this.engine.discard(label);
  }

  /** The best `limit` labels for the query, best first, with their BM25 scores. */
  search(query: string, limit: number, allow?: (label: number) => boolean): { label: number; score: number }[] {
    const hits = this.engine.search(query, allow ? { filter: (r) => allow(r.id as number) } : {});
    return hits.slice(0, limit).map((h) => ({ label: h.id as number, score: h.score }));
  }

  toJSON(): string {
    return JSON.stringify(this.engine);
  }
}
