import { rewriteQuery } from '../../shared/documents/query-rewrite.js';
import { z } from 'zod';
import { metadataRecord } from '../../shared/api/ids.js';
import { attributeFilterSchema, rankingOptionsSchema } from '../../shared/documents/search-ranking.js';
import type { DocumentRecord } from '../../shared/documents/documents.js';
import { errors } from '../../shared/errors/app-error.js';
import { FILE_CONTENT } from '../../shared/files/file-store.js';
import type { DocumentService } from '../documents/document-service.js';
import type { FileService } from '../files/file-service.js';
import {
  newFileBatchId,
  newVectorStoreId,
  type FileBatchRecord,
  type StaticChunking,
  type VectorStoreFileRecord,
  type VectorStoreRecord,
  type VectorStoreStore,
} from './vector-store-store.js';

/** OpenAI's resolution of `chunking_strategy: auto`. Chunks never exceed the embedding model's window, which is smaller. */
const AUTO_CHUNKING: StaticChunking = { type: 'static', static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 400 } };

const chunkingStrategySchema = z.union([
  z.object({ type: z.literal('auto') }).strict(),
  z
    .object({
      type: z.literal('static'),
      static: z.object({ max_chunk_size_tokens: z.number().int().min(100).max(4096), chunk_overlap_tokens: z.number().int().min(0) }).strict(),
    })
    .strict()
    .refine((s) => s.static.chunk_overlap_tokens <= s.static.max_chunk_size_tokens / 2, "'chunk_overlap_tokens' must not exceed half of 'max_chunk_size_tokens'"),
]);
/** Vector store metadata: OpenAI's 16 string pairs. */
const metadataSchema = metadataRecord(z.string().max(512)).refine((m) => Object.keys(m).length <= 16, 'at most 16 keys');
/** File attributes: OpenAI's 16 scalar pairs; they are the document's metadata, which search filters read. */
const attributesSchema = metadataRecord(z.union([z.string().max(512), z.number(), z.boolean()])).refine((m) => Object.keys(m).length <= 16, 'at most 16 keys');
const expiresAfterSchema = z.object({ anchor: z.literal('last_active_at'), days: z.number().int().min(1).max(365) }).strict();
const fileIdSchema = z.string().min(1).max(128);

export const createVectorStoreSchema = z
  .object({
    name: z.string().max(256).optional(),
    file_ids: z.array(fileIdSchema).max(500).optional(),
    metadata: metadataSchema.nullish(),
    expires_after: expiresAfterSchema.nullish(),
    chunking_strategy: chunkingStrategySchema.optional(),
    description: z.string().max(512).optional(),
  })
  .strict();
export const updateVectorStoreSchema = z
  .object({ name: z.string().max(256).nullish(), metadata: metadataSchema.nullish(), expires_after: expiresAfterSchema.nullish() })
  .strict();
export const createVectorStoreFileSchema = z
  .object({ file_id: fileIdSchema, attributes: attributesSchema.nullish(), chunking_strategy: chunkingStrategySchema.optional() })
  .strict();
export const updateVectorStoreFileSchema = z.object({ attributes: attributesSchema.nullable() }).strict();
export const createFileBatchSchema = z
  .object({ file_ids: z.array(fileIdSchema).min(1).max(500), attributes: attributesSchema.nullish(), chunking_strategy: chunkingStrategySchema.optional() })
  .strict();
export const vectorStoreSearchSchema = z
  .object({
    query: z.union([z.string().min(1).max(10_000), z.array(z.string().min(1).max(10_000)).min(1).max(16)]),
    max_num_results: z.number().int().min(1).max(50).default(10),
    filters: attributeFilterSchema.optional(),
    ranking_options: rankingOptionsSchema.optional(),
    rewrite_query: z
      .boolean()
      .optional()
      .meta({ description: 'Rewrite each query before searching (rule-based: the request frame and English stop words are dropped; see shared/documents/query-rewrite.ts). `search_query` answers what was searched.' }),
  })
  .strict();
