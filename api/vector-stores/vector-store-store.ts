import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** OpenAI's `chunking_strategy` as stored on a vector store file (auto is resolved to its sizes). */
export interface StaticChunking {
  type: 'static';
  static: { max_chunk_size_tokens: number; chunk_overlap_tokens: number };
}

export interface VectorStoreRecord {
  id: string;
  tenant: string;
  name: string;
  /** Epoch seconds. */
  created_at: number;
  last_active_at: number;
  metadata: Record<string, string>;
  expires_after: { anchor: 'last_active_at'; days: number } | null;
}

/** A file attached to a vector store: the Files API file and the document it was ingested as. */
export interface VectorStoreFileRecord {
  file_id: string;
  document_id: string;
  filename: string;
  created_at: number;
  attributes: Record<string, string | number | boolean>;
  chunking_strategy: StaticChunking;
  batch_id: string | null;
  /** Cancelled by its batch before its ingestion ended (its document is deleted). */
  cancelled: boolean;
}

export interface FileBatchRecord {
  id: string;
  vector_store_id: string;
  created_at: number;
  file_ids: string[];
  cancelled: boolean;
}

export function newVectorStoreId(): string {
  return `vs_${randomUUID().replace(/-/g, '')}`;
}

export function newFileBatchId(): string {
  return `vsfb_${randomUUID().replace(/-/g, '')}`;
}

/**
 * Vector stores in Redis, under `<prefix>:vs:`. A store is one collection of its tenant, named by the
 * store's id (so /v1/collections/<vs id> sees the same documents); its files map Files API ids to the
 * documents ingested from them, and back (search hits name documents).
 */
/** KEYS[1] = document id → file id, KEYS[2] = file id → file record; ARGV = document ids. Returns their records (false: none). */
const FILES_OF_DOCUMENTS = `
local out = {}
for i, doc in ipairs(ARGV) do
  local file = redis.call('HGET', KEYS[1], doc)
  out[i] = file and redis.call('HGET', KEYS[2], file) or false
end
return out`;

export class VectorStoreStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:vs:${id}`;
  }
  private tenantKey(tenant: string): string {
    return `${this.prefix}:vs:t:${tenant}`;
  }
  private filesKey(id: string): string {
    return `${this.prefix}:vs:${id}:files`;
  }
  private docsKey(id: string): string {
    return `${this.prefix}:vs:${id}:docs`;
  }
  private batchKey(id: string): string {
    return `${this.prefix}:vsfb:${id}`;
  }

  async create(r: VectorStoreRecord): Promise<void> {
    await this.redis.multi().set(this.key(r.id), JSON.stringify(r)).zadd(this.tenantKey(r.tenant), r.created_at, r.id).exec();
  }

  async save(r: VectorStoreRecord): Promise<void> {
    await this.redis.set(this.key(r.id), JSON.stringify(r), 'XX');
  }

  /** The tenant's store, or undefined (another tenant's is reported the same way). */
  async get(tenant: string, id: string): Promise<VectorStoreRecord | undefined> {
    if (!/^vs_[0-9a-f]{32}$/.test(id)) return undefined;
    const raw = await this.redis.get(this.key(id));
    const r = raw ? (JSON.parse(raw) as VectorStoreRecord) : undefined;
    return r && r.tenant === tenant ? r : undefined;
  }

  async ids(tenant: string, order: 'asc' | 'desc'): Promise<string[]> {
    return order === 'desc' ? this.redis.zrevrange(this.tenantKey(tenant), '0', '-1') : this.redis.zrange(this.tenantKey(tenant), '0', '-1');
  }

  async remove(r: VectorStoreRecord): Promise<void> {
    const batches = (await this.files(r.id)).flatMap((f) => (f.batch_id ? [this.batchKey(f.batch_id)] : []));
    await this.redis
      .multi()
      .del(this.key(r.id), this.filesKey(r.id), this.docsKey(r.id), ...new Set(batches))
      .zrem(this.tenantKey(r.tenant), r.id)
      .exec();
  }

  async putFile(vsId: string, f: VectorStoreFileRecord): Promise<void> {
    await this.redis.multi().hset(this.filesKey(vsId), f.file_id, JSON.stringify(f)).hset(this.docsKey(vsId), f.document_id, f.file_id).exec();
  }

  async file(vsId: string, fileId: string): Promise<VectorStoreFileRecord | undefined> {
    const raw = await this.redis.hget(this.filesKey(vsId), fileId);
    return raw ? (JSON.parse(raw) as VectorStoreFileRecord) : undefined;
  }

  /** Every file of the store, oldest first. */
  async files(vsId: string): Promise<VectorStoreFileRecord[]> {
    const all = Object.values(await this.redis.hgetall(this.filesKey(vsId))).map((v) => JSON.parse(v) as VectorStoreFileRecord);
    return all.sort((a, b) => a.created_at - b.created_at || a.file_id.localeCompare(b.file_id));
  }

  async removeFile(vsId: string, f: VectorStoreFileRecord): Promise<void> {
    await this.redis.multi().hdel(this.filesKey(vsId), f.file_id).hdel(this.docsKey(vsId), f.document_id).exec();
  }

  async fileCount(vsId: string): Promise<number> {
    return this.redis.hlen(this.filesKey(vsId));
  }

  /**
   * The files that documents (search hits) were ingested from, by document id, in one round trip:
   * only the hits' files are read, however many files the store holds. Documents without a file of
   * the store are left out.
   */
  async filesOfDocuments(vsId: string, documentIds: string[]): Promise<Map<string, VectorStoreFileRecord>> {
    if (documentIds.length === 0) return new Map();
    const raw = (await this.redis.eval(FILES_OF_DOCUMENTS, 2, this.docsKey(vsId), this.filesKey(vsId), ...documentIds)) as (string | null)[];
    return new Map(documentIds.flatMap((d, i) => (raw[i] ? [[d, JSON.parse(raw[i]!) as VectorStoreFileRecord] as const] : [])));
  }

  async putBatch(b: FileBatchRecord): Promise<void> {
    await this.redis.set(this.batchKey(b.id), JSON.stringify(b));
  }

  async batch(vsId: string, id: string): Promise<FileBatchRecord | undefined> {
    if (!/^vsfb_[0-9a-f]{32}$/.test(id)) return undefined;
    const raw = await this.redis.get(this.batchKey(id));
    const b = raw ? (JSON.parse(raw) as FileBatchRecord) : undefined;
    return b && b.vector_store_id === vsId ? b : undefined;
  }
}
