import { randomUUID } from 'node:crypto';
import type { CreateResponseRequest, ResponseInputItem, ResponseTextFormat } from '../api/responses-schemas.js';
import { toolSettingsProblem, type ChatResponseFormat, type ChatTool, type ChatToolCall, type ChatToolChoice } from '../chat/chat-options.js';
import { errors } from '../errors/app-error.js';
import type { JobPayload } from '../jobs/job-catalog.js';
import type { ChatModelConfig } from '../models/model-registry.js';
import { chatPayload as chatJobPayload } from '../api/openai-requests.js';
import { FILE_SEARCH_RESULTS_INCLUDE } from '../documents/file-search.js';
import { assistantMessage, functionCallItemId, parsesFunctionCalls, type ConversationItem, type ResponseObject } from './responses-events.js';

/**
 * A Responses request → a chat job: the one module that maps Responses' parameters onto the chat
 * job payload (shared/jobs/job-catalog.ts). The objects and events going back are built in
 * responses-events.ts.
 *
 * - `text.format` (`text`, `json_object`, `json_schema` with its flat `name`/`schema`/`strict`) →
 *   the chat job's `response_format`, which the worker enforces with its grammar;
 * - function `tools` (flat: `{type, name, description, parameters, strict}`), `tool_choice`
 *   (`none`, `auto`, `required`, `{type: "function", name}`) and `parallel_tool_calls` → the chat
 *   job's tools, whose calls the worker's grammar keeps to the functions' schemas;
 * - `function_call` input items → the assistant turn's `tool_calls`, `function_call_output` → a
 *   `tool` message answering its call;
 * - `include: ["message.output_text.logprobs"]` or `top_logprobs` > 0 → the chat job's logprobs.
 */

export const newResponseId = () => `resp_${randomUUID().replace(/-/g, '')}`;
export const newMessageId = () => `msg_${randomUUID().replace(/-/g, '')}`;
export const newFileSearchCallId = () => `fs_${randomUUID().replace(/-/g, '')}`;
const newFunctionOutputId = () => `fco_${randomUUID().replace(/-/g, '')}`;

/** The `include` value that changes what a chat job does. */
const LOGPROBS_INCLUDE = 'message.output_text.logprobs';
/** The `include` values served; the others name outputs of tools this server has not. */
const SERVED_INCLUDES: readonly string[] = [LOGPROBS_INCLUDE, FILE_SEARCH_RESULTS_INCLUDE];

const unsupported = (param: string, what: string) =>
  errors.invalidRequest(`${what} is not supported by this server's Responses API.`, param, 'unsupported_parameter');

/** Whether the caller asked for the output text's logprobs. */
function wantsLogprobs(body: CreateResponseRequest): boolean {
  return (body.include ?? []).includes(LOGPROBS_INCLUDE) || (body.top_logprobs ?? 0) > 0;
}

/** Refuses what the chat job cannot do, and combinations OpenAI refuses too. */
export function checkSupported(body: CreateResponseRequest): void {
  const others = (body.include ?? []).filter((i) => !SERVED_INCLUDES.includes(i));
  if (others.length) throw unsupported('include', `'include' of ${others.map((i) => `'${i}'`).join(', ')} (only ${SERVED_INCLUDES.map((i) => `'${i}'`).join(', ')})`);
  // A reply's tokens would have to be split between the message and the calls parsed from it.
  if (wantsLogprobs(body) && parsesFunctionCalls({ tools: body.tools ?? [], tool_choice: body.tool_choice ?? 'auto' })) {
    throw unsupported(body.top_logprobs ? 'top_logprobs' : 'include', "Output text logprobs together with function 'tools' the model may call");
  }
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
  if (item.type === 'function_call') {
    return { id: item.id ?? functionCallItemId(item.call_id), type: 'function_call', call_id: item.call_id, name: item.name, arguments: item.arguments, status: 'completed' };
  }
  if (item.type === 'function_call_output') {
    return { id: item.id ?? newFunctionOutputId(), type: 'function_call_output', call_id: item.call_id, output: item.output, status: 'completed' };
  }
  const text = typeof item.content === 'string' ? item.content : item.content.map((p) => p.text).join('');
  if (item.role === 'assistant') return assistantMessage(item.id ?? newMessageId(), text, 'completed');
  if (typeof item.content !== 'string') {
    const wrong = item.content.findIndex((p) => p.type !== 'input_text');
    if (wrong >= 0) throw errors.invalidRequest(`A '${item.role}' message takes 'input_text' parts; 'output_text' is for 'assistant' messages.`, `input[${index}].content[${wrong}]`);
  }
  return { id: item.id ?? newMessageId(), type: 'message', role: item.role, status: 'completed', content: [{ type: 'input_text', text }] };
}

type ChatMessage = JobPayload<'chat'>['messages'][number];

/**
 * The conversation as chat messages: calls that follow an assistant's text or each other are that
 * assistant turn's `tool_calls` (parallel calls), each output a `tool` message; an output must
 * answer a call made earlier in the conversation (OpenAI refuses it otherwise too).
 */