export const listQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    order: z.enum(['asc', 'desc']).default('desc'),
    after: z.string().optional(),
    before: z.string().optional(),
    filter: z.enum(['in_progress', 'completed', 'failed', 'cancelled']).optional(),
  })
  .strict();

type FileStatus = 'in_progress' | 'completed' | 'failed' | 'cancelled';
type FileCounts = Record<FileStatus | 'total', number>;

/**
 * OpenAI's vector stores over the document pipeline: one engine, two faces. A store is a collection
 * of its tenant named by the store's id; attaching a Files API file ingests its bytes as a document of
 * that collection (DocumentService, the same flow as POST /v1/documents) with the file's attributes as
 * the document's metadata, so /v1/collections/<vs id> and /v1/documents see the same data.
 */
export class VectorStoreService {
  constructor(
    private readonly deps: { store: VectorStoreStore; documents: DocumentService; files: FileService },
  ) {}

  async create(tenant: string, body: unknown, requestId?: string) {
    const b = createVectorStoreSchema.parse(body);
    const now = nowSeconds();
    const vs: VectorStoreRecord = {
      id: newVectorStoreId(),
      tenant,
      name: b.name ?? '',
      created_at: now,
      last_active_at: now,
      metadata: b.metadata ?? {},
      expires_after: b.expires_after ?? null,
    };
    // Every file must exist before anything is made: a bad id leaves no half-made store behind.
    const files = await Promise.all((b.file_ids ?? []).map((id) => this.deps.files.get(tenant, id)));
    await this.deps.store.create(vs);
    for (const f of files) await this.attach(vs, { file_id: f.id, chunking_strategy: b.chunking_strategy }, null, requestId);
    return this.view(vs);
  }

  async retrieve(tenant: string, id: string) {
    return this.view(await this.find(tenant, id));
  }

  async update(tenant: string, id: string, body: unknown) {
    const b = updateVectorStoreSchema.parse(body);
    const vs = await this.find(tenant, id);
    if (b.name !== undefined) vs.name = b.name ?? '';
    if (b.metadata !== undefined) vs.metadata = b.metadata ?? {};
    if (b.expires_after !== undefined) vs.expires_after = b.expires_after ?? null;
    await this.deps.store.save(vs);
    return this.view(vs);
  }

  async remove(tenant: string, id: string) {
    const vs = await this.find(tenant, id);
    await this.deps.store.remove(vs);
    // Its collection (documents, chunks, index) goes with it; one that never had a file does not exist.
    await this.deps.documents.dropCollection(tenant, vs.id).catch(() => {});
    return { id, object: 'vector_store.deleted' as const, deleted: true as const };
  }

  async list(tenant: string, query: unknown) {
    const q = listQuerySchema.omit({ filter: true }).parse(query);
    const ids = await this.deps.store.ids(tenant, q.order);
    const stores: VectorStoreRecord[] = [];
    for (const id of ids) {
      const vs = await this.deps.store.get(tenant, id);
      if (vs) stores.push(vs);
    }
    return page(await Promise.all(stores.map((vs) => this.view(vs))), q);
  }

  async attachFile(tenant: string, vsId: string, body: unknown, requestId?: string) {
    const b = createVectorStoreFileSchema.parse(body);
    const vs = await this.find(tenant, vsId);
    const f = await this.attach(vs, b, null, requestId);
    return this.fileView(vs, f, await this.deps.documents.store.getDocument(f.document_id));
  }

  async listFiles(tenant: string, vsId: string, query: unknown, batchId?: string) {
    const q = listQuerySchema.parse(query);
    const vs = await this.find(tenant, vsId);
    if (batchId) await this.findBatch(vs, batchId);
    const files = (await this.deps.store.files(vs.id)).filter((f) => batchId === undefined || f.batch_id === batchId);
    const views = (await this.fileViews(vs, files)).filter((v) => !q.filter || v.status === q.filter);
    return page(q.order === 'desc' ? views.reverse() : views, q);
  }

