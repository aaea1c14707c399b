import { z } from 'zod';

/**
 * How a collection search ranks and filters: the options the search route and the search job take,
 * shaped like OpenAI's `ranking_options` and `filters` so that the vector stores search route and
 * the `file_search` tool can pass theirs through unchanged.
 *
 * Rankers: `vector` (HNSW, cosine), `lexical` (BM25 over the same chunks), `hybrid` (both, fused by
 * reciprocal rank fusion). `auto` and OpenAI's `default-2024-11-15` mean hybrid; `none` (OpenAI's
 * "no re-ranking") also means hybrid, since fusion is the ranking itself and costs almost nothing.
 */
export const searchRankerSchema = z.enum(['auto', 'hybrid', 'vector', 'lexical', 'none', 'default-2024-11-15']);
export type SearchRanker = z.infer<typeof searchRankerSchema>;
export type SearchMode = 'hybrid' | 'vector' | 'lexical';

/** Reciprocal rank fusion's k (Cormack et al. 2009): larger flattens the advantage of the top ranks. */
export const DEFAULT_RRF_K = 60;

export const rankingOptionsSchema = z
  .object({
    ranker: searchRankerSchema.optional().meta({ description: '`hybrid` (default, also `auto`), `vector` or `lexical`.' }),
    score_threshold: z.number().min(0).max(1).optional().meta({
      description: 'Drop hits scoring below this. Scores are in [0, 1]: cosine similarity for `vector`, fused rank score for `hybrid` (1 = first in both lists), BM25 relative to the best hit for `lexical`.',
    }),
    hybrid_search: z
      .object({ embedding_weight: z.number().min(0).max(100), text_weight: z.number().min(0).max(100) })
      .strict()
      .refine((w) => w.embedding_weight + w.text_weight > 0, 'at least one weight must be positive')
      .optional()
      .meta({ description: 'Weights of the vector and the lexical ranking in the fusion (default 1 and 1).' }),
    rrf_k: z.number().int().min(1).max(1000).optional().meta({ description: `Reciprocal rank fusion constant (default ${DEFAULT_RRF_K}).` }),
  })
  .strict();
export type RankingOptions = z.infer<typeof rankingOptionsSchema>;

/** Ranking options with their defaults applied: what the index thread runs. */
export interface ResolvedRanking {
  mode: SearchMode;
  embeddingWeight: number;
  textWeight: number;
  rrfK: number;
  scoreThreshold: number;
}

export function resolveRanking(options: RankingOptions | undefined): ResolvedRanking {
  const ranker = options?.ranker ?? 'auto';
  const mode: SearchMode = ranker === 'vector' || ranker === 'lexical' ? ranker : 'hybrid';
  return {
    mode,
    embeddingWeight: options?.hybrid_search?.embedding_weight ?? 1,
    textWeight: options?.hybrid_search?.text_weight ?? 1,
    rrfK: options?.rrf_k ?? DEFAULT_RRF_K,
    scoreThreshold: options?.score_threshold ?? 0,
  };
}

/** OpenAI's attribute filters (ComparisonFilter / CompoundFilter), over a document's metadata. */
const scalar = z.union([z.string(), z.number(), z.boolean()]);
export const comparisonFilterSchema = z
  .object({
    type: z.enum(['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin']),
    key: z.string().min(1).max(64),
    value: z.union([scalar, z.array(z.union([z.string(), z.number()])).max(1000)]),
  })
  .strict();
export type ComparisonFilter = z.infer<typeof comparisonFilterSchema>;
export type CompoundFilter = { type: 'and' | 'or'; filters: AttributeFilter[] };
export type AttributeFilter = ComparisonFilter | CompoundFilter;

// Named, so that the OpenAPI generator refers to the recursive schema instead of unrolling it forever.
export const attributeFilterSchema: z.ZodType<AttributeFilter> = z
  .lazy(() => z.union([comparisonFilterSchema, z.object({ type: z.enum(['and', 'or']), filters: z.array(attributeFilterSchema).min(1).max(100) }).strict()]))
  .meta({ id: 'AttributeFilter' });

/** Whether a document's metadata passes an OpenAI attribute filter. A missing key fails every comparison but `ne` and `nin`. */
export function matchesAttributeFilter(meta: Record<string, unknown>, filter: AttributeFilter): boolean {
  if ('filters' in filter) return filter.type === 'and' ? filter.filters.every((f) => matchesAttributeFilter(meta, f)) : filter.filters.some((f) => matchesAttributeFilter(meta, f));
  // Own keys only: "__proto__" or "constructor" name no attribute of a document.
  const actual = Object.hasOwn(meta, filter.key) ? meta[filter.key] : undefined;
  const want = filter.value;
  switch (filter.type) {
    case 'eq':
      return actual === want;
    case 'ne':
      return actual !== want;
    case 'in':
      return Array.isArray(want) && (want as unknown[]).includes(actual);
    case 'nin':
      return !Array.isArray(want) || !(want as unknown[]).includes(actual);
    default: {
      // Ordering compares numbers with numbers and strings with strings, nothing across types.
      if (typeof actual !== typeof want || (typeof actual !== 'number' && typeof actual !== 'string')) return false;
      const a = actual as number | string;
      const b = want as number | string;
      return filter.type === 'gt' ? a > b : filter.type === 'gte' ? a >= b : filter.type === 'lt' ? a < b : a <= b;
    }
  }
}
