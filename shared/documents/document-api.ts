import { z } from 'zod';
import { searchFilterSchema } from './document-jobs.js';

/** Request bodies of the document and search routes (validated by the routes, documented in OpenAPI). */
export const searchRequestSchema = z
  .object({
    query: z.string().min(1, 'must not be empty').max(10_000),
    top_k: z.number().int().min(1).max(100).default(10),
    filter: searchFilterSchema.optional().meta({ description: 'Equality filters on document metadata: every key must match.' }),
    ef: z.number().int().min(1).max(5000).optional().meta({ description: 'HNSW search breadth (default HNSW_EF_SEARCH); higher is slower and more exact.' }),
  })
  .strict();
export type SearchRequest = z.infer<typeof searchRequestSchema>;
