import { z } from 'zod';

/**
 * How a collection search ranks and filters: the options the search route and the search job take,
 * shaped like OpenAI's `ranking_options` and `filters` so that the vector stores search route and
 * the `file_search` tool can pass theirs through unchanged.
 *
 * Rankers: `vector` (HNSW, cosine), `lexical` (BM25 over the same chunks), `hybrid` (both, fused).
 * `auto` and OpenAI's `default-2024-11-15` mean hybrid; `none` (OpenAI's "no re-ranking") also means
 * hybrid, since fusion is the ranking itself and costs almost nothing.
 *
 * Fusion (our extension, `fusion`): `convex` (default) adds the two min-max-normalised scores,
 * weighted; `rrf` is reciprocal rank fusion. OpenAI's `hybrid_search` weights weigh the two lists in
 * either. The defaults were chosen on the tuning half of bench/retrieval.bench.ts's questions (see
 * the README's "Retrieval quality"): with an embedding model much weaker than BM25 on technical
 * text, rank fusion lets middling vector ranks outvote a clear lexical first place, while a score
 * combination keeps BM25's margin and lets the vector only move near-ties.
 */
export const searchRankerSchema = z.enum(['auto', 'hybrid', 'vector', 'lexical', 'none', 'default-2024-11-15']);
export type SearchRanker = z.infer<typeof searchRankerSchema>;
export type SearchMode = 'hybrid' | 'vector' | 'lexical';
export const fusionMethodSchema = z.enum(['convex', 'rrf']);
export type FusionMethod = z.infer<typeof fusionMethodSchema>;
export const scoreNormalizationSchema = z.enum(['min_max', 'z_score']);
export type ScoreNormalization = z.infer<typeof scoreNormalizationSchema>;

/** Reciprocal rank fusion's k (Cormack et al. 2009): larger flattens the advantage of the top ranks. */
export const DEFAULT_RRF_K = 60;
export const DEFAULT_FUSION: FusionMethod = 'convex';
export const DEFAULT_NORMALIZATION: ScoreNormalization = 'min_max';
/**
 * Default weights per fusion. RRF keeps Cormack's equal weights. Convex gives BM25 nine times the
 * vector's weight: the best of the weights swept on the tuning half (1:1 to 1:19) with USE-Lite, whose
 * own first hit is right about one time in five, so the vector mostly reorders BM25's near-ties and
 * adds the chunks BM25 missed below those it found.
 */
export const DEFAULT_HYBRID_WEIGHTS: Record<FusionMethod, { embedding: number; text: number }> = {
  rrf: { embedding: 1, text: 1 },
  convex: { embedding: 1, text: 9 },
};

export const rankingOptionsSchema = z
  .object({
    ranker: searchRankerSchema.optional().meta({ description: '`hybrid` (default, also `auto`), `vector` or `lexical`.' }),
    score_threshold: z.number().min(0).max(1).optional().meta({
      description:
        'Drop hits scoring below this. Scores are in [0, 1]: cosine similarity for `vector`, BM25 relative to the best hit for `lexical`; for `hybrid`, the weighted mean of the normalised scores (`convex`) or the fused rank score (`rrf`), 1 meaning best in both lists.',
    }),
    hybrid_search: z
      .object({ embedding_weight: z.number().min(0).max(100), text_weight: z.number().min(0).max(100) })
      .strict()
      .refine((w) => w.embedding_weight + w.text_weight > 0, 'at least one weight must be positive')
      .optional()
      .meta({
        description: `Weights of the vector and the lexical ranking in the fusion (default ${DEFAULT_HYBRID_WEIGHTS.convex.embedding} and ${DEFAULT_HYBRID_WEIGHTS.convex.text} for \`convex\`, 1 and 1 for \`rrf\`).`,
      }),
    fusion: fusionMethodSchema.optional().meta({
      description: `How \`hybrid\` combines the two rankings: \`convex\` (default: weighted sum of normalised cosine and BM25 scores) or \`rrf\` (reciprocal rank fusion).`,
    }),
    normalization: scoreNormalizationSchema.optional().meta({
      description: 'How `convex` puts cosine and BM25 scores on one scale: `min_max` (default) or `z_score` (mapped through the normal distribution).',
    }),
    rrf_k: z.number().int().min(1).max(1000).optional().meta({ description: `Reciprocal rank fusion constant (default ${DEFAULT_RRF_K}).` }),
  })
  .strict();
export type RankingOptions = z.infer<typeof rankingOptionsSchema>;

/** Ranking options with their defaults applied: what the index thread runs. */
export interface ResolvedRanking {
  mode: SearchMode;
  fusion: FusionMethod;
  normalization: ScoreNormalization;
  embeddingWeight: number;
  textWeight: number;
  rrfK: number;
  scoreThreshold: number;
}

export function resolveRanking(options: RankingOptions | undefined): ResolvedRanking {
  const ranker = options?.ranker ?? 'auto';
  const mode: SearchMode = ranker === 'vector' || ranker === 'lexical' ? ranker : 'hybrid';
  // rrf_k alone names the fusion it belongs to, so a caller of the earlier RRF-only API keeps RRF.
  const fusion = options?.fusion ?? (options?.rrf_k !== undefined ? 'rrf' : DEFAULT_FUSION);
  const weights = DEFAULT_HYBRID_WEIGHTS[fusion];
  return {
    mode,
    fusion,
    normalization: options?.normalization ?? DEFAULT_NORMALIZATION,
    embeddingWeight: options?.hybrid_search?.embedding_weight ?? weights.embedding,
    textWeight: options?.hybrid_search?.text_weight ?? weights.text,
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
