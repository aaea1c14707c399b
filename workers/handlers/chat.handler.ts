import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { appendTokens } from '../../shared/streams/token-stream.js';
import type { ChatBackend } from '../chat/chat-backend.js';
import type { JobHandler } from '../jobs/job-handler.js';

export interface ChatTimings {
  ttftMs: number | null;
  /** Gaps between consecutive tokens. */
  interTokenMs: number[];
  totalMs: number;
  completionTokens: number;
}

/**
 * Generates a chat answer and streams its tokens into the job's token stream as they come. Tokens
 * produced while a write is in flight go out together in the next write, so a fast model costs
 * Redis one round trip per burst rather than one per token, and order is kept.
 */
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
    let index = 0;
    let pending: { i: number; text: string }[] = [];
    let writing: Promise<void> | undefined;
    let writeError: unknown;
    const drain = async () => {
      while (pending.length > 0) {
        const batch = pending;
        pending = [];
        await appendTokens(deps.redis, deps.prefix, ctx.jobId, batch, deps.retentionSeconds);
      }
    };
    const schedule = () => {
      writing ??= drain()
        .catch((err) => {
          writeError = err;
        })
        .finally(() => {
          writing = undefined;
          if (pending.length > 0 && !writeError) schedule();
        });
    };

    const outcome = await backend.generate(ctx.jobId, payload, {
      signal: ctx.signal,
      onToken: (text) => {
        const now = performance.now();
        if (firstAt === undefined) firstAt = now;
        else gaps.push(now - lastAt);
        lastAt = now;
        pending.push({ i: index++, text });
        schedule();
      },
    });
    while (writing) await writing;
    if (writeError) throw writeError;
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('cancelled');

    const totalMs = performance.now() - started;
    const decodeMs = firstAt === undefined ? 0 : lastAt - firstAt;
    deps.onFinished?.(payload.model, { ttftMs: firstAt === undefined ? null : firstAt - started, interTokenMs: gaps, totalMs, completionTokens: outcome.completionTokens });
    ctx.log.debug({ completionTokens: outcome.completionTokens, totalMs: Math.round(totalMs), finish: outcome.finishReason }, 'chat done');
    return {
      model: payload.model,
      message: { role: 'assistant', content: outcome.text },
      finish_reason: outcome.finishReason,
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
