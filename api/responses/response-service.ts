import type { CreateResponseRequest } from '../../shared/api/responses-schemas.js';
import { AppError, errors } from '../../shared/errors/app-error.js';
import type { JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';
import type { Logger } from '../../shared/logger.js';
import type { ChatModelConfig } from '../../shared/models/model-registry.js';
import { chatOutcome, type ChatOutcome, type ChatService } from '../jobs/chat-service.js';
import type { JobService, JobView } from '../jobs/job-service.js';
import { followToEnd, type StreamRunOptions } from '../jobs/stream-runner.js';
import { toolCallId } from '../../shared/chat/tool-calls.js';
import type { TokenRelay } from '../realtime/token-relay.js';
import type { ResponseStore, StoredResponse } from './response-store.js';
import {
  ResponseEventSequence,
  TERMINAL_STATUSES,
  settledResponse,
  type ConversationItem,
  type ResponseObject,
  type ResponseStreamEvent,
} from '../../shared/responses/responses-events.js';
import { chatPayload, checkSupported, createdResponse, inputItems, newFileSearchCallId, newMessageId, newResponseId } from '../../shared/responses/responses-request.js';
import { groundedPayload, type FileSearchRunner } from '../vector-stores/file-search-runner.js';
import { FILE_SEARCH_RESULTS_INCLUDE } from '../../shared/documents/file-search.js';
import { enqueueWebhookEvent, type WebhookSink } from '../../shared/webhooks/webhook-events.js';
import type { WebhookEventType } from '../../shared/webhooks/webhook-api.js';

/** A validated request, ready to run: its chat job and the response it will become. */
export interface PreparedResponse {
  model: ChatModelConfig;
  payload: JobPayload<'chat'>;
  record: StoredResponse;
}

type Send = (event: ResponseStreamEvent) => void;

/**
 * The Responses API on top of chat jobs: a response is one chat job (ChatService), its stream
 * events come from the job's token stream, and stored responses live in Redis per tenant
 * (ResponseStore). A stored response that has not ended is reconciled with its job whenever it is
 * read, so what GET answers never depends on which API process started it; the process that
 * queued a background response also follows its job to the end, so it is settled without polling.
 */
export class ResponseService {
  private readonly watching = new Set<AbortController>();

  constructor(
    private readonly deps: {
      chat: ChatService;
      jobs: JobService;
      relay: TokenRelay;
      store: ResponseStore;
      log: Logger;
      /** Where `response.*` webhook events go (docs/WEBHOOKS.md). */
      webhooks?: WebhookSink;
      /** Runs the `file_search` tool; without it, requests with the tool are refused. */
      fileSearch?: FileSearchRunner;
    },
  ) {}

  async prepare(tenant: string, body: CreateResponseRequest, requestId?: string): Promise<PreparedResponse> {
    checkSupported(body);
    const model = this.deps.chat.resolveModel(body.model);
    const history = body.previous_response_id ? await this.history(tenant, body.previous_response_id) : [];
    const items = [...history, ...inputItems(body.input)];
    let payload = chatPayload(model, body, items);
    const response = createdResponse(newResponseId(), body, payload, { background: body.background ?? false, store: body.store ?? true });
    const record: StoredResponse = { response, input_items: items, message_id: newMessageId() };
    // The search runs before the job is queued, since its hits make the job's prompt; a store that
    // is not the caller's fails the request here, before anything is stored or streamed.
    const tool = body.tools?.find((t) => t.type === 'file_search');
    if (tool && body.tool_choice !== 'none') {
      if (!this.deps.fileSearch) throw errors.invalidRequest("The 'file_search' tool is not served by this API process.", 'tools', 'unsupported_parameter');
      const run = await this.deps.fileSearch.search(tenant, tool, payload.messages, requestId);
      payload = groundedPayload(payload, model, run);
      const withResults = (body.include ?? []).includes(FILE_SEARCH_RESULTS_INCLUDE);
      record.file_search = {
        call: { id: newFileSearchCallId(), type: 'file_search_call', status: 'completed', queries: [run.query], results: withResults ? run.results : null },
        sources: run.results.map(({ file_id, filename }) => ({ file_id, filename })),
      };
    }
    return { model, payload, record };
  }

  /**
   * Runs a response in this request and answers when it has ended (failed and cancelled included),
   * with how its job ended.
   */
  async run(
    tenant: string,
    p: PreparedResponse,
    opts: { requestId: string; signal?: AbortSignal; onStart?: (jobId: string) => void; onToken?: StreamRunOptions['onToken'] },
  ): Promise<{ response: ResponseObject; outcome: ChatOutcome }> {
    let record = p.record;
    const saves: Promise<void>[] = [];
    const outcome = await this.deps.chat.run(tenant, p.model, p.payload, {
      requestId: opts.requestId,
      ...(opts.signal ? { signal: opts.signal } : {}),
      // Stored once its job exists (with the job's id, so a GET can always reconcile it): a
      // request refused before that (a full queue) leaves nothing behind.
      onStart: (jobId) => {
        record = { ...record, job_id: jobId };
        if (record.response.store) saves.push(this.deps.store.save(tenant, record));
        opts.onStart?.(jobId);
      },
      ...(opts.onToken ? { onToken: opts.onToken } : {}),
    });
    await Promise.all(saves);
    return { response: await this.settle(tenant, record, outcome), outcome };
  }

  /** `stream: true`: the same run, as Responses stream events. */
  async stream(tenant: string, p: PreparedResponse, send: Send, opts: { requestId: string; signal: AbortSignal }): Promise<void> {
    // Calls are named after the job that answers (a fallback model's job, if the first failed before any token).
    let jobId = '';
    const events = new ResponseEventSequence(p.record.response, p.record.message_id, (i) => toolCallId(jobId, i), p.record.file_search?.call);
    let opened = false;
    const { response } = await this.run(tenant, p, {
      ...opts,
      // The stream opens once the job is queued: a request refused before that gets a plain HTTP error.
      onStart: (startedJob) => {
        jobId = startedJob;
        if (!opened) events.opening().forEach(send);
        opened = true;
      },
      onToken: (text, index, { logprobs }) => events.token(index, text, logprobs).forEach(send),
    });
    if (!opts.signal.aborted) events.closing(response).forEach(send);
  }

  /** `background: true`: queues the job, stores the response as `queued`, and answers at once. */
  async startBackground(tenant: string, p: PreparedResponse, requestId: string): Promise<ResponseObject> {
    const { view } = await this.deps.chat.submit(tenant, p.model, p.payload, { requestId });
    const record: StoredResponse = { ...p.record, job_id: view.id };
    try {
      await this.deps.store.save(tenant, record);
    } catch (err) {
      // A job nobody can ever read back must not run.
      await this.deps.jobs.cancel(tenant, view.id).catch(() => {});
      throw err;
    }
    this.follow(tenant, record);
    return record.response;
  }

  /** A stored response, reconciled with its job if it has not ended. */
  async retrieve(tenant: string, id: string): Promise<StoredResponse> {
    const record = await this.deps.store.get(tenant, id);
    if (!record) throw notFound(id);
    return this.reconcile(tenant, record);
  }

  /**
   * GET /v1/responses/{id}?stream=true: a background response's events, those numbered above
   * `startingAfter` only, live until it ends. The numbering is the token stream's (see
   * ResponseEventSequence), so a client that lost its connection resumes exactly where it was.
   */
  async replay(tenant: string, id: string, startingAfter: number, send: Send, signal: AbortSignal): Promise<void> {
    const record = await this.retrieve(tenant, id);
    const jobId = record.job_id;
    if (!record.response.background || !jobId) {
      throw errors.invalidRequest(`Response '${id}' was not created with 'background: true'; only background responses can be streamed with GET.`, 'stream');
    }
    if (TERMINAL_STATUSES.has(record.response.status) && !(await this.deps.relay.hasStream(jobId))) {
      throw errors.notFound(`The events of response '${id}' are no longer kept (they expire JOB_RETENTION_SECONDS after it ends); GET it without 'stream' for the result.`, 'stream_expired', 'stream');
    }
    const events = new ResponseEventSequence(asCreated(record.response), record.message_id, (i) => toolCallId(jobId, i), record.file_search?.call);
    const emit = (list: ResponseStreamEvent[]) => {
      for (const e of list) if (e.sequence_number > startingAfter) send(e);
    };
    emit(events.opening());
    const { end } = await followToEnd<'chat'>(this.deps.relay, jobId, { signal, onToken: (text, index, { logprobs }) => emit(events.token(index, text, logprobs)) });
    if (signal.aborted) return;
    emit(events.closing(await this.settle(tenant, record, chatOutcome(jobId, record.response.model, end))));
  }

  /** POST /v1/responses/{id}/cancel: cancels a background response's job; an ended response is answered as it is. */
  async cancel(tenant: string, id: string): Promise<ResponseObject> {
    const record = await this.retrieve(tenant, id);
    if (!record.response.background || !record.job_id) {
      throw errors.invalidRequest(`Response '${id}' was not created with 'background: true'; only background responses can be cancelled.`, 'response_id');
    }
    if (TERMINAL_STATUSES.has(record.response.status)) return record.response;
    let view: JobView;
    try {
      view = await this.deps.jobs.cancel(tenant, record.job_id);
    } catch (err) {
      // It finished between the read and the cancel: answer how it ended.
      if (!(err instanceof AppError) || err.code !== 'job_finished') throw err;
      view = await this.deps.jobs.get(tenant, record.job_id);
    }
    return (await this.fromJob(tenant, record, view)).response;
  }

  /** Deletes a stored response; one that is still running has its job cancelled first. */
  async delete(tenant: string, id: string): Promise<{ id: string; object: 'response'; deleted: true }> {
    const record = await this.deps.store.get(tenant, id);
    if (!record) throw notFound(id);
    if (!TERMINAL_STATUSES.has(record.response.status) && record.job_id) await this.deps.jobs.cancel(tenant, record.job_id).catch(() => {});
    if (!(await this.deps.store.delete(tenant, id))) throw notFound(id);
    return { id, object: 'response', deleted: true };
  }

  /** GET /v1/responses/{id}/input_items: a page of the items the response was generated from. */
  async inputItems(tenant: string, id: string, q: { after?: string | undefined; limit: number; order: 'asc' | 'desc' }) {
    const record = await this.deps.store.get(tenant, id);
    if (!record) throw notFound(id);
    const ordered = q.order === 'asc' ? record.input_items : [...record.input_items].reverse();
    let start = 0;
    if (q.after !== undefined) {
      const at = ordered.findIndex((item) => item.id === q.after);
      if (at < 0) throw errors.invalidRequest(`Response '${id}' has no input item '${q.after}'.`, 'after');
      start = at + 1;
    }
    const data = ordered.slice(start, start + q.limit);
    return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + q.limit < ordered.length };
  }

  /** Stops following background jobs (shutdown): their responses are settled by the next read. */
  close(): void {
    for (const c of this.watching) c.abort();
  }

  /** The conversation a `previous_response_id` continues: its input items, then its output. */
  private async history(tenant: string, id: string): Promise<ConversationItem[]> {
    const previous = await this.deps.store.get(tenant, id);
    if (!previous) {
      throw errors.invalidRequest(`Previous response with id '${id}' not found (responses created with 'store: false' cannot be continued).`, 'previous_response_id', 'previous_response_not_found');
    }
    const settled = await this.reconcile(tenant, previous);
    if (!TERMINAL_STATUSES.has(settled.response.status)) {
      throw errors.invalidRequest(`Previous response '${id}' is still ${settled.response.status}; continue it once it has ended.`, 'previous_response_id', 'previous_response_not_ended');
    }
    return [...settled.input_items, ...settled.response.output];
  }

  private follow(tenant: string, record: StoredResponse): void {
    const jobId = record.job_id!;
    const stop = new AbortController();
    this.watching.add(stop);
    followToEnd<'chat'>(this.deps.relay, jobId, { signal: stop.signal })
      .then(async ({ end }) => {
        if (!stop.signal.aborted) await this.settle(tenant, record, chatOutcome(jobId, record.response.model, end));
      })
      .catch((err: unknown) => this.deps.log.warn({ err, response: record.response.id, jobId }, 'could not settle a background response; the next read will'))
      .finally(() => this.watching.delete(stop));
  }

  private async reconcile(tenant: string, record: StoredResponse): Promise<StoredResponse> {
    if (TERMINAL_STATUSES.has(record.response.status) || !record.job_id) return record;
    let view: JobView;
    try {
      view = await this.deps.jobs.get(tenant, record.job_id);
    } catch (err) {
      if (!(err instanceof AppError) || err.status !== 404) throw err;
      // Finished jobs are kept JOB_RETENTION_SECONDS; a response nobody read until then lost its result.
      const gone: ChatOutcome = { status: 'failed', jobId: record.job_id, model: record.response.model, error: { message: 'the job behind this response is no longer kept', code: 'job_expired' } };
      return { ...record, response: await this.settle(tenant, record, gone) };
    }
    return this.fromJob(tenant, record, view);
  }

  private async fromJob(tenant: string, record: StoredResponse, view: JobView): Promise<StoredResponse> {
    switch (view.status) {
      case 'queued':
        return record;
      case 'active':
        return { ...record, response: { ...record.response, status: 'in_progress' } };
      case 'completed':
        return { ...record, response: await this.settle(tenant, record, { status: 'completed', jobId: view.id, model: view.model, result: view.result as JobResult<'chat'> }) };
      case 'failed':
      case 'cancelled': {
        const error = view.error ?? { message: view.status, code: view.status };
        return { ...record, response: await this.settle(tenant, record, { status: view.status, jobId: view.id, model: view.model, error }) };
      }
    }
  }

  /**
   * Where a response ends: the settled object is stored (unless `store: false`) by whoever gets
   * there first (this request, the process following the job, a GET), and that one alone reports it.
   */
  private async settle(tenant: string, record: StoredResponse, outcome: ChatOutcome): Promise<ResponseObject> {
    const response = settledResponse(record.response, record.message_id, outcome, record.file_search);
    if (!response.store) return response;
    if (await this.deps.store.settle(tenant, { ...record, response })) {
      if (response.background) this.backgroundEnded(tenant, response);
      return response;
    }
    return (await this.deps.store.get(tenant, response.id))?.response ?? response;
  }

  /**
   * The one place a background response reaches its terminal state, exactly once per response
   * (ResponseStore.settle decides who): its `response.<status>` webhook event goes from here, with
   * an event id derived from the response's, so a repeat from another replica delivers nothing twice.
   */
  private backgroundEnded(tenant: string, response: ResponseObject): void {
    this.deps.log.info({ tenant, response: response.id, status: response.status }, 'background response ended');
    const type = RESPONSE_EVENTS[response.status as keyof typeof RESPONSE_EVENTS];
    if (!this.deps.webhooks || !type) return;
    void enqueueWebhookEvent(this.deps.webhooks, tenant, type, response, { eventId: `evt_${response.id}` }).catch((err) =>
      this.deps.log.warn({ err, response: response.id }, 'could not queue the webhook event of a background response'),
    );
  }
}

/** The webhook event of each terminal status of a response. */
const RESPONSE_EVENTS = {
  completed: 'response.completed',
  failed: 'response.failed',
  cancelled: 'response.cancelled',
  incomplete: 'response.incomplete',
} as const satisfies Record<string, WebhookEventType>;

const notFound = (id: string) => errors.notFound(`No response with id '${id}'.`, 'response_not_found', 'response_id');

/** The response as `response.created` showed it, whatever has happened to it since. */
function asCreated(response: ResponseObject): ResponseObject {
  const { usage: _later, ...created } = response;
  return { ...created, status: response.background ? 'queued' : 'in_progress', completed_at: null, error: null, incomplete_details: null, output: [] };
}
