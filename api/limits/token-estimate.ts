import { errors } from '../../shared/errors/app-error.js';
import { isChatModel, type ModelRegistry } from '../../shared/models/model-registry.js';

/**
 * Tokens a request will cost, estimated at the API without a tokenizer: characters / 4 (rounded
 * up) per text, the usual rule of thumb for English with BPE vocabularies. It is an estimate on
 * purpose: exact counts would need each model's tokenizer on the API's event loop, and limits only
 * need the right order of magnitude. Counted:
 * - embeddings (`input`): every text;
 * - chat (`messages`): every message's content plus 4 tokens of framing each, plus the completion
 *   budget (`max_completion_tokens`, `max_tokens`, or the model's default);
 * - Responses (`input` for a chat model): the input's texts and message items, `instructions`, and
 *   the completion budget (`max_output_tokens` or the model's default).
 */
export const CHARS_PER_TOKEN = 4;
const MESSAGE_OVERHEAD = 4;

export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

export function estimateRequestTokens(body: unknown, registry?: ModelRegistry): number {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 0;
  const b = body as Record<string, unknown>;
  let tokens = 0;
  const input = b.input;
  if (typeof input === 'string') tokens += estimateTextTokens(input);
  else if (Array.isArray(input)) for (const x of input) if (typeof x === 'string') tokens += estimateTextTokens(x);
  if (typeof b.instructions === 'string') tokens += estimateTextTokens(b.instructions);
  // Chat messages, and the message items of a Responses `input`.
  const messages = [...(Array.isArray(b.messages) ? b.messages : []), ...(Array.isArray(input) ? input.filter((x) => x !== null && typeof x === 'object') : [])];
  for (const m of messages) {
    const content = (m as { content?: unknown } | null)?.content;
    tokens += MESSAGE_OVERHEAD;
    if (typeof content === 'string') tokens += estimateTextTokens(content);
    else if (Array.isArray(content)) for (const p of content) if (typeof (p as { text?: unknown })?.text === 'string') tokens += estimateTextTokens((p as { text: string }).text);
  }
  const model = typeof b.model === 'string' ? registry?.get(b.model) : undefined;
  // Generation requests also cost their completion budget: chat bodies, and Responses bodies (`input` for a chat model).
  if (Array.isArray(b.messages) || requestedCompletion(b)?.param === 'max_output_tokens' || (model && isChatModel(model) && input !== undefined)) {
    const asked = requestedCompletion(b)?.tokens;
    const fallback = model && 'default_max_tokens' in model ? model.default_max_tokens : 256;
    tokens += Math.ceil(asked ?? fallback);
  }
  return tokens;
}

/**
 * The completion budget a body asks for: `max_completion_tokens` (OpenAI's current name) wins over
 * `max_tokens`; Responses name it `max_output_tokens`.
 */
function requestedCompletion(b: Record<string, unknown>): { tokens: number; param: 'max_completion_tokens' | 'max_tokens' | 'max_output_tokens' } | undefined {
  for (const param of ['max_completion_tokens', 'max_tokens', 'max_output_tokens'] as const) {
    const v = b[param];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) return { tokens: v, param };
  }
  return undefined;
}

/**
 * 400 `max_tokens_too_large` for a chat body whose completion budget exceeds its model's
 * `max_tokens_limit`: no retry and no rate limit could make such a request succeed. Bodies that
 * name no chat model are left to their route's own validation.
 */
export function checkCompletionBudget(body: unknown, registry: ModelRegistry): void {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return;
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.messages) || typeof b.model !== 'string') return;
  const model = registry.get(b.model);
  const asked = requestedCompletion(b);
  if (!model || !isChatModel(model) || !asked || asked.tokens <= model.max_tokens_limit) return;
  throw errors.invalidRequest(`'${asked.param}' is ${asked.tokens}; model '${model.id}' allows at most ${model.max_tokens_limit}.`, asked.param, 'max_tokens_too_large');
}
