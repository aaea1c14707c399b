import { randomUUID } from 'node:crypto';
import { chatCompletionRequestSchema } from '../../shared/api/request-schemas.js';
import { AppError, errors } from '../../shared/errors/app-error.js';
import { cacheContext } from '../cache/response-cache.js';
import type { ChatOutcome, ChatService } from '../jobs/chat-service.js';
import { endEventStream, openEventStream, sendEvent } from '../http/sse.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * POST /v1/chat/completions in OpenAI's shape: a chat job behind it, answered whole or streamed as
 * server-sent `chat.completion.chunk` events ending with `data: [DONE]`. A client that closes
 * the stream cancels its job.
 */
export function chatRoutes(deps: { chat: ChatService }): TableRoutes {
  const router = tableRoutes();

  router.post('/v1/chat/completions', async (req, res) => {
    const body = chatCompletionRequestSchema.parse(req.body);
    if ((body.n ?? 1) > 1) throw errors.invalidRequest("'n' greater than 1 is not supported; send one request per completion.", 'n', 'unsupported_parameter');
    for (const p of ['presence_penalty', 'frequency_penalty'] as const) {
      if (body[p]) throw errors.invalidRequest(`'${p}' is not supported; use 'repetition_penalty'.`, p, 'unsupported_parameter');
    }
    const model = deps.chat.resolveModel(body.model);
    const payload = deps.chat.payload(model, { ...body, max_tokens: body.max_completion_tokens ?? body.max_tokens });
    const tenant = req.principal!.tenant;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);

    if (!body.stream) {
      const outcome = await deps.chat.run(tenant, model, payload, { requestId: String(req.id), ...(body.priority ? { priority: body.priority } : {}), cache: cacheContext(req, res) });
      if (outcome.status !== 'completed') throw failure(outcome);
      res.setHeader('x-job-id', outcome.jobId);
      res.json({
        id,
        object: 'chat.completion',
        created,
        model: outcome.model,
        choices: [{ index: 0, message: { role: 'assistant', content: outcome.result.message.content, refusal: null }, finish_reason: outcome.result.finish_reason, logprobs: null }],
        usage: outcome.result.usage,
        timings: outcome.result.timings,
      });
      return;
    }

    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let answering = model.id;
    let jobId = '';
    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
      sendEvent(res, { id, object: 'chat.completion.chunk', created, model: answering, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }], ...extra });
    // The stream opens with the first token, not at submission: a job that fails before producing
    // anything (a prompt longer than the context) still gets a plain HTTP error status.
    const open = () => {
      if (res.headersSent) return;
      openEventStream(res, jobId);
      chunk({ role: 'assistant', content: '' }, null);
    };
    const outcome = await deps.chat.run(tenant, model, payload, {
      requestId: String(req.id),
      ...(body.priority ? { priority: body.priority } : {}),
      signal: abort.signal,
      cache: cacheContext(req, res),
      onStart: (startedJob, modelId) => {
        jobId = startedJob;
        answering = modelId;
      },
      onToken: (text) => {
        open();
        chunk({ content: text }, null);
      },
    });
    if (abort.signal.aborted || res.writableEnded) return;
    if (outcome.status !== 'completed' && !res.headersSent) throw failure(outcome);
    open();
    if (outcome.status === 'completed') {
      answering = outcome.model;
      chunk({}, outcome.result.finish_reason === 'cancelled' ? 'stop' : outcome.result.finish_reason);
      if (body.stream_options?.include_usage) sendEvent(res, { id, object: 'chat.completion.chunk', created, model: answering, choices: [], usage: outcome.result.usage });
    } else {
      const e = failure(outcome);
      sendEvent(res, e.toBody());
    }
    endEventStream(res);
  });

  return router;
}

function failure(outcome: Exclude<ChatOutcome, { status: 'completed' }>): AppError {
  const { message, code } = outcome.error;
  switch (code) {
    case 'context_length_exceeded':
      return errors.invalidRequest(message, 'messages', code);
    case 'cancelled':
      return errors.conflict(message, 'cancelled');
    case 'upstream_error':
    case 'upstream_timeout':
      return new AppError(502, 'server_error', code, message);
    default:
      return errors.internal(`The chat job failed: ${message}`);
  }
}
