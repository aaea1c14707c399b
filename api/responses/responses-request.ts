import { randomUUID } from 'node:crypto';
import type { CreateResponseRequest, ResponseInputItem } from '../../shared/api/responses-schemas.js';
import { errors } from '../../shared/errors/app-error.js';
import type { JobPayload } from '../../shared/jobs/job-catalog.js';
import type { ChatModelConfig } from '../../shared/models/model-registry.js';
import type { ChatService } from '../jobs/chat-service.js';
import { assistantMessage, type ConversationItem, type ResponseObject } from './responses-events.js';

/**
 * A Responses request → a chat job: the one module that maps Responses' parameters onto the chat
 * job payload (shared/jobs/job-catalog.ts). The objects and events going back are built in
 * responses-events.ts.
 *
 * Accepted by the schema but refused here with 400 `unsupported_parameter` until the chat job
 * supports them (issue #12; they are wired here, and only here, when it does):
 * - `text.format` `json_schema` / `json_object` → the chat job's `response_format`;
 * - function `tools`, `tool_choice` `required` or a named function → the chat job's `tools`;
 *   `function_call` and `function_call_output` input items → assistant tool calls and `tool` messages;
 * - `top_logprobs` > 0 and `include` (e.g. `message.output_text.logprobs`) → the chat job's logprobs.
 */

export const newResponseId = () => `resp_${randomUUID().replace(/-/g, '')}`;
export const newMessageId = () => `msg_${randomUUID().replace(/-/g, '')}`;

const unsupported = (param: string, what: string) =>
  errors.invalidRequest(`${what} is not supported yet by this server's Responses API.`, param, 'unsupported_parameter');

/** Refuses what the chat job cannot do yet, and combinations OpenAI refuses too. */
export function checkSupported(body: CreateResponseRequest): void {
  const format = body.text?.format?.type;
  if (format && format !== 'text') throw unsupported('text.format', `'text.format' of type '${format}' (structured outputs)`);
  if (body.tools?.length) throw unsupported('tools', "Function 'tools'");
  if (body.tool_choice && body.tool_choice !== 'auto' && body.tool_choice !== 'none') throw unsupported('tool_choice', `'tool_choice' other than 'auto' or 'none'`);
  if (body.top_logprobs) throw unsupported('top_logprobs', "'top_logprobs'");
  if (body.include?.length) throw unsupported('include', `'include' (${body.include.join(', ')})`);
  if (body.truncation === 'auto') throw unsupported('truncation', "'truncation: auto'");
  if (body.background && body.store === false) {
    throw errors.invalidRequest("'background' responses must be stored: drop 'store: false' (they are read back with GET /v1/responses/{id}).", 'store');
  }
}

/** The request's input as conversation items with ids, as input_items lists them. */
export function inputItems(input: CreateResponseRequest['input']): ConversationItem[] {
  if (typeof input === 'string') return [userMessage(input)];
  return input.map((item, i) => toConversationItem(item, i));
}

function userMessage(text: string): ConversationItem {
  return { id: newMessageId(), type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text }] };
}

function toConversationItem(item: ResponseInputItem, index: number): ConversationItem {
  if (item.type === 'function_call' || item.type === 'function_call_output') {
    throw unsupported(`input[${index}]`, `A '${item.type}' input item (function tools)`);
  }
  const text = typeof item.content === 'string' ? item.content : item.content.map((p) => p.text).join('');
  if (item.role === 'assistant') return assistantMessage(item.id ?? newMessageId(), text, 'completed');
  if (typeof item.content !== 'string') {
    const wrong = item.content.findIndex((p) => p.type !== 'input_text');
    if (wrong >= 0) throw errors.invalidRequest(`A '${item.role}' message takes 'input_text' parts; 'output_text' is for 'assistant' messages.`, `input[${index}].content[${wrong}]`);
  }
  return { id: item.id ?? newMessageId(), type: 'message', role: item.role, status: 'completed', content: [{ type: 'input_text', text }] };
}

/**
 * The chat job for a response: `instructions` first as the system message (they are not carried
 * over by `previous_response_id`, as in OpenAI's API), then the conversation so far, then this input.
 */
export function chatPayload(chat: ChatService, model: ChatModelConfig, body: CreateResponseRequest, conversation: readonly ConversationItem[]): JobPayload<'chat'> {
  if (body.max_output_tokens != null && body.max_output_tokens > model.max_tokens_limit) {
    throw errors.invalidRequest(`'max_output_tokens' is ${body.max_output_tokens}; model '${model.id}' allows at most ${model.max_tokens_limit}.`, 'max_output_tokens', 'max_tokens_too_large');
  }
  if (!conversation.some((item) => item.role === 'user')) throw errors.invalidRequest("'input' must contain at least one message with role 'user'.", 'input');
  const messages = [
    ...(body.instructions ? [{ role: 'system' as const, content: body.instructions }] : []),
    ...conversation.map((item) => ({
      // OpenAI's 'developer' role plays the part of 'system' for these models (as on chat completions).
      role: item.role === 'developer' ? ('system' as const) : item.role,
      content: item.content.map((p) => p.text).join(''),
    })),
  ];
  return chat.payload(model, {
    messages,
    ...(body.max_output_tokens != null ? { max_tokens: body.max_output_tokens } : {}),
    ...(body.temperature != null ? { temperature: body.temperature } : {}),
    ...(body.top_p != null ? { top_p: body.top_p } : {}),
    ...(body.top_k !== undefined ? { top_k: body.top_k } : {}),
    ...(body.repetition_penalty !== undefined ? { repetition_penalty: body.repetition_penalty } : {}),
    ...(body.seed !== undefined ? { seed: body.seed } : {}),
  });
}

/** The response object as created, before its job runs: what `response.created` carries. */
export function createdResponse(
  id: string,
  body: CreateResponseRequest,
  payload: JobPayload<'chat'>,
  opts: { background: boolean; store: boolean },
): ResponseObject {
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: opts.background ? 'queued' : 'in_progress',
    completed_at: null,
    background: opts.background,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: payload.model,
    output: [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: null,
    service_tier: 'default',
    store: opts.store,
    temperature: payload.temperature,
    text: { format: { type: 'text' } },
    tool_choice: body.tool_choice === 'none' ? 'none' : 'auto',
    tools: [],
    top_p: payload.top_p,
    truncation: 'disabled',
    ...(body.user ? { user: body.user } : {}),
    metadata: body.metadata ?? {},
  };
}