  async retrieveFile(tenant: string, vsId: string, fileId: string) {
    const vs = await this.find(tenant, vsId);
    const f = await this.findFile(vs, fileId);
    return this.fileView(vs, f, await this.deps.documents.store.getDocument(f.document_id));
  }

  async updateFile(tenant: string, vsId: string, fileId: string, body: unknown) {
    const b = updateVectorStoreFileSchema.parse(body);
    const vs = await this.find(tenant, vsId);
    const f = await this.findFile(vs, fileId);
    f.attributes = b.attributes ?? {};
    await this.deps.store.putFile(vs.id, f);
    const doc = await this.deps.documents.store.getDocument(f.document_id);
    if (doc) await this.deps.documents.store.setMetadata(doc, f.attributes);
    return this.fileView(vs, f, doc);
  }

  async removeFile(tenant: string, vsId: string, fileId: string) {
    const vs = await this.find(tenant, vsId);
    const f = await this.findFile(vs, fileId);
    await this.deps.store.removeFile(vs.id, f);
    const doc = await this.deps.documents.store.getDocument(f.document_id);
    // Its chunks leave search at once; the Files API file itself stays (OpenAI's rule).
    if (doc && doc.state !== 'deleted') await this.deps.documents.removeRecord(doc);
    return { id: fileId, object: 'vector_store.file.deleted' as const, deleted: true as const };
  }

  async fileContent(tenant: string, vsId: string, fileId: string) {
    const vs = await this.find(tenant, vsId);
    const f = await this.findFile(vs, fileId);
    const doc = await this.deps.documents.store.getDocument(f.document_id);
    const texts = doc && doc.state !== 'deleted' ? await this.deps.documents.chunkTexts(doc) : [];
    return { object: 'vector_store.file_content.page' as const, data: texts.map((text) => ({ type: 'text' as const, text })), has_more: false, next_page: null };
  }

  async createBatch(tenant: string, vsId: string, body: unknown, requestId?: string) {
    const b = createFileBatchSchema.parse(body);
    const vs = await this.find(tenant, vsId);
    const ids = [...new Set(b.file_ids)];
    await Promise.all(ids.map((id) => this.deps.files.get(tenant, id)));
    const batch: FileBatchRecord = { id: newFileBatchId(), vector_store_id: vs.id, created_at: nowSeconds(), file_ids: ids, cancelled: false };
    await this.deps.store.putBatch(batch);
    for (const id of ids) {
      await this.attach(vs, { file_id: id, attributes: b.attributes, chunking_strategy: b.chunking_strategy }, batch.id, requestId);
    }
    return this.batchView(vs, batch);
  }

  async retrieveBatch(tenant: string, vsId: string, batchId: string) {
    const vs = await this.find(tenant, vsId);
    return this.batchView(vs, await this.findBatch(vs, batchId));
  }

  /** Cancels the batch's files still being ingested: their documents are deleted, finished ones stay. */
  async cancelBatch(tenant: string, vsId: string, batchId: string) {
    const vs = await this.find(tenant, vsId);
    const batch = await this.findBatch(vs, batchId);
    batch.cancelled = true;
    await this.deps.store.putBatch(batch);
    for (const f of (await this.deps.store.files(vs.id)).filter((x) => x.batch_id === batch.id)) {
      const doc = await this.deps.documents.store.getDocument(f.document_id);
      if (fileStatus(f, doc) !== 'in_progress') continue;
      await this.deps.store.putFile(vs.id, { ...f, cancelled: true });
      if (doc) await this.deps.documents.removeRecord(doc);
    }
    return this.batchView(vs, batch);
  }

