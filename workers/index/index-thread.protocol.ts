import type { AttributeFilter, ResolvedRanking } from '../../shared/documents/search-ranking.js';
import type { RankedHit } from './rank-fusion.js';

export type { RankedHit };

/** Messages between a worker process's main thread and its index thread (workers/index/index-thread.ts). */
export interface HnswParams {
  m: number;
  efConstruction: number;
}

export type IndexRequest =
  | { op: 'open'; cid: string; dims: number; params: HnswParams; dir: string }
  | {
      op: 'apply';
      cid: string;
      /** Log id of the last entry these changes come from. */
      seq: string;
      labels: number[];
      docs: string[];
      /** The chunk texts of `labels`, for the lexical index. */
      texts: string[];
      /** The file names of the documents of `labels`: the lexical index's title field. */
      titles: string[];
      /** labels.length vectors of `dims` floats, back to back. */
      vectors: Float32Array;
      deletes: number[];
      /** Metadata of the documents of `docs`, for search filters. */
      metadata: [string, Record<string, unknown>][];
    }
  | {
      op: 'search';
      cid: string;
      /** The embedded query; absent for a lexical-only search. */
      vector?: Float32Array;
      /** The query's text, for the lexical index. */
      text: string;
      k: number;
      ef: number;
      ranking: ResolvedRanking;
      /** Equality filters on document metadata (every key must match). */
      filter?: Record<string, unknown>;
      /** OpenAI-style comparison/compound filter on document metadata. */
      attributeFilter?: AttributeFilter;
    }
  | { op: 'snapshot'; cid: string; dir: string }
  | { op: 'drop'; cid: string; dir?: string }
  | { op: 'stats'; cid: string };

export type IndexReply =
  | { op: 'open'; seq: string; count: number; fromSnapshot: boolean }
  | { op: 'apply'; count: number }
  | { op: 'search'; hits: RankedHit[] }
  | { op: 'snapshot'; seq: string; count: number; ms: number; file: string }
  | { op: 'drop' }
  | { op: 'stats'; seq: string; count: number; lexicalCount: number; deleted: number; maxElements: number; open: boolean };

export type IndexMessage = { id: number; req: IndexRequest };
export type IndexResponse = { id: number; ok: true; reply: IndexReply } | { id: number; ok: false; message: string };
