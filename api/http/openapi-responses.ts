import { z } from 'zod';
import { createResponseRequestSchema, listInputItemsQuerySchema, retrieveResponseQuerySchema } from '../../shared/api/responses-schemas.js';
import type { DescribeOperation } from './openapi-operation.js';

type Json = (schema: z.ZodType, description: string) => object;
type ErrorsFor = (...statuses: number[]) => object;

/** The Responses API routes in the OpenAPI document (called from openapi.ts). */
export function responsesOperations(op: DescribeOperation, h: { json: Json; errorsFor: ErrorsFor }): void {
  const outputText = z.object({
    type: z.literal('output_text'),
    text: z.string(),
    annotations: z
      .array(z.object({ type: z.literal('file_citation'), file_id: z.string(), filename: z.string(), index: z.number().int().meta({ description: 'Where the `[n]` marker citing the file stands in `text`' }) }))
      .meta({ description: 'With the `file_search` tool: one `file_citation` per `[n]` marker of the text that names a search hit' }),
    logprobs: z.array(z.unknown()).meta({ description: "With `include: ['message.output_text.logprobs']` (or `top_logprobs`): each token's {token, logprob, bytes, top_logprobs}; else empty" }),
  });
  const message = z.object({
    id: z.string(),
    type: z.literal('message'),
    role: z.enum(['user', 'system', 'developer', 'assistant']),
    status: z.enum(['in_progress', 'completed', 'incomplete']),
    content: z.array(z.union([outputText, z.object({ type: z.literal('input_text'), text: z.string() })])),
  });
  const functionCall = z.object({
    id: z.string().meta({ example: 'fc_3f1c0e5b2a9d4c7e8f1a2b3c' }),
    type: z.literal('function_call'),
    call_id: z.string().meta({ description: 'What a `function_call_output` input item answers' }),
    name: z.string(),
    arguments: z.string().meta({ description: "A JSON text valid against the function's parameters (grammar-constrained)" }),
    status: z.enum(['in_progress', 'completed', 'incomplete']),
  });
  const fileSearchCall = z.object({
    id: z.string().meta({ example: 'fs_3f1c0e5b2a9d4c7e8f1a2b3c4d5e6f70' }),
    type: z.literal('file_search_call'),
    status: z.literal('completed').meta({ description: 'The search runs before the job is queued, so it has always ended' }),
    queries: z.array(z.string()).meta({ description: 'The last user message (queries are not rewritten)' }),
    results: z
      .array(z.object({ file_id: z.string(), filename: z.string(), score: z.number(), attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])), text: z.string() }))
      .nullable()
      .meta({ description: "With `include: ['file_search_call.results']`; null otherwise" }),
  });
  const usage = z.object({
    input_tokens: z.number().int(),
    input_tokens_details: z.object({ cached_tokens: z.number().int(), cache_write_tokens: z.number().int() }),
    output_tokens: z.number().int(),
    output_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
    total_tokens: z.number().int(),
  });
  const response = z
    .object({
      id: z.string().meta({ example: 'resp_0b6f1c1e6b0e4c559a8e3f1f0d2f4a11' }),
      object: z.literal('response'),
      created_at: z.number().int(),
      completed_at: z.number().int().nullable(),
      status: z.enum(['queued', 'in_progress', 'completed', 'incomplete', 'failed', 'cancelled']),
      background: z.boolean(),
      error: z.object({ code: z.string(), message: z.string() }).nullable(),
      incomplete_details: z.object({ reason: z.literal('max_output_tokens') }).nullable(),
      instructions: z.string().nullable(),
      max_output_tokens: z.number().int().nullable(),
      model: z.string().meta({ description: 'The model that answered: the requested one or its fallback' }),
      output: z.array(z.union([fileSearchCall, message, functionCall])),
      previous_response_id: z.string().nullable(),
      store: z.boolean(),
      temperature: z.number(),
      top_p: z.number(),
      usage: usage.optional().meta({ description: 'Once the job has answered' }),
      user: z.string().optional(),
      metadata: z.record(z.string(), z.string()),
    })
    .passthrough()
    .meta({ id: 'Response', description: "OpenAI's response object (the fields it always has are listed; tools, text and truncation take their defaults)." });
  const idParams = z.object({ id: z.string().meta({ param: { description: 'Response id (`resp_…`)' } }) });
  const events = z.string().meta({
    description:
      '`event: <type>` + `data: {…}` pairs: `response.created`, `response.in_progress`, `response.output_item.added`, `response.content_part.added`, ' +
      '`response.output_text.delta` (one per token of the job’s token stream), `response.output_text.done`, `response.content_part.done`, `response.output_item.done`, ' +
      'with the `file_search` tool first its call (output 0): `response.output_item.added`, `response.file_search_call.in_progress`, `.searching`, `.completed`, `response.output_item.done`, and `response.output_text.annotation.added` per citation before `response.output_text.done`; ' +
      'for each function call `response.output_item.added`, `response.function_call_arguments.delta`, `response.function_call_arguments.done`, `response.output_item.done`, ' +
      'then `response.completed`, `response.incomplete` or `response.failed` (also for a cancelled response, whose status says `cancelled`); each with `sequence_number`. ' +
      'A failure after the stream opened is an `error` event.',
  });

  op('POST /v1/responses', {
    description:
      'One chat job per response. `store` (default true) keeps it for RESPONSES_RETENTION_SECONDS, readable with GET and continued with `previous_response_id`. ' +
      '`background: true` queues the job and answers `queued` at once (poll with GET, cancel with POST …/cancel, stream with GET ?stream=true). ' +
      '`text.format` json_schema/json_object is enforced by grammar-constrained decoding; function `tools` with `tool_choice` (none, auto, required, a named function) answer `function_call` output items, sent back as `function_call` / `function_call_output` input items; ' +
      "`include: ['message.output_text.logprobs']` and `top_logprobs` put logprobs on the output text (not together with callable tools: 400 `unsupported_parameter`). " +
      "A `file_search` tool (`vector_store_ids`, `max_num_results`, `filters`, `ranking_options`; needs the `documents` scope too) searches the tenant's vector stores before the job: a `file_search_call` output item, then the answer (extractive for `untrained` models, else generated from the hits) with `file_citation` annotations; `include: ['file_search_call.results']` adds the hits. " +
      'Extensions: `top_k`, `repetition_penalty`, `seed`.',
    request: { body: { required: true, content: { 'application/json': { schema: createResponseRequestSchema.meta({ id: 'CreateResponseRequest' }) } } } },
    responses: {
      200: { description: 'The response, or (stream: true) its events', content: { 'application/json': { schema: response }, 'text/event-stream': { schema: events } } },
      ...h.errorsFor(400, 401, 404, 409, 413, 429, 500, 502, 503),
    },
  });
  op('GET /v1/responses/:id', {
    description:
      'A response that has not ended is read together with its job (`queued`, `in_progress`, then its end). With `stream=true` (background responses only), its events numbered above `starting_after`, live until it ends; the numbers are the same on every read, so a client resumes where it lost the stream.',
    request: { params: idParams, query: retrieveResponseQuerySchema },
    responses: { 200: { description: 'The response, or its events', content: { 'application/json': { schema: response }, 'text/event-stream': { schema: events } } }, ...h.errorsFor(400, 401, 404, 500, 503) },
  });
  op('DELETE /v1/responses/:id', {
    request: { params: idParams },
    responses: { 200: h.json(z.object({ id: z.string(), object: z.literal('response'), deleted: z.literal(true) }), 'Deleted'), ...h.errorsFor(401, 404, 500, 503) },
  });
  op('POST /v1/responses/:id/cancel', {
    description: 'Cancels the job of a background response (queued: removed; running: stopped in its worker). A response that has ended is answered as it is.',
    request: { params: idParams },
    responses: { 200: h.json(response, 'The response'), ...h.errorsFor(400, 401, 404, 500, 503) },
  });
  op('GET /v1/responses/:id/input_items', {
    description: "Every item the model saw besides `instructions`: the previous responses' input and output (with `previous_response_id`), then this request's input.",
    request: { params: idParams, query: listInputItemsQuerySchema },
    responses: {
      200: h.json(z.object({ object: z.literal('list'), data: z.array(z.union([message, functionCall, fileSearchCall])), first_id: z.string().nullable(), last_id: z.string().nullable(), has_more: z.boolean() }), 'A page of items'),
      ...h.errorsFor(400, 401, 404, 500, 503),
    },
  });
}
