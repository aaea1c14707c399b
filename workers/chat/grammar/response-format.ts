import { createHash } from 'node:crypto';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { GrammarError } from './grammar-error.js';

/**
 * What a sequence's output must look like. `json_object` and `json_schema` are OpenAI's
 * `response_format` values (`json_schema` flattened: OpenAI nests it as
 * {type, json_schema: {name, schema, strict}}; the API layer unwraps it). `ebnf` and
 * `structural_tag` are xgrammar's own formats: a raw EBNF grammar, or a structural tag (free text
 * until a trigger such as "<tool_call>", then a JSON schema per tag). `tool_calls` is a reply made
 * only of calls of the given functions in the Hermes syntax (shared/chat/tool-calls.ts), each
 * call's arguments valid against its function's parameters: tool_choice `required` or a named
 * function.
 */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: Record<string, unknown>; strict?: boolean }
  | { type: 'ebnf'; grammar: string; rootRule?: string }
  | { type: 'structural_tag'; structuralTag: Record<string, unknown> }
  | { type: 'tool_calls'; functions: ToolCallFunction[]; /** More than one call allowed. */ parallel: boolean };

/** A function a tool-call grammar may call: its name and the JSON Schema of its arguments object. */
export interface ToolCallFunction {
  name: string;
  parameters: Record<string, unknown>;
}

/** A format that needs a grammar (everything but text). */
export type GrammarFormat = Exclude<ResponseFormat, { type: 'text' }>;

export interface ResponseFormatLimits {
  /** Longest schema / grammar / structural tag, as JSON text (default 64 KiB). */
  maxChars?: number;
  /** Deepest nesting of objects and arrays in a schema (default 64). */
  maxDepth?: number;
}

const DEFAULT_MAX_CHARS = 64 * 1024;
const DEFAULT_MAX_DEPTH = 64;

/**
 * A checked format with its canonical text, the compact JSON the compiler gets, and a hash of it
 * (with the options that change the grammar), the grammar cache's key.
 *
 * Keys are NOT sorted: xgrammar writes an object's properties in the schema's order (as OpenAI's
 * Structured Outputs do, and clients rely on it, e.g. "reasoning" before "answer"), so two
 * schemas that differ only in key order are two different grammars.
 */
export interface PreparedFormat {
  format: GrammarFormat;
  /** The schema or structural tag as compact JSON, or the EBNF text. */
  canonical: string;
  key: string;
}

/** True when the format constrains the output (anything but undefined or text). */
export function needsGrammar(format: ResponseFormat | undefined): format is GrammarFormat {
  return format !== undefined && format.type !== 'text';
}

/**
 * Checks a format's shape and, for JSON schemas, the schema itself against the JSON Schema
 * 2020-12 meta-schema, so that the usual mistakes (a misspelled type, `required: "name"`) get a
 * precise message here instead of reaching the grammar compiler. Throws GrammarError.
 */
export function prepareFormat(format: GrammarFormat, limits: ResponseFormatLimits = {}): PreparedFormat {
  const maxChars = limits.maxChars ?? DEFAULT_MAX_CHARS;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  const param = format?.type === 'tool_calls' ? 'tools' : 'response_format';
  const invalid = (message: string) => new GrammarError('invalid_response_format', message, { param });
  if (typeof format !== 'object' || format === null) throw invalid('response_format must be an object');
  const checkSchema = (schema: unknown, what: string): string => {
    if (!isPlainObject(schema)) throw invalid(`${what} must be a JSON Schema object`);
    const depth = nestingDepth(schema, maxDepth + 1);
    if (depth > maxDepth) throw invalid(`${what} nests deeper than ${maxDepth} levels`);
    const text = JSON.stringify(schema);
    if (text.length > maxChars) throw invalid(`${what} is ${text.length} characters; at most ${maxChars} are accepted`);
    checkAgainstMetaSchema(schema, what, param);
    return text;
  };

  let canonical: string;
  switch (format.type) {
    case 'json_object':
      canonical = '';
      break;
    case 'json_schema': {
      const { schema, strict } = format;
      if (!isPlainObject(schema)) throw invalid('response_format.json_schema.schema must be a JSON Schema object');
      if (strict !== undefined && typeof strict !== 'boolean') throw invalid('response_format.json_schema.strict must be a boolean');
      canonical = checkSchema(schema, 'the JSON schema');
      break;
    }
    case 'tool_calls': {
      if (!Array.isArray(format.functions) || format.functions.length === 0) throw invalid('a tool-call grammar needs at least one function');
      for (const fn of format.functions) checkSchema(fn.parameters, `the parameters of function '${fn.name}'`);
      canonical = JSON.stringify({ functions: format.functions, parallel: format.parallel === true });
      if (canonical.length > maxChars) throw invalid(`the tools are ${canonical.length} characters of JSON; at most ${maxChars} are accepted`);
      break;
    }
    case 'ebnf':
      if (typeof format.grammar !== 'string' || format.grammar.trim() === '') throw invalid('the EBNF grammar must be a non-empty string');
      if (format.rootRule !== undefined && !/^[A-Za-z_][\w-]*$/.test(format.rootRule)) throw invalid(`invalid root rule name ${JSON.stringify(format.rootRule)}`);
      if (format.grammar.length > maxChars) throw invalid(`the EBNF grammar is ${format.grammar.length} characters; at most ${maxChars} are accepted`);
      canonical = format.grammar;
      break;
    case 'structural_tag':
      if (!isPlainObject(format.structuralTag)) throw invalid('the structural tag must be an object');
      canonical = JSON.stringify(format.structuralTag);
      if (canonical.length > maxChars) throw invalid(`the structural tag is ${canonical.length} characters; at most ${maxChars} are accepted`);
      break;
    default:
      throw invalid(`unknown response_format type ${JSON.stringify((format as { type?: unknown }).type)}`);
  }
  const strictFlag = format.type === 'json_schema' ? String(format.strict === true) : '';
  const root = format.type === 'ebnf' ? (format.rootRule ?? 'root') : '';
  const key = createHash('sha256').update(`${format.type}\0${strictFlag}\0${root}\0${canonical}`).digest('base64url');
  return { format, canonical, key };
}

let metaValidator: Ajv2020 | undefined;

function checkAgainstMetaSchema(schema: Record<string, unknown>, what: string, param: 'response_format' | 'tools'): void {
  // Only the meta-schema is used (validateSchema), never compile(): nothing in the schema runs.
  metaValidator ??= new Ajv2020({ strict: false, allErrors: false, validateFormats: false });
  // A `$schema` naming another draft would make Ajv look for that draft's meta-schema; the
  // 2020-12 one is what OpenAI's dialect follows, so check against it in every case.
  const { $schema: _ignored, ...rest } = schema;
  const ok = metaValidator.validateSchema(rest);
  if (ok !== true) {
    const detail = metaValidator.errorsText(metaValidator.errors, { dataVar: 'schema' });
    throw new GrammarError('invalid_response_format', `${what} is not valid JSON Schema: ${detail}`, { param });
  }
}

/** Depth of nested objects/arrays, counting stops at `cap`. */
function nestingDepth(value: unknown, cap: number): number {
  if (typeof value !== 'object' || value === null) return 0;
  if (cap <= 0) return 1;
  let deepest = 0;
  for (const child of Object.values(value)) {
    deepest = Math.max(deepest, nestingDepth(child, cap - 1));
    if (deepest >= cap) break;
  }
  return deepest + 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
