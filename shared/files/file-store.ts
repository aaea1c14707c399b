import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BlobStore } from '../storage/blob-store.js';

/** OpenAI's file purposes that this service accepts on upload; `batch_output` files are made by batches. */
export const UPLOAD_PURPOSES = ['batch', 'assistants', 'user_data'] as const;
export const FILE_PURPOSES = [...UPLOAD_PURPOSES, 'batch_output'] as const;
export type FilePurpose = (typeof FILE_PURPOSES)[number];

/** A file's bytes, in the blob store under `files/<id>/`. */
export const FILE_CONTENT = 'content';

export interface FileRecord {
  id: string;
  tenant: string;
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  /** Epoch seconds. */
  created_at: number;
  expires_at: number | null;
  /** JSONL files (purpose batch): lines, for batch validation to report against. */
  lines: number | null;
}

/** OpenAI's file object. */
export interface FileView {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  /** Absent when the file does not expire (OpenAI's schema has no null here). */
  expires_at?: number;
  filename: string;
  purpose: FilePurpose;
  status: 'processed';
}

export function newFileId(): string {
  return `file-${randomUUID().replace(/-/g, '')}`;
}

export function fileView(r: FileRecord): FileView {
  return {
    id: r.id,
    object: 'file',
    bytes: r.bytes,
    created_at: r.created_at,
    ...(r.expires_at === null ? {} : { expires_at: r.expires_at }),
    filename: r.filename,
    purpose: r.purpose,
    status: 'processed',
  };
}

/**
 * Files' records in Redis (their bytes are in the blob store): a hash per file and, per tenant, a
 * sorted set by creation time for listing. The API and the workers (batch input and output files)
 * share it. A record is written after its blob and removed before it (the blob store's rule).
 */
export class FileStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly blobs: BlobStore,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:file:${id}`;
  }

  private tenantKey(tenant: string): string {
    return `${this.prefix}:files:${tenant}`;
  }

  /** Files that expire, by expiry time (epoch seconds), as `<tenant>/<id>`: what the sweep reads. */
  private expiryKey(): string {
    return `${this.prefix}:files:expiring`;
  }

  async create(r: FileRecord): Promise<void> {
    const tx = this.redis
      .multi()
      .hset(this.key(r.id), { ...r, expires_at: r.expires_at ?? '', lines: r.lines ?? '' })
      // Ordered by the time of creation in ms: created_at has whole seconds, and files of one second
      // would otherwise list in the order of their random ids.
      .zadd(this.tenantKey(r.tenant), Date.now(), r.id);
    if (r.expires_at !== null) tx.zadd(this.expiryKey(), r.expires_at, `${r.tenant}/${r.id}`);
    await tx.exec();
  }

  /** The tenant's file, or undefined when it does not exist, is another tenant's, or has expired (then it is removed). */
  async get(tenant: string, id: string): Promise<FileRecord | undefined> {
    if (!/^file-[0-9a-z]{1,64}$/.test(id)) return undefined;
    const r = parseFileRecord(await this.redis.hgetall(this.key(id)));
    if (!r || r.tenant !== tenant) return undefined;
    if (isExpired(r)) {
      await this.remove(r);
      return undefined;
    }
    return r;
  }

  /**
   * A page of the tenant's files, newest first (or oldest with order 'asc'), after the file `after`;
   * expired files are skipped (and removed).
   */
  async list(tenant: string, opts: { purpose?: string; limit: number; after?: string; order: 'asc' | 'desc' }): Promise<{ data: FileRecord[]; hasMore: boolean }> {
    const key = this.tenantKey(tenant);
    const ids = opts.order === 'desc' ? await this.redis.zrevrange(key, '0', '-1') : await this.redis.zrange(key, '0', '-1');
    const start = opts.after ? ids.indexOf(opts.after) + 1 : 0;
    const data: FileRecord[] = [];
    let i = start;
    for (; i < ids.length && data.length < opts.limit; i++) {
      const r = await this.get(tenant, ids[i]!);
      if (r && (!opts.purpose || r.purpose === opts.purpose)) data.push(r);
    }
    return { data, hasMore: i < ids.length };
  }

  /** Removes the record (first) and the bytes. */
  async remove(r: Pick<FileRecord, 'id' | 'tenant'>): Promise<void> {
    await this.redis.multi().del(this.key(r.id)).zrem(this.tenantKey(r.tenant), r.id).zrem(this.expiryKey(), `${r.tenant}/${r.id}`).exec();
    await this.blobs.remove('files', r.id);
  }

  /**
   * Removes up to `limit` files whose expiry has passed, record and bytes, and answers how many:
   * expired files nobody reads again must not keep their disk. Reads already hide them (get, list);
   * this frees what they held. Safe to run from several processes at once (removal is idempotent).
   */
  async sweepExpired(limit = 100, nowSeconds = Math.floor(Date.now() / 1000)): Promise<number> {
    const due = await this.redis.zrangebyscore(this.expiryKey(), '-inf', nowSeconds, 'LIMIT', 0, limit);
    for (const member of due) {
      const slash = member.indexOf('/');
      await this.remove({ tenant: member.slice(0, slash), id: member.slice(slash + 1) });
    }
    return due.length;
  }
}

function isExpired(r: FileRecord): boolean {
  return r.expires_at !== null && r.expires_at * 1000 <= Date.now();
}

function parseFileRecord(h: Record<string, string>): FileRecord | undefined {
  if (!h.id || !h.tenant) return undefined;
  return {
    id: h.id,
    tenant: h.tenant,
    filename: h.filename ?? '',
    purpose: h.purpose as FilePurpose,
    bytes: Number(h.bytes ?? 0),
    created_at: Number(h.created_at ?? 0),
    expires_at: h.expires_at ? Number(h.expires_at) : null,
    lines: h.lines ? Number(h.lines) : null,
  };
}
