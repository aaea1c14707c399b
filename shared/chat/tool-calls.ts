import { sha256Hex } from '../sha256.js';
import type { ChatToolCall } from './chat-options.js';

/**
 * The tool-call syntax of Hermes-style chat templates (Qwen2.5, Hermes 2/3, the generated tiny
 * model): each call is a JSON object in tags,
 *
 *   <tool_call>
 *   {"name": "get_weather", "arguments": {"city": "Paris"}}
 *   </tool_call>
 *
 * several calls one after another. The worker constrains decoding to exactly this
 * (workers/chat/grammar/response-format.ts) and parses its own output with ToolCallParser; the API
 * runs the same parser over the streamed text to send OpenAI's `delta.tool_calls` chunks, so the
 * stream and the job's result always agree.
 */
export const TOOL_CALL_BEGIN = '<tool_call>';
export const TOOL_CALL_END = '</tool_call>';

/** What a grammar makes the model write before a call's arguments and after them. */
export function toolCallOpening(name: string): string {
  return `${TOOL_CALL_BEGIN}\n{"name": ${JSON.stringify(name)}, "arguments": `;
}
export const TOOL_CALL_CLOSING = `}\n${TOOL_CALL_END}`;
/** Between two calls. */
export const TOOL_CALL_SEPARATOR = '\n';

/**
 * A call's id: derived from its job and position, so that the streamed chunks (the API's parser)
 * and the job's result (the worker's) name a call the same way. OpenAI's ids look alike: call_ + 24 characters.
 */
export function toolCallId(jobId: string, index: number): string {
  return `call_${sha256Hex(`${jobId}\0${index}`).slice(0, 24)}`;
}

export type ToolCallEvent =
  | { type: 'content'; text: string }
  /** A call begins: its index among the reply's calls, id and function name. */
  | { type: 'call'; index: number; id: string; name: string }
  /** The next piece of a call's arguments (a JSON text; the pieces concatenate to the final arguments). */
  | { type: 'arguments'; index: number; text: string };

/** The name-first opening a model writes inside the tags (whitespace as it likes). */
const NAME_FIRST = /^\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*/;

/**
 * Splits a reply's text, fed piece by piece, into content and tool calls.
 *
 * Text that could be the start of a `<tool_call>` tag is held back until decided. Inside a call,
 * the function's name is announced as soon as the name-first opening is complete, and the
 * arguments then stream as they come, except a tail that could be the call's closing `}`,
 * whitespace or a partial `</tool_call>`. A call written arguments-first (valid JSON, but not
 * streamable) is announced whole when its closing tag arrives; a block that is not a call at all
 * (no name) is content. Whitespace around calls is not content.
 *
 * `finish()` ends the text: an unclosed call that was already announced (a reply cut by
 * max_tokens) keeps the arguments written so far; anything else still held back is content.
 */
export class ToolCallParser {
  private buffer = '';
  private inCall = false;
  private calls: { id: string; name: string; arguments: string }[] = [];
  /** Whitespace held back outside calls: content only if something other than a call follows. */
  private pendingSpace = '';
  private current: { announced: boolean; argsStart: number; emitted: number; spaceBefore: string } | undefined;

  constructor(private readonly idFor: (index: number) => string) {}

  /** The calls parsed so far (arguments as emitted so far for an unfinished one). */
  get toolCalls(): ChatToolCall[] {
    return this.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }

  push(text: string): ToolCallEvent[] {
    const events: ToolCallEvent[] = [];
    this.buffer += text;
    for (;;) {
      if (!this.inCall) {
        const at = this.buffer.indexOf(TOOL_CALL_BEGIN);
        if (at < 0) {
          const decided = this.buffer.length - partialTagLength(this.buffer, TOOL_CALL_BEGIN);
          this.content(this.buffer.slice(0, decided), events);
          this.buffer = this.buffer.slice(decided);
          return events;
        }
        this.content(this.buffer.slice(0, at), events);
        // Whitespace right before a call is not content (kept aside in case the block is no call).
        this.current = { announced: false, argsStart: 0, emitted: 0, spaceBefore: this.pendingSpace };
        this.pendingSpace = '';
        this.buffer = this.buffer.slice(at + TOOL_CALL_BEGIN.length);
        this.inCall = true;
      }
      const end = this.buffer.indexOf(TOOL_CALL_END);
      if (end < 0) {
        this.streamCall(this.buffer, false, events);
        return events;
      }
      this.streamCall(this.buffer.slice(0, end), true, events);
      this.buffer = this.buffer.slice(end + TOOL_CALL_END.length);
      this.inCall = false;
      this.current = undefined;
    }
  }