  async search(tenant: string, vsId: string, body: unknown, requestId?: string) {
    const b = vectorStoreSearchSchema.parse(body);
    const vs = await this.find(tenant, vsId);
    const asked = typeof b.query === 'string' ? [b.query] : b.query;
    const queries = b.rewrite_query ? asked.map(rewriteQuery) : asked;
    // Two independent round trips at once; the store's files are read only for the hits, below.
    const [, fileCount] = await Promise.all([this.touch(vs), this.deps.store.fileCount(vs.id)]);
    const empty = { object: 'vector_store.search_results.page' as const, search_query: queries, data: [], has_more: false, next_page: null };
    if (fileCount === 0) return empty;
    // Several queries are searched as one text: hybrid ranking matches any of their terms and their joint meaning.
    const result = await this.deps.documents.search(
      tenant,
      vs.id,
      { query: queries.join('\n'), top_k: b.max_num_results, ...(b.filters ? { filters: b.filters } : {}), ...(b.ranking_options ? { ranking_options: b.ranking_options } : {}) },
      requestId,
    );
    const fileOf = await this.deps.store.filesOfDocuments(vs.id, [...new Set(result.data.map((h) => h.document_id))]);
    const data = result.data.flatMap((h) => {
      const f = fileOf.get(h.document_id);
      // A document of the collection added through /v1/documents has no file: not part of the store's face.
      if (!f) return [];
      return [{ file_id: f.file_id, filename: f.filename, score: h.score, attributes: h.metadata, content: [{ type: 'text' as const, text: h.text }] }];
    });
    return { ...empty, data };
  }

  private async attach(
    vs: VectorStoreRecord,
    b: { file_id: string; attributes?: Record<string, string | number | boolean> | null; chunking_strategy?: z.infer<typeof chunkingStrategySchema> },
    batchId: string | null,
    requestId?: string,
  ): Promise<VectorStoreFileRecord> {
    const file = await this.deps.files.get(vs.tenant, b.file_id);
    const previous = await this.deps.store.file(vs.id, file.id);
    if (previous) {
      // Attached again: replaces the earlier document, so the store never holds two copies of one file.
      const old = await this.deps.documents.store.getDocument(previous.document_id);
      if (old && old.state !== 'deleted') await this.deps.documents.removeRecord(old);
    }
    const chunking: StaticChunking = b.chunking_strategy?.type === 'static' ? b.chunking_strategy : AUTO_CHUNKING;
    const attributes = b.attributes ?? {};
    const doc = await this.deps.documents.ingestStored(
      vs.tenant,
      {
        collection: vs.id,
        metadata: attributes,
        chunking: b.chunking_strategy?.type === 'static' ? { max_tokens: chunking.static.max_chunk_size_tokens, overlap: chunking.static.chunk_overlap_tokens } : null,
        dedupe: false,
      },
      { path: this.deps.files.store.blobs.path('files', file.id, FILE_CONTENT), filename: file.filename },
      requestId,
    );
    const record: VectorStoreFileRecord = {
      file_id: file.id,
      document_id: doc.id,
      filename: file.filename,
      created_at: nowSeconds(),
      attributes,
      chunking_strategy: chunking,
      batch_id: batchId,
      cancelled: false,
    };
    await this.deps.store.putFile(vs.id, record);
    await this.touch(vs);
    return record;
  }

  private async touch(vs: VectorStoreRecord): Promise<void> {
    vs.last_active_at = nowSeconds();
    await this.deps.store.save(vs);
  }

  private async find(tenant: string, id: string): Promise<VectorStoreRecord> {
    const vs = await this.deps.store.get(tenant, id);
    if (!vs) throw errors.notFound(`No vector store with id '${id}'.`, 'vector_store_not_found', 'vector_store_id');
    return vs;
  }

  private async findFile(vs: VectorStoreRecord, fileId: string): Promise<VectorStoreFileRecord> {
    const f = await this.deps.store.file(vs.id, fileId);
    if (!f) throw errors.notFound(`No file '${fileId}' in vector store '${vs.id}'.`, 'file_not_found', 'file_id');
    return f;
  }

  private async findBatch(vs: VectorStoreRecord, batchId: string): Promise<FileBatchRecord> {
    const b = await this.deps.store.batch(vs.id, batchId);
    if (!b) throw errors.notFound(`No file batch '${batchId}' in vector store '${vs.id}'.`, 'file_batch_not_found', 'batch_id');
    return b;
  }

