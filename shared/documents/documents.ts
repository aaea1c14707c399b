import { createHash } from 'node:crypto';
import { z } from 'zod';
import { idSchema, metadataRecord } from '../api/ids.js';
import { documentJobCatalog } from './document-jobs.js';

/**
 * Names, shapes and Redis keys of documents and collections, shared by the API (uploads, reads,
 * deletes) and the workers (ingestion stages, index replicas). Everything lives under
 * `<QUEUE_PREFIX>:docs:` so a test prefix isolates it like the queues.
 *
 * A collection is addressed by its tenant and name, but stored under an id (`cid`) made when it is
 * first used: deleting a collection drops the name, so a new collection of the same name never sees
 * the old one's chunks, labels or snapshots. Collection names follow the id rule of shared/api/ids.ts.
 */
export const collectionNameSchema = idSchema('collection names');

/** The kinds of document the pipeline understands, decided from the bytes, never from the name. */
export const DOCUMENT_KINDS = ['pdf', 'text', 'markdown', 'html', 'png', 'jpeg'] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];

export const DOCUMENT_STATES = ['queued', 'processing', 'ready', 'failed', 'deleted'] as const;
export type DocumentState = (typeof DOCUMENT_STATES)[number];
export const STAGES = ['parse', 'chunk', 'embed', 'index'] as const;
export type Stage = (typeof STAGES)[number];

/** Metadata given at upload: a flat JSON object of scalars, so search filters can compare by equality. */
export const documentMetadataSchema = metadataRecord(z.union([z.string().max(1024), z.number(), z.boolean(), z.null()]))
  .refine((m) => Object.keys(m).length <= 32, 'at most 32 metadata keys');
export type DocumentMetadata = z.infer<typeof documentMetadataSchema>;

/** The document record (a Redis hash): the source of truth for GET /v1/documents/:id and for stage hand-offs. */
export interface DocumentRecord {
  id: string;
  tenant: string;
  collection: string;
  cid: string;
  filename: string;
  kind: DocumentKind;
  mime: string;
  bytes: number;
  sha256: string;
  metadata: DocumentMetadata;
  /** Its own chunk size and overlap in tokens (a vector store file's static chunking); null: the defaults. */
  chunking: { max_tokens: number; overlap: number } | null;
  state: DocumentState;
  stage: Stage | 'done' | null;
  /** The last stage that finished (a retried or resumed flow skips it and everything before). */
  stage_done: Stage | null;
  job_id: string;
  pages_total: number | null;
  pages_done: number;
  chunks_total: number | null;
  chunks_done: number;
  /** Chunks committed to the collection (acknowledged: durable in Redis, visible to every search). */
  indexed: number;
  /** Label ranges [from, to) of its chunks in the collection's index. */
  ranges: [number, number][];
  error: { message: string; code: string } | null;
  created_at: number;
  updated_at: number;
}

export function parseDocumentRecord(h: Record<string, string>): DocumentRecord | undefined {
  if (!h.id) return undefined;
  const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
  return {
    id: h.id,
    tenant: h.tenant ?? '',
    collection: h.collection ?? '',
    cid: h.cid ?? '',
    filename: h.filename ?? '',
    kind: h.kind as DocumentKind,
    mime: h.mime ?? '',
    bytes: Number(h.bytes ?? 0),
    sha256: h.sha256 ?? '',
    metadata: h.metadata ? (JSON.parse(h.metadata) as DocumentMetadata) : {},
    chunking: h.chunking ? (JSON.parse(h.chunking) as DocumentRecord['chunking']) : null,
    state: (h.state ?? 'queued') as DocumentState,
    stage: (h.stage || null) as DocumentRecord['stage'],
    stage_done: (h.stage_done || null) as Stage | null,
    job_id: h.job_id ?? '',
    pages_total: num(h.pages_total),
    pages_done: Number(h.pages_done ?? 0),
    chunks_total: num(h.chunks_total),
    chunks_done: Number(h.chunks_done ?? 0),
    indexed: Number(h.indexed ?? 0),
    ranges: h.ranges ? (JSON.parse(h.ranges) as [number, number][]) : [],
    error: h.error ? (JSON.parse(h.error) as { message: string; code: string }) : null,
    created_at: Number(h.created_at ?? 0),
    updated_at: Number(h.updated_at ?? 0),
  };
}

/** Redis keys. `cid` and document ids are server-made uuids, so no user input ever shapes a key but the tenant's collection names (hashed). */
export function documentKeys(prefix: string) {
  const p = `${prefix}:docs`;
  return {
    /** HASH collection name -> cid, per tenant. */
    tenantCollections: (tenant: string) => `${p}:t:${sha1(tenant)}:cols`,
    /** HASH {tenant, name, created_at, model}: exists while the collection does. */
    collection: (cid: string) => `${p}:c:${cid}`,
    /** ZSET document id by creation time. */
    collectionDocs: (cid: string) => `${p}:c:${cid}:docs`,
    /** HASH content sha256 -> document id: uploads are idempotent per collection. */
    collectionHashes: (cid: string) => `${p}:c:${cid}:hash`,
    /** Next free label of the collection's index (INCRBY). */
    nextLabel: (cid: string) => `${p}:c:${cid}:next`,
    /** STREAM of index operations (add/del/drop): the write-ahead log every replica replays. */
    log: (cid: string) => `${p}:c:${cid}:log`,
    /** Prefix of chunk hashes `<prefix><label>` {doc, page, start, end, text, vec}. */
    chunkPrefix: (cid: string) => `${p}:c:${cid}:ch:`,
    chunk: (cid: string, label: number) => `${p}:c:${cid}:ch:${label}`,
    /** The collection's writer lease (one index writer at a time, across worker processes). */
    writer: (cid: string) => `${p}:c:${cid}:writer`,
    document: (id: string) => `${p}:d:${id}`,
    /**
     * HASH stage -> parse steps begun and not ended: raised before each risky step and lowered after
     * it, so a step whose process died leaves a mark that the next attempt, on any worker, reads.
     */
    crashMarks: (id: string) => `${p}:d:${id}:crashes`,
    /** Pattern of every key of a collection (for cleanup after a delete). */
    collectionPattern: (cid: string) => `${p}:c:${cid}:*`,
  };
}
export type DocumentKeys = ReturnType<typeof documentKeys>;

function sha1(s: string): string {
  return createHash('sha1').update(s).digest('hex');
}

/** Queues of the document pipeline, by stage, as the job catalog names them (shared/documents/document-jobs.ts). */
export const DOCUMENT_QUEUES = {
  ingest: documentJobCatalog['document.ingest'].queue.name,
  parse: documentJobCatalog['document.parse'].queue.name,
  chunk: documentJobCatalog['document.chunk'].queue.name,
  embed: documentJobCatalog['document.embed'].queue.name,
  index: documentJobCatalog['document.index'].queue.name,
  search: documentJobCatalog['document.search'].queue.name,
} as const;
