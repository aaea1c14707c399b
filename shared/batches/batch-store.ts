import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ResponseObject } from '../responses/responses-events.js';

export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/embeddings', '/v1/responses'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

export const BATCH_STATUSES = ['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];
export type TerminalBatchStatus = 'completed' | 'failed' | 'expired' | 'cancelled';
export const TERMINAL_BATCH_STATUSES: ReadonlySet<BatchStatus> = new Set<TerminalBatchStatus>(['completed', 'failed', 'expired', 'cancelled']);

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** A batch as stored (Redis hash `batch:<id>`); times are epoch seconds. */
export interface BatchRecord {
  id: string;
  tenant: string;
  endpoint: BatchEndpoint;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  metadata: Record<string, string> | null;
  errors: BatchError[] | null;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  /** Lines of the input file (0 while validating). */
  total: number;
  completed: number;
  failed: number;
  /** The next line index the driver will queue. */
  dispatched: number;
  /** Tokens of the lines answered so far (counted once per line, with its outcome): the batch's `usage`. */
  input_tokens: number;
  output_tokens: number;
}

/** A validated line, ready to run as an ordinary job. */
export type BatchLine =
  | { custom_id: string; type: 'embedding'; payload: { model: string; input: string[]; dimensions?: number }; encoding_format: 'float' | 'base64' }
  | {
      custom_id: string;
      type: 'chat';
      payload: Record<string, unknown> & { model: string };
      /** A `/v1/responses` line: the response as created (its id fixed at validation), settled with the job's result when the output is written. */
      response?: { created: ResponseObject; message_id: string };
    };

/** How a line ended, recorded once (HSETNX) under its index. */
export type LineOutcome =
  | { ok: true; result: unknown; job_id: string; at: number }
  | {
      ok: false;
      custom_id?: string | null;
      error: { code: string; message: string };
      /** The HTTP answer the endpoint would have given, when the request got that far; null for lines that are not a request at all. */
      response: { status_code: number; body: unknown } | null;
      job_id?: string;
      at: number;
    };

export type { BatchLineRef } from './batch-line-ref.js';

const TIMES = ['in_progress_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at', 'cancelling_at', 'cancelled_at'] as const;

/**
 * Records a line's outcome exactly once: HSETNX into the batch's outcome hash, and only when that
 * set it, the matching count, the token usage and the pending set move. A worker killed after
 * recording, or a job retried, records nothing the second time; counts and usage are never off by
 * a duplicate.
 * KEYS: outcomes, batch record, pending set. ARGV: line index, outcome JSON, 'completed' | 'failed',
 * input tokens, output tokens.
 * Returns 1 when recorded, 0 when the line already had its outcome.
 */
const RECORD_LINE = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[2], 'input_tokens', ARGV[4]) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[2], 'output_tokens', ARGV[5]) end
redis.call('SREM', KEYS[3], ARGV[1])
return 1`;

/**
 * The tokens a line's outcome used: an embedding result's `prompt_tokens`, a chat result's `usage`
 * (prompt and completion tokens). Failed lines used none that are billed.
 */
export function lineTokens(outcome: LineOutcome): { input: number; output: number } {
  if (!outcome.ok) return { input: 0, output: 0 };
  const r = outcome.result as { prompt_tokens?: unknown; usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } };
  const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0);
  if (r.usage) return { input: count(r.usage.prompt_tokens), output: count(r.usage.completion_tokens) };
  return { input: count(r.prompt_tokens), output: 0 };
}

/** Moves a batch to ARGV[1] (setting the time field ARGV[2] to ARGV[3]) only from one of ARGV[4..]. Returns 1 when moved. */
const TRANSITION = `
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return 0 end
for i = 4, #ARGV do
  if s == ARGV[i] then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3])
    return 1
  end
