import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, JobCompletedEvent, JobFailedEvent, JobTokenEvent, ServerToClientEvents, SubscribeAck } from '../shared/events/job-events.js';
import type { ChatMessageInput, ChatOptions } from '../shared/api/request-schemas.js';
import type { CreateJobRequestInput } from '../shared/jobs/job-requests.js';
import type { DocumentView } from '../shared/documents/document-api.js';
import type { AttributeFilter, RankingOptions } from '../shared/documents/search-ranking.js';
import type { JobResult } from '../shared/jobs/job-catalog.js';
import type { JobView } from '../shared/jobs/job-views.js';
import type { WebhookDeliveryView, WebhookEndpointView, WebhookEventType } from '../shared/webhooks/webhook-api.js';
import { signRequestWeb } from '../shared/api/sign-request-web.js';
import { multipartBody } from '../shared/api/signature-scheme.js';
import type { batchView } from '../shared/batches/batch-store.js';
import type { FileView } from '../shared/files/file-store.js';

/** A query string of the defined options ('' when none). */
function query(opts: Record<string, string | number | undefined>): string {
  const entries = Object.entries(opts).filter((e): e is [string, string | number] => e[1] !== undefined);
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}` : '';
}

export type { DocumentView, JobView, FileView };
/** OpenAI's batch object, as the service answers it. */
export type BatchView = ReturnType<typeof batchView>;

/**
 * A typed client for this service: REST (embeddings, chat, jobs, models) and Socket.IO (job
 * events, live tokens with resumption). It uses only `fetch` and `socket.io-client`, so the same
 * code runs in Node and in a browser bundle.
 */
export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
  /**
   * Sign every request with the key (docs/SIGNED_REQUESTS.md) instead of sending it: required for
   * keys created with `require_signature`. Uploads are then built in memory first, since the
   * signature covers their exact bytes; Socket.IO connects with a token minted by a signed
   * `POST /v1/auth/token` (the deployment needs JWT_SECRET).
   */
  signRequests?: boolean;
  fetch?: typeof fetch;
}

// Shapes the service answers with, derived from the schemas it validates them with.
export type ChatMessage = ChatMessageInput;
/** One chatbot turn: POST /v1/chatbot answers the chatbot job's result as it is. */
export type ChatbotReply = JobResult<'chatbot'>;
/** One hit of a collection search (the `document.search` job's result). */
export type SearchHit = JobResult<'document.search'>['data'][number];

/** A POST /v1/jobs body: one variant per job type the catalog lets clients submit, chosen by `type`. */
export type JobSubmission = CreateJobRequestInput;
export type { ChatOptions };
/** A finished chat job's result. */
export type ChatResult = JobResult<'chat'>;

/** A file attribute of a vector store file: OpenAI's scalar values, which search filters compare. */
export type AttributeValue = string | number | boolean;
type FileCounts = { in_progress: number; completed: number; failed: number; cancelled: number; total: number };

/** OpenAI's vector store object, as the service answers it (api/vector-stores). */
export interface VectorStoreView {
  id: string;
  object: 'vector_store';
  created_at: number;
  name: string;
  usage_bytes: number;
  file_counts: FileCounts;
  status: 'expired' | 'in_progress' | 'completed';
  expires_after?: { anchor: 'last_active_at'; days: number };
  expires_at: number | null;
  last_active_at: number;
  metadata: Record<string, string>;
}

/** A file of a vector store: its ingestion status and attributes (OpenAI's object has no filename; the Files API has it). */
export interface VectorStoreFileView {
  id: string;
  object: 'vector_store.file';
  usage_bytes: number;
  created_at: number;
  vector_store_id: string;
  status: 'in_progress' | 'completed' | 'failed' | 'cancelled';
  last_error: { code: string; message: string } | null;
  attributes: Record<string, AttributeValue>;
}

/** One hit of a vector store search: the chunk's text, its file and the file's attributes. */
export interface VectorStoreSearchResult {
  file_id: string;
  filename: string;
  score: number;
  attributes: Record<string, AttributeValue>;
  content: { type: 'text'; text: string }[];
}

/** An error answer of the service, with its OpenAI-shaped body. */
export class InferenceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
    readonly type?: string,
  ) {
    super(message);
    this.name = 'InferenceError';
  }
}

export class InferenceClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private socket: Socket<ServerToClientEvents, ClientToServerEvents> | undefined;

  constructor(private readonly opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/$/, '');
    // Bound: browsers refuse fetch called as a method of another object ("Illegal invocation").
    this.fetchImpl = opts.fetch ?? fetch.bind(globalThis);
  }

  async models(): Promise<{ id: string; task: string; description: string | null }[]> {
    return ((await this.request('GET', '/v1/models')) as { data: { id: string; task: string; description: string | null }[] }).data;
  }

  async embed(model: string, input: string | string[], opts: { dimensions?: number } = {}): Promise<number[][]> {
    const res = (await this.request('POST', '/v1/embeddings', { model, input, encoding_format: 'float', ...opts })) as { data: { embedding: number[] }[] };
    return res.data.map((d) => d.embedding);
  }

  async chat(model: string, messages: ChatMessage[], opts: ChatOptions = {}): Promise<{ content: string; model: string; finish_reason: string; usage: ChatResult['usage'] }> {
    const res = (await this.request('POST', '/v1/chat/completions', { model, messages, ...opts })) as {
      model: string;
      choices: { message: { content: string }; finish_reason: string }[];
      usage: ChatResult['usage'];
    };
    return { content: res.choices[0]?.message.content ?? '', model: res.model, finish_reason: res.choices[0]?.finish_reason ?? 'stop', usage: res.usage };
  }

  /** Streams a chat answer over server-sent events; yields text pieces as they arrive. */
  async *chatStream(model: string, messages: ChatMessage[], opts: ChatOptions & { signal?: AbortSignal } = {}): AsyncGenerator<string> {
    const { signal, ...params } = opts;
    const body = JSON.stringify({ model, messages, ...params, stream: true });
    const res = await this.fetchImpl(`${this.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: await this.headers('POST', '/v1/chat/completions', body),
      body,
      signal,
    });
    if (!res.ok || !res.body) throw await toError(res);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let sep: number;
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        const data = event.startsWith('data: ') ? event.slice(6) : '';
        if (!data || data === '[DONE]') continue;
        const parsed = JSON.parse(data) as { error?: { message: string; code: string | null }; choices?: { delta?: { content?: string } }[] };
        if (parsed.error) throw new InferenceError(500, parsed.error.code, parsed.error.message);
        const text = parsed.choices?.[0]?.delta?.content;
        if (text) yield text;
      }
    }
  }

  /**
   * Uploads a document into a collection. From a stream of bytes (Node: a file's read stream) the
   * body streams out and `onProgress(sentBytes)` follows it, for progress bars. A Blob (browsers)
   * goes as ordinary form data, because browsers stream request bodies only over HTTP/2; its
   * progress is reported once, when it has gone out.
   */
  async uploadDocument(
    file: Blob | AsyncIterable<Uint8Array>,
    opts: { filename: string; collection: string; metadata?: Record<string, unknown>; size?: number; onProgress?: (sent: number) => void },
  ): Promise<DocumentView> {
    if (this.opts.signRequests) return this.uploadSigned(file, opts);
    if (file instanceof Blob) {
      const form = new FormData();
      form.set('collection', opts.collection);
      if (opts.metadata) form.set('metadata', JSON.stringify(opts.metadata));
      form.set('file', file, opts.filename);
      const res = await this.fetchImpl(`${this.baseUrl}/v1/documents`, { method: 'POST', headers: { authorization: `Bearer ${this.opts.apiKey}` }, body: form });
      if (!res.ok) throw await toError(res);
      opts.onProgress?.(file.size);
      return (await res.json()) as DocumentView;
    }
    const boundary = `----qi-${Math.random().toString(16).slice(2)}`;
    const enc = new TextEncoder();
    const field = (name: string, value: string) => enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
    const safeName = opts.filename.replace(/["\r\n]/g, '_');
    const head = [
      field('collection', opts.collection),
      ...(opts.metadata ? [field('metadata', JSON.stringify(opts.metadata))] : []),
      enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${safeName}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    ];
    const tail = enc.encode(`\r\n--${boundary}--\r\n`);
    const source = file;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        for (const part of head) controller.enqueue(part);
        for await (const chunk of source) {
          controller.enqueue(chunk);
          sent += chunk.byteLength;
          opts.onProgress?.(sent);
        }
        controller.enqueue(tail);
        controller.close();
      },
    });
    const res = await this.fetchImpl(`${this.baseUrl}/v1/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.opts.apiKey}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
      // Needed by fetch for a streamed request body.
      duplex: 'half',
    } as RequestInit);
    if (!res.ok) throw await toError(res);
    return (await res.json()) as DocumentView;
  }

  /** A signed upload: the form is built in memory, so its exact bytes can be hashed before they are sent. */
  private async uploadSigned(
    file: Blob | AsyncIterable<Uint8Array>,
    opts: { filename: string; collection: string; metadata?: Record<string, unknown>; onProgress?: (sent: number) => void },
  ): Promise<DocumentView> {
    let content: Blob;
    if (file instanceof Blob) content = file;
    else {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      for await (const chunk of file) chunks.push(new Uint8Array(chunk));
      content = new Blob(chunks);
    }
    const form = new FormData();
    form.set('collection', opts.collection);
    if (opts.metadata) form.set('metadata', JSON.stringify(opts.metadata));
    form.set('file', content, opts.filename);
    const { body, contentType } = await multipartBody(form);
    const res = await this.fetchImpl(`${this.baseUrl}/v1/documents`, {
      method: 'POST',
      headers: { 'content-type': contentType, ...(await this.signatureOf('POST', '/v1/documents', body)) },
      body: body as Uint8Array<ArrayBuffer>,
    });
    if (!res.ok) throw await toError(res);
    opts.onProgress?.(content.size);
    return (await res.json()) as DocumentView;
  }

  /** Uploads a file (Files API): `purpose: 'batch'` for a batch's JSONL input. */
  async uploadFile(content: Blob | Uint8Array, opts: { filename: string; purpose: 'batch' | 'assistants' | 'user_data' }): Promise<FileView> {
    const form = new FormData();
    form.set('purpose', opts.purpose);
    form.set('file', content instanceof Blob ? content : new Blob([content as Uint8Array<ArrayBuffer>]), opts.filename);
    let res: Response;
    if (this.opts.signRequests) {
      // Signed: the exact bytes are hashed before they are sent.
      const { body, contentType } = await multipartBody(form);
      res = await this.fetchImpl(`${this.baseUrl}/v1/files`, {
        method: 'POST',
        headers: { 'content-type': contentType, ...(await this.signatureOf('POST', '/v1/files', body)) },
        body: body as Uint8Array<ArrayBuffer>,
      });
    } else {
      res = await this.fetchImpl(`${this.baseUrl}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${this.opts.apiKey}` }, body: form });
    }
    if (!res.ok) throw await toError(res);
    return (await res.json()) as FileView;
  }

  async listFiles(opts: { purpose?: string; limit?: number; after?: string } = {}): Promise<FileView[]> {
    return ((await this.request('GET', `/v1/files${query(opts)}`)) as { data: FileView[] }).data;
  }

  getFile(id: string): Promise<FileView> {
    return this.request('GET', `/v1/files/${encodeURIComponent(id)}`) as Promise<FileView>;
  }

  /** A file's bytes as text (batch output and error files are JSONL). */
  async fileContent(id: string): Promise<string> {
    const route = `/v1/files/${encodeURIComponent(id)}/content`;
    const res = await this.fetchImpl(`${this.baseUrl}${route}`, { headers: await this.headers('GET', route, undefined) });
    if (!res.ok) throw await toError(res);
    return res.text();
  }

  deleteFile(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.request('DELETE', `/v1/files/${encodeURIComponent(id)}`) as Promise<{ id: string; deleted: boolean }>;
  }

  createBatch(opts: { input_file_id: string; endpoint: '/v1/embeddings' | '/v1/chat/completions' | '/v1/responses'; metadata?: Record<string, string> }): Promise<BatchView> {
    return this.request('POST', '/v1/batches', { completion_window: '24h', ...opts }) as Promise<BatchView>;
  }

  getBatch(id: string): Promise<BatchView> {
    return this.request('GET', `/v1/batches/${encodeURIComponent(id)}`) as Promise<BatchView>;
  }

  cancelBatch(id: string): Promise<BatchView> {
    return this.request('POST', `/v1/batches/${encodeURIComponent(id)}/cancel`) as Promise<BatchView>;
  }

  async listBatches(opts: { limit?: number; after?: string } = {}): Promise<BatchView[]> {
    return ((await this.request('GET', `/v1/batches${query(opts)}`)) as { data: BatchView[] }).data;
  }

  /** Polls a batch until it ends, calling `onProgress` with each view (its request_counts are live). */
  async followBatch(id: string, opts: { intervalMs?: number; onProgress?: (b: BatchView) => void } = {}): Promise<BatchView> {
    for (;;) {
      const b = await this.getBatch(id);
      opts.onProgress?.(b);
      if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return b;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
    }
  }

  createVectorStore(body: { name?: string; metadata?: Record<string, string>; file_ids?: string[] } = {}): Promise<VectorStoreView> {
    return this.request('POST', '/v1/vector_stores', body) as Promise<VectorStoreView>;
  }

  async listVectorStores(opts: { limit?: number; after?: string } = {}): Promise<VectorStoreView[]> {
    return ((await this.request('GET', `/v1/vector_stores${query(opts)}`)) as { data: VectorStoreView[] }).data;
  }

  getVectorStore(id: string): Promise<VectorStoreView> {
    return this.request('GET', `/v1/vector_stores/${encodeURIComponent(id)}`) as Promise<VectorStoreView>;
  }

  /** Deletes the store with its collection; the Files API files stay. */
  deleteVectorStore(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.request('DELETE', `/v1/vector_stores/${encodeURIComponent(id)}`) as Promise<{ id: string; deleted: boolean }>;
  }

  /** Attaches a Files API file (purpose `assistants`) to a store; its ingestion starts, `status` is `in_progress` until it ends. */
  addVectorStoreFile(storeId: string, body: { file_id: string; attributes?: Record<string, AttributeValue> }): Promise<VectorStoreFileView> {
    return this.request('POST', `/v1/vector_stores/${encodeURIComponent(storeId)}/files`, body) as Promise<VectorStoreFileView>;
  }

  async listVectorStoreFiles(storeId: string, opts: { limit?: number; after?: string; filter?: VectorStoreFileView['status'] } = {}): Promise<VectorStoreFileView[]> {
    return ((await this.request('GET', `/v1/vector_stores/${encodeURIComponent(storeId)}/files${query(opts)}`)) as { data: VectorStoreFileView[] }).data;
  }

  getVectorStoreFile(storeId: string, fileId: string): Promise<VectorStoreFileView> {
    return this.request('GET', `/v1/vector_stores/${encodeURIComponent(storeId)}/files/${encodeURIComponent(fileId)}`) as Promise<VectorStoreFileView>;
  }

  /** Removes a file from a store: its chunks leave search at once (the Files API file stays). */
  deleteVectorStoreFile(storeId: string, fileId: string): Promise<{ id: string; deleted: boolean }> {
    return this.request('DELETE', `/v1/vector_stores/${encodeURIComponent(storeId)}/files/${encodeURIComponent(fileId)}`) as Promise<{ id: string; deleted: boolean }>;
  }

  /**
   * Polls a store's file until its ingestion ends (completed, failed or cancelled), calling
   * `onProgress` with each view. The store has no event stream of its own, so this polls, as
   * OpenAI's SDK does (`createAndPoll`).
   */
  async followVectorStoreFile(storeId: string, fileId: string, opts: { intervalMs?: number; onProgress?: (f: VectorStoreFileView) => void } = {}): Promise<VectorStoreFileView> {
    for (;;) {
      const f = await this.getVectorStoreFile(storeId, fileId);
      opts.onProgress?.(f);
      if (f.status !== 'in_progress') return f;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
    }
  }

  async searchVectorStore(
    storeId: string,
    query: string,
    opts: { max_num_results?: number; filters?: AttributeFilter; ranking_options?: RankingOptions } = {},
  ): Promise<VectorStoreSearchResult[]> {
    const res = (await this.request('POST', `/v1/vector_stores/${encodeURIComponent(storeId)}/search`, { query, ...opts })) as { data: VectorStoreSearchResult[] };
    return res.data;
  }

  getDocument(id: string): Promise<DocumentView> {
    return this.request('GET', `/v1/documents/${encodeURIComponent(id)}`) as Promise<DocumentView>;
  }

  async search(collection: string, query: string, opts: { top_k?: number; filter?: Record<string, unknown>; ef?: number; ranking_options?: RankingOptions } = {}): Promise<SearchHit[]> {
    const res = (await this.request('POST', `/v1/collections/${encodeURIComponent(collection)}/search`, { query, top_k: opts.top_k ?? 5, ...opts })) as { data: SearchHit[] };
    return res.data;
  }

  /** One chatbot turn; pass the returned session_id back to continue the dialogue. */
  chatbot(body: { user_id: string; message: string; session_id?: string; collection?: string }): Promise<ChatbotReply> {
    return this.request('POST', '/v1/chatbot', body) as Promise<ChatbotReply>;
  }

  submitJob(job: JobSubmission, opts: { idempotencyKey?: string } = {}): Promise<JobView> {
    return this.request('POST', '/v1/jobs', job, opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}) as Promise<JobView>;
  }

  getJob(id: string): Promise<JobView> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(id)}`) as Promise<JobView>;
  }

  cancelJob(id: string): Promise<JobView> {
    return this.request('DELETE', `/v1/jobs/${encodeURIComponent(id)}`) as Promise<JobView>;
  }

  /** Registers a webhook endpoint; `secret` (whsec_…) is in this answer only (verify with client/webhook-verify.ts). */
  createWebhook(body: { url: string; events: WebhookEventType[]; description?: string }): Promise<WebhookEndpointView & { secret: string }> {
    return this.request('POST', '/v1/webhooks', body) as Promise<WebhookEndpointView & { secret: string }>;
  }

  async listWebhooks(): Promise<WebhookEndpointView[]> {
    return ((await this.request('GET', '/v1/webhooks')) as { data: WebhookEndpointView[] }).data;
  }

  deleteWebhook(id: string): Promise<{ id: string; deleted: true }> {
    return this.request('DELETE', `/v1/webhooks/${encodeURIComponent(id)}`) as Promise<{ id: string; deleted: true }>;
  }

  /** A new secret (shown once); with `overlap_seconds` the old one keeps signing that long too. */
  rotateWebhookSecret(id: string, opts: { overlap_seconds?: number } = {}): Promise<WebhookEndpointView & { secret: string }> {
    return this.request('POST', `/v1/webhooks/${encodeURIComponent(id)}/rotate_secret`, opts) as Promise<WebhookEndpointView & { secret: string }>;
  }

  async webhookDeliveries(id: string, opts: { limit?: number } = {}): Promise<WebhookDeliveryView[]> {
    const query = opts.limit ? `?limit=${opts.limit}` : '';
    return ((await this.request('GET', `/v1/webhooks/${encodeURIComponent(id)}/deliveries${query}`)) as { data: WebhookDeliveryView[] }).data;
  }

  /**
   * Follows a job over Socket.IO until it ends: progress and (chat) tokens as they come, then the
   * result, or an InferenceError for a failed or cancelled job. `from` resumes a chat stream.
   */
  follow(
    id: string,
    handlers: { onToken?: (e: JobTokenEvent) => void; onProgress?: (progress: unknown) => void; from?: number } = {},
  ): Promise<unknown> {
    const socket = this.connect();
    return new Promise((resolve, reject) => {
      const onToken = (e: JobTokenEvent) => e.id === id && handlers.onToken?.(e);
      const onProgress = (e: { id: string; progress: unknown }) => e.id === id && handlers.onProgress?.(e.progress);
      const onCompleted = (e: JobCompletedEvent) => {
        if (e.id !== id) return;
        cleanup();
        resolve(e.result);
      };
      const onFailed = (e: JobFailedEvent) => {
        if (e.id !== id) return;
        cleanup();
        reject(new InferenceError(e.status === 'cancelled' ? 409 : 500, e.error.code, e.error.message));
      };
      const cleanup = () => {
        socket.off('token', onToken);
        socket.off('progress', onProgress);
        socket.off('completed', onCompleted);
        socket.off('failed', onFailed);
        socket.emit('unsubscribe', id);
      };
      socket.on('token', onToken);
      socket.on('progress', onProgress);
      socket.on('completed', onCompleted);
      socket.on('failed', onFailed);
      socket
        .timeout(10_000)
        .emitWithAck('subscribe', handlers.from ? { id, from: handlers.from } : id)
        .then((ack: SubscribeAck) => {
          if (!ack.ok) {
            cleanup();
            reject(new InferenceError(404, ack.error.code, ack.error.message));
          }
        }, (err: Error) => {
          cleanup();
          reject(err);
        });
    });
  }

  close(): void {
    this.socket?.disconnect();
    this.socket = undefined;
  }

  private connect(): Socket<ServerToClientEvents, ClientToServerEvents> {
    // A key that only signs cannot be sent in the handshake: each (re)connect mints a short-lived token.
    const auth = this.opts.signRequests
      ? (cb: (data: { token: string }) => void) =>
          void (this.request('POST', '/v1/auth/token', {}) as Promise<{ access_token: string }>).then(
            (t) => cb({ token: t.access_token }),
            () => cb({ token: '' }),
          )
      : { token: this.opts.apiKey };
    this.socket ??= io(this.baseUrl, { auth, transports: ['websocket'] });
    return this.socket;
  }

  /** The headers of a JSON request (with its exact body, when it is signed). */
  private async headers(method: string, route: string, body: string | undefined, extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const credentials = this.opts.signRequests ? await this.signatureOf(method, route, body) : { authorization: `Bearer ${this.opts.apiKey}` };
    return { ...credentials, 'content-type': 'application/json', ...extra };
  }

  /** The signature headers; the path signed is the one on the request line, base URL's path included. */
  private signatureOf(method: string, route: string, body: string | Uint8Array | undefined): Promise<Record<string, string>> {
    const url = new URL(`${this.baseUrl}${route}`);
    return signRequestWeb({ apiKey: this.opts.apiKey, method, path: `${url.pathname}${url.search}`, body });
  }

  private async request(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const res = await this.fetchImpl(`${this.baseUrl}${route}`, {
      method,
      headers: await this.headers(method, route, text, headers),
      ...(text === undefined ? {} : { body: text }),
    });
    if (!res.ok) throw await toError(res);
    return res.json();
  }
}

async function toError(res: Response): Promise<InferenceError> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as { error: { message: string; code: string | null; type?: string } };
    return new InferenceError(res.status, error.code, error.message, error.type);
  } catch {
    return new InferenceError(res.status, null, text.slice(0, 500) || res.statusText);
  }
}
