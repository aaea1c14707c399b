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
import { effectiveToolChoice } from '../../shared/chat/chat-options.js';
import { ToolCallParser, toolCallId, type ToolCallEvent } from '../../shared/chat/tool-calls.js';
import { fileCitations, takeFileSearchTool } from '../../shared/documents/file-search.js';
import { errors } from '../../shared/errors/app-error.js';
import { groundedPayload, type FileSearchRun, type FileSearchRunner } from '../vector-stores/file-search-runner.js';

/**
 * POST /v1/chat/completions in OpenAI's shape: a chat job behind it, answered whole or streamed as
 * server-sent `chat.completion.chunk` events ending with `data: [DONE]`. A client that closes
 * the stream cancels its job. `chat` checks the request against the model; `runner` runs it
 * (with the response cache in front).
 */
export function chatRoutes(deps: { chat: ChatService; runner: CacheableChatRunner; sseKeepAliveMs?: number; fileSearch?: FileSearchRunner }): TableRoutes {
  const router = tableRoutes();

  router.post('/v1/chat/completions', async (req, res) => {
    // Our extension: a `file_search` tool entry (shared/documents/file-search.ts).
    const { tool: fileSearchTool, rest } = takeFileSearchTool(req.body);
    const body = chatCompletionRequestSchema.parse(rest);
    checkChatCompletionOptions(body);
    const model = deps.chat.resolveModel(body.model);
    // max_completion_tokens is OpenAI's current name for max_tokens; it wins when both are given.
    let payload = deps.chat.payload(model, { ...body, max_tokens: body.max_completion_tokens ?? body.max_tokens });
    const tenant = req.principal!.tenant;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    let search: FileSearchRun | undefined;
    if (fileSearchTool && body.tool_choice !== 'none') {
      if (!deps.fileSearch) throw errors.invalidRequest("The 'file_search' tool is not served by this API process.", 'tools', 'unsupported_parameter');
      search = await deps.fileSearch.search(tenant, fileSearchTool, payload.messages, String(req.id));
      payload = groundedPayload(payload, model, search);
    }
    // What the answer adds with a file search (extensions: OpenAI's chat message annotations are url citations only).
    const fileSearchCall = search && { id: `fs_${id.slice('chatcmpl-'.length)}`, type: 'file_search_call' as const, status: 'completed' as const, queries: [search.query], results: search.results };
    const citationsOf = (text: string) => (search ? fileCitations(text, search.results) : []);

    if (!body.stream) {
      const outcome = await deps.runner.run(tenant, model, payload, { requestId: String(req.id), ...(body.priority ? { priority: body.priority } : {}) }, cacheContext(req, res));
      // Failures too: the job (GET /v1/jobs/:id) tells what became of it.
      if (outcome.jobId) res.setHeader('x-job-id', outcome.jobId);
      if (outcome.status !== 'completed') throw failure(outcome);
      const answer = chatCompletionBody(id, created, outcome.model, outcome.result);
      if (!fileSearchCall) {
        res.json(answer);
        return;
      }
      res.json({
        ...answer,
        choices: answer.choices.map((c) => ({ ...c, message: { ...c.message, file_citations: citationsOf(c.message.content ?? '') } })),
        file_search_call: fileSearchCall,
      });
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
    // With tools offered, the model's text goes through the same parser the worker uses, so that
    // its calls stream as OpenAI's delta.tool_calls (ids derived from the job id, as the worker's).
    let toolCalls: ToolCallParser | undefined;
    let streamedCalls = 0;
    // A token's logprobs go with the first chunk its text makes (or alone, if it makes none).
    const send = (events: ToolCallEvent[], logprobs?: ChatTokenLogprob[]) => {
      let pending = logprobs;
      const take = () => {
        const l = pending;
        pending = undefined;
        return l;
      };
      for (const e of events) {
        if (e.type === 'content') chunk(0, { content: e.text }, null, take());
        else if (e.type === 'call') {
          streamedCalls = e.index + 1;
          chunk(0, { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] }, null, take());
        } else chunk(0, { tool_calls: [{ index: e.index, function: { arguments: e.text } }] }, null, take());
      }
      if (pending !== undefined && pending.length > 0) chunk(0, { content: '' }, null, pending);
    };
    const parsesToolCalls = effectiveToolChoice(payload).kind !== 'none';
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
            if (parsesToolCalls) toolCalls = new ToolCallParser((i) => toolCallId(startedJob, i));
          },
          onToken: (text, _index, { choice = 0, logprobs }) => {
            start(choice);
            // Tools are offered with n = 1 only (ChatService refuses more), so calls are choice 0's.
            if (toolCalls) send(toolCalls.push(text), logprobs);
            else chunk(choice, { content: text }, null, logprobs);
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
      start(0);
      if (toolCalls) send(toolCalls.finish());
      // Calls the text did not carry (an upstream's, or a cached answer): whole, one chunk each.
      for (const [index, call] of (outcome.result.message.tool_calls ?? []).entries()) {
        if (index < streamedCalls) continue;
        send([{ type: 'call', index, id: call.id, name: call.function.name }, { type: 'arguments', index, text: call.function.arguments }]);
      }
      answering = outcome.model;
      // The citations, once the whole text is known: one chunk per choice, before its finish.
      if (fileSearchCall) {
        for (const c of choicesOf(outcome.result)) {
          stream.send({
            id,
            object: 'chat.completion.chunk',
            created,
            model: answering,
            choices: [{ index: c.index, delta: { file_citations: citationsOf(c.message.content) }, finish_reason: null, logprobs: null }],
            file_search_call: fileSearchCall,
          });
        }
      }
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

/** The HTTP error for a chat job that did not complete (also answered by POST /v1/completions and /v1/responses). */
export function failure(outcome: Exclude<ChatOutcome, { status: 'completed' }>): AppError {
  return chatFailure(outcome.error);
}