end
return 0`;

export function newBatchId(): string {
  return `batch_${randomUUID().replace(/-/g, '')}`;
}

/** The stable id of a batch line's request (`batch_req_…`), the same however often the output is written. */
export function batchRequestId(batchId: string, line: number): string {
  return `batch_req_${createHash('sha256').update(`${batchId}:${line}`).digest('hex').slice(0, 32)}`;
}

/**
 * Batches in Redis, for the API (create, read, list, cancel) and the workers (validate, run, finish):
 * the record, the validated lines (`:lines`, index → BatchLine), the outcomes (`:out`, index →
 * LineOutcome, written once each), the lines queued and not yet answered (`:pending`), and per
 * tenant a sorted set of batch ids by creation.
 */
export class BatchStore {
  constructor(
    readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(id: string): string {
    return `${this.prefix}:batch:${id}`;
  }
  linesKey(id: string): string {
    return `${this.key(id)}:lines`;
  }
  outKey(id: string): string {
    return `${this.key(id)}:out`;
  }
  pendingKey(id: string): string {
    return `${this.key(id)}:pending`;
  }
  /** Lines queued as part of a packed job: line index → the index of the pack's first line (its job's name). */
  packKey(id: string): string {
    return `${this.key(id)}:pack`;
  }
  private tenantKey(tenant: string): string {
    return `${this.prefix}:batches:${tenant}`;
  }

  async create(r: BatchRecord): Promise<void> {
    // Ordered by the time of creation in ms (created_at has whole seconds; see FileStore.create).
    await this.redis.multi().hset(this.key(r.id), flatten(r)).zadd(this.tenantKey(r.tenant), Date.now(), r.id).exec();
  }

  async get(id: string): Promise<BatchRecord | undefined> {
    if (!/^batch_[0-9a-f]{32}$/.test(id)) return undefined;
    return parseBatch(await this.redis.hgetall(this.key(id)));
  }

  async getOwned(tenant: string, id: string): Promise<BatchRecord | undefined> {
    const b = await this.get(id);
    return b && b.tenant === tenant ? b : undefined;
  }

  /** Newest first, after the batch `after`. */
  async list(tenant: string, opts: { limit: number; after?: string }): Promise<{ data: BatchRecord[]; hasMore: boolean }> {
    const ids = await this.redis.zrevrange(this.tenantKey(tenant), '0', '-1');
    const start = opts.after ? ids.indexOf(opts.after) + 1 : 0;
    const page = ids.slice(start, start + opts.limit);
    const data = (await Promise.all(page.map((id) => this.get(id)))).filter((b): b is BatchRecord => b !== undefined);
    return { data, hasMore: start + opts.limit < ids.length };
  }

  /** Moves the batch to `to` when it is in one of `from`; false when it was not (someone else moved it first). */
  async transition(id: string, to: BatchStatus, from: readonly BatchStatus[], fields: Record<string, string | number> = {}): Promise<boolean> {
    const time = TIMES.find((t) => t === `${to}_at`);
    const moved = (await this.redis.eval(TRANSITION, 1, this.key(id), to, time ?? 'updated_at', String(nowSeconds()), ...from)) === 1;
    if (moved && Object.keys(fields).length) await this.redis.hset(this.key(id), fields);
    return moved;
  }

  async update(id: string, fields: Record<string, string | number>): Promise<void> {
    await this.redis.hset(this.key(id), fields);
  }

  /** Records many lines' outcomes (validation errors, expiry) in one round trip; answers how many were new. */
  async recordLines(id: string, entries: readonly [number, LineOutcome][]): Promise<number> {
    return (await this.recordEach(id, entries)).filter(Boolean).length;
  }

  /** Records many lines' outcomes in one round trip; answers, entry by entry, whether this call recorded it. */
  async recordEach(id: string, entries: readonly [number, LineOutcome][]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const [line, outcome] of entries) pipe.eval(RECORD_LINE, 3, ...this.recordArgs(id, line, outcome));
    const res = (await pipe.exec()) ?? [];
    return entries.map((_, i) => !res[i]?.[0] && res[i]?.[1] === 1);
  }


  private recordArgs(id: string, line: number, outcome: LineOutcome): string[] {
    const tokens = lineTokens(outcome);
    return [this.outKey(id), this.key(id), this.pendingKey(id), String(line), JSON.stringify(outcome), outcome.ok ? 'completed' : 'failed', String(tokens.input), String(tokens.output)];
  }

  /** Drops what only a running batch needs (its lines, outcomes, pending set and packs): the output files hold it now. */
  async dropWorkingSet(id: string): Promise<void> {
    await this.redis.unlink(this.linesKey(id), this.outKey(id), this.pendingKey(id), this.packKey(id));
  }
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function flatten(r: BatchRecord): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) out[k] = v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return out;
}

function parseBatch(h: Record<string, string>): BatchRecord | undefined {
  if (!h.id || !h.tenant) return undefined;
  const num = (k: string) => (h[k] ? Number(h[k]) : null);
  const json = <T>(k: string): T | null => (h[k] ? (JSON.parse(h[k]) as T) : null);
  return {
    id: h.id,
    tenant: h.tenant,
    endpoint: h.endpoint as BatchEndpoint,
    input_file_id: h.input_file_id ?? '',
    completion_window: h.completion_window ?? '24h',
    status: h.status as BatchStatus,
    metadata: json('metadata'),
    errors: json('errors'),
    output_file_id: h.output_file_id || null,
    error_file_id: h.error_file_id || null,
    created_at: Number(h.created_at),
    in_progress_at: num('in_progress_at'),
    expires_at: Number(h.expires_at),
    finalizing_at: num('finalizing_at'),
    completed_at: num('completed_at'),
    failed_at: num('failed_at'),
    expired_at: num('expired_at'),
    cancelling_at: num('cancelling_at'),
    cancelled_at: num('cancelled_at'),
    total: Number(h.total ?? 0),
    completed: Number(h.completed ?? 0),
    failed: Number(h.failed ?? 0),
    dispatched: Number(h.dispatched ?? 0),
    input_tokens: Number(h.input_tokens ?? 0),
    output_tokens: Number(h.output_tokens ?? 0),
  };
}

/** OpenAI's batch object. Times that have not happened are absent (OpenAI's schema has no nulls there). */
export function batchView(b: BatchRecord) {
  const times: Record<string, number> = {};
  for (const t of TIMES) if (b[t] !== null) times[t] = b[t]!;
  return {
    id: b.id,
    object: 'batch' as const,
    endpoint: b.endpoint,
    ...(b.errors ? { errors: { object: 'list', data: b.errors } } : {}),
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    status: b.status,
    ...(b.output_file_id ? { output_file_id: b.output_file_id } : {}),
    ...(b.error_file_id ? { error_file_id: b.error_file_id } : {}),
    created_at: b.created_at,
    expires_at: b.expires_at,
    ...times,
    request_counts: { total: b.total, completed: b.completed, failed: b.failed },
    // OpenAI's shape; no prompt cache and no reasoning models here, so those details are 0.
    usage: {
      input_tokens: b.input_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: b.output_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: b.input_tokens + b.output_tokens,
    },
    metadata: b.metadata,
  };
}
