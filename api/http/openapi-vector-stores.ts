import { z } from 'zod';
import {
  createFileBatchSchema,
  createVectorStoreFileSchema,
  createVectorStoreSchema,
  updateVectorStoreFileSchema,
  updateVectorStoreSchema,
  vectorStoreSearchSchema,
} from '../vector-stores/vector-store-service.js';
import type { DescribeOperation } from './openapi-operation.js';

/** The vector stores API in the OpenAPI document (called from openapi.ts); shapes are OpenAI's. */
export function vectorStoreOperations(
  op: DescribeOperation,
  h: {
    json: (schema: z.ZodType, description: string) => object;
    errorsFor: (...statuses: number[]) => object;
  },
): void {
  const fileCounts = z.object({ in_progress: z.number().int(), completed: z.number().int(), failed: z.number().int(), cancelled: z.number().int(), total: z.number().int() });
  const store = z
    .object({
      id: z.string().meta({ example: 'vs_0b6f1c1e6b0e4c559a8e3f1f0d2f4a11' }),
      object: z.literal('vector_store'),
      created_at: z.number().int(),
      name: z.string(),
      usage_bytes: z.number().int(),
      file_counts: fileCounts,
      status: z.enum(['expired', 'in_progress', 'completed']),
      expires_after: z.object({ anchor: z.literal('last_active_at'), days: z.number().int() }).optional(),
      expires_at: z.number().int().nullable(),
      last_active_at: z.number().int(),
      metadata: z.record(z.string(), z.string()),
    })
    .meta({ id: 'VectorStore', description: 'Its documents are the collection named by its id (GET /v1/collections/{id}/documents).' });
  const chunking = z.object({ type: z.literal('static'), static: z.object({ max_chunk_size_tokens: z.number().int(), chunk_overlap_tokens: z.number().int() }) });
  const file = z
    .object({
      id: z.string(),
      object: z.literal('vector_store.file'),
      usage_bytes: z.number().int(),
      created_at: z.number().int(),
      vector_store_id: z.string(),
      status: z.enum(['in_progress', 'completed', 'failed', 'cancelled']),
      last_error: z.object({ code: z.enum(['server_error', 'unsupported_file', 'invalid_file']), message: z.string() }).nullable(),
      chunking_strategy: chunking,
      attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    })
    .meta({ id: 'VectorStoreFile' });
  const batch = z
    .object({
      id: z.string(),
      object: z.literal('vector_store.files_batch'),
      created_at: z.number().int(),
      vector_store_id: z.string(),
      status: z.enum(['in_progress', 'completed', 'cancelled', 'failed']),
      file_counts: fileCounts,
    })
    .meta({ id: 'VectorStoreFileBatch' });
  const list = (item: z.ZodType, id: string) =>
    z.object({ object: z.literal('list'), data: z.array(item), first_id: z.string().nullable(), last_id: z.string().nullable(), has_more: z.boolean() }).meta({ id });
  const deleted = (object: string, id: string) => z.object({ id: z.string(), object: z.literal(object), deleted: z.literal(true) }).meta({ id });
  const content = z
    .object({ object: z.literal('vector_store.file_content.page'), data: z.array(z.object({ type: z.literal('text'), text: z.string() })), has_more: z.boolean(), next_page: z.string().nullable() })
    .meta({ id: 'VectorStoreFileContent' });
  const results = z
    .object({
      object: z.literal('vector_store.search_results.page'),
      search_query: z.array(z.string()),
      data: z.array(
        z.object({
          file_id: z.string(),
          filename: z.string(),
          score: z.number(),
          attributes: z.record(z.string(), z.unknown()),
          content: z.array(z.object({ type: z.literal('text'), text: z.string() })),
        }),
      ),
      has_more: z.boolean(),
      next_page: z.string().nullable(),
    })
    .meta({ id: 'VectorStoreSearchResults' });
  const listQuery = z.object({
    limit: z.string().optional().meta({ description: '1 to 100 (default 20)' }),
    order: z.enum(['asc', 'desc']).optional(),
    after: z.string().optional(),
    before: z.string().optional(),
  });
  const fileListQuery = listQuery.extend({ filter: z.enum(['in_progress', 'completed', 'failed', 'cancelled']).optional() });
  const vsParams = z.object({ vector_store_id: z.string() });
  const fileParams = vsParams.extend({ file_id: z.string() });
  const batchParams = vsParams.extend({ batch_id: z.string() });
  const body = (schema: z.ZodType) => ({ body: { required: true, content: { 'application/json': { schema } } } });
  const errs = h.errorsFor(400, 401, 404, 503);

  op('POST /v1/vector_stores', {
    description: 'Makes the store and attaches `file_ids` (Files API) as POST /v1/vector_stores/{id}/files does.',
    request: body(createVectorStoreSchema),
    responses: { 200: h.json(store, 'The vector store'), ...errs },
  });
  op('GET /v1/vector_stores', { request: { query: listQuery }, responses: { 200: h.json(list(store, 'VectorStoreList'), 'Vector stores'), ...errs } });
  op('GET /v1/vector_stores/:vector_store_id', { request: { params: vsParams }, responses: { 200: h.json(store, 'The vector store'), ...errs } });
  op('POST /v1/vector_stores/:vector_store_id', { request: { params: vsParams, ...body(updateVectorStoreSchema) }, responses: { 200: h.json(store, 'The vector store'), ...errs } });
  op('DELETE /v1/vector_stores/:vector_store_id', { request: { params: vsParams }, responses: { 200: h.json(deleted('vector_store.deleted', 'VectorStoreDeleted'), 'Deleted'), ...errs } });
  op('POST /v1/vector_stores/:vector_store_id/search', {
    description:
      'Ranks the store\'s chunks (hybrid vector + BM25 by default; `ranking_options.ranker` `vector` or `lexical` for one of them). A list `query` is searched as one text. ' +
      '`rewrite_query: true` rewrites each query by rule (the request frame and English stop words dropped) and `search_query` answers the rewritten queries.',
    request: { params: vsParams, ...body(vectorStoreSearchSchema) },
    responses: { 200: h.json(results, 'Hits, best first'), ...errs },
  });
  op('POST /v1/vector_stores/:vector_store_id/files', {
    description:
      "Ingests the file's bytes through the document pipeline (parse, chunk, embed, index) with `attributes` as the document's metadata. " +
      "A static `chunking_strategy` sets the chunk size and overlap, but chunks never exceed the embedding model's window (128 tokens for use-lite).",
    request: { params: vsParams, ...body(createVectorStoreFileSchema) },
    responses: { 200: h.json(file, 'The vector store file (in_progress)'), ...errs },
  });
  op('GET /v1/vector_stores/:vector_store_id/files', { request: { params: vsParams, query: fileListQuery }, responses: { 200: h.json(list(file, 'VectorStoreFileList'), 'Files'), ...errs } });
  op('GET /v1/vector_stores/:vector_store_id/files/:file_id', { request: { params: fileParams }, responses: { 200: h.json(file, 'The file'), ...errs } });
  op('POST /v1/vector_stores/:vector_store_id/files/:file_id', {
    description: 'Replaces the attributes; search filters see them at once.',
    request: { params: fileParams, ...body(updateVectorStoreFileSchema) },
    responses: { 200: h.json(file, 'The file'), ...errs },
  });
  op('DELETE /v1/vector_stores/:vector_store_id/files/:file_id', {
    description: 'Its chunks leave search at once; the Files API file stays.',
    request: { params: fileParams },
    responses: { 200: h.json(deleted('vector_store.file.deleted', 'VectorStoreFileDeleted'), 'Removed'), ...errs },
  });
  op('GET /v1/vector_stores/:vector_store_id/files/:file_id/content', { request: { params: fileParams }, responses: { 200: h.json(content, 'The text of its chunks, in order'), ...errs } });
  op('POST /v1/vector_stores/:vector_store_id/file_batches', { request: { params: vsParams, ...body(createFileBatchSchema) }, responses: { 200: h.json(batch, 'The batch'), ...errs } });
  op('GET /v1/vector_stores/:vector_store_id/file_batches/:batch_id', { request: { params: batchParams }, responses: { 200: h.json(batch, 'The batch'), ...errs } });
  op('POST /v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel', {
    description: 'Files still being ingested are cancelled (their documents deleted); finished ones stay.',
    request: { params: batchParams },
    responses: { 200: h.json(batch, 'The batch'), ...errs },
  });
  op('GET /v1/vector_stores/:vector_store_id/file_batches/:batch_id/files', { request: { params: batchParams, query: fileListQuery }, responses: { 200: h.json(list(file, 'VectorStoreFileBatchFileList'), 'Files'), ...errs } });
}
