import { AppError, errors } from '../errors/app-error.js';
import type { ChatToolCall } from '../chat/chat-options.js';
import type { ChatTokenLogprob, JobResult } from '../jobs/job-catalog.js';
import { WORKER_LOST } from '../streams/token-stream.js';

/**
 * OpenAI's response bodies for finished jobs: one copy, used by the online endpoints (api/routes)
 * and by batch output files (workers/batches), so a batch line's `response.body` is what the
 * endpoint itself answers. Embeddings' list shape is `embeddingList` (shared/jobs/job-views.ts).
 */

export type ChatChoice = NonNullable<JobResult<'chat'>['choices']>[number];

/** Every choice of a chat result: its `choices` when n > 1, else the one answer as choice 0. */
export function choicesOf(result: JobResult<'chat'>): ChatChoice[] {
  if (result.choices) return result.choices;
  const { message, finish_reason, logprobs, usage } = result;
  return [{ index: 0, message, finish_reason, ...(logprobs ? { logprobs } : {}), completion_tokens: usage.completion_tokens }];
}

/** A choice's `logprobs` as OpenAI writes them: null when not asked for. */
export function openAiLogprobs(content: ChatTokenLogprob[] | undefined): { content: ChatTokenLogprob[]; refusal: null } | null {
  return content === undefined ? null : { content, refusal: null };
}

/** The reply's message in OpenAI's shape: content null when the reply is only tool calls. */
export function assistantMessage(message: JobResult<'chat'>['message']): { role: 'assistant'; content: string | null; refusal: null; tool_calls?: ChatToolCall[] } {
  const calls = message.tool_calls ?? [];
  if (calls.length === 0) return { role: 'assistant', content: message.content, refusal: null };
  return { role: 'assistant', content: message.content === '' ? null : message.content, refusal: null, tool_calls: calls };
}

/** A `chat.completion` object; `model`: the model that answered (a fallback, perhaps). */
export function chatCompletionBody(id: string, created: number, model: string, result: JobResult<'chat'>) {
  return {
    id,
    object: 'chat.completion' as const,
    created,
    model,
    choices: choicesOf(result).map((c) => ({
      index: c.index,
      message: assistantMessage(c.message),
      finish_reason: c.finish_reason,
      logprobs: openAiLogprobs(c.logprobs?.content),
    })),
    usage: result.usage,
    timings: result.timings,
  };
}

/** The HTTP error a failed chat job is answered with (its code decides the status). */
export function chatFailure(error: { message: string; code: string }): AppError {
  const { message, code } = error;
  switch (code) {
    case 'context_length_exceeded':
      return errors.invalidRequest(message, 'messages', code);
    case 'invalid_response_format':
    case 'unsupported_response_format':
      return errors.invalidRequest(message, 'response_format', code);
    case 'invalid_function_parameters':
      return errors.invalidRequest(message, 'tools', code);
    case 'grammar_unavailable':
      return new AppError(500, 'server_error', code, message);
    case 'cancelled':
      return errors.conflict(message, 'cancelled');
    case 'upstream_error':
    case 'upstream_timeout':
      return new AppError(502, 'server_error', code, message);
    case WORKER_LOST:
      // Retryable: another worker (or this one, restarted) answers the same request.
      return errors.unavailable(message, WORKER_LOST, 1);
    default:
      return errors.internal(`The chat job failed: ${message}`);
  }
}
