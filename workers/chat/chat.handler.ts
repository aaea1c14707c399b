import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { TokenWriter } from '../jobs/token-writer.js';
import type { ChatBackend } from './chat-backend.js';
import type { JobHandler } from '../jobs/job-handler.js';

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
      message: { role: 'assistant', content: outcome.text },
      finish_reason: outcome.finishReason,
      ...(outcome.logprobs === undefined ? {} : { logprobs: { content: outcome.logprobs } }),
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

const round = (n: number) => Math.round(n * 100) / 100;
