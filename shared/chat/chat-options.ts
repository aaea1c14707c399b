import { z } from 'zod';

/**
 * OpenAI's structured-output and tool fields of a chat request, in OpenAI's own shapes: the public
 * request (shared/api/request-schemas.ts) and the chat job payload (shared/jobs/job-catalog.ts)
 * both use these, so a chat job carries exactly what the client asked for and the worker decides
 * how to enforce it (workers/chat/chat-request.ts).
 */

/** OpenAI's rule for function and schema names. */
const functionName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, underscores or dashes');

/** A JSON Schema object; checked against the JSON Schema meta-schema by the worker (and the API, shared/chat/json-schema-check.ts). */
const jsonSchemaObject = z.record(z.string(), z.unknown());

export const chatResponseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z
        .object({
          name: functionName,
          description: z.string().optional(),
          /** Left out: any JSON value (OpenAI's default). */
          schema: jsonSchemaObject.optional(),
          strict: z.boolean().nullable().optional(),
        })
        .strict(),
    })
    .strict(),
]);

export const chatToolSchema = z
  .object({
    type: z.literal('function'),
    function: z
      .object({
        name: functionName,
        description: z.string().optional(),
        /** JSON Schema of the arguments object; left out: a function without parameters. */
        parameters: jsonSchemaObject.optional(),
        strict: z.boolean().nullable().optional(),
      })
      .strict(),
  })
  .strict();

export const chatToolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: functionName }).strict() }).strict(),
]);

/** A call the assistant made: in a reply's message, and in the history a client sends back. */
export const chatToolCallSchema = z
  .object({
    id: z.string().min(1).max(256),
    type: z.literal('function'),
    function: z.object({ name: z.string().min(1).max(256), arguments: z.string() }).strict(),
  })
  .strict();

export type ChatResponseFormat = z.infer<typeof chatResponseFormatSchema>;
export type ChatTool = z.infer<typeof chatToolSchema>;
export type ChatToolChoice = z.infer<typeof chatToolChoiceSchema>;
export type ChatToolCall = z.infer<typeof chatToolCallSchema>;

/** Most tools a request may define (OpenAI's limit). */
export const MAX_TOOLS = 128;

/** The fields a chat request adds for structured outputs and tools. */
export const chatStructuredFields = {
  response_format: chatResponseFormatSchema.optional(),
  tools: z.array(chatToolSchema).max(MAX_TOOLS).optional(),
  tool_choice: chatToolChoiceSchema.optional(),
  /** Default true, as OpenAI's: the model may call several tools in one reply. */
  parallel_tool_calls: z.boolean().optional(),
};

/**
 * What a request's tool settings mean once defaults apply: the tools the prompt shows and what the
 * reply may (`auto`), must (`required`, a named function) or may not (`none`, or no tools) call.
 */
export type EffectiveToolChoice = { kind: 'none' } | { kind: 'auto' } | { kind: 'required' } | { kind: 'function'; name: string };

export function effectiveToolChoice(p: { tools?: readonly ChatTool[] | undefined; tool_choice?: ChatToolChoice | undefined }): EffectiveToolChoice {
  if (!p.tools || p.tools.length === 0) return { kind: 'none' };
  const choice = p.tool_choice ?? 'auto';
  if (typeof choice === 'string') return { kind: choice };
  return { kind: 'function', name: choice.function.name };
}

/**
 * Consistency checks of tool settings that the schemas cannot express; returns the problem and the
 * field it is in, or undefined. Both the API (a 400) and the worker (which never trusts the queue) run it.
 */
export function toolSettingsProblem(p: {
  tools?: readonly ChatTool[] | undefined;
  tool_choice?: ChatToolChoice | undefined;
}): { message: string; param: string } | undefined {
  const names = new Set<string>();
  for (const [i, tool] of (p.tools ?? []).entries()) {
    if (names.has(tool.function.name)) return { message: `Tool name '${tool.function.name}' is defined twice.`, param: `tools[${i}].function.name` };
    names.add(tool.function.name);
  }
  const choice = p.tool_choice;
  if (choice === undefined || choice === 'none' || choice === 'auto') return undefined;
  if (names.size === 0) return { message: "'tool_choice' needs 'tools'.", param: 'tool_choice' };
  if (typeof choice === 'object' && !names.has(choice.function.name)) {
    return { message: `'tool_choice' names the function '${choice.function.name}', which is not among 'tools'.`, param: 'tool_choice' };
  }
  return undefined;
}
