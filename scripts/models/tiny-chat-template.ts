/**
 * The generated tiny chat model's chat template, in a file of its own (no dependencies) so that
 * scripts/models/build-models.ts can tell a model folder written with an older template without
 * loading the generator's build-time packages.
 */

/**
 * ChatML, as Qwen2 / SmolLM2 instruct models use it: every message is
 * `<|im_start|>{role}\n{content}<|im_end|>\n`, and the generation prompt opens an assistant turn.
 *
 * Tool use follows the Hermes convention of Qwen2.5's template, so that the tiny model is prompted
 * (and its calls parsed, shared/chat/tool-calls.ts) the way real tool-calling models are:
 *   - with `tools`, a system turn lists them as JSON lines in <tools></tools> and asks for calls as
 *     <tool_call>{"name": …, "arguments": …}</tool_call> (the conversation's own system message,
 *     if it comes first, opens that turn);
 *   - an assistant turn's `tool_calls` are written in that syntax after its content;
 *   - consecutive `tool` messages form one user turn of <tool_response> blocks.
 * Without tools, the prompt is plain ChatML, byte for byte.
 */
export const CHATML_TEMPLATE = [
  '{%- set offset = 0 -%}',
  '{%- if tools -%}',
  "{{- '<|im_start|>system\\n' -}}",
  "{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n\\n' -}}{%- set offset = 1 -%}{%- endif -%}",
  "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n' -}}",
  "{{- 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' -}}",
  "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}",
  "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n' -}}",
  "{{- '<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call><|im_end|>\\n' -}}",
  '{%- endif -%}',
  '{%- for message in messages[offset:] -%}',
  "{%- if message['role'] == 'assistant' and message['tool_calls'] -%}",
  "{{- '<|im_start|>assistant' -}}",
  "{%- if message['content'] -%}{{- '\\n' + message['content'] -}}{%- endif -%}",
  "{%- for call in message['tool_calls'] -%}",
  "{%- set fn = call['function'] if call['function'] is defined else call -%}",
  "{{- '\\n<tool_call>\\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' + (fn['arguments'] | tojson) + '}\\n</tool_call>' -}}",
  '{%- endfor -%}',
  "{{- '<|im_end|>\\n' -}}",
  "{%- elif message['role'] == 'tool' -%}",
  "{%- if loop.first or loop.previtem['role'] != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}",
  "{{- '\\n<tool_response>\\n' + message['content'] + '\\n</tool_response>' -}}",
  "{%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}",
  '{%- else -%}',
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}",
  '{%- endif -%}',
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
].join('');
