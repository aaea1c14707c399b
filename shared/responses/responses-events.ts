import type { ResponseTextFormat, ResponseToolChoice } from '../api/responses-schemas.js';
import type { ChatToolCall } from '../chat/chat-options.js';
import { ToolCallParser, type ToolCallEvent } from '../chat/tool-calls.js';
import type { ChatTokenLogprob } from '../jobs/job-catalog.js';
import { fileCitations, type FileCitation, type FileSearchResult, type FileSearchTool } from '../documents/file-search.js';
import { sha256Hex } from '../sha256.js';
import type { ChatOutcome } from '../chat/chat-outcome.js';

/**
 * Chat job results and token events → OpenAI's Responses objects and stream events: the one module
 * that knows what a response looks like. The request side is responses-request.ts. Shared because the API answers
 * responses with them and the workers write a `/v1/responses` batch line's output with them. A reply is an
 * assistant message with one `output_text` part (carrying `logprobs` when they were asked for)
 * and, when function tools were offered and called, one `function_call` item per call, parsed
 * from the reply's text by the same ToolCallParser the worker and the chat completions stream use.
 */

export type ResponseStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: ReadonlySet<ResponseStatus> = new Set(['completed', 'incomplete', 'failed', 'cancelled']);

type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

/** A token's log-probability in Responses' shape (OpenAI's `LogProb`: bytes always an array). */
export interface ResponseLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface OutputTextPart {
  type: 'output_text';
  text: string;
  annotations: FileCitation[];
  logprobs: ResponseLogprob[];
}

export interface AssistantMessageItem {
  id: string;
  type: 'message';
  role: 'assistant';
  status: ItemStatus;
  content: OutputTextPart[];
}

export interface InputMessageItem {
  id: string;
  type: 'message';
  role: 'user' | 'system' | 'developer';
  status: 'completed';
  content: { type: 'input_text'; text: string }[];
}

/** A call the model made (output), or one a client sends back (input). */
export interface FunctionCallItem {
  id: string;
  type: 'function_call';
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}

/** A function's result, sent by the client. */
export interface FunctionCallOutputItem {
  id: string;
  type: 'function_call_output';
  call_id: string;
  output: string | { type: 'input_text'; text: string }[];
  status: 'completed';
}

/**
 * The `file_search` tool's call (OpenAI's `FileSearchToolCall`): the search ran before the model
 * answered, so it is always `completed` by the time anyone sees it; `results` only when the request
 * had `include: ["file_search_call.results"]`.
 */
export interface FileSearchCallItem {
  id: string;
  type: 'file_search_call';
  status: 'completed';
  queries: string[];
  results: FileSearchResult[] | null;
}

/** What a response keeps of its file search: the call item, and the files its answer's [n] markers cite (in prompt order). */
export interface ResponseFileSearch {
  call: FileSearchCallItem;
  sources: Pick<FileSearchResult, 'file_id' | 'filename'>[];
}

export type OutputItem = FileSearchCallItem | AssistantMessageItem | FunctionCallItem;

/** An item of a conversation: what input_items lists, and what `previous_response_id` carries over. */
export type ConversationItem = InputMessageItem | AssistantMessageItem | FunctionCallItem | FunctionCallOutputItem | FileSearchCallItem;

/** A function tool as a response object shows it (OpenAI's `FunctionTool`). */
export interface ResponseFunctionToolView {
  type: 'function';
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean;
}

/** The `file_search` tool as a response object shows it (OpenAI's `FileSearchTool`). */
export interface ResponseFileSearchToolView {
  type: 'file_search';
  vector_store_ids: string[];
  max_num_results?: number;
  filters: FileSearchTool['filters'] | null;
  ranking_options?: FileSearchTool['ranking_options'];
}

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
  output: OutputItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: null;
  service_tier: 'default';
  store: boolean;
  temperature: number;
  text: { format: ResponseTextFormat };
  tool_choice: ResponseToolChoice;
  tools: (ResponseFunctionToolView | ResponseFileSearchToolView)[];
  /** Absent on responses stored before logprobs were served (read as null). */
  top_logprobs?: number | null;
  top_p: number;
  truncation: 'disabled';
  /** Absent until the job has answered (OpenAI's schema has no null usage). */
  usage?: ResponseUsage;
  /** Present when the request named one (the schema has no null user either). */
  user?: string;
  metadata: Record<string, string>;
}

