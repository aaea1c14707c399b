import { z } from 'zod';

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
    role: z.enum(['system', 'developer', 'user', 'assistant'], { message: "must be one of 'system', 'developer', 'user', 'assistant'" }),
    content: messageContent,
    name: z.string().max(64).optional(),
  })
  .strict()
  .transform((m) => ({ role: m.role === 'developer' ? ('system' as const) : m.role, content: m.content }));

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
};

export const chatCompletionRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    messages: z.array(chatMessage).min(1, 'must contain at least one message'),
    ...samplingFields,
    max_completion_tokens: z.number().int().positive().optional(),
    n: z.number().int().min(1).optional(),
    stream: z.boolean().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).strict().nullable().optional(),
    presence_penalty: z.number().min(-2).max(2).optional(),
    frequency_penalty: z.number().min(-2).max(2).optional(),
    user: z.string().max(256).optional(),
  })
  .strict();

/**
 * POST /v1/jobs with `type: 'embedding'`: the job catalog's `submit.request` of the type
 * (shared/jobs/job-catalog.ts), which adds `type` and `timeout` (shared/jobs/job-requests.ts).
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
    /** OpenAI's current name for max_tokens, accepted here as on /v1/chat/completions (it wins when both are given). */
    max_completion_tokens: z.number().int().positive().optional(),
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
