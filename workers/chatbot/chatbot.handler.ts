import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BotConfig, ChatbotConfig, IntentConfig } from '../../shared/chatbot/chatbot-config.js';
import type { JobResult } from '../../shared/jobs/job-catalog.js';
import type { ChatBackend } from '../chat/chat-backend.js';
import type { EmbeddingEngine } from '../embeddings/embedding-engine.js';
import type { JobContext, JobHandler } from '../jobs/job-handler.js';
import { TokenWriter } from '../jobs/token-writer.js';
import { DialogueStore, type DialogueState } from './dialogue-state.js';
import { extractiveAnswer } from './extractive-answer.js';
import { IntentClassifier } from './intent-classifier.js';
import { ToolCaller, type ToolCall } from './tool-caller.js';

/** A chunk the knowledge base found, as the reply's `sources` list it (shared/jobs/job-catalog.ts). */
export type KnowledgeHit = JobResult<'chatbot'>['sources'][number];

/** Searches a tenant's collection; provided where the worker serves document search. */
export type KnowledgeSearch = (tenant: string, collection: string, query: string, topK: number, signal: AbortSignal) => Promise<KnowledgeHit[]>;

/**
 * One turn of a tenant's chatbot: classify the message by its nearest example utterance, fill
 * slots (carrying them over from earlier turns, so "and tomorrow?" reuses the city), call the
 * intent's tool, look up the knowledge base, and reply: from the intent's template when it has one,
 * else from the chat model, grounded in the retrieved chunks. When nothing relevant is found the
 * bot says it does not know rather than inventing an answer; when a tool fails it says so.
 */
export function createChatbotHandler(deps: {
  config: ChatbotConfig;
  engines: ReadonlyMap<string, EmbeddingEngine>;
  chatBackends: ReadonlyMap<string, ChatBackend>;
  redis: Redis;
  prefix: string;
  retentionSeconds: number;
  knowledge?: KnowledgeSearch;
  /** Chat models marked `untrained` in the models config: their text is meaningless. */
  untrainedChatModels?: ReadonlySet<string>;
}): JobHandler<'chatbot'> {
  const dialogues = new DialogueStore(deps.redis, deps.prefix);
  const tools = new ToolCaller();
  const classifiers = new Map<string, IntentClassifier>();

  return async (payload, ctx) => {
    const bot = deps.config.tenants[ctx.tenant];
    if (!bot) throw new UnrecoverableError(`tenant ${ctx.tenant} has no chatbot configured`);
    const engine = deps.engines.get(bot.embedding_model);
    const chat = deps.chatBackends.get(bot.chat_model);
    if (!engine || !chat) throw new UnrecoverableError(`this worker does not serve the chatbot's models (${bot.embedding_model}, ${bot.chat_model})`);
    let classifier = classifiers.get(ctx.tenant);
    if (!classifier) {
      classifier = new IntentClassifier(bot, (texts) => engine.batcher.embed(engine.tokenizer.tokenize(texts), ctx.signal));
      classifiers.set(ctx.tenant, classifier);
    }

    const state = await dialogues.load(ctx.tenant, payload.user_id, payload.session_id);
    const match = await classifier.classify(payload.message);
    const { intent, slots, followUp } = resolveIntent(bot, match.intent, match.confidence, payload.message, state);
    if (!ctx.streamOwner) throw new UnrecoverableError('chatbot jobs run only with a claim on their token stream (createJobWorker `streams`)');
    const out = new TokenWriter(deps.redis, deps.prefix, ctx.jobId, deps.retentionSeconds, ctx.streamOwner);
    const toolCalls: ToolCall[] = [];
    let sources: KnowledgeHit[] = [];
    const metadata: Record<string, unknown> = { classified_by: match.via, follow_up: followUp };
    let reply: string;

    const missing = intent?.tool ? (bot.tools.find((t) => t.name === intent.tool)?.required_slots ?? []).filter((s) => !slots[s]) : [];
    if (intent && missing.length > 0) {
      reply = `Which ${missing.join(' and ')} do you mean?`;
      say(out, reply);
    } else if (intent?.tool) {
      const tool = bot.tools.find((t) => t.name === intent.tool)!;
      const call = await tools.call(tool, slots, ctx.signal);
      toolCalls.push(call);
      if (call.ok) {
        reply = intent.reply ? render(intent.reply, slots, call.result) : JSON.stringify(call.result);
        say(out, reply);
      } else {
        metadata.degraded = true;
        reply = `Sorry, I could not reach the ${tool.name} service just now (${call.error}), so I cannot answer that at the moment. Please try again later.`;
        say(out, reply);
      }
    } else if (intent?.knowledge || (!intent && (payload.collection ?? bot.collection))) {
      const collection = payload.collection ?? bot.collection;
      if (collection && deps.knowledge) {
        const hits = await deps.knowledge(ctx.tenant, collection, payload.message, 3, ctx.signal);
        sources = hits.filter((h) => h.score >= bot.knowledge_threshold);
      } else {
        metadata.knowledge = collection ? 'search is not served by this worker' : 'no collection configured';
      }
      if (sources.length === 0) {
        reply = "I don't know: nothing in the knowledge base answers that.";
        say(out, reply);
      } else if (answersExtractively(bot, deps.untrainedChatModels)) {
        const answer = extractiveAnswer(payload.message, sources);
        reply = answer.text;
        metadata.answer_mode = 'extractive';
        metadata.citations = answer.cited.map((i) => i + 1);
        say(out, reply);
      } else {
        const context = sources.map((s, i) => `[${i + 1}] ${s.text}`).join('\n');
        reply = await generate(chat, ctx, out, bot, state, payload.message, `Answer only from these sources and cite them as [n]:\n${context}`, metadata);
      }
    } else if (intent?.reply) {
      reply = render(intent.reply, slots, undefined);
      say(out, reply);
    } else {
      reply = await generate(chat, ctx, out, bot, state, payload.message, undefined, metadata);
    }
    await out.flush();

    const next: DialogueState = {
      history: [...state.history, { role: 'user', content: payload.message }, { role: 'assistant', content: reply }],
      last_intent: intent?.name ?? match.intent,
      slots,
    };
    await dialogues.save(ctx.tenant, payload.user_id, payload.session_id, next, bot.history_turns, bot.session_ttl_seconds);
    return {
      reply,
      intent: intent?.name ?? match.intent,
      confidence: match.confidence,
      session_id: payload.session_id,
      sources,
      tool_calls: toolCalls,
      metadata,
    } satisfies JobResult<'chatbot'>;
  };
}

