import { z } from 'zod';
import { MAX_TOOLS, functionName } from '../chat/chat-options.js';
import { fileSearchToolSchema } from '../documents/file-search.js';

/**
 * POST /v1/responses, OpenAI's Responses API, as the official clients send it (the `openai`
 * package, the AI SDK's default provider). A file of its own beside request-schemas.ts: the
 * Responses contract grows with the chat features it maps onto (structured outputs, tools,
 * logprobs), and shared/responses/responses-request.ts is the one place that translates it into a
 * chat job. Fields accepted here that the chat job cannot honour are refused there with
 * `unsupported_parameter`, never silently ignored.
 */

const text = z.string();

/** Text the caller sends (`input_text`) or a previous answer it sends back (`output_text`). */
const contentPart = z.discriminatedUnion('type', [
  z.object({ type: z.literal('input_text'), text }).strict(),
  z
    .object({
      type: z.literal('output_text'),
      text,
      annotations: z.array(z.unknown()).optional(),
      logprobs: z.array(z.unknown()).optional(),
    })
    .strict(),
]);

/** A message item: EasyInputMessage (no type, content a string) or a full message item. */
export const responseMessageItemSchema = z
  .object({
    type: z.literal('message').optional(),
    id: z.string().optional(),
    status: z.enum(['in_progress', 'completed', 'incomplete']).optional(),
    role: z.enum(['user', 'system', 'developer', 'assistant'], { message: "must be one of 'user', 'system', 'developer', 'assistant'" }),
    content: z.union([text, z.array(contentPart).min(1, 'must contain at least one part')]),
  })
  .strict();

/** Text parts of a function's output (OpenAI also allows images and files, which a text model cannot read). */
const functionOutputPart = z
  .object({ type: z.literal('input_text', { message: "only 'input_text' parts are supported in a function's output" }), text })
  .strict();

/** A function's result sent back into the conversation: a `tool` message of the chat job. */
const functionCallOutputItem = z
  .object({
    type: z.literal('function_call_output'),
    id: z.string().nullable().optional(),
    call_id: z.string().min(1).max(64),
    output: z.union([text, z.array(functionOutputPart)]),
    status: z.enum(['in_progress', 'completed', 'incomplete']).nullable().optional(),
  })
  .strict();

/** A function call the model made earlier, sent back with its output: an assistant tool call of the chat job. */
const functionCallItem = z
  .object({
    type: z.literal('function_call'),
    id: z.string().optional(),
    call_id: z.string().min(1),
    name: z.string().min(1),
    arguments: z.string(),
    status: z.enum(['in_progress', 'completed', 'incomplete']).optional(),
  })
  .strict();

const inputItem = z.union([responseMessageItemSchema, functionCallOutputItem, functionCallItem], {
  message: "each input item must be a message ({role, content}), a 'function_call' or a 'function_call_output'",
});

/** Responses' flat function tool (chat completions nest the same fields under `function`). */
const functionTool = z
  .object({
    type: z.literal('function'),
    name: functionName,
    description: z.string().nullable().optional(),
    parameters: z.record(z.string(), z.unknown()).nullable().optional(),
    strict: z.boolean().nullable().optional(),
  })
  .strict();

const textFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z
    .object({
      type: z.literal('json_schema'),
      name: functionName,
      schema: z.record(z.string(), z.unknown()),
      description: z.string().optional(),
      strict: z.boolean().nullable().optional(),
    })
    .strict(),
]);

/** Up to 16 pairs; keys up to 64 characters, values up to 512 (OpenAI's limits). */
const metadata = z
  .record(z.string().max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, 'must have at most 16 keys');

export const createResponseRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    input: z.union([text.min(1, 'must not be empty'), z.array(inputItem).min(1, 'must contain at least one item')]),
    instructions: z.string().nullable().optional(),
    previous_response_id: z.string().min(1).nullable().optional(),
    max_output_tokens: z.number().int().positive().nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().gt(0).max(1).nullable().optional(),
    metadata: metadata.nullable().optional(),
    store: z.boolean().nullable().optional(),
    stream: z.boolean().nullable().optional(),
    background: z.boolean().nullable().optional(),
    user: z.string().max(256).optional(),
    safety_identifier: z.string().max(64).nullable().optional(),
    prompt_cache_key: z.string().nullable().optional(),
    service_tier: z.enum(['auto', 'default', 'flex', 'scale', 'priority']).nullable().optional(),
    truncation: z.enum(['auto', 'disabled']).nullable().optional(),
    parallel_tool_calls: z.boolean().nullable().optional(),
    text: z.object({ format: textFormat.optional(), verbosity: z.enum(['low', 'medium', 'high']).nullable().optional() }).strict().nullable().optional(),
    /** Function tools, and at most one `file_search` tool (run by the service before the model answers). */
    tools: z
      .array(z.discriminatedUnion('type', [functionTool, fileSearchToolSchema]))
      .max(MAX_TOOLS)
      .refine((tools) => tools.filter((t) => t.type === 'file_search').length <= 1, "must contain at most one 'file_search' tool")
      .optional(),
    tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: functionName }).strict()]).optional(),
    top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
    include: z.array(z.string()).nullable().optional(),
    /** Extensions, as on chat completions: sample among the k most likely tokens; Hugging Face's repetition penalty; a seed. */
    top_k: z.number().int().min(0).optional(),
    repetition_penalty: z.number().gt(0).max(10).optional(),
    seed: z.number().int().optional(),
  })
  .strict();

export type CreateResponseRequest = z.infer<typeof createResponseRequestSchema>;
export type ResponseInputItem = z.infer<typeof inputItem>;
export type ResponseMessageItem = z.infer<typeof responseMessageItemSchema>;
export type ResponseFunctionTool = z.infer<typeof functionTool>;
export type ResponseTool = NonNullable<CreateResponseRequest['tools']>[number];
export type ResponseTextFormat = z.infer<typeof textFormat>;
export type ResponseToolChoice = NonNullable<CreateResponseRequest['tool_choice']>;

/** GET /v1/responses/{id}: `stream=true` replays a background response's events after `starting_after`. */
export const retrieveResponseQuerySchema = z
  .object({
    stream: z.enum(['true', 'false']).optional(),
    starting_after: z.coerce.number().int().min(-1).optional(),
    include: z.union([z.string(), z.array(z.string())]).optional(),
    include_obfuscation: z.string().optional(),
  })
  .strict();

/** GET /v1/responses/{id}/input_items: a page of the items the response was generated from. */
export const listInputItemsQuerySchema = z
  .object({
    after: z.string().min(1).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    order: z.enum(['asc', 'desc']).default('desc'),
    include: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();