export const outputText = (text: string, logprobs: ResponseLogprob[] = [], annotations: FileCitation[] = []): OutputTextPart => ({ type: 'output_text', text, annotations, logprobs });

export function assistantMessage(id: string, text: string, status: ItemStatus, logprobs: ResponseLogprob[] = [], annotations: FileCitation[] = []): AssistantMessageItem {
  return { id, type: 'message', role: 'assistant', status, content: [outputText(text, logprobs, annotations)] };
}

/**
 * A function_call item's id from its call's: derived, so the stream's items (whose calls the API
 * parses as tokens come) and the settled response's (whose calls the worker parsed) are the same items.
 */
export function functionCallItemId(callId: string): string {
  return `fc_${sha256Hex(callId).slice(0, 24)}`;
}

function functionCallItem(call: ChatToolCall, status: ItemStatus): FunctionCallItem {
  return { id: functionCallItemId(call.id), type: 'function_call', call_id: call.id, name: call.function.name, arguments: call.function.arguments, status };
}

/** Chat logprobs in Responses' shape: a token without exact bytes (none today) gets an empty array. */
export function responseLogprobs(content: readonly ChatTokenLogprob[] | undefined): ResponseLogprob[] {
  return (content ?? []).map((t) => ({
    token: t.token,
    logprob: t.logprob,
    bytes: t.bytes ?? [],
    top_logprobs: t.top_logprobs.map((top) => ({ token: top.token, logprob: top.logprob, bytes: top.bytes ?? [] })),
  }));
}

/** The text of a response's output messages, in order (what the SDKs call `output_text`). */
export function responseText(response: Pick<ResponseObject, 'output'>): string {
  return response.output.flatMap((item) => (item.type === 'message' ? item.content.map((part) => part.text) : [])).join('');
}