  finish(): ToolCallEvent[] {
    const events: ToolCallEvent[] = [];
    if (this.inCall && this.current?.announced) {
      this.streamCall(this.buffer, true, events, { truncated: true });
    } else if (this.inCall) {
      this.notACall(TOOL_CALL_BEGIN + this.buffer, events);
    } else {
      this.content(this.buffer, events);
    }
    if (this.calls.length === 0 && this.pendingSpace) events.push({ type: 'content', text: this.pendingSpace });
    this.buffer = '';
    this.pendingSpace = '';
    this.inCall = false;
    this.current = undefined;
    return events;
  }

  /** Text outside calls: whitespace-only runs wait to see whether a call follows. */
  private content(text: string, events: ToolCallEvent[]): void {
    if (text === '') return;
    if (text.trim() === '') {
      this.pendingSpace += text;
      return;
    }
    // After a call, the whitespace that separated it from this text is not content either.
    const lead = this.calls.length > 0 ? '' : this.pendingSpace;
    const body = this.calls.length > 0 ? text.trimStart() : text;
    const trailing = body.length - body.trimEnd().length;
    this.pendingSpace = body.slice(body.length - trailing);
    const out = lead + body.slice(0, body.length - trailing);
    if (out) events.push({ type: 'content', text: out });
  }

  /** A tagged block that turned out not to be a call: content, with the whitespace before it. */
  private notACall(block: string, events: ToolCallEvent[]): void {
    this.pendingSpace = this.current?.spaceBefore ?? '';
    this.content(block, events);
  }

  /** The body of the current call (between the tags) as far as it is known; `closed` at its end. */
  private streamCall(body: string, closed: boolean, events: ToolCallEvent[], opts: { truncated?: boolean } = {}): void {
    const cur = this.current!;
    const index = this.calls.length - (cur.announced ? 1 : 0);
    if (!cur.announced) {
      const opening = NAME_FIRST.exec(body);
      let name: string | undefined;
      if (opening) {
        try {
          name = JSON.parse(opening[1]!) as string;
        } catch {
          name = undefined;
        }
      }
      if (opening && name !== undefined) {
        cur.announced = true;
        cur.argsStart = opening[0].length;
        this.calls.push({ id: this.idFor(index), name, arguments: '' });
        events.push({ type: 'call', index, id: this.idFor(index), name });
      } else if (closed) {
        // Arguments-first or not a call: decided only now that it is whole.
        const whole = parseCall(body);
        if (whole === undefined) {
          this.notACall(`${TOOL_CALL_BEGIN}${body}${TOOL_CALL_END}`, events);
          return;
        }
        this.calls.push({ id: this.idFor(index), name: whole.name, arguments: whole.arguments });
        events.push({ type: 'call', index, id: this.idFor(index), name: whole.name });
        if (whole.arguments) events.push({ type: 'arguments', index, text: whole.arguments });
        return;
      } else {
        return;
      }
    }
    const call = this.calls[index]!;
    const args = body.slice(cur.argsStart).trimStart();
    let final: string;
    if (args.startsWith('"')) {
      // Arguments written as a JSON string holding the JSON (some models do): its decoded text,
      // known only once the string is whole.
      if (!closed) return;
      final = decodedString(opts.truncated ? args : closedArguments(args)) ?? args;
    } else {
      final = closed ? (opts.truncated ? args : closedArguments(args)) : openArguments(args);
    }
    if (final.length > cur.emitted) {
      events.push({ type: 'arguments', index, text: final.slice(cur.emitted) });
      cur.emitted = final.length;
      call.arguments = final;
    }
  }
}

/** Parses a whole reply's text: its content and calls (what the streamed events add up to). */
export function parseToolCalls(text: string, idFor: (index: number) => string): { content: string; toolCalls: ChatToolCall[] } {
  const parser = new ToolCallParser(idFor);
  const events = [...parser.push(text), ...parser.finish()];
  const content = events.map((e) => (e.type === 'content' ? e.text : '')).join('');
  return { content, toolCalls: parser.toolCalls };
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag`. */
function partialTagLength(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}

/** The arguments of a closed call: its body after the opening, less the wrapper's closing `}`. */
function closedArguments(args: string): string {
  const trimmed = args.trimEnd();
  return trimmed.endsWith('}') ? trimmed.slice(0, -1).trimEnd() : trimmed;
}

/**
 * What of an open call's arguments is certain: everything but a tail that could still turn out
 * to be the wrapper's closing `}`, whitespace, or the start of `</tool_call>`.
 */
function openArguments(args: string): string {
  let end = args.length - partialTagLength(args, TOOL_CALL_END);
  while (end > 0 && /\s/.test(args[end - 1]!)) end--;
  if (end > 0 && args[end - 1] === '}') {
    end--;
    while (end > 0 && /\s/.test(args[end - 1]!)) end--;
  }
  return args.slice(0, end);
}

function decodedString(text: string): string | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A whole call body in any key order: {"name": string, "arguments": object | string}. */
function parseCall(body: string): { name: string; arguments: string } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { name, arguments: args } = value as { name?: unknown; arguments?: unknown };
  if (typeof name !== 'string' || name === '') return undefined;
  return { name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) };
}
