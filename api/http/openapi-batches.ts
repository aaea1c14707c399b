import { z } from 'zod';
import { BATCH_ENDPOINTS, BATCH_STATUSES } from '../../shared/batches/batch-store.js';
import { createBatchRequestSchema } from '../batches/batch-service.js';
import type { DescribeOperation } from './openapi-operation.js';

/** The Batch API in the OpenAPI document (called from openapi.ts). */
export function batchOperations(
  op: DescribeOperation,
  h: {
    json: (schema: z.ZodType, description: string) => object;
    errorsFor: (...statuses: number[]) => object;
  },
): void {
  const time = z.number().int().optional().meta({ description: 'Unix seconds; absent until it happens' });
  const batch = z
    .object({
      id: z.string().meta({ example: 'batch_0b6f1c1e6b0e4c559a8e3f1f0d2f4a11' }),
      object: z.literal('batch'),
      endpoint: z.enum(BATCH_ENDPOINTS),
      errors: z
        .object({ object: z.literal('list'), data: z.array(z.object({ code: z.string(), message: z.string(), param: z.string().nullable(), line: z.number().int().nullable() })) })
        .optional()
        .meta({ description: 'Why a batch failed at validation (duplicate custom_id, missing input file)' }),
      input_file_id: z.string(),
      completion_window: z.string(),
      status: z.enum(BATCH_STATUSES),
      output_file_id: z.string().optional().meta({ description: 'JSONL, one `{id, custom_id, response: {status_code, request_id, body}, error: null}` per successful line' }),
      error_file_id: z.string().optional().meta({ description: 'JSONL, one `{id, custom_id, response, error: {code, message}}` per failed line' }),
      created_at: z.number().int(),
      expires_at: z.number().int(),
      in_progress_at: time,
      finalizing_at: time,
      completed_at: time,
      failed_at: time,
      expired_at: time,
      cancelling_at: time,
      cancelled_at: time,
      request_counts: z.object({ total: z.number().int(), completed: z.number().int(), failed: z.number().int() }),
      usage: z
        .object({
          input_tokens: z.number().int(),
          input_tokens_details: z.object({ cached_tokens: z.number().int() }),
          output_tokens: z.number().int(),
          output_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
          total_tokens: z.number().int(),
        })
        .meta({ description: 'Tokens of the lines answered so far, each line counted once (embeddings: input tokens; chat: prompt and completion tokens)' }),
      metadata: z.record(z.string(), z.string()).nullable(),
    })
    .meta({ id: 'Batch' });
  const list = z
    .object({ object: z.literal('list'), data: z.array(batch), first_id: z.string().nullable(), last_id: z.string().nullable(), has_more: z.boolean() })
    .meta({ id: 'ListBatchesResponse' });
  const idParams = z.object({ batch_id: z.string().meta({ param: { description: 'Batch id' } }) });

  op('POST /v1/batches', {
    description:
      'Queues the validation of the input file: each line is checked as its endpoint checks a request (refused lines go to the error file), and a duplicate `custom_id` fails the batch. ' +
      'Lines then run as ordinary embedding and chat jobs at batch priority (interactive requests first, per-tenant fairness per job), BATCH_LINES_IN_FLIGHT at a time; consecutive embedding lines share a job of up to 64 texts. ' +
      '`completion_window` is "24h" (BATCH_COMPLETION_WINDOW_S): lines unanswered by then are written as `batch_expired` errors.',
    request: { body: { required: true, content: { 'application/json': { schema: createBatchRequestSchema.meta({ id: 'CreateBatchRequest' }) } } } },
    responses: { 200: h.json(batch, 'The batch, `validating`'), ...h.errorsFor(400, 401, 404, 429, 500, 503) },
  });
  op('GET /v1/batches', {
    request: { query: z.object({ limit: z.string().optional().meta({ description: '1 to 100 (default 20)' }), after: z.string().optional().meta({ description: 'A batch id: the page starts after it' }) }) },
    responses: { 200: h.json(list, "The tenant's batches, newest first"), ...h.errorsFor(400, 401, 503) },
  });
  op('GET /v1/batches/:batch_id', { request: { params: idParams }, responses: { 200: h.json(batch, 'The batch'), ...h.errorsFor(401, 404, 503) } });
  op('POST /v1/batches/:batch_id/cancel', {
    description: 'The batch becomes `cancelling`, then `cancelled` once its running lines have stopped, with the output of the lines that finished. 409 once it has finished.',
    request: { params: idParams },
    responses: { 200: h.json(batch, 'The batch, `cancelling` (or already `cancelled`)'), ...h.errorsFor(401, 404, 409, 503) },
  });
}
