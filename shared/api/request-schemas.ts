import { z } from 'zod';
import { MAX_CHAT_CHOICES } from '../jobs/chat-choices.js';
import { chatStructuredFields, chatToolCallSchema } from '../chat/chat-options.js';

/**
 * Request bodies of the public API. Route handlers validate with these, and later the OpenAPI
 * document is generated from them, so the contract lives in one place.
 */
const textInput = z.unknown().transform((input, ctx): string[] => {
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (typeof input === 'string') {
    return input.length === 0 ? fail('must not be an empty string') : [input];
  }
  if (!Array.isArray(input)) return fail('must be a string or an array of strings');
  if (input.length === 0) return fail('must not be an empty array');
  if (input.every((x) => typeof x === 'number') || input.every((x) => Array.isArray(x))) {
    return fail('token-id arrays are not supported; send text');
  }
  for (let i = 0; i < input.length; i++) {
    if (typeof input[i] !== 'string') return fail(`item ${i} must be a string`);
    if (input[i] === '') return fail(`item ${i} must not be an empty string`);
  }
  return input as string[];
}).meta({
  // What the transform accepts, for the OpenAPI document (a transform has no JSON Schema of its own).
  description: 'Text to embed: a string or an array of strings, none empty. Token-id arrays are refused.',
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  ],
});

export const embeddingsRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    input: textInput,
    encoding_format: z.enum(['float', 'base64']).default('float'),
    dimensions: z.number().int().positive().optional(),
    user: z.string().max(256).optional(),
  })
  .strict();

/** OpenAI message content: a string, or an array of text parts (other part types are refused). */
const messageContent = z.union([
  z.string(),
  z
    .array(z.object({ type: z.literal('text'), text: z.string() }).strict())
    .min(1)
    .transform((parts) => parts.map((p) => p.text).join('')),
]);

const chatMessage = z
  .object({
    // OpenAI's newer 'developer' role plays the part of 'system' for these models.
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], { message: "must be one of 'system', 'developer', 'user', 'assistant', 'tool'" }),
    // null (or left out) only in an assistant turn that made tool calls.
    content: messageContent.nullable().optional(),
    name: z.string().max(64).optional(),
    tool_calls: z.array(chatToolCallSchema).max(128).optional(),
    tool_call_id: z.string().min(1).max(256).optional(),
    refusal: z.string().nullable().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const problem = (message: string, path: string) => ctx.addIssue({ code: 'custom', message, path: [path] });
    if (m.tool_calls !== undefined && m.role !== 'assistant') problem("only 'assistant' messages carry tool calls", 'tool_calls');
    if (m.role === 'tool' && m.tool_call_id === undefined) problem("a 'tool' message needs the 'tool_call_id' of the call it answers", 'tool_call_id');
    if (m.role !== 'tool' && m.tool_call_id !== undefined) problem("only 'tool' messages have a 'tool_call_id'", 'tool_call_id');
    const hasCalls = m.role === 'assistant' && (m.tool_calls?.length ?? 0) > 0;
    if ((m.content === null || m.content === undefined) && !hasCalls) problem('is required (it may be null only in an assistant message with tool_calls)', 'content');
  })
  .transform((m) => ({
    role: m.role === 'developer' ? ('system' as const) : m.role,
    content: m.content ?? '',
    ...(m.tool_calls?.length ? { tool_calls: m.tool_calls } : {}),
    ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id }),
  }));

const stop = z
  .union([z.string().min(1), z.array(z.string().min(1)).max(4)])
  .transform((v) => (typeof v === 'string' ? [v] : v));

/** Sampling settings shared by the OpenAI endpoint and native chat jobs. */
const samplingFields = {
  max_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  /** Extension (vLLM and TGI have it too): sample among the k most likely tokens; 0 = off. */
  top_k: z.number().int().min(0).optional(),
  /** Extension: Hugging Face's repetition penalty; 1 = off. */
  repetition_penalty: z.number().gt(0).max(10).optional(),
  seed: z.number().int().optional(),
  stop: stop.optional(),
  /** Extension: 1 (most urgent) to 10; each key may be limited to a range. */
  priority: z.number().int().min(1).max(10).optional(),
  /** Samples of the prompt, sharing one prefill (at most the model's batch, `concurrency`). */
  n: z.number().int().min(1).max(MAX_CHAT_CHOICES).nullable().optional(),
};

/** Chat logprobs (OpenAI): each token's log-probability, and `top_logprobs` alternatives (0-20, needs `logprobs: true`). */
const logprobFields = {
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
};

/**
 * Accepted for OpenAI compatibility and otherwise ignored: `user` (an end-user id), `metadata`
 * (OpenAI's limits: 16 keys of up to 64 characters, values up to 512) and `store` (answers are
 * never stored for OpenAI's distillation or evals here; the job itself is kept as any job is).
 */
