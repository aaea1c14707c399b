/**
 * Why a sequence could not get its grammar. Two kinds:
 *   - the request is at fault (invalid_response_format: a malformed JSON schema, an EBNF grammar
 *     that does not parse; unsupported_response_format: valid JSON Schema that the grammar
 *     compiler does not support): the API answers 400 in OpenAI's shape with `code` and `param`;
 *   - grammar_unavailable: the grammar engine itself failed to load, a server error (500).
 * It crosses the model thread's message port as plain fields (name, code, param, message).
 */
export type GrammarErrorCode = 'invalid_response_format' | 'unsupported_response_format' | 'grammar_unavailable';

export class GrammarError extends Error {
  /** The request field at fault: `response_format`, or `tools` for a tool-call grammar. */
  readonly param: 'response_format' | 'tools';

  constructor(
    readonly code: GrammarErrorCode,
    message: string,
    options?: { cause?: unknown; param?: 'response_format' | 'tools' },
  ) {
    super(message, options);
    this.name = 'GrammarError';
    this.param = options?.param ?? 'response_format';
  }

  /** True when the request is at fault (a 4xx), false for a server-side failure. */
  get isClientError(): boolean {
    return this.code !== 'grammar_unavailable';
  }
}
