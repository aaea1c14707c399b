import type { ChatOutcome } from '../jobs/chat-service.js';

/**
 * Chat job results and token events → OpenAI's Responses objects and stream events: the one module
 * that knows what a response looks like. The request side is responses-request.ts. When the chat
 * job learns tool calls and logprobs (issue #12), function_call output items, the
 * `response.function_call_arguments.*` events and `logprobs` arrays are produced here, and nowhere
 * else: today every output is one assistant message with one `output_text` part, and `logprobs`
 * are empty arrays (the field is required by OpenAI's schema).
 */

export type ResponseStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: ReadonlySet<ResponseStatus> = new Set(['completed', 'incomplete', 'failed', 'cancelled']);

export interface OutputTextPart {
  type: 'output_text';
  text: string;
  annotations: unknown[];
  logprobs: unknown[];
}

export interface AssistantMessageItem {
  id: string;
  type: 'message';
  role: 'assistant';
  status: 'in_progress' | 'completed' | 'incomplete';
  content: OutputTextPart[];
}

export interface InputMessageItem {
  id: string;
  type: 'message';
  role: 'user' | 'system' | 'developer';
  status: 'completed';
  content: { type: 'input_text'; text: string }[];
}

/** An item of a conversation: what input_items lists, and what `previous_response_id` carries over. */
export type ConversationItem = InputMessageItem | AssistantMessageItem;

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number; cache_write_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

/** Error codes OpenAI's schema allows on a response (`ResponseErrorCode`). */
type ResponseErrorCode = 'server_error' | 'invalid_prompt' | 'rate_limit_exceeded';

export interface ResponseObject {
  id: string;
  object: 'response';
  created_at: number;
  status: ResponseStatus;
  completed_at: number | null;
  background: boolean;
  error: { code: ResponseErrorCode; message: string } | null;
  incomplete_details: { reason: 'max_output_tokens' } | null;
  instructions: string | null;
  max_output_tokens: number | null;
  model: string;
  output: AssistantMessageItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: null;
  service_tier: 'default';
  store: boolean;
  temperature: number;
  text: { format: { type: 'text' } };
  tool_choice: 'auto' | 'none';
  tools: unknown[];
  top_p: number;
  truncation: 'disabled';
  /** Absent until the job has answered (OpenAI's schema has no null usage). */
  usage?: ResponseUsage;
  /** Present when the request named one (the schema has no null user either). */
  user?: string;
  metadata: Record<string, string>;
}

export const outputText = (text: string): OutputTextPart => ({ type: 'output_text', text, annotations: [], logprobs: [] });

export function assistantMessage(id: string, text: string, status: AssistantMessageItem['status']): AssistantMessageItem {
  return { id, type: 'message', role: 'assistant', status, content: [outputText(text)] };
}