function chatMessages(conversation: readonly ConversationItem[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  const calls = new Set<string>();
  for (const item of conversation) {
    switch (item.type) {
      case 'message':
        // OpenAI's 'developer' role plays the part of 'system' for these models (as on chat completions).
        messages.push({ role: item.role === 'developer' ? 'system' : item.role, content: item.content.map((p) => p.text).join('') });
        break;
      case 'function_call': {
        calls.add(item.call_id);
        const call: ChatToolCall = { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } };
        const last = messages.at(-1);
        if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
        else messages.push({ role: 'assistant', content: '', tool_calls: [call] });
        break;
      }
      case 'file_search_call':
        // Its results reached the model through the turn's prompt; a later turn searches again.
        break;
      case 'function_call_output':
        if (!calls.has(item.call_id)) {
          throw errors.invalidRequest(`No function call found for the 'function_call_output' with call_id '${item.call_id}': send its 'function_call' item before it, or continue the response that made it with 'previous_response_id'.`, 'input');
        }
        messages.push({ role: 'tool', content: typeof item.output === 'string' ? item.output : item.output.map((p) => p.text).join(''), tool_call_id: item.call_id });
        break;
    }
  }
  return messages;
}

/** Responses' flat function tools → chat's, with OpenAI's Responses default `strict: true` (the worker's call grammar is strict in any case). */
function chatTools(body: CreateResponseRequest): { tools?: ChatTool[]; tool_choice?: ChatToolChoice } {
  const functions = (body.tools ?? []).filter((t) => t.type === 'function');
  const searches = (body.tools ?? []).some((t) => t.type === 'file_search');
  // A file_search tool alone: 'auto' and 'required' are met by the search itself, which runs
  // unless the choice is 'none' (ResponseService.prepare); the chat job then has no tools at all.
  if (!functions.length && (body.tool_choice === undefined || (searches && typeof body.tool_choice === 'string'))) return {};
  const tools: ChatTool[] = functions.map((t) => ({
    type: 'function',
    function: {
      name: t.name,
      ...(t.description == null ? {} : { description: t.description }),
      ...(t.parameters == null ? {} : { parameters: t.parameters }),
      strict: t.strict ?? true,
    },
  }));
  const choice = body.tool_choice;
  const tool_choice: ChatToolChoice | undefined = choice === undefined || typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
  const problem = toolSettingsProblem({ tools, tool_choice });
  // The same checks as chat completions, with the field named as the Responses request has it.
  if (problem) throw errors.invalidRequest(problem.message, problem.param.replace('.function.name', '.name'));
  return { ...(tools.length ? { tools } : {}), ...(tool_choice === undefined ? {} : { tool_choice }) };
}

function chatResponseFormat(format: ResponseTextFormat | undefined): ChatResponseFormat | undefined {
  if (!format || format.type !== 'json_schema') return format;
  const { type, name, schema, description, strict } = format;
  return { type, json_schema: { name, schema, ...(description === undefined ? {} : { description }), ...(strict == null ? {} : { strict }) } };
}

/**
 * The chat job for a response: `instructions` first as the system message (they are not carried
 * over by `previous_response_id`, as in OpenAI's API), then the conversation so far, then this input.
 */
export function chatPayload(model: ChatModelConfig, body: CreateResponseRequest, conversation: readonly ConversationItem[]): JobPayload<'chat'> {
  if (body.max_output_tokens != null && body.max_output_tokens > model.max_tokens_limit) {
    throw errors.invalidRequest(`'max_output_tokens' is ${body.max_output_tokens}; model '${model.id}' allows at most ${model.max_tokens_limit}.`, 'max_output_tokens', 'max_tokens_too_large');
  }
  if (!conversation.some((item) => item.type === 'message' && item.role === 'user')) throw errors.invalidRequest("'input' must contain at least one message with role 'user'.", 'input');
  const messages = [...(body.instructions ? [{ role: 'system' as const, content: body.instructions }] : []), ...chatMessages(conversation)];
  const responseFormat = chatResponseFormat(body.text?.format);
  return chatJobPayload(model, {
    messages,
    ...(body.max_output_tokens != null ? { max_tokens: body.max_output_tokens } : {}),
    ...(body.temperature != null ? { temperature: body.temperature } : {}),
    ...(body.top_p != null ? { top_p: body.top_p } : {}),
    ...(body.top_k !== undefined ? { top_k: body.top_k } : {}),
    ...(body.repetition_penalty !== undefined ? { repetition_penalty: body.repetition_penalty } : {}),
    ...(body.seed !== undefined ? { seed: body.seed } : {}),
    ...(wantsLogprobs(body) ? { logprobs: true, top_logprobs: body.top_logprobs ?? 0 } : {}),
    ...(responseFormat ? { response_format: responseFormat } : {}),
    ...chatTools(body),
    ...(body.parallel_tool_calls != null ? { parallel_tool_calls: body.parallel_tool_calls } : {}),
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
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    // As the job got them (strict defaulted), in Responses' flat shape; then the file_search tool as asked.
    tools: [
      ...(payload.tools ?? []).map(({ function: f }) => ({
        type: 'function' as const,
        name: f.name,
        description: f.description ?? null,
        parameters: f.parameters ?? null,
        strict: f.strict ?? true,
      })),
      ...(body.tools ?? []).flatMap((t) =>
        t.type === 'file_search'
          ? [
              {
                type: 'file_search' as const,
                vector_store_ids: t.vector_store_ids,
                ...(t.max_num_results === undefined ? {} : { max_num_results: t.max_num_results }),
                filters: t.filters ?? null,
                ...(t.ranking_options === undefined ? {} : { ranking_options: t.ranking_options }),
              },
            ]
          : [],
      ),
    ],
    top_logprobs: payload.top_logprobs ?? null,
    top_p: payload.top_p,
    truncation: 'disabled',
    ...(body.user ? { user: body.user } : {}),
    metadata: body.metadata ?? {},
  };
}
