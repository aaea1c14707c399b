import { JobError } from '../jobs/job.error.js';

/**
 * Why a chat job could not constrain its output (codes from GrammarError, named for the request
 * field at fault): `invalid_response_format` / `unsupported_response_format` (response_format's
 * schema is wrong, or a construct the grammar engine lacks) and `invalid_function_parameters`
 * (a tool's parameters schema) are the client's (400); `grammar_unavailable` is ours (500).
 */
export type StructuredOutputErrorCode = 'invalid_response_format' | 'unsupported_response_format' | 'invalid_function_parameters' | 'grammar_unavailable';

export class StructuredOutputError extends JobError {
  constructor(
    readonly code: StructuredOutputErrorCode,
    message: string,
  ) {
    super(message);
  }
}
