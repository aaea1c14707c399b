import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { idSchema } from '../api/ids.js';
import { ConfigError } from '../config/env.js';
import { fixedQueueName } from '../jobs/job-catalog.js';

/**
 * The chatbot config file (CHATBOT_CONFIG): one bot per tenant with its intents (a few example
 * utterances each), slot patterns, the external tools intents may call, and reply templates.
 * The API reads it to validate requests; the workers read it to run the bot.
 */
const toolSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
    description: z.string().optional(),
    /** URL with {slot} placeholders, filled URL-encoded from the dialogue's slots. */
    url: z.string().min(1),
    method: z.enum(['GET', 'POST']).default('GET'),
    /** Slots the tool needs; a missing one makes the bot ask for it instead of calling. */
    required_slots: z.array(z.string()).default([]),
    timeout_ms: z.number().int().min(50).max(60_000).default(3000),
    retries: z.number().int().min(0).max(5).default(1),
    /** Consecutive failures that open the circuit (calls fail fast) for `breaker_reset_ms`. */
    breaker_failures: z.number().int().min(1).default(3),
    breaker_reset_ms: z.number().int().min(100).default(30_000),
  })
  .strict();

const intentSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
    examples: z.array(z.string().min(1)).min(1),
    /** Slot name → regular expression whose first group captures the value (case-insensitive). */
    slots: z.record(z.string(), z.string()).default({}),
    /** Tool to call when this intent wins. */
    tool: z.string().optional(),
    /** Reply built from slots and the tool's JSON answer: {slot}, {result.path}. Without one, the chat model answers. */
    reply: z.string().optional(),
    /** Answer from the knowledge base (the request's or the bot's collection). */
    knowledge: z.boolean().default(false),
  })
  .strict();

const botSchema = z
  .object({
    embedding_model: z.string(),
    chat_model: z.string(),
    collection: z.string().optional(),
    /** Below this cosine similarity to the nearest example, the message gets `fallback_intent`. */
    intent_threshold: z.number().min(0).max(1).default(0.5),
    fallback_intent: z.string().default('fallback'),
    /** Knowledge-base hits scoring below this are not used; with none left the bot says it does not know. */
    knowledge_threshold: z.number().min(-1).max(1).default(0.35),
    history_turns: z.number().int().min(1).max(100).default(10),
    session_ttl_seconds: z.number().int().min(60).default(3600),
    max_tokens: z.number().int().min(1).default(128),
    system_prompt: z.string().default('You are a helpful assistant. Answer briefly.'),
    /**
     * How knowledge answers are written: `generative` by the chat model from the retrieved chunks,
     * `extractive` from the chunks' own best-matching sentences with citations [n], `auto`
     * (default) extractive when the chat model is marked `untrained` in the models config.
     */
    answer_mode: z.enum(['auto', 'generative', 'extractive']).default('auto'),
    intents: z.array(intentSchema).min(1),
    tools: z.array(toolSchema).default([]),
  })
  .strict()
  .superRefine((bot, ctx) => {
    const tools = new Set(bot.tools.map((t) => t.name));
    for (const i of bot.intents) {
      if (i.tool && !tools.has(i.tool)) ctx.addIssue({ code: 'custom', message: `intent "${i.name}" uses unknown tool "${i.tool}"` });
      for (const [slot, re] of Object.entries(i.slots)) {
        try {
          new RegExp(re, 'iu');
        } catch {
          ctx.addIssue({ code: 'custom', message: `intent "${i.name}" slot "${slot}": invalid regular expression` });
        }
      }
    }
  });

/** The chatbot's queue (its catalog entry): its jobs go to workers that serve the bots' embedding and chat models. */
export const CHATBOT_QUEUE = fixedQueueName('chatbot');

export const chatbotConfigSchema = z.object({ tenants: z.record(idSchema('tenant ids'), botSchema) }).strict();

export type ChatbotConfig = z.infer<typeof chatbotConfigSchema>;
export type BotConfig = z.infer<typeof botSchema>;
export type ToolConfig = z.infer<typeof toolSchema>;
export type IntentConfig = z.infer<typeof intentSchema>;

export function loadChatbotConfig(file: string | undefined): ChatbotConfig {
  if (!file) return { tenants: Object.create(null) as ChatbotConfig['tenants'] };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([`CHATBOT_CONFIG ${file}: ${(err as Error).message}`]);
  }
  const parsed = chatbotConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `chatbot config ${i.path.join('.')}: ${i.message}`));
  // Looked up by tenant id: without a prototype, `tenants['constructor']` is no bot rather than Object.
  return { tenants: Object.assign(Object.create(null) as ChatbotConfig['tenants'], parsed.data.tenants) };
}
