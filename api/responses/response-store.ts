import type { Redis } from 'ioredis';
import { isRedisConnectionError } from '../../shared/redis/redis-errors.js';
import { errors } from '../../shared/errors/app-error.js';
import type { ConversationItem, ResponseFileSearch, ResponseObject } from '../../shared/responses/responses-events.js';

/** A stored response: the object clients read, and what it was generated from. */
export interface StoredResponse {
  response: ResponseObject;
  /** Everything the model saw besides `instructions`: the previous responses' items, then this request's input. */
  input_items: ConversationItem[];
  /** The id of the response's assistant message, already used by its stream events. */
  message_id: string;
  /** The `file_search` tool's run, before the job: its output item, and the files the answer's [n] markers cite. */
  file_search?: ResponseFileSearch;
  /** The chat job behind it (the last one, when a model's fallback answered). */
  job_id?: string;
}

// Only the first caller that ends a response stores its end (and, for background responses, tells
// webhooks): a GET reconciling with the job and the API following the job may both try.
const SETTLE = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local status = cjson.decode(raw).response.status
if status == 'completed' or status == 'incomplete' or status == 'failed' or status == 'cancelled' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return 1`;

/**
 * Responses stored per tenant in Redis (`store`, the default), for GET, input_items and
 * `previous_response_id`, for RESPONSES_RETENTION_SECONDS. The tenant is part of the key, so
 * another tenant's response is exactly a missing one.
 */
export class ResponseStore {
  constructor(private readonly deps: { redis: Redis; prefix: string; retentionSeconds: number }) {}

  async save(tenant: string, record: StoredResponse): Promise<void> {
    await this.redisAware(this.deps.redis.set(this.key(tenant, record.response.id), JSON.stringify(record), 'EX', this.deps.retentionSeconds));
  }

  async get(tenant: string, id: string): Promise<StoredResponse | undefined> {
    const raw = await this.redisAware(this.deps.redis.get(this.key(tenant, id)));
    return raw ? (JSON.parse(raw) as StoredResponse) : undefined;
  }

  /** Stores the response's end, unless it has already ended or was deleted. True when this call ended it. */
  async settle(tenant: string, record: StoredResponse): Promise<boolean> {
    return (await this.redisAware(this.deps.redis.eval(SETTLE, 1, this.key(tenant, record.response.id), JSON.stringify(record)))) === 1;
  }

  async delete(tenant: string, id: string): Promise<boolean> {
    return (await this.redisAware(this.deps.redis.del(this.key(tenant, id)))) === 1;
  }

  private key(tenant: string, id: string): string {
    return `${this.deps.prefix}:responses:${tenant}:${id}`;
  }

  /** Redis being down is the service being unavailable (503), as for jobs. */
  private async redisAware<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw isRedisConnectionError(err) ? errors.redisUnavailable('response store') : err;
    }
  }
}
