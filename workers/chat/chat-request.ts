import { effectiveToolChoice, toolSettingsProblem, type ChatTool } from '../../shared/chat/chat-options.js';
import { parseToolCalls, toolCallId } from '../../shared/chat/tool-calls.js';
import type { ChatToolCall } from '../../shared/chat/chat-options.js';
import type { JobPayload } from '../../shared/jobs/job-catalog.js';
import type { ChatTemplateOptions } from './chat-tokenizer.js';
import type { ResponseFormat } from './grammar/response-format.js';

/**
 * How a local model serves a chat job's structured-output and tool settings:
 *
 *   - tools are shown to the model through its own chat template (the `tools` variable of Hugging
 *     Face templates), except with tool_choice `none`, where the model is not told of them;
 *   - tool_choice `required` or a named function constrains the whole reply to tool calls of those
 *     functions (a grammar, see grammar/response-format.ts), so every call names a real function
 *     and its arguments validate against that function's parameters;
 *   - otherwise `response_format` (json_object / json_schema) constrains the reply, if given;
 *   - with tools offered (`auto`, `required`, named), the reply is parsed for tool calls.
 */
export interface ChatPlan {
  template: ChatTemplateOptions;
  responseFormat?: ResponseFormat;
  /** Parse the reply for tool calls. */
  parsesToolCalls: boolean;
}

/** A function without `parameters` takes no arguments: an empty object. */
const NO_PARAMETERS = { type: 'object', properties: {}, additionalProperties: false };

export function planChat(payload: JobPayload<'chat'>): ChatPlan {
  const problem = toolSettingsProblem(payload);
  if (problem) throw new Error(`${problem.param}: ${problem.message}`);
  const choice = effectiveToolChoice(payload);
  const tools = payload.tools ?? [];
  const template: ChatTemplateOptions = { addGenerationPrompt: true, ...(choice.kind === 'none' ? {} : { extra: { tools } }) };
  const functions = (list: readonly ChatTool[]) => list.map((t) => ({ name: t.function.name, parameters: t.function.parameters ?? NO_PARAMETERS }));

  switch (choice.kind) {
    case 'required':
      return { template, parsesToolCalls: true, responseFormat: { type: 'tool_calls', functions: functions(tools), parallel: payload.parallel_tool_calls ?? true } };
    case 'function':
      return { template, parsesToolCalls: true, responseFormat: { type: 'tool_calls', functions: functions(tools.filter((t) => t.function.name === choice.name)), parallel: false } };
    case 'auto':
    case 'none': {
      const format = payload.response_format;
      let responseFormat: ResponseFormat | undefined;
      if (format?.type === 'json_object') responseFormat = { type: 'json_object' };
      else if (format?.type === 'json_schema') {
        responseFormat = { type: 'json_schema', schema: format.json_schema.schema ?? {}, ...(format.json_schema.strict == null ? {} : { strict: format.json_schema.strict }) };
      }
      return { template, parsesToolCalls: choice.kind === 'auto', ...(responseFormat ? { responseFormat } : {}) };
    }
  }
}

/** A finished reply's content and tool calls (ids derived from the job id, as the API's stream derives them). */
export function splitReply(plan: ChatPlan, jobId: string, text: string): { content: string; toolCalls?: ChatToolCall[] } {
  if (!plan.parsesToolCalls) return { content: text };
  const { content, toolCalls } = parseToolCalls(text, (i) => toolCallId(jobId, i));
  return toolCalls.length > 0 ? { content, toolCalls } : { content };
}
