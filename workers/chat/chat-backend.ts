import type { JobPayload } from '../../shared/jobs/job-catalog.js';

export interface GenerationOutcome {
  text: string;
  finishReason: 'stop' | 'length' | 'cancelled';
  promptTokens: number;
  completionTokens: number;
}

/**
 * Something that generates a chat answer token by token: a local ONNX decoder in a model thread,
 * or an OpenAI-compatible upstream. The chat handler streams whatever it yields the same way.
 */
export interface ChatBackend {
  generate(
    jobId: string,
    payload: JobPayload<'chat'>,
    opts: { signal: AbortSignal; onToken: (text: string) => void },
  ): Promise<GenerationOutcome>;
  close(): Promise<void>;
}

/** A failure with a stable code that the API maps to a status (and to a fallback, for upstream codes). */
export class ChatError extends Error {
  constructor(
    readonly code: 'context_length_exceeded' | 'upstream_error' | 'upstream_timeout' | 'generation_failed',
    message: string,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}
