import type { ChatTokenLogprob, PromptTokenLogprob, JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';
import type { TokenExtras } from '../../shared/streams/token-stream.js';
import type { ChatToolCall } from '../../shared/chat/chat-options.js';

/** One of the `n` answers of a request. */
export interface ChoiceOutcome {
  text: string;
  finishReason: 'stop' | 'length' | 'cancelled';
  completionTokens: number;
  /** With `logprobs`: every token's, the end-of-sequence token left out. */
  logprobs?: ChatTokenLogprob[];
}

/** The answer: choice 0's text, finish reason and logprobs, with usage over every choice. */
export interface GenerationOutcome {
  /** The reply's content: without the tool calls' own text when it made calls. */
  text: string;
  finishReason: 'stop' | 'length' | 'cancelled' | 'tool_calls';
  /** Calls of the request's tools, in order; absent when there are none. */
  toolCalls?: ChatToolCall[];
  promptTokens: number;
  /** Summed over the choices. */
  completionTokens: number;
  logprobs?: ChatTokenLogprob[];
  /** With `prompt_logprobs`: every prompt token's. */
  promptLogprobs?: PromptTokenLogprob[];
  /** Every choice, when the request asked for n > 1. */
  choices?: ChoiceOutcome[];
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
    opts: { signal: AbortSignal; onToken: (text: string, extras: TokenExtras) => void },
  ): Promise<GenerationOutcome>;
  /** The model's tokenizer (tokenize jobs); absent where the backend has none (an upstream). */
  tokenize?(jobId: string, request: JobPayload<'tokenize'>): Promise<JobResult<'tokenize'>>;
  close(): Promise<void>;
}
