import type { ChatToolCall } from '../../shared/chat/chat-options.js';
import type { JobPayload } from '../../shared/jobs/job-catalog.js';

export interface GenerationOutcome {
  /** The reply's content: without the tool calls' own text when it made calls. */
  text: string;
  finishReason: 'stop' | 'length' | 'cancelled' | 'tool_calls';
  /** Calls of the request's tools, in order; absent when there are none. */
  toolCalls?: ChatToolCall[];
  promptTokens: number;
  completionTokens: number;
}

/**
 * Something that generates a chat answer token by token: a local ONNX decoder in a model thread,
 * or an OpenAI-compatible upstream. The chat handler streams whatever it yields the same way.
 * It fails with a JobError of the failure's kind: ContextLengthError or GenerationError (local
 * models), UpstreamError or UpstreamTimeoutError (upstreams, which the API hands to a fallback).
 */
export interface ChatBackend {
  generate(
    jobId: string,
    payload: JobPayload<'chat'>,
    opts: { signal: AbortSignal; onToken: (text: string) => void },
  ): Promise<GenerationOutcome>;
  close(): Promise<void>;
}