/** Whether a response's reply is parsed for function calls: function tools offered and not turned off (as the worker decides). */
export function parsesFunctionCalls(response: { tools: readonly { type: string }[]; tool_choice: ResponseToolChoice }): boolean {
  return response.tools.some((t) => t.type === 'function') && response.tool_choice !== 'none';
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The response once its chat job has ended: its status from how the job ended (`length` is
 * OpenAI's `incomplete` with reason `max_output_tokens`), the answer as one assistant message
 * whose id (`messageId`) the stream events already used (left out when the reply is only calls),
 * then its function calls, and the usage in Responses' names. `completedAt` is now, unless the caller
 * knows when the job ended (a batch line's output, which may be written again after a crash).
 */
export function settledResponse(base: ResponseObject, messageId: string, outcome: ChatOutcome, fileSearch?: ResponseFileSearch, completedAt = nowSeconds()): ResponseObject {
  const { usage: _none, ...unanswered } = base;
  const open = { ...unanswered, completed_at: null, error: null, incomplete_details: null };
  // The search ran before the job: its call stays in the output however the answer ended.
  const searched: OutputItem[] = fileSearch ? [fileSearch.call] : [];
  if (outcome.status !== 'completed') {
    if (outcome.status === 'cancelled' || outcome.error.code === 'cancelled') return { ...open, status: 'cancelled', output: searched };
    // The job's own code (worker_lost, expired, …) stays readable in the message; the field takes OpenAI's codes only.
    const code: ResponseErrorCode = outcome.error.code === 'context_length_exceeded' ? 'invalid_prompt' : 'server_error';
    return { ...open, status: 'failed', output: searched, error: { code, message: `${outcome.error.message} (${outcome.error.code})` } };
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
  const itemStatus: ItemStatus = result.finish_reason === 'stop' || result.finish_reason === 'tool_calls' ? 'completed' : 'incomplete';
  const calls = result.message.tool_calls ?? [];
  const citations = fileSearch ? fileCitations(result.message.content, fileSearch.sources) : [];
  const output: OutputItem[] = [
    ...searched,
    ...(result.message.content !== '' || calls.length === 0
      ? [assistantMessage(messageId, result.message.content, itemStatus, responseLogprobs(result.logprobs?.content), citations)]
      : []),
    ...calls.map((call) => functionCallItem(call, itemStatus)),
  ];
  switch (result.finish_reason) {
    case 'tool_calls':
    case 'stop':
      return { ...answered, status: 'completed', completed_at: completedAt, output };
    case 'length':
      return { ...answered, status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output };
    case 'cancelled':
      return { ...answered, status: 'cancelled', output };
  }
}

/** A stream event: its `type` is also the SSE `event:` name, as OpenAI sends them. */
export interface ResponseStreamEvent {
  type: string;
  sequence_number: number;
  [field: string]: unknown;
}

interface EventBody {
  type: string;
  [field: string]: unknown;
}

/**
 * The stream events of one response, numbered 0, 1, 2, … as they are made from the chat job's
 * token stream: `response.created`, `response.in_progress`, then per output item its
 * `response.output_item.added`, its deltas (`response.output_text.delta` for the message,
 * `response.function_call_arguments.delta` for a call) and its `…done` events, then the terminal
 * event. The numbering is a pure function of the token stream, so a background stream resumed
 * with `starting_after=N` (the same sequence rebuilt from token 0 and filtered to numbers above
 * N, from the token stream the Socket.IO relay resumes from) numbers every event as before.
 *
 * The message item opens with its first text; without tools every token is text, so it opens
 * with the first token. A reply that calls functions gets one function_call item per call, each
 * done before the next is added. Text after a call (rare: `auto` with a model that writes both)
 * streams into the message item, which is then numbered after those calls while the stored
 * response lists the message first.
 *
 * A cancelled response ends with `response.failed` carrying status `cancelled`: OpenAI's event
 * list has no cancelled event, and a client must still see how its stream ended.
 */
export class ResponseEventSequence {
  private seq = 0;
  private nextToken = 0;
  private nextOutputIndex = 0;
  private message: { outputIndex: number } | undefined;
  /** Streamed calls by their index in the reply. */
  private readonly calls: { outputIndex: number; item: FunctionCallItem; done: boolean }[] = [];
  private readonly parser: ToolCallParser | undefined;

  constructor(
    /** The response as it was created (status `queued` or `in_progress`, no output). */
    private readonly created: ResponseObject,
    private readonly messageId: string,
    /** The id of the reply's call `index`, as the worker names it (from the job that answers). */
    callId: (index: number) => string,
    /** The response's file search, which ran before its job: its item is output 0. */
    private readonly fileSearch?: FileSearchCallItem,
  ) {
    if (parsesFunctionCalls(created)) this.parser = new ToolCallParser(callId);
  }

  opening(): ResponseStreamEvent[] {
    return [
      this.next({ type: 'response.created', response: this.created }),
      this.next({ type: 'response.in_progress', response: { ...this.created, status: 'in_progress' } }),
      ...this.fileSearchEvents(),
    ];
  }

  /**
   * The file_search_call item's events, as OpenAI streams them. The search has already ended when
   * the stream opens (it decides the job's prompt), so they come one after the other.
   */
  private fileSearchEvents(): ResponseStreamEvent[] {
    if (!this.fileSearch) return [];
    const outputIndex = this.nextOutputIndex++;
    const at = { output_index: outputIndex, item_id: this.fileSearch.id };
    return [
      this.next({ type: 'response.output_item.added', output_index: outputIndex, item: { ...this.fileSearch, status: 'in_progress', results: null } }),
      this.next({ type: 'response.file_search_call.in_progress', ...at }),
      this.next({ type: 'response.file_search_call.searching', ...at }),
      this.next({ type: 'response.file_search_call.completed', ...at }),
      this.next({ type: 'response.output_item.done', output_index: outputIndex, item: this.fileSearch }),
    ];
  }

  /** Token `index` of the job's token stream, with the logprobs its entry carries. */
  token(index: number, text: string, logprobs?: ChatTokenLogprob[]): ResponseStreamEvent[] {
    // A token already seen (the relay delivering it again) must not shift the numbering.
    if (index < this.nextToken) return [];
    this.nextToken = index + 1;
    if (!this.parser) return this.text(text, responseLogprobs(logprobs));
    // Logprobs together with tools are refused by responses-request.ts: parsed text carries none.
    return this.parsed(this.parser.push(text));
  }

  /** The events after the last token, from the settled response. */
  closing(settled: ResponseObject): ResponseStreamEvent[] {
    const events: ResponseStreamEvent[] = [];
    if (settled.output.length > 0) {
      if (this.parser) events.push(...this.parsed(this.parser.finish()));
      // Calls the text did not carry (an upstream's, or a cached answer): whole, one item each.
      for (const item of settled.output) {
        if (item.type !== 'function_call' || this.calls.some((c) => c.item.call_id === item.call_id)) continue;
        events.push(...this.parsed([{ type: 'call', index: this.calls.length, id: item.call_id, name: item.name }, { type: 'arguments', index: this.calls.length, text: item.arguments }]));
      }
      const message = settled.output.find((item): item is AssistantMessageItem => item.type === 'message');
      if (message && !this.message) events.push(...this.openMessage());
      const closing: { outputIndex: number; events: () => ResponseStreamEvent[] }[] = [];
      if (message && this.message) {
        const at = { item_id: this.messageId, output_index: this.message.outputIndex, content_index: 0 };
        const part = message.content[0] ?? outputText('');
        closing.push({
          outputIndex: this.message.outputIndex,
          events: () => [
            ...part.annotations.map((annotation, annotation_index) => this.next({ type: 'response.output_text.annotation.added', ...at, annotation_index, annotation })),
            this.next({ type: 'response.output_text.done', ...at, text: part.text, logprobs: part.logprobs }),
            this.next({ type: 'response.content_part.done', ...at, part }),
            this.next({ type: 'response.output_item.done', output_index: at.output_index, item: message }),
          ],
        });
      }
      for (const call of this.calls) {
        const item = settled.output.find((i): i is FunctionCallItem => i.type === 'function_call' && i.call_id === call.item.call_id);
        if (!call.done) closing.push({ outputIndex: call.outputIndex, events: () => this.closeCall(call, item) });
      }
      closing.sort((a, b) => a.outputIndex - b.outputIndex);
      for (const c of closing) events.push(...c.events());
    }
    const terminal = settled.status === 'completed' ? 'response.completed' : settled.status === 'incomplete' ? 'response.incomplete' : 'response.failed';
    events.push(this.next({ type: terminal, response: settled }));
    return events;
  }

  private next(body: EventBody): ResponseStreamEvent {
    return { ...body, sequence_number: this.seq++ };
  }

  private openMessage(): ResponseStreamEvent[] {
    if (this.message) return [];
    const outputIndex = this.nextOutputIndex++;
    this.message = { outputIndex };
    return [
      this.next({ type: 'response.output_item.added', output_index: outputIndex, item: assistantMessage(this.messageId, '', 'in_progress') }),
      this.next({ type: 'response.content_part.added', output_index: outputIndex, item_id: this.messageId, content_index: 0, part: outputText('') }),
    ];
  }

  private text(delta: string, logprobs: ResponseLogprob[]): ResponseStreamEvent[] {
    const events = this.openMessage();
    const at = { item_id: this.messageId, output_index: this.message!.outputIndex, content_index: 0 };
    events.push(this.next({ type: 'response.output_text.delta', ...at, delta, logprobs }));
    return events;
  }

  private parsed(parsed: ToolCallEvent[]): ResponseStreamEvent[] {
    const events: ResponseStreamEvent[] = [];
    for (const e of parsed) {
      if (e.type === 'content') {
        events.push(...this.text(e.text, []));
      } else if (e.type === 'call') {
        // Each call is done before the next is added, as OpenAI streams items.
        for (const open of this.calls) if (!open.done) events.push(...this.closeCall(open));
        const outputIndex = this.nextOutputIndex++;
        const item: FunctionCallItem = { id: functionCallItemId(e.id), type: 'function_call', call_id: e.id, name: e.name, arguments: '', status: 'in_progress' };
        this.calls[e.index] = { outputIndex, item, done: false };
        events.push(this.next({ type: 'response.output_item.added', output_index: outputIndex, item: { ...item } }));
      } else {
        const call = this.calls[e.index];
        if (!call) continue;
        call.item.arguments += e.text;
        events.push(this.next({ type: 'response.function_call_arguments.delta', item_id: call.item.id, output_index: call.outputIndex, delta: e.text }));
      }
    }
    return events;
  }

  /** A call's `…done` events: from the settled response's item when there is one (its final status). */
  private closeCall(call: { outputIndex: number; item: FunctionCallItem; done: boolean }, settled?: FunctionCallItem): ResponseStreamEvent[] {
    call.done = true;
    const item = settled ?? { ...call.item, status: 'completed' as const };
    return [
      this.next({ type: 'response.function_call_arguments.done', item_id: item.id, output_index: call.outputIndex, name: item.name, arguments: item.arguments }),
      this.next({ type: 'response.output_item.done', output_index: call.outputIndex, item }),
    ];
  }
}

/** OpenAI's `error` event, for a stream that cannot go on; numbered after the last event sent. */
export function errorEvent(sequenceNumber: number, e: { code: string; message: string; param: string | null }): ResponseStreamEvent {
  return { type: 'error', sequence_number: sequenceNumber, code: e.code, message: e.message, param: e.param };
}
