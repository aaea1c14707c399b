import type { DocumentMetadata } from './documents.js';
import { z } from 'zod';
import { searchFilterSchema } from './document-jobs.js';
import { attributeFilterSchema, rankingOptionsSchema } from './search-ranking.js';

/** Request bodies of the document and search routes (validated by the routes, documented in OpenAPI). */
export const searchRequestSchema = z
  .object({
    query: z.string().min(1, 'must not be empty').max(10_000),
    top_k: z.number().int().min(1).max(100).default(10),
    filter: searchFilterSchema.optional().meta({ description: 'Equality filters on document metadata: every key must match.' }),
    filters: attributeFilterSchema.optional().meta({
      description: 'OpenAI-style attribute filter on document metadata: a comparison `{type: eq|ne|gt|gte|lt|lte|in|nin, key, value}` or a compound `{type: and|or, filters: [...]}`. Applies together with `filter`.',
    }),
    ef: z.number().int().min(1).max(5000).optional().meta({ description: 'HNSW search breadth (default HNSW_EF_SEARCH); higher is slower and more exact.' }),
    ranking_options: rankingOptionsSchema.optional().meta({
      description: 'How hits are ranked: `ranker` `hybrid` (default: vector and BM25 lexical rankings fused, by a weighted sum of normalised scores unless `fusion` is `rrf`), `vector` or `lexical`; `score_threshold`; fusion weights.',
    }),
  })
  .strict();
export type SearchRequest = z.infer<typeof searchRequestSchema>;

/** A document as GET /v1/documents/:id shows it, and as the typed client receives it. */
export interface DocumentView {
  id: string;
  object: 'document';
  collection: string;
  filename: string;
  type: string;
  mime: string;
  bytes: number;
  sha256: string;
  metadata: DocumentMetadata;
  status: 'queued' | 'processing' | 'ready' | 'failed';
  stage: string | null;
  job_id: string;
  progress: { pages_done: number; pages_total: number | null; chunks_done: number; chunks_total: number | null };
  chunks: number;
  error: { message: string; code: string } | null;
  created_at: number;
  updated_at: number;
}
