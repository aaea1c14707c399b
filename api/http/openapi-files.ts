import { z } from 'zod';
import { FILE_PURPOSES, UPLOAD_PURPOSES } from '../../shared/files/file-store.js';
import type { DescribeOperation } from './openapi-operation.js';

/** The Files API in the OpenAPI document (called from openapi.ts). */
export function fileOperations(
  op: DescribeOperation,
  h: {
    json: (schema: z.ZodType, description: string) => object;
    errorsFor: (...statuses: number[]) => object;
  },
): void {
  const file = z
    .object({
      id: z.string().meta({ example: 'file-0b6f1c1e6b0e4c559a8e3f1f0d2f4a11' }),
      object: z.literal('file'),
      bytes: z.number().int(),
      created_at: z.number().int().meta({ description: 'Unix seconds' }),
      expires_at: z.number().int().optional().meta({ description: 'Unix seconds; absent: kept until deleted' }),
      filename: z.string(),
      purpose: z.enum(FILE_PURPOSES),
      status: z.literal('processed'),
    })
    .meta({ id: 'OpenAIFile' });
  const fileList = z
    .object({ object: z.literal('list'), data: z.array(file), first_id: z.string().nullable(), last_id: z.string().nullable(), has_more: z.boolean() })
    .meta({ id: 'ListFilesResponse' });
  const upload = z
    .object({
      file: z.string().meta({ format: 'binary', description: 'The file; for `purpose: batch` JSONL, one request per line' }),
      purpose: z.enum(UPLOAD_PURPOSES),
      'expires_after[anchor]': z.literal('created_at').optional(),
      'expires_after[seconds]': z.string().optional().meta({ description: '3600 to 2592000' }),
    })
    .meta({ id: 'CreateFileRequest' });
  const idParams = z.object({ file_id: z.string().meta({ param: { description: 'File id' } }) });

  op('POST /v1/files', {
    description:
      'Streams the upload into the data root (DOCUMENTS_DIR, shared by every replica): 413 past FILES_MAX_BYTES (200 MB) without reading the rest. ' +
      'A `batch` file is counted as it streams: 400 `too_many_lines` past BATCH_MAX_LINES (50,000), 400 `invalid_jsonl` when no line is JSON. ' +
      'Malformed single lines are reported per line by the batch that uses the file.',
    request: { body: { required: true, content: { 'multipart/form-data': { schema: upload } } } },
    responses: { 200: h.json(file, 'The stored file'), ...h.errorsFor(400, 401, 413, 415, 500, 503) },
  });
  op('GET /v1/files', {
    request: {
      query: z.object({
        purpose: z.string().optional(),
        limit: z.string().optional().meta({ description: '1 to 10000 (default 10000)' }),
        after: z.string().optional().meta({ description: 'A file id: the page starts after it' }),
        order: z.enum(['asc', 'desc']).optional().meta({ description: 'By creation time; default desc' }),
      }),
    },
    responses: { 200: h.json(fileList, "The tenant's files"), ...h.errorsFor(400, 401, 503) },
  });
  op('GET /v1/files/:file_id', { request: { params: idParams }, responses: { 200: h.json(file, 'The file'), ...h.errorsFor(401, 404, 503) } });
  op('GET /v1/files/:file_id/content', {
    request: { params: idParams },
    responses: { 200: { description: 'The bytes as uploaded (or, for batch_output, as written)', content: { 'application/octet-stream': { schema: z.string().meta({ format: 'binary' }) } } }, ...h.errorsFor(401, 404, 503) },
  });
  op('DELETE /v1/files/:file_id', {
    request: { params: idParams },
    responses: { 200: h.json(z.object({ id: z.string(), object: z.literal('file'), deleted: z.literal(true) }).meta({ id: 'DeleteFileResponse' }), 'Deleted'), ...h.errorsFor(401, 404, 503) },
  });
}