  private async fileViews(vs: VectorStoreRecord, files: VectorStoreFileRecord[]) {
    const docs = await Promise.all(files.map((f) => this.deps.documents.store.getDocument(f.document_id)));
    return files.map((f, i) => this.fileView(vs, f, docs[i]));
  }

  private fileView(vs: VectorStoreRecord, f: VectorStoreFileRecord, doc: DocumentRecord | undefined) {
    const status = fileStatus(f, doc);
    return {
      id: f.file_id,
      object: 'vector_store.file' as const,
      usage_bytes: status === 'completed' ? (doc?.bytes ?? 0) : 0,
      created_at: f.created_at,
      vector_store_id: vs.id,
      status,
      last_error: status === 'failed' ? lastError(doc) : null,
      chunking_strategy: f.chunking_strategy,
      attributes: f.attributes,
    };
  }

  private async counts(vs: VectorStoreRecord, files: VectorStoreFileRecord[]): Promise<{ counts: FileCounts; usageBytes: number }> {
    const views = await this.fileViews(vs, files);
    const counts: FileCounts = { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: views.length };
    for (const v of views) counts[v.status]++;
    return { counts, usageBytes: views.reduce((n, v) => n + v.usage_bytes, 0) };
  }

  private async view(vs: VectorStoreRecord) {
    const { counts, usageBytes } = await this.counts(vs, await this.deps.store.files(vs.id));
    const expiresAt = vs.expires_after ? vs.last_active_at + vs.expires_after.days * 86_400 : null;
    const expired = expiresAt !== null && expiresAt <= nowSeconds();
    return {
      id: vs.id,
      object: 'vector_store' as const,
      created_at: vs.created_at,
      name: vs.name,
      usage_bytes: usageBytes,
      file_counts: counts,
      status: expired ? ('expired' as const) : counts.in_progress > 0 ? ('in_progress' as const) : ('completed' as const),
      ...(vs.expires_after ? { expires_after: vs.expires_after } : {}),
      expires_at: expiresAt,
      last_active_at: vs.last_active_at,
      metadata: vs.metadata,
    };
  }

  private async batchView(vs: VectorStoreRecord, b: FileBatchRecord) {
    const { counts } = await this.counts(vs, (await this.deps.store.files(vs.id)).filter((f) => f.batch_id === b.id));
    const status = counts.in_progress > 0 ? 'in_progress' : b.cancelled ? 'cancelled' : counts.failed > 0 && counts.completed === 0 ? 'failed' : 'completed';
    return { id: b.id, object: 'vector_store.files_batch' as const, created_at: b.created_at, vector_store_id: vs.id, status, file_counts: counts };
  }
}

function fileStatus(f: VectorStoreFileRecord, doc: DocumentRecord | undefined): FileStatus {
  if (f.cancelled) return 'cancelled';
  if (!doc || doc.state === 'failed' || doc.state === 'deleted') return 'failed';
  return doc.state === 'ready' ? 'completed' : 'in_progress';
}

/** OpenAI's last_error codes: a file the parser could not read is `unsupported_file` or `invalid_file`. */
function lastError(doc: DocumentRecord | undefined): { code: 'server_error' | 'unsupported_file' | 'invalid_file'; message: string } {
  if (!doc || doc.state === 'deleted') return { code: 'server_error', message: 'The document of this file was deleted.' };
  const e = doc.error ?? { code: 'server_error', message: 'The ingestion failed.' };
  const code = /unsupported/.test(e.code) ? 'unsupported_file' : /invalid|parse|empty|corrupt|pages/.test(e.code) ? 'invalid_file' : 'server_error';
  return { code, message: e.message };
}

function page<T extends { id: string }>(items: T[], q: { limit: number; after?: string; before?: string }) {
  let from = 0;
  let to = items.length;
  if (q.after) from = items.findIndex((v) => v.id === q.after) + 1;
  if (q.before) {
    const i = items.findIndex((v) => v.id === q.before);
    if (i >= 0) to = i;
  }
  const data = items.slice(from, to).slice(0, q.limit);
  return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: from + data.length < to };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
