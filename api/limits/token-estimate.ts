import type { ModelRegistry } from '../../shared/models/model-registry.js';

/**
 * Tokens a request will cost, estimated at the API without a tokenizer: characters / 4 (rounded
 * up) per text, the usual rule of thumb for English with BPE vocabularies. It is an estimate on
 * purpose: exact counts would need each model's tokenizer on the API's event loop, and limits only
 * need the right order of magnitude. Counted:
 * - embeddings (`input`): every text;
 * - chat (`messages`): every message's content plus 4 tokens of framing each, plus the completion
 *   budget (`max_completion_tokens`, `max_tokens`, or the model's default).
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
  if (Array.isArray(b.messages)) {
    for (const m of b.messages) {
      const content = (m as { content?: unknown } | null)?.content;
      tokens += MESSAGE_OVERHEAD;
      if (typeof content === 'string') tokens += estimateTextTokens(content);
      else if (Array.isArray(content)) for (const p of content) if (typeof (p as { text?: unknown })?.text === 'string') tokens += estimateTextTokens((p as { text: string }).text);
    }
    const asked = [b.max_completion_tokens, b.max_tokens].find((v): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0);
    const model = typeof b.model === 'string' ? registry?.get(b.model) : undefined;
    const fallback = model && 'default_max_tokens' in model ? model.default_max_tokens : 256;
    tokens += Math.ceil(asked ?? fallback);
  }
  return tokens;
}
