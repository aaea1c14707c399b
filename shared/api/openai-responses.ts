import { AppError, errors } from '../errors/app-error.js';
import type { ChatTokenLogprob, JobResult } from '../jobs/job-catalog.js';
import { WORKER_LOST } from '../streams/token-stream.js';

/**
 * OpenAI's response bodies for finished jobs: one copy, used by the online endpoints (api/routes)
 * and by batch output files (workers/batches), so a batch line's `response.body` is what the
 * endpoint itself answers. Embeddings' list shape is `embeddingList` (shared/jobs/job-views.ts).
 */
export function chatCompletionBody(id: string, created: number, result: JobResult<'chat'>) {
  return {
    id,
    object: 'chat.completion' as const,
    created,
    model: result.model,
    choices: choicesOf(result).map((c) => ({
      index: c.index,
      message: { role: 'assistant' as const, content: c.message.content, refusal: null },
      finish_reason: c.finish_reason,
      logprobs: openAiLogprobs(c.logprobs?.content),
    })),
    usage: result.usage,
    timings: result.timings,
  };
}

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

/** The HTTP error a failed chat job is answered with (its code decides the status). */
export function chatFailure(error: { message: string; code: string }): AppError {
  const { message, code } = error;
  switch (code) {
    case 'context_length_exceeded':
      return errors.invalidRequest(message, 'messages', code);
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
