import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { TokenWriter } from '../jobs/token-writer.js';
import type { ChatBackend } from './chat-backend.js';
import type { JobHandler } from '../jobs/job-handler.js';
import { extractiveAnswer } from '../chatbot/extractive-answer.js';
import { NOTHING_FOUND_ANSWER } from '../../shared/documents/file-search.js';
import type { JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';

export interface ChatTimings {
  ttftMs: number | null;
  /** Gaps between consecutive tokens. */
  interTokenMs: number[];
  totalMs: number;
  completionTokens: number;
}

/** Generates a chat answer and streams its tokens into the job's token stream as they come. */
export function createChatHandler(deps: {
  backends: ReadonlyMap<string, ChatBackend>;
  redis: Redis;
  prefix: string;
  retentionSeconds: number;
  onFinished?: (model: string, timings: ChatTimings) => void;
}): JobHandler<'chat'> {
  return async (payload, ctx) => {
    const backend = deps.backends.get(payload.model);
    if (!backend) throw new UnrecoverableError(`chat model ${payload.model} is not served by this worker`);
    const started = performance.now();
    let firstAt: number | undefined;
    let lastAt = started;
    const gaps: number[] = [];
    if (!ctx.streamOwner) throw new UnrecoverableError('chat jobs run only with a claim on their token stream (createJobWorker `streams`)');
    const tokens = new TokenWriter(deps.redis, deps.prefix, ctx.jobId, deps.retentionSeconds, ctx.streamOwner);
    if (payload.extractive) return answerExtractively(payload, payload.extractive, tokens, started);

    const outcome = await backend.generate(ctx.jobId, payload, {
      signal: ctx.signal,
      onToken: (text, extras) => {
        const now = performance.now();
        if (firstAt === undefined) firstAt = now;
        else gaps.push(now - lastAt);
        lastAt = now;
        tokens.push(text, extras);
      },
    });
    await tokens.flush();
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('cancelled');

    const totalMs = performance.now() - started;
    const decodeMs = firstAt === undefined ? 0 : lastAt - firstAt;
    deps.onFinished?.(payload.model, { ttftMs: firstAt === undefined ? null : firstAt - started, interTokenMs: gaps, totalMs, completionTokens: outcome.completionTokens });
    ctx.log.debug({ completionTokens: outcome.completionTokens, totalMs: Math.round(totalMs), finish: outcome.finishReason }, 'chat done');
    return {
      model: payload.model,
      message: { role: 'assistant', content: outcome.text, ...(outcome.toolCalls ? { tool_calls: outcome.toolCalls } : {}) },
      finish_reason: outcome.finishReason,
      ...(outcome.logprobs === undefined ? {} : { logprobs: { content: outcome.logprobs } }),
      ...(outcome.promptLogprobs === undefined ? {} : { prompt_logprobs: outcome.promptLogprobs }),
      ...(outcome.choices === undefined
        ? {}
        : {
            choices: outcome.choices.map((c, index) => ({
              index,
              message: { role: 'assistant' as const, content: c.text },
              finish_reason: c.finishReason,
              ...(c.logprobs === undefined ? {} : { logprobs: { content: c.logprobs } }),
              completion_tokens: c.completionTokens,
            })),
          }),
      usage: {
        prompt_tokens: outcome.promptTokens,
        completion_tokens: outcome.completionTokens,
        total_tokens: outcome.promptTokens + outcome.completionTokens,
      },
      timings: {
        ttft_ms: firstAt === undefined ? null : round(firstAt - started),
        total_ms: round(totalMs),
        tokens_per_second: outcome.completionTokens > 1 && decodeMs > 0 ? round(((outcome.completionTokens - 1) / decodeMs) * 1000) : null,
      },
    };
  };
}

/**
 * The file_search answer of an untrained model: the sources' best sentences, streamed word by word
 * so clients render it as they render generated text. No model runs, so no prompt tokens are
 * counted; each streamed piece counts as one completion token.
 */
async function answerExtractively(
  payload: JobPayload<'chat'>,
  extractive: NonNullable<JobPayload<'chat'>['extractive']>,
  tokens: TokenWriter,
  started: number,
): Promise<JobResult<'chat'>> {
  const text = extractiveAnswer(extractive.question, extractive.sources).text || NOTHING_FOUND_ANSWER;
  const pieces = text.match(/\S+\s*|\s+/g) ?? [];
  for (const piece of pieces) tokens.push(piece);
  await tokens.flush();
  return {
    model: payload.model,
    message: { role: 'assistant', content: text },
    finish_reason: 'stop',
    usage: { prompt_tokens: 0, completion_tokens: pieces.length, total_tokens: pieces.length },
    timings: { ttft_ms: null, total_ms: round(performance.now() - started), tokens_per_second: null },
  };
}

const round = (n: number) => Math.round(n * 100) / 100;