/** Knowledge answers are extractive when the bot asks for it, or by default when its chat model cannot write meaningful text. */
export function answersExtractively(bot: Pick<BotConfig, 'answer_mode' | 'chat_model'>, untrained: ReadonlySet<string> | undefined): boolean {
  if (bot.answer_mode === 'auto') return untrained?.has(bot.chat_model) ?? false;
  return bot.answer_mode === 'extractive';
}

/**
 * The turn's intent and slots. Slots found in the message override earlier ones; the rest carry
 * over. A message that falls below the threshold but fills a slot of the previous intent is a
 * follow-up of it ("and tomorrow?" after a weather question).
 */
const FOLLOW_UP_OVERRIDE = 0.8;

function resolveIntent(bot: BotConfig, classified: string, confidence: number, message: string, state: DialogueState): { intent: IntentConfig | undefined; slots: Record<string, string>; followUp: boolean } {
  let intent = bot.intents.find((i) => i.name === classified);
  let followUp = false;
  const previous = bot.intents.find((i) => i.name === state.last_intent);
  // A short message that fills a slot of the previous intent and none of its own continues the
  // previous intent, unless the classifier is sure ("and tomorrow?" is no greeting, however
  // close "tomorrow" sits to "good morning").
  const fillsPrevious = !!previous && previous.name !== intent?.name && Object.keys(extractSlots(previous, message)).length > 0;
  const fillsOwn = !!intent && Object.keys(extractSlots(intent, message)).length > 0;
  if (fillsPrevious && !fillsOwn && (!intent || (confidence < FOLLOW_UP_OVERRIDE && message.trim().split(/\s+/).length <= 6))) {
    intent = previous;
    followUp = true;
  }
  const carried = intent && previous && intent.name === previous.name ? state.slots : {};
  return { intent, slots: { ...carried, ...(intent ? extractSlots(intent, message) : {}) }, followUp };
}

/** Slot name → the text its pattern captured in the message. */
function extractSlots(intent: IntentConfig, message: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [slot, pattern] of Object.entries(intent.slots)) {
    // The first group that matched: a pattern may offer alternatives ("in (\w+)|(北京|上海)").
    const value = new RegExp(pattern, 'iu').exec(message)?.slice(1).find(Boolean);
    if (value) out[slot] = value;
  }
  return out;
}

/** Fills {slot} and {result.path.to.value} placeholders. */
function render(template: string, slots: Record<string, string>, result: unknown): string {
  return template.replace(/\{([\w.]+)\}/g, (whole, key: string) => {
    if (key.startsWith('result.')) {
      const v = key
        .slice(7)
        .split('.')
        .reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), result);
      return v === undefined ? whole : String(v);
    }
    return slots[key] ?? whole;
  });
}

/** Streams a fixed reply word by word, so clients render it the same way as generated text. */
function say(out: TokenWriter, text: string): void {
  for (const piece of text.match(/\S+\s*|\s+/g) ?? []) out.push(piece);
}

async function generate(
  chat: ChatBackend,
  ctx: JobContext,
  out: TokenWriter,
  bot: BotConfig,
  state: DialogueState,
  message: string,
  grounding: string | undefined,
  metadata: Record<string, unknown>,
): Promise<string> {
  const outcome = await chat.generate(
    ctx.jobId,
    {
      model: bot.chat_model,
      messages: [
        { role: 'system', content: grounding ? `${bot.system_prompt}\n${grounding}` : bot.system_prompt },
        ...state.history,
        { role: 'user', content: message },
      ],
      max_tokens: bot.max_tokens,
      temperature: 0.7,
      top_p: 1,
      top_k: 0,
      repetition_penalty: 1.1,
      stop: [],
    },
    { signal: ctx.signal, onToken: (t) => out.push(t) },
  );
  metadata.model = bot.chat_model;
  metadata.usage = { prompt_tokens: outcome.promptTokens, completion_tokens: outcome.completionTokens };
  return outcome.text;
}