const bookkeepingFields = {
  user: z.string().max(256).optional(),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, 'must have at most 16 keys')
    .nullable()
    .optional(),
  store: z.boolean().nullable().optional(),
};

/** `stream_options` of the streaming endpoints: `include_usage` adds a last chunk with the usage. */
const streamOptions = z.object({ include_usage: z.boolean().optional() }).strict().nullable().optional();

export const chatCompletionRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    messages: z.array(chatMessage).min(1, 'must contain at least one message'),
    ...samplingFields,
    ...logprobFields,
    ...bookkeepingFields,
    max_completion_tokens: z.number().int().positive().optional(),
    stream: z.boolean().optional(),
    stream_options: streamOptions,
    presence_penalty: z.number().min(-2).max(2).optional(),
    frequency_penalty: z.number().min(-2).max(2).optional(),
    ...chatStructuredFields,
  })
  .strict();

/**
 * POST /v1/completions, OpenAI's legacy text completions: a raw prompt (no chat template), or a
 * list of prompts (each gets `n` choices). `logprobs` is an integer here (0-5 alternatives);
 * `suffix` (fill-in-the-middle) and token-id prompts are refused.
 */
export const completionRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    prompt: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(MAX_CHAT_CHOICES)], {
      message: 'must be a non-empty string or a list of 1 to 8 non-empty strings (token ids are not supported)',
    }),
    ...samplingFields,
    /** 0 with `echo` and `logprobs`: the prompt's logprobs alone (scoring a text), as OpenAI answers it. */
    max_tokens: z.number().int().min(0).optional(),
    ...bookkeepingFields,
    echo: z.boolean().nullable().optional(),
    logprobs: z.number().int().min(0).max(5).nullable().optional(),
    suffix: z.string().nullable().optional(),
    best_of: z.number().int().min(1).nullable().optional(),
    stream: z.boolean().nullable().optional(),
    stream_options: streamOptions,
    presence_penalty: z.number().min(-2).max(2).nullable().optional(),
    frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  })
  .strict();

/**
 * POST /v1/tokenize, as vLLM serves /tokenize: a raw `prompt` (with the tokenizer's special tokens
 * unless `add_special_tokens: false`) or `messages` through the chat template (with the
 * assistant's turn opened unless `add_generation_prompt: false`).
 */
export const tokenizeRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    prompt: z.string().optional(),
    messages: z.array(chatMessage).min(1, 'must contain at least one message').optional(),
    add_special_tokens: z.boolean().optional(),
    add_generation_prompt: z.boolean().optional(),
  })
  .strict()
  .refine((r) => (r.prompt === undefined) !== (r.messages === undefined), { message: "needs either 'prompt' or 'messages'", path: ['prompt'] });

/** POST /v1/detokenize, as vLLM serves /detokenize: token ids back to text. */
export const detokenizeRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    tokens: z.array(z.number().int().min(0)).max(1_000_000),
  })
  .strict();

/**
 * POST /v1/jobs with `type: 'embedding'`: the job catalog's `submit.request` of the type
 * (shared/jobs/job-catalog.ts), which adds `type`, `timeout` and `webhook` (shared/jobs/job-requests.ts).
 */
export const embeddingJobRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    input: textInput,
    dimensions: z.number().int().positive().optional(),
  })
  .strict();

/** POST /v1/jobs with `type: 'chat'`: messages and sampling settings, as on /v1/chat/completions. */
export const chatJobRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    messages: z.array(chatMessage).min(1, 'must contain at least one message'),
    ...samplingFields,
    ...logprobFields,
    /** OpenAI's current name for max_tokens, accepted here as on /v1/chat/completions (it wins when both are given). */
    max_completion_tokens: z.number().int().positive().optional(),
    ...chatStructuredFields,
  })
  .strict();

/** A chat request's messages and sampling settings, as validated (the API's view). */
export type ChatParams = Omit<z.output<typeof chatJobRequestSchema>, 'model' | 'priority'>;
/** A chat message as a client sends it (the API folds 'developer' into 'system' and joins text parts). */
export type ChatMessageInput = z.input<typeof chatMessage>;
/** A chat request's sampling settings as a client sends them. */
export type ChatOptions = Omit<z.input<typeof chatJobRequestSchema>, 'model' | 'messages'>;

/** POST /v1/chatbot: one turn of the tenant's chatbot. */
export const chatbotRequestSchema = z
  .object({
    user_id: z.string().min(1).max(128),
    message: z.string().min(1, 'must not be empty').max(8000),
    session_id: z.string().min(1).max(128).optional(),
    collection: z.string().min(1).max(128).optional(),
    stream: z.boolean().optional(),
  })
  .strict();