/** The text of a response's output messages, in order (what the SDKs call `output_text`). */
export function responseText(response: Pick<ResponseObject, 'output'>): string {
  return response.output.flatMap((item) => item.content.map((part) => part.text)).join('');
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The response once its chat job has ended: its status from how the job ended (`length` is
 * OpenAI's `incomplete` with reason `max_output_tokens`), the answer as one assistant message
 * whose id (`messageId`) the stream events already used, and the usage in Responses' names.
 */
export function settledResponse(base: ResponseObject, messageId: string, outcome: ChatOutcome): ResponseObject {
  const { usage: _none, ...unanswered } = base;
  const open = { ...unanswered, completed_at: null, error: null, incomplete_details: null };
  if (outcome.status !== 'completed') {
    if (outcome.status === 'cancelled' || outcome.error.code === 'cancelled') return { ...open, status: 'cancelled', output: [] };
    // The job's own code (worker_lost, expired, …) stays readable in the message; the field takes OpenAI's codes only.
    const code: ResponseErrorCode = outcome.error.code === 'context_length_exceeded' ? 'invalid_prompt' : 'server_error';
    return { ...open, status: 'failed', output: [], error: { code, message: `${outcome.error.message} (${outcome.error.code})` } };
  }
  const { result } = outcome;
  const usage: ResponseUsage = {
    input_tokens: result.usage.prompt_tokens,
    input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    output_tokens: result.usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: result.usage.total_tokens,
  };
  const answered = { ...open, model: outcome.model, usage };
  switch (result.finish_reason) {
    case 'stop':
      return { ...answered, status: 'completed', completed_at: nowSeconds(), output: [assistantMessage(messageId, result.message.content, 'completed')] };
    case 'length':
      return {
        ...answered,
        status: 'incomplete',
        incomplete_details: { reason: 'max_output_tokens' },
        output: [assistantMessage(messageId, result.message.content, 'incomplete')],
      };
    case 'cancelled':
      return { ...answered, status: 'cancelled', output: [assistantMessage(messageId, result.message.content, 'incomplete')] };
  }
}

/** A stream event: its `type` is also the SSE `event:` name, as OpenAI sends them. */
export interface ResponseStreamEvent {
  type: string;
  sequence_number: number;
  [field: string]: unknown;
}

/** Events before the first token: created, in_progress, the message item and its text part. */
const OPENING_EVENTS = 4;

/**
 * The stream events of one response, numbered so that the same token always has the same
 * `sequence_number`: 0 `response.created`, 1 `response.in_progress`, 2 `response.output_item.added`,
 * 3 `response.content_part.added`, then token i of the chat job's token stream is delta 4 + i, then
 * the closing events. A background stream resumed with `starting_after=N` is the same sequence
 * filtered to numbers above N, built from the same token stream the Socket.IO relay resumes from.
 *
 * A cancelled response ends with `response.failed` carrying status `cancelled`: OpenAI's event
 * list has no cancelled event, and a client must still see how its stream ended.
 */
export class ResponseEventSequence {
  private tokens = 0;

  constructor(
    /** The response as it was created (status `queued` or `in_progress`, no output). */
    private readonly created: ResponseObject,
    private readonly messageId: string,
  ) {}

  opening(): ResponseStreamEvent[] {
    const place = { output_index: 0 };
    return [
      { type: 'response.created', sequence_number: 0, response: this.created },
      { type: 'response.in_progress', sequence_number: 1, response: { ...this.created, status: 'in_progress' } },
      { type: 'response.output_item.added', sequence_number: 2, ...place, item: assistantMessage(this.messageId, '', 'in_progress') },
      { type: 'response.content_part.added', sequence_number: 3, ...place, item_id: this.messageId, content_index: 0, part: outputText('') },
    ];
  }

  /** Token `index` of the job's token stream. */
  token(index: number, text: string): ResponseStreamEvent {
    this.tokens = Math.max(this.tokens, index + 1);
    return { type: 'response.output_text.delta', sequence_number: OPENING_EVENTS + index, item_id: this.messageId, output_index: 0, content_index: 0, delta: text, logprobs: [] };
  }

  /** The events after the last token, from the settled response. */
  closing(settled: ResponseObject): ResponseStreamEvent[] {
    let seq = OPENING_EVENTS + this.tokens;
    const events: ResponseStreamEvent[] = [];
    const message = settled.output[0];
    if (message) {
      const part = message.content[0] ?? outputText('');
      const at = { item_id: this.messageId, output_index: 0, content_index: 0 };
      events.push(
        { type: 'response.output_text.done', sequence_number: seq++, ...at, text: part.text, logprobs: [] },
        { type: 'response.content_part.done', sequence_number: seq++, ...at, part },
        { type: 'response.output_item.done', sequence_number: seq++, output_index: 0, item: message },
      );
    }
    const terminal = settled.status === 'completed' ? 'response.completed' : settled.status === 'incomplete' ? 'response.incomplete' : 'response.failed';
    events.push({ type: terminal, sequence_number: seq, response: settled });
    return events;
  }
}

/** OpenAI's `error` event, for a stream that cannot go on; numbered after the last event sent. */
export function errorEvent(sequenceNumber: number, e: { code: string; message: string; param: string | null }): ResponseStreamEvent {
  return { type: 'error', sequence_number: sequenceNumber, code: e.code, message: e.message, param: e.param };
}
