import { randomUUID } from 'node:crypto';
import { chatCompletionRequestSchema } from '../../shared/api/request-schemas.js';
import { checkChatCompletionOptions } from '../../shared/api/openai-requests.js';
import { chatCompletionBody, chatFailure, choicesOf, openAiLogprobs } from '../../shared/api/openai-responses.js';
import type { AppError } from '../../shared/errors/app-error.js';
import { cacheContext, type CacheableChatRunner } from '../cache/response-cache.js';
import type { ChatOutcome, ChatService } from '../jobs/chat-service.js';
import type { ChatTokenLogprob } from '../../shared/jobs/job-catalog.js';
import { EventStream } from '../http/sse.js';
import { WORKER_LOST } from '../../shared/streams/token-stream.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * POST /v1/chat/completions in OpenAI's shape: a chat job behind it, answered whole or streamed as
 * server-sent `chat.completion.chunk` events ending with `data: [DONE]`. A client that closes
 * the stream cancels its job. `chat` checks the request against the model; `runner` runs it
 * (with the response cache in front).
 */
export function chatRoutes(deps: { chat: ChatService; runner: CacheableChatRunner; sseKeepAliveMs?: number }): TableRoutes {
  const router = tableRoutes();

  router.post('/v1/chat/completions', async (req, res) => {
    const body = chatCompletionRequestSchema.parse(req.body);
    checkChatCompletionOptions(body);
    const model = deps.chat.resolveModel(body.model);
    // max_completion_tokens is OpenAI's current name for max_tokens; it wins when both are given.
    const payload = deps.chat.payload(model, { ...body, max_tokens: body.max_completion_tokens ?? body.max_tokens });
    const tenant = req.principal!.tenant;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);

    if (!body.stream) {
      const outcome = await deps.runner.run(tenant, model, payload, { requestId: String(req.id), ...(body.priority ? { priority: body.priority } : {}) }, cacheContext(req, res));
      // Failures too: the job (GET /v1/jobs/:id) tells what became of it.
      if (outcome.jobId) res.setHeader('x-job-id', outcome.jobId);
      if (outcome.status !== 'completed') throw failure(outcome);
      // The model that answered (a fallback, perhaps), which the outcome names.
      res.json(chatCompletionBody(id, created, { ...outcome.result, model: outcome.model }));
      return;
    }

    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let answering = model.id;
    let jobId = '';
    const stream = new EventStream(res, { keepAliveMs: deps.sseKeepAliveMs, jobId: () => jobId });
    const chunk = (index: number, delta: Record<string, unknown>, finish: string | null, logprobs?: ChatTokenLogprob[]) =>
      stream.send({ id, object: 'chat.completion.chunk', created, model: answering, choices: [{ index, delta, finish_reason: finish, logprobs: openAiLogprobs(logprobs) }] });
    // Each choice's first chunk carries the role, as OpenAI's do; with n > 1 the choices' chunks
    // interleave as their tokens come. The stream itself opens with the first chunk, or with a
    // keep-alive while the job waits: a job that fails before either (a prompt longer than the
    // context) still gets a plain HTTP error status.
    const started = new Set<number>();
    const start = (index: number) => {
      if (started.has(index)) return;
      started.add(index);
      chunk(index, { role: 'assistant', content: '' }, null);
    };
    let outcome: ChatOutcome;
    try {
      outcome = await deps.runner.run(
        tenant,
        model,
        payload,
        {
          requestId: String(req.id),
          ...(body.priority ? { priority: body.priority } : {}),
          signal: abort.signal,
          onStart: (startedJob, modelId) => {
            jobId = startedJob;
            answering = modelId;
          },
          onToken: (text, _index, { choice = 0, logprobs }) => {
            start(choice);
            chunk(choice, { content: text }, null, logprobs);
          },
        },
        cacheContext(req, res),
      );
    } catch (err) {
      stream.fail(err, req.log, 'chat');
      return;
    }
    if (abort.signal.aborted || res.writableEnded) {
      stream.stop();
      return;
    }
    if (outcome.status !== 'completed' && !stream.opened) {
      stream.stop();
      throw failure(outcome);
    }
    if (outcome.status === 'completed') {
      answering = outcome.model;
      for (const c of choicesOf(outcome.result)) {
        start(c.index);
        chunk(c.index, {}, c.finish_reason === 'cancelled' ? 'stop' : c.finish_reason);
      }
      if (body.stream_options?.include_usage) stream.send({ id, object: 'chat.completion.chunk', created, model: answering, choices: [], usage: outcome.result.usage });
    } else {
      const e = failure(outcome);
      if (e.code === WORKER_LOST) req.log.warn({ jobId: outcome.jobId, reason: e.message }, 'chat stream ended: worker lost');
      stream.send(e.toBody());
    }
    stream.end();
  });

  return router;
}

/** The HTTP error for a chat job that did not complete (also answered by POST /v1/responses). */
export function failure(outcome: Exclude<ChatOutcome, { status: 'completed' }>): AppError {
  return chatFailure(outcome.error);
}
