import type { Redis } from 'ioredis';
import { scanKeys } from '../redis/redis-connections.js';
import { JobError, TransientJobError } from '../jobs/job.error.js';
import {
  documentKeys,
  parseDocumentRecord,
  type DocumentKeys,
  type DocumentRecord,
} from './documents.js';

/** A chunk as committed to a collection: where it came from, its text and its vector. */
export interface ChunkToCommit {
  index: number;
  page: number;
  start: number;
  end: number;
  text: string;
  vector: Float32Array;
}

export type LogEntry =
  | { id: string; op: 'add'; doc: string; from: number; to: number }
  | { id: string; op: 'del'; doc: string; ranges: [number, number][] }
  /** The document's metadata changed: replicas reload it for their attribute filters. */
  | { id: string; op: 'meta'; doc: string };

export interface CollectionInfo {
  tenant: string;
  name: string;
  model: string;
  created_at: number;
}

/** The fields of an indexed chunk that a search hit reports. */
export interface ChunkFields {
  doc: string;
  idx: number;
  page: number;
  start: number;
  end: number;
  text: string;
}

/**
 * KEYS = chunk hashes of the hits; ARGV[1] = the document key prefix. Returns each chunk's fields
 * (HMGET order of parseChunkFields) and, flattened, (document id, metadata JSON) of their documents.
 */
const SEARCH_HITS = `
local rows, seen, meta = {}, {}, {}
for i, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'doc', 'idx', 'page', 'start', 'end', 'text')
  rows[i] = f
  local doc = f[1]
  if doc and not seen[doc] then
    seen[doc] = true
    meta[#meta + 1] = doc
    meta[#meta + 1] = redis.call('HGET', ARGV[1] .. doc, 'metadata') or ''
  end
end
return {rows, meta}`;

function parseCollectionInfo(h: Record<string, string>): CollectionInfo | undefined {
  if (!h.tenant) return undefined;
  return { tenant: h.tenant, name: h.name ?? '', model: h.model ?? '', created_at: Number(h.created_at ?? 0) };
}

function parseChunkFields(v: (string | null)[]): ChunkFields | null {
  const [doc, idx, page, start, end, text] = v;
  if (!doc) return null;
  return { doc, idx: Number(idx), page: Number(page), start: Number(start), end: Number(end), text: text ?? '' };
}

/** XRANGE start after a log id ('0-0': from the beginning). */
function logStart(after: string): string {
  return after === '0-0' ? '-' : `(${after}`;
}

function parseLogEntry([id, fields]: [string, string[]]): LogEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  if (f.op === 'del') return { id, op: 'del', doc: f.doc!, ranges: JSON.parse(f.ranges ?? '[]') as [number, number][] };
  if (f.op === 'meta') return { id, op: 'meta', doc: f.doc! };
  return { id, op: 'add', doc: f.doc!, from: Number(f.from), to: Number(f.to) };
}

/** A commit refused because the document or its collection was deleted meanwhile: the ingestion cannot go on. */
export class DocumentStoreError extends JobError {
  constructor(
    readonly code: 'document_deleted' | 'collection_deleted',
    message: string,
  ) {
    super(message);
  }
}

/** A commit refused because another attempt of the stage committed first: a retry starts from what is there. */
export class StaleCommitError extends TransientJobError {
  readonly code = 'stale_commit';
}

/**
 * Commits a batch of a document's chunks atomically: labels, chunk hashes, the log entry every
 * replica replays, and the document's progress appear together or not at all. It refuses when the
 * document or its collection was deleted meanwhile, and when `expected` is not the number of chunks
 * already committed (a stale attempt), so a retried index stage never commits a chunk twice.
 */
const COMMIT_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or state == 'deleted' then return {-1, 'document_deleted'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 'collection_deleted'} end
local indexed = tonumber(redis.call('HGET', KEYS[1], 'indexed') or '0')
if indexed ~= tonumber(ARGV[2]) then return {-2, tostring(indexed)} end
local n = tonumber(ARGV[4])
local to = redis.call('INCRBY', KEYS[3], n)
local from = to - n
for i = 0, n - 1 do
  local b = 6 + i * 6
  redis.call('HSET', ARGV[3] .. (from + i), 'doc', ARGV[1], 'idx', ARGV[b], 'page', ARGV[b + 1], 'start', ARGV[b + 2], 'end', ARGV[b + 3], 'text', ARGV[b + 4], 'vec', ARGV[b + 5])
