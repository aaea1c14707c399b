import { z } from 'zod';
import type { DescribeOperation } from './openapi-operation.js';
import { searchRequestSchema } from '../../shared/documents/document-api.js';
import { documentSearchResultSchema } from '../../shared/documents/document-jobs.js';

/** The document and vector-search routes in the OpenAPI document (called from openapi.ts). */
export function documentOperations(
  op: DescribeOperation,
  h: {
    json: (schema: z.ZodType, description: string) => object;
    errorsFor: (...statuses: number[]) => object;
  },
): void {
  const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
  const document = z
    .object({
      id: z.string(),
      object: z.literal('document'),
      collection: z.string(),
      filename: z.string().meta({ description: "The client's file name (display only)" }),
      type: z.enum(['pdf', 'text', 'markdown', 'html', 'png', 'jpeg']).meta({ description: 'Detected from the content, not the name' }),
      mime: z.string(),
      bytes: z.number().int(),
      sha256: z.string(),
      metadata: z.record(z.string(), scalar),
      status: z.enum(['queued', 'processing', 'ready', 'failed']),
      stage: z.string().nullable().meta({ description: '`parse`, `chunk`, `embed`, `index`, then `done`' }),
      job_id: z.string().meta({ description: 'The ingestion job: follow it with GET /v1/jobs/{id} or a Socket.IO subscription' }),
      progress: z.object({
        pages_done: z.number().int(),
        pages_total: z.number().int().nullable(),
        chunks_done: z.number().int(),
        chunks_total: z.number().int().nullable(),
      }),
      chunks: z.number().int().meta({ description: 'Chunks in the collection index (searchable)' }),
      error: z.object({ message: z.string(), code: z.string() }).nullable(),
      created_at: z.number().int(),
      updated_at: z.number().int(),
    })
    .meta({ id: 'Document' });
  const collection = z.object({ object: z.literal('collection'), name: z.string(), documents: z.number().int(), created_at: z.number().int() }).meta({ id: 'Collection' });
  const idParams = z.object({ id: z.string().meta({ param: { description: 'Document id' } }) });
  const nameParams = z.object({ name: z.string().meta({ param: { description: 'Collection name' } }) });
  const upload = z
    .object({
      file: z.string().meta({ format: 'binary', description: 'PDF, plain text, Markdown, HTML, PNG or JPEG (detected from the bytes)' }),
      collection: z.string().meta({ description: 'Collection name, 1-64 characters of [A-Za-z0-9._-]; created on first use' }),
      metadata: z.string().optional().meta({ description: 'JSON object of scalars, returned with hits and usable in search filters' }),
    })
    .meta({ id: 'CreateDocumentRequest' });

  op('POST /v1/documents', {
    description:
      'Streams the upload to disk (413 past DOCUMENTS_MAX_BYTES, without reading the rest), detects its type from its content ' +
      '(422 `image_too_large` for an image whose header declares more than DOCUMENTS_MAX_IMAGE_PIXELS pixels), and queues ' +
      'the ingestion flow (parse → chunk → embed → index). The same content uploaded again into the same collection returns the first document (200).',
    request: { body: { required: true, content: { 'multipart/form-data': { schema: upload } } } },
    responses: {
      202: h.json(document, 'Stored; ingestion queued. `job_id` reports progress (`stage`, `pages_done/pages_total`, `chunks_done/chunks_total`).'),
      200: h.json(document, 'The same content is already in this collection: that document'),
      ...h.errorsFor(400, 401, 403, 413, 415, 422, 500, 503),
    },
  });
  op('GET /v1/documents/:id', {
    request: { params: idParams },
    responses: { 200: h.json(document, 'The document'), ...h.errorsFor(401, 404, 500, 503) },
  });
  op('DELETE /v1/documents/:id', {
    request: { params: idParams },
    responses: {
      200: h.json(z.object({ id: z.string(), object: z.literal('document'), deleted: z.literal(true) }), 'Deleted'),
      ...h.errorsFor(401, 404, 500, 503),
    },
  });
  op('GET /v1/collections', {
    responses: { 200: h.json(z.object({ object: z.literal('list'), data: z.array(collection) }), 'Collections'), ...h.errorsFor(401, 500, 503) },
  });
  op('DELETE /v1/collections/:name', {
    request: { params: nameParams },
    responses: {
      200: h.json(z.object({ object: z.literal('collection'), name: z.string(), deleted: z.literal(true) }), 'Deleted'),
      ...h.errorsFor(401, 404, 500, 503),
    },
  });
  op('GET /v1/collections/:name/documents', {
    request: { params: nameParams },
    responses: { 200: h.json(z.object({ object: z.literal('list'), data: z.array(document) }), 'Documents'), ...h.errorsFor(401, 404, 500, 503) },
  });
  op('POST /v1/collections/:name/search', {
    description:
      'Embeds the query with the documents’ model and searches the collection’s HNSW index (cosine). Hits carry score (cosine similarity), ' +
      'text, document id, page, character offsets in the page text and the document’s metadata; `filter` keeps hits whose metadata equals every given value.',
    request: { params: nameParams, body: { required: true, content: { 'application/json': { schema: searchRequestSchema.meta({ id: 'SearchRequest' }) } } } },
    responses: {
      200: h.json(documentSearchResultSchema.meta({ id: 'SearchResponse' }), 'Hits, best first'),
      ...h.errorsFor(400, 401, 404, 429, 500, 503, 504),
    },
  });
}
