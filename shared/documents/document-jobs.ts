import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import { metadataRecord } from '../api/ids.js';
import { attributeFilterSchema, rankingOptionsSchema } from './search-ranking.js';

/**
 * Job types of the document pipeline, merged into the job catalog (shared/jobs/job-catalog.ts).
 * An ingestion is a BullMQ flow: `document.ingest` (the job the client follows) waits for
 * `document.index`, which waits for `document.embed`, which waits for `document.chunk`, which waits
 * for `document.parse`. Each stage is its own job with its own retries; its output is a file in the
 * document's folder, so a retried or resumed stage starts from the last finished one.
 */
const stagePayload = z
  .object({
    document_id: z.string().uuid(),
    collection_id: z.string().uuid(),
    /** The embedding model (also what GET /v1/jobs/:id reports as the job's model). */
    model: z.string().min(1),
    /** The flow's parent job: progress of every stage is announced in its Socket.IO room. */
    ingest_job_id: z.string().min(1),
  })
  .strict();

const stageResult = z.object({ document_id: z.string(), stage: z.string() }).passthrough();

export const documentIngestResultSchema = z.object({
  document_id: z.string(),
  status: z.literal('ready'),
  pages: z.number().int(),
  chunks: z.number().int(),
});

export const searchFilterSchema = metadataRecord(z.union([z.string(), z.number(), z.boolean(), z.null()]));

export const documentSearchPayloadSchema = z
  .object({
    collection_id: z.string().uuid(),
    model: z.string().min(1),
    query: z.string().min(1).max(10_000),
    top_k: z.number().int().min(1).max(100),
    filter: searchFilterSchema.optional(),
    /** OpenAI-style comparison/compound filter on document metadata (the vector stores' `filters`). */
    attribute_filter: attributeFilterSchema.optional(),
    ef: z.number().int().min(1).max(5000).optional(),
    /** Ranker (hybrid when absent), weights and score threshold. */
    ranking_options: rankingOptionsSchema.optional(),
  })
  .strict();

export const searchHitSchema = z.object({
  score: z.number(),
  /** Cosine similarity of the chunk to the query (null in a lexical-only search). */
  vector_score: z.number().nullable(),
  /** BM25 score of the chunk for the query's terms (null when none of them is in it). */
  lexical_score: z.number().nullable(),
  text: z.string(),
  document_id: z.string(),
  chunk: z.number().int(),
  page: z.number().int(),
  char_start: z.number().int(),
  char_end: z.number().int(),
  metadata: z.record(z.string(), z.unknown()),
});

export const documentSearchResultSchema = z.object({
  object: z.literal('list'),
  data: z.array(searchHitSchema),
  model: z.string(),
  usage: z.object({ prompt_tokens: z.number().int() }),
});

/** Stage retries: parse and embed can fail for passing reasons (a worker dies, a model thread restarts). */
const stageDefaults = { attempts: 4, backoff: { type: 'exponential', delay: 500 } } satisfies JobsOptions;

/**
 * Each stage has a queue of its own, so each has its own concurrency and retries. Concurrency is
 * per worker process: parse jobs mostly wait for a parse process, so a worker holds several
 * (DOCUMENTS_PARSE_CONCURRENCY, at most DOCUMENTS_PARSE_TENANT_SLOTS of one tenant) and the
 * processes interleave their steps across tenants. A parse job that kills its worker is judged by
 * its crash marks (DOCUMENTS_POISON_CRASHES); BullMQ's own stalled limit must not fire first.
 */
const stage = { streams: false, stall: 'attempts', domain: 'documents' } as const;

export const documentJobCatalog = {
  'document.ingest': {
    payload: stagePayload,
    result: documentIngestResultSchema,
    defaults: { attempts: 2, backoff: { type: 'fixed', delay: 200 } } satisfies JobsOptions,
    ...stage,
    queue: { name: 'documents.ingest' },
    concurrency: 16,
  },
  'document.parse': {
    payload: stagePayload,
    result: stageResult,
    defaults: stageDefaults,
    ...stage,
    queue: { name: 'documents.parse' },
    stall: 'crash-marks',
    concurrency: { env: 'DOCUMENTS_PARSE_CONCURRENCY' },
  },
  'document.chunk': { payload: stagePayload, result: stageResult, defaults: stageDefaults, ...stage, queue: { name: 'documents.chunk' }, concurrency: 2 },
  'document.embed': { payload: stagePayload, result: stageResult, defaults: stageDefaults, ...stage, queue: { name: 'documents.embed' }, concurrency: 4 },
  'document.index': {
    payload: stagePayload,
    result: stageResult,
    defaults: { attempts: 6, backoff: { type: 'exponential', delay: 500 } } satisfies JobsOptions,
    ...stage,
    queue: { name: 'documents.index' },
    concurrency: 4,
  },
  'document.search': {
    payload: documentSearchPayloadSchema,
    result: documentSearchResultSchema,
    defaults: { attempts: 2, backoff: { type: 'fixed', delay: 100 } } satisfies JobsOptions,
    ...stage,
    queue: { name: 'documents.search', maxQueued: 10_000 },
    concurrency: 32,
  },
} as const;

export type DocumentJobType = keyof typeof documentJobCatalog;
export type DocumentStageType = Exclude<DocumentJobType, 'document.search'>;
