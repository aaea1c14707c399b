import type { Request, Response } from 'express';
import type { Redis } from 'ioredis';
import type { JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';
import type { Logger } from '../../shared/logger.js';
import { sha256Hex } from '../../shared/sha256.js';
import type { ChatModelConfig, EmbeddingModelConfig } from '../../shared/models/model-registry.js';
import type { ChatOutcome, ChatRunner, ChatRunOptions } from '../jobs/chat-service.js';

/**
 * Exact-match response cache in Redis, for the synchronous endpoints:
 * - embeddings, per text: key = tenant + model + dimensions + sha256(text), so a request whose
 *   texts were all seen before never enqueues a job, and one with some new texts enqueues only those;
 * - chat completions that are deterministic (temperature 0, or a fixed seed): key = tenant +
 *   sha256 of the normalised parameters (model, messages, max_tokens, stop, penalties, and the
 *   sampling settings only where they change the answer).
 * Entries live CACHE_TTL_SECONDS. Answers carry `x-cache: hit|miss`. `Cache-Control: no-cache`
 * skips the lookup (the fresh answer is stored), `no-store` skips the cache entirely. Tenants never
 * share entries.
 */
export type CacheMode = 'use' | 'refresh' | 'bypass';

export interface CacheContext {
  mode: CacheMode;
  report(status: 'hit' | 'miss'): void;
}

/** Reads the request's Cache-Control and reports the outcome in the answer's `x-cache` header. */
export function cacheContext(req: Request, res: Response): CacheContext {
  const cc = String(req.headers['cache-control'] ?? '').toLowerCase();
  const mode: CacheMode = /\bno-store\b/.test(cc) ? 'bypass' : /\bno-cache\b|\bmax-age\s*=\s*0\b/.test(cc) ? 'refresh' : 'use';
  return {
    mode,
    report: (status) => {
      if (!res.headersSent) res.setHeader('x-cache', status);
    },
  };
}

export interface CacheCounters {
  cacheLookup(kind: 'embedding' | 'chat', result: 'hit' | 'miss', n?: number): void;
}

export class ResponseCache {
  constructor(private readonly deps: { redis: Redis; prefix: string; ttlSeconds: number; counters?: CacheCounters; log: Logger }) {}

  get enabled(): boolean {
    return this.deps.ttlSeconds > 0;
  }

  key(...parts: string[]): string {
    return [this.deps.prefix, 'cache', ...parts].join(':');
  }

  async mget(keys: string[]): Promise<(string | null)[]> {
    try {
      return await this.deps.redis.mget(keys);
    } catch (err) {
      this.deps.log.debug({ err: (err as Error).message }, 'response cache unavailable; treating as a miss');
      return keys.map(() => null);
    }
  }

  async mset(entries: [string, string][]): Promise<void> {
    if (entries.length === 0) return;
    const pipe = this.deps.redis.pipeline();
    for (const [k, v] of entries) pipe.set(k, v, 'EX', this.deps.ttlSeconds);
    await pipe.exec().catch((err) => this.deps.log.warn({ err }, 'response cache: could not store'));
  }

  count(kind: 'embedding' | 'chat', result: 'hit' | 'miss', n = 1): void {
    if (n > 0) this.deps.counters?.cacheLookup(kind, result, n);
  }
}

/** What the embeddings route calls: the coalescer, or the cache in front of it. */
export interface Embedder {
  embed(tenant: string, model: EmbeddingModelConfig, input: string[], dimensions: number | undefined, requestId: string, cache?: CacheContext): Promise<JobResult<'embedding'>>;
}

/** Per-text embedding cache in front of the coalescer. */
export class CachingEmbedder implements Embedder {
  constructor(
    private readonly inner: Embedder,
    private readonly cache: ResponseCache,
  ) {}

  async embed(tenant: string, model: EmbeddingModelConfig, input: string[], dimensions: number | undefined, requestId: string, ctx?: CacheContext): Promise<JobResult<'embedding'>> {
    if (!this.cache.enabled || ctx?.mode === 'bypass') {
      ctx?.report('miss');
      return this.inner.embed(tenant, model, input, dimensions, requestId);
    }
    const keys = input.map((text) => this.cache.key('emb', tenant, model.id, String(dimensions ?? 'full'), sha256Hex(text)));
    const found: (Entry | undefined)[] = ctx?.mode === 'refresh' ? input.map(() => undefined) : (await this.cache.mget(keys)).map(parseEntry);
    const missing = [...new Set(input.filter((_, i) => !found[i]))];
    this.cache.count('embedding', 'hit', input.length - input.filter((_, i) => !found[i]).length);
    this.cache.count('embedding', 'miss', input.filter((_, i) => !found[i]).length);
    if (missing.length > 0) {
      const fresh = await this.inner.embed(tenant, model, missing, dimensions, requestId);
      const byText = new Map<string, Entry>();
      missing.forEach((text, i) => byText.set(text, { b64: fresh.embeddings_b64[i]!, tokens: fresh.input_tokens[i] ?? 0, dims: fresh.dimensions }));
      const store: [string, string][] = [];
      input.forEach((text, i) => {
        if (found[i]) return;
        found[i] = byText.get(text)!;
        store.push([keys[i]!, formatEntry(found[i]!)]);
      });
      await this.cache.mset([...new Map(store)]);
    }
    ctx?.report(missing.length === 0 ? 'hit' : 'miss');
    const entries = found as Entry[];
    const input_tokens = entries.map((e) => e.tokens);
    return {
      model: model.id,
      dimensions: entries[0]?.dims ?? dimensions ?? model.dimensions ?? 0,
      embeddings_b64: entries.map((e) => e.b64),
      input_tokens,
      prompt_tokens: input_tokens.reduce((a, b) => a + b, 0),
    };
  }
}

interface Entry {
  b64: string;
  tokens: number;
  dims: number;
}

function formatEntry(e: Entry): string {
  return `${e.tokens}:${e.dims}:${e.b64}`;
}

function parseEntry(raw: string | null): Entry | undefined {
  if (!raw) return undefined;
  const a = raw.indexOf(':');
  const b = raw.indexOf(':', a + 1);
  if (a < 0 || b < 0) return undefined;
  return { tokens: Number(raw.slice(0, a)), dims: Number(raw.slice(a + 1, b)), b64: raw.slice(b + 1) };
}

/**
 * Whether a chat request always gets the same answer (greedy decoding, or sampling with a fixed
 * seed) that a hit can replay. Requests for logprobs or several choices are not cached: a hit
 * replays the answer as one token event of its whole text, which cannot carry per-token
 * logprobs nor several choices.
 */
export function isDeterministic(p: JobPayload<'chat'>): boolean {
  if (p.logprobs === true || (p.n ?? 1) > 1) return false;
  return p.temperature === 0 || p.seed !== undefined;
}

/** The parameters that decide a deterministic answer, in a fixed order. */
export function chatCacheKeyMaterial(p: JobPayload<'chat'>): string {
  const sampling = p.temperature === 0 ? { temperature: 0 } : { temperature: p.temperature, top_p: p.top_p, top_k: p.top_k, seed: p.seed };
  return JSON.stringify({
    model: p.model,
    messages: p.messages.map((m) => [m.role, m.content]),
    // A raw prompt (legacy completions) skips the chat template: not the same answer as its message.
    ...(p.prompt === undefined ? {} : { prompt: p.prompt }),
    max_tokens: p.max_tokens,
    stop: [...p.stop].sort(),
    repetition_penalty: p.repetition_penalty,
    ...sampling,
  });
}

/** What the chat routes call to run a chat: the chat service, or the cache in front of it; `cache` is the request's policy. */
export interface CacheableChatRunner {
  run(tenant: string, model: ChatModelConfig, payload: JobPayload<'chat'>, opts: ChatRunOptions, cache?: CacheContext): Promise<ChatOutcome>;
}

/** The deterministic-answer cache in front of a chat runner (the OpenAI endpoint, streamed or not). */
export class CachingChatRunner implements CacheableChatRunner {
  constructor(
    private readonly inner: ChatRunner,
    private readonly cache: ResponseCache,
  ) {}

  async run(tenant: string, model: ChatModelConfig, payload: JobPayload<'chat'>, opts: ChatRunOptions, ctx?: CacheContext): Promise<ChatOutcome> {
    if (!this.cache.enabled || !ctx || ctx.mode === 'bypass' || !isDeterministic(payload)) {
      ctx?.report('miss');
      return this.inner.run(tenant, model, payload, opts);
    }
    const key = this.cache.key('chat', tenant, sha256Hex(chatCacheKeyMaterial(payload)));
    if (ctx.mode === 'use') {
      const [raw] = await this.cache.mget([key]);
      if (raw) {
        const { jobId, result } = JSON.parse(raw) as { jobId: string; result: JobResult<'chat'> };
        this.cache.count('chat', 'hit');
        ctx.report('hit');
        opts.onStart?.(jobId, result.model);
        if (result.message.content) opts.onToken?.(result.message.content, 0, {});
        return { status: 'completed', jobId, model: result.model, result };
      }
    }
    this.cache.count('chat', 'miss');
    ctx.report('miss');
    const outcome = await this.inner.run(tenant, model, payload, opts);
    if (outcome.status === 'completed' && outcome.result.finish_reason !== 'cancelled') {
      await this.cache.mset([[key, JSON.stringify({ jobId: outcome.jobId, result: outcome.result })]]);
    }
    return outcome;
  }
}