end
local id = redis.call('XADD', KEYS[4], '*', 'op', 'add', 'doc', ARGV[1], 'from', from, 'to', to)
local ranges = cjson.decode(redis.call('HGET', KEYS[1], 'ranges') or '[]')
local last = ranges[#ranges]
if last and last[2] == from then last[2] = to else ranges[#ranges + 1] = {from, to} end
redis.call('HSET', KEYS[1], 'indexed', indexed + n, 'ranges', cjson.encode(ranges), 'updated_at', ARGV[5])
return {from, id}
`;

/** Deletes a document's chunks and logs it, so every replica stops returning them at its next search. */
const DELETE_DOCUMENT_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or state == 'deleted' then return 0 end
local ranges = cjson.decode(redis.call('HGET', KEYS[1], 'ranges') or '[]')
for _, r in ipairs(ranges) do
  for l = r[1], r[2] - 1 do redis.call('UNLINK', ARGV[1] .. l) end
end
if #ranges > 0 then redis.call('XADD', KEYS[2], '*', 'op', 'del', 'doc', ARGV[2], 'ranges', cjson.encode(ranges)) end
redis.call('HSET', KEYS[1], 'state', 'deleted', 'updated_at', ARGV[3], 'indexed', 0, 'ranges', '[]')
redis.call('ZREM', KEYS[3], ARGV[2])
local sha = redis.call('HGET', KEYS[1], 'sha256')
if sha and redis.call('HGET', KEYS[4], sha) == ARGV[2] then redis.call('HDEL', KEYS[4], sha) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`;

/** Drops a collection's name and record in one step; its other keys are cleaned up afterwards. */
const DROP_COLLECTION_SCRIPT = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
`;

const RENEW_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** How long a deleted document's record stays, so stages still running learn it was deleted. */
const TOMBSTONE_SECONDS = 86_400;

/**
 * Documents and collections in Redis, for the API and the workers alike. Redis (append-only in
 * production) is the durable store: chunk text, vectors and the per-collection log live here, and
 * every HNSW index on a worker is a replica rebuilt from a snapshot plus this log.
 */
export class DocumentStore {
  readonly keys: DocumentKeys;

  constructor(
    readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = documentKeys(prefix);
  }

  async findCollection(tenant: string, name: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.tenantCollections(tenant), name)) ?? undefined;
  }

  /** The collection's id, creating the collection on first use. */
  async ensureCollection(tenant: string, name: string, newCid: string, model: string): Promise<string> {
    const key = this.keys.tenantCollections(tenant);
    if (await this.redis.hsetnx(key, name, newCid)) {
      await this.redis.hset(this.keys.collection(newCid), { tenant, name, model, created_at: String(Date.now()) });
      return newCid;
    }
    const cid = await this.redis.hget(key, name);
    if (!cid) return this.ensureCollection(tenant, name, newCid, model);
    return cid;
  }

  async collectionInfo(cid: string): Promise<CollectionInfo | undefined> {
    return parseCollectionInfo(await this.redis.hgetall(this.keys.collection(cid)));
  }

  /**
   * The collection's record and the log entries after `after`, read in one round trip: what a
   * replica reads before every search (is the collection still there, and what changed since).
   */
  async collectionAndLog(cid: string, after: string, count = 200): Promise<{ info: CollectionInfo | undefined; entries: LogEntry[] }> {
    const res = await this.redis
      .multi()
      .hgetall(this.keys.collection(cid))
      .xrange(this.keys.log(cid), logStart(after), '+', 'COUNT', count)
      .exec();
    if (!res) throw new Error('collection read was aborted');
    const [[infoErr, h], [logErr, raw]] = res as [[Error | null, Record<string, string>], [Error | null, [string, string[]][]]];
    if (infoErr) throw infoErr;
    if (logErr) throw logErr;
    return { info: parseCollectionInfo(h), entries: raw.map(parseLogEntry) };
  }

  async listCollections(tenant: string): Promise<{ name: string; cid: string; documents: number; chunks: number; created_at: number }[]> {
    const all = await this.redis.hgetall(this.keys.tenantCollections(tenant));
    const entries = Object.entries(all).sort(([a], [b]) => a.localeCompare(b));
    const pipe = this.redis.pipeline();
    for (const [, cid] of entries) {
      pipe.zcard(this.keys.collectionDocs(cid));
      pipe.hget(this.keys.collection(cid), 'created_at');
      pipe.get(this.keys.nextLabel(cid));
    }
    const res = (await pipe.exec()) ?? [];
    return entries.map(([name, cid], i) => ({
      name,
      cid,
      documents: Number(res[i * 3]?.[1] ?? 0),
      created_at: Number(res[i * 3 + 1]?.[1] ?? 0),
      chunks: Number(res[i * 3 + 2]?.[1] ?? 0),
    }));
  }

  /** Claims a content hash for a new document; answers the document that already has it, if any. */
  async claimHash(cid: string, sha256: string, docId: string): Promise<string | undefined> {
    const key = this.keys.collectionHashes(cid);
    if (await this.redis.hsetnx(key, sha256, docId)) return undefined;
    return (await this.redis.hget(key, sha256)) ?? undefined;
  }

  async replaceHash(cid: string, sha256: string, docId: string): Promise<void> {
    await this.redis.hset(this.keys.collectionHashes(cid), sha256, docId);
  }

  async releaseHash(cid: string, sha256: string, docId: string): Promise<void> {
    const key = this.keys.collectionHashes(cid);
    if ((await this.redis.hget(key, sha256)) === docId) await this.redis.hdel(key, sha256);
  }

  async createDocument(doc: DocumentRecord): Promise<void> {
    const fields: Record<string, string> = {};
    for (const [k, v] of Object.entries(doc)) {
      if (v === null || v === undefined) continue;
      fields[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
    }
    await this.redis.multi().hset(this.keys.document(doc.id), fields).zadd(this.keys.collectionDocs(doc.cid), doc.created_at, doc.id).exec();
  }

  async getDocument(id: string): Promise<DocumentRecord | undefined> {
    return parseDocumentRecord(await this.redis.hgetall(this.keys.document(id)));
  }

  async listDocuments(cid: string, limit = 1000): Promise<DocumentRecord[]> {
    const ids = await this.redis.zrange(this.keys.collectionDocs(cid), '0', String(limit - 1));
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.document(id));
    const res = (await pipe.exec()) ?? [];
    return res.map(([, h]) => parseDocumentRecord(h as Record<string, string>)).filter((d): d is DocumentRecord => d !== undefined);
  }

  /** Updates progress fields of a live document (never resurrects a deleted one). */
  async updateDocument(id: string, fields: Partial<Record<keyof DocumentRecord, string | number | null>>): Promise<void> {
    const flat: Record<string, string> = { updated_at: String(Date.now()) };
    for (const [k, v] of Object.entries(fields)) flat[k] = v === null ? '' : String(v);
    const key = this.keys.document(id);
    await this.redis.eval(
      `local s = redis.call('HGET', KEYS[1], 'state') if (not s) or s == 'deleted' then return 0 end redis.call('HSET', KEYS[1], unpack(ARGV)) return 1`,
      1,
      key,
      ...Object.entries(flat).flat(),
    );
  }

  /**
   * Replaces a live document's metadata and logs it, so every index replica's attribute filter
   * sees the new values (they keep each document's metadata beside its chunks). False: no live document.
   */
  async setMetadata(doc: Pick<DocumentRecord, 'id' | 'cid'>, metadata: DocumentRecord['metadata']): Promise<boolean> {
    const r = await this.redis.eval(
      `local s = redis.call('HGET', KEYS[1], 'state') if (not s) or s == 'deleted' then return 0 end
       redis.call('HSET', KEYS[1], 'metadata', ARGV[1], 'updated_at', ARGV[2])
       redis.call('XADD', KEYS[2], '*', 'op', 'meta', 'doc', ARGV[3]) return 1`,
      2,
      this.keys.document(doc.id),
      this.keys.log(doc.cid),
      JSON.stringify(metadata),
      String(Date.now()),
      doc.id,
    );
    return r === 1;
  }

  async markFailed(id: string, error: { message: string; code: string }): Promise<void> {
    await this.updateDocument(id, { state: 'failed', error: JSON.stringify(error) });
  }

  async commitChunks(doc: DocumentRecord, expected: number, chunks: readonly ChunkToCommit[]): Promise<{ from: number; logId: string }> {
    const k = this.keys;
    const args: (string | Buffer)[] = [doc.id, String(expected), k.chunkPrefix(doc.cid), String(chunks.length), String(Date.now())];
    for (const c of chunks) {
      args.push(String(c.index), String(c.page), String(c.start), String(c.end), c.text, Buffer.from(c.vector.buffer, c.vector.byteOffset, c.vector.byteLength));
    }
    const [a, b] = (await this.redis.eval(COMMIT_SCRIPT, 4, k.document(doc.id), k.collection(doc.cid), k.nextLabel(doc.cid), k.log(doc.cid), ...args)) as [
      number,
      string,
    ];
    if (a === -1) {
      if (b === 'collection_deleted') throw new DocumentStoreError(b, 'The collection was deleted during ingestion.');
      throw new DocumentStoreError('document_deleted', 'The document was deleted during ingestion.');
    }
    if (a === -2) throw new StaleCommitError(`expected ${expected} committed chunks, found ${b}`);
    return { from: a, logId: b };
  }

  async deleteDocument(doc: DocumentRecord): Promise<boolean> {
    const k = this.keys;
    const r = await this.redis.eval(
      DELETE_DOCUMENT_SCRIPT,
      4,
      k.document(doc.id),
      k.log(doc.cid),
      k.collectionDocs(doc.cid),
      k.collectionHashes(doc.cid),
      k.chunkPrefix(doc.cid),
      doc.id,
      Date.now(),
      TOMBSTONE_SECONDS,
    );
    return r === 1;
  }

  /** Drops the collection, marks its documents deleted and removes its keys. */
  async deleteCollection(tenant: string, name: string, cid: string): Promise<boolean> {
    const k = this.keys;
    const dropped = await this.redis.eval(DROP_COLLECTION_SCRIPT, 2, k.tenantCollections(tenant), k.collection(cid), name, cid);
    if (dropped !== 1) return false;
    const ids = await this.redis.zrange(k.collectionDocs(cid), '0', '-1');
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hset(k.document(id), 'state', 'deleted', 'updated_at', String(Date.now())).expire(k.document(id), TOMBSTONE_SECONDS);
    await pipe.exec();
    // Every node's keys (a cluster's SCAN would see one node only); found keys share the prefix's slot.
    for await (const found of scanKeys(this.redis, k.collectionPattern(cid))) await this.redis.unlink(...found);
    return true;
  }

  async readLog(cid: string, after: string, count = 200): Promise<LogEntry[]> {
    const raw = (await this.redis.xrange(this.keys.log(cid), logStart(after), '+', 'COUNT', count)) as [string, string[]][];
    return raw.map(parseLogEntry);
  }

  /** The id of the log's last entry ('0-0' when empty). */
  async logHead(cid: string): Promise<string> {
    const last = (await this.redis.xrevrange(this.keys.log(cid), '+', '-', 'COUNT', 1)) as [string, string[]][];
    return last[0]?.[0] ?? '0-0';
  }

  /** What a replica needs of each label: its document, vector and text (null where the chunk was deleted since). */
  async chunkEntries(cid: string, labels: readonly number[]): Promise<({ doc: string; vector: Float32Array; text: string } | null)[]> {
    const pipe = this.redis.pipeline();
    for (const l of labels) pipe.hmgetBuffer(this.keys.chunk(cid, l), 'doc', 'vec', 'text');
    const res = (await pipe.exec()) ?? [];
    return res.map(([err, v]) => {
      const [doc, vec, text] = (v ?? []) as (Buffer | null)[];
      if (err || !doc || !vec) return null;
      const out = new Float32Array(vec.byteLength / 4);
      new Uint8Array(out.buffer).set(vec);
      return { doc: doc.toString(), vector: out, text: text?.toString('utf8') ?? '' };
    });
  }

  /**
   * What a search answers with, in one round trip: each hit's chunk fields (null where the chunk
   * was deleted since) and the metadata of their documents. A script, since the documents to read
   * are only known from the chunks.
   */
  async searchHits(cid: string, labels: readonly number[]): Promise<{ chunks: (ChunkFields | null)[]; metadata: Map<string, Record<string, unknown>> }> {
    if (labels.length === 0) return { chunks: [], metadata: new Map() };
    const [rows, pairs] = (await this.redis.eval(SEARCH_HITS, labels.length, ...labels.map((l) => this.keys.chunk(cid, l)), this.keys.document(''))) as [
      (string | null)[][],
      string[],
    ];
    const metadata = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < pairs.length; i += 2) metadata.set(pairs[i]!, JSON.parse(pairs[i + 1] || '{}') as Record<string, unknown>);
    return { chunks: rows.map(parseChunkFields), metadata };
  }

  async chunkFields(cid: string, labels: readonly number[]): Promise<(ChunkFields | null)[]> {
    const pipe = this.redis.pipeline();
    for (const l of labels) pipe.hmget(this.keys.chunk(cid, l), 'doc', 'idx', 'page', 'start', 'end', 'text');
    const res = (await pipe.exec()) ?? [];
    return res.map(([err, v]) => (err ? null : parseChunkFields((v ?? []) as (string | null)[])));
  }

  async acquireLease(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async renewLease(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(RENEW_SCRIPT, 1, key, token, ttlMs)) === 1;
  }

  async releaseLease(key: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, key, token);
  }
}
