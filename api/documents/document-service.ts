import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { FlowProducer, type FlowJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SearchRequest } from '../../shared/documents/document-api.js';
import type { DocumentJobType, DocumentStageType } from '../../shared/documents/document-jobs.js';
import { DocumentStore } from '../../shared/documents/document-store.js';
import {
  collectionNameSchema,
  DOCUMENT_QUEUES,
  documentMetadataSchema,
  type DocumentMetadata,
  type DocumentRecord,
} from '../../shared/documents/documents.js';
import { errors } from '../../shared/errors/app-error.js';
import type { BlobStore } from '../../shared/storage/blob-store.js';
import { fixedQueueTarget, jobCatalog, makeJobId, type JobEnvelope, type JobResult } from '../../shared/jobs/job-catalog.js';
import type { JobService } from '../jobs/job-service.js';
import { checkImageHeader, SNIFF_BYTES, sniffDocument } from './sniff.js';
import type { ReceivedUpload } from './upload.js';
import type { DocumentView } from '../../shared/documents/document-api.js';


export type { DocumentView };

/** Where and how an ingestion puts a document. */
export interface IngestTarget {
  collection: string;
  metadata: DocumentMetadata;
  chunking: DocumentRecord['chunking'];
  /** Whether the same bytes already in the collection answer with that document instead. */
  dedupe: boolean;
}

export interface CollectionView {
  object: 'collection';
  name: string;
  documents: number;
  created_at: number;
}

/**
 * Documents and collections for the routes: uploads become a document record plus an ingestion flow
 * (parse → chunk → embed → index, one BullMQ job each, under one `document.ingest` job the client
 * follows); reads and deletes go to Redis directly; searches are synchronous jobs on the search
 * queue, answered by any worker that serves the documents' model.
 */
export class DocumentService {
  readonly store: DocumentStore;
  private readonly flow: FlowProducer;

  constructor(
    private readonly deps: {
      redis: Redis;
      prefix: string;
      jobs: JobService;
      /** The shared data root: uploads land in its `incoming/`, a document's source in `docs/<id>/`. */
      blobs: BlobStore;
      model: string;
      retentionSeconds: number;
      searchTimeoutMs: number;
      /** DOCUMENTS_MAX_IMAGE_PIXELS: larger images are refused at upload when their header shows it. */
      maxImagePixels: number;
    },
  ) {
    this.store = new DocumentStore(deps.redis, deps.prefix);
    this.flow = new FlowProducer({ connection: deps.redis, prefix: deps.prefix });
  }

  get incomingDir(): string {
    return this.deps.blobs.incomingDir;
  }

  async close(): Promise<void> {
    await this.flow.close();
  }

  /** Takes a received upload: validates it, deduplicates it by content, stores it and starts its ingestion. */
  async ingest(tenant: string, upload: ReceivedUpload, requestId?: string): Promise<{ view: DocumentView; created: boolean }> {
    let target: IngestTarget;
    try {
      const name = collectionNameSchema.safeParse(upload.fields.collection ?? '');
      if (!name.success) throw errors.invalidRequest(`'collection': ${name.error.issues[0]!.message}`, 'collection');
      target = { collection: name.data, metadata: this.parseMetadata(upload.fields.metadata), chunking: null, dedupe: true };
    } catch (err) {
      await unlink(upload.tmpPath).catch(() => {});
      throw err;
    }
    const { record, created } = await this.ingestInto(tenant, target, upload, requestId);
    return { view: this.view(record), created };
  }

  /**
   * Ingests a copy of a blob that is already stored (a Files API file attached to a vector store):
   * hard-linked into `incoming/` (the same volume), so the document owns its source independently of
   * the file, which may be deleted while the document stays. Then the same path as an upload.
   */
  async ingestStored(tenant: string, target: IngestTarget, source: { path: string; filename: string }, requestId?: string): Promise<DocumentRecord> {
    const tmpPath = path.join(this.deps.blobs.incomingDir, `link-${randomUUID()}`);
    await mkdir(this.deps.blobs.incomingDir, { recursive: true });
    await link(source.path, tmpPath).catch(() => copyFile(source.path, tmpPath));
    try {
      // Hashed as it streams, as an upload is: files may be hundreds of megabytes.
      const hash = createHash('sha256');
      let head = Buffer.alloc(0);
      let bytes = 0;
      for await (const chunk of createReadStream(tmpPath) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        if (head.length < SNIFF_BYTES) head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)]);
        bytes += chunk.length;
      }
      const upload: ReceivedUpload = { tmpPath, bytes, sha256: hash.digest('hex'), head, filename: source.filename, fields: {} };
      return (await this.ingestInto(tenant, target, upload, requestId)).record;
    } catch (err) {
      await unlink(tmpPath).catch(() => {});
      throw err;
    }
  }

  private async ingestInto(tenant: string, target: IngestTarget, upload: ReceivedUpload, requestId?: string): Promise<{ record: DocumentRecord; created: boolean }> {
    try {
      const { kind, mime } = await sniffDocument(upload.head, upload.bytes);
      checkImageHeader(kind, upload.head, this.deps.maxImagePixels);
      const cid = await this.store.ensureCollection(tenant, target.collection, randomUUID(), this.deps.model);

      const id = randomUUID();
      // Vector store files are not deduplicated: two files of the same bytes carry their own attributes.
      if (target.dedupe) {
        const existingId = await this.store.claimHash(cid, upload.sha256, id);
        if (existingId) {
          const existing = await this.store.getDocument(existingId);
          if (existing && existing.state !== 'failed' && existing.state !== 'deleted') {
            await unlink(upload.tmpPath).catch(() => {});
            return { record: existing, created: false };
          }
          await this.store.replaceHash(cid, upload.sha256, id);
        }
      }

      await this.deps.blobs.commit(upload.tmpPath, 'docs', id, 'source');
      const now = Date.now();
      const jobId = makeJobId(DOCUMENT_QUEUES.ingest, randomUUID());
      const record: DocumentRecord = {
        id,
        tenant,
        collection: target.collection,
        cid,
        filename: upload.filename,
        kind,
        mime,
        bytes: upload.bytes,
        sha256: upload.sha256,
        metadata: target.metadata,
        chunking: target.chunking,
        state: 'queued',
        stage: null,
        stage_done: null,
        job_id: jobId,
        pages_total: null,
        pages_done: 0,
        chunks_total: null,
        chunks_done: 0,
        indexed: 0,
        ranges: [],
        error: null,
        created_at: now,
        updated_at: now,
      };
      await this.store.createDocument(record);
      try {
        await this.flow.add(this.ingestionFlow(record, requestId));
      } catch (err) {
        await this.store.markFailed(id, { message: 'The ingestion could not be queued.', code: 'enqueue_failed' }).catch(() => {});
        if (target.dedupe) await this.store.releaseHash(cid, upload.sha256, id).catch(() => {});
        throw err;
      }
      return { record, created: true };
    } catch (err) {
      await unlink(upload.tmpPath).catch(() => {});
      throw err;
    }
  }

  /** The text of a document's indexed chunks, in order (what search answers from). */
  async chunkTexts(doc: DocumentRecord): Promise<string[]> {
    const labels = doc.ranges.flatMap(([from, to]) => Array.from({ length: to - from }, (_, i) => from + i));
    const fields = await this.store.chunkFields(doc.cid, labels);
    return fields
      .flatMap((f) => (f ? [f] : []))
      .sort((a, b) => a.idx - b.idx)
      .map((f) => f.text);
  }

  async get(tenant: string, id: string): Promise<DocumentView> {
    return this.view(await this.find(tenant, id));
  }

  async list(tenant: string, collection: string): Promise<DocumentView[]> {
    const cid = await this.collectionId(tenant, collection);
    return (await this.store.listDocuments(cid)).filter((d) => d.tenant === tenant && d.state !== 'deleted').map((d) => this.view(d));
  }

  async remove(tenant: string, id: string): Promise<{ id: string; object: 'document'; deleted: true }> {
    await this.removeRecord(await this.find(tenant, id));
    return { id, object: 'document', deleted: true };
  }

  /** Deletes a document: its chunks leave search at once (the log's `del`), then its files go. */
  async removeRecord(doc: DocumentRecord): Promise<void> {
    await this.store.deleteDocument(doc);
    await this.deps.blobs.remove('docs', doc.id);
  }

  async collections(tenant: string): Promise<CollectionView[]> {
    return (await this.store.listCollections(tenant)).map((c) => ({ object: 'collection', name: c.name, documents: c.documents, created_at: Math.floor(c.created_at / 1000) }));
  }

  async dropCollection(tenant: string, name: string): Promise<{ object: 'collection'; name: string; deleted: true }> {
    const cid = await this.collectionId(tenant, name);
    const docs = await this.store.listDocuments(cid, 100_000);
    if (!(await this.store.deleteCollection(tenant, name, cid))) throw this.collectionNotFound(name);
    await Promise.all(docs.map((d) => this.deps.blobs.remove('docs', d.id)));
    return { object: 'collection', name, deleted: true };
  }

  async search(tenant: string, name: string, body: SearchRequest, requestId?: string): Promise<JobResult<'document.search'>> {
    const cid = await this.collectionId(tenant, name);
    return this.deps.jobs.run(
      'document.search',
      tenant,
      // Its queue and bound are its catalog entry's; errors name the documents' model.
      fixedQueueTarget('document.search', this.deps.model),
      {
        collection_id: cid,
        model: this.deps.model,
        query: body.query,
        top_k: body.top_k,
        ...(body.filter ? { filter: body.filter } : {}),
        ...(body.filters ? { attribute_filter: body.filters } : {}),
        ...(body.ef ? { ef: body.ef } : {}),
        ...(body.ranking_options ? { ranking_options: body.ranking_options } : {}),
      },
      this.deps.searchTimeoutMs,
      requestId,
    );
  }

  private async collectionId(tenant: string, name: string): Promise<string> {
    if (!collectionNameSchema.safeParse(name).success) throw this.collectionNotFound(name);
    const cid = await this.store.findCollection(tenant, name);
    if (!cid) throw this.collectionNotFound(name);
    return cid;
  }

  private collectionNotFound(name: string) {
    return errors.notFound(`No collection named '${name}'.`, 'collection_not_found', 'name');
  }

  private async find(tenant: string, id: string): Promise<DocumentRecord> {
    const doc = /^[0-9a-f-]{36}$/.test(id) ? await this.store.getDocument(id) : undefined;
    // Another tenant's document is reported exactly like one that does not exist.
    if (!doc || doc.tenant !== tenant || doc.state === 'deleted') throw errors.notFound(`No document with id '${id}'.`, 'document_not_found', 'id');
    return doc;
  }

  private parseMetadata(raw: string | undefined): DocumentMetadata {
    if (raw === undefined || raw === '') return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw errors.invalidRequest("'metadata' must be a JSON object.", 'metadata');
    }
    const r = documentMetadataSchema.safeParse(parsed);
    if (!r.success) throw errors.invalidRequest(`'metadata': ${r.error.issues[0]!.message} (a flat object of strings, numbers, booleans or null)`, 'metadata');
    return r.data;
  }

  private ingestionFlow(doc: DocumentRecord, requestId?: string): FlowJob {
    const payload = { document_id: doc.id, collection_id: doc.cid, model: this.deps.model, ingest_job_id: doc.job_id };
    const retention = { removeOnComplete: { age: this.deps.retentionSeconds }, removeOnFail: { age: this.deps.retentionSeconds } };
    const envelope = (type: DocumentJobType): JobEnvelope => ({ type, tenant: doc.tenant, payload, request_id: requestId }) as JobEnvelope;
    const stage = (name: 'parse' | 'chunk' | 'embed' | 'index', children?: FlowJob[]): FlowJob => {
      const type: DocumentStageType = `document.${name}`;
      return {
        name: type,
        queueName: DOCUMENT_QUEUES[name],
        data: envelope(type),
        // When a stage fails for good its parent still runs, sees the recorded reason and fails with it,
        // up to the ingestion job, whose subscribers then hear why.
        opts: { ...jobCatalog[type].defaults, ...retention, jobId: makeJobId(DOCUMENT_QUEUES[name], randomUUID()), continueParentOnFailure: true },
        ...(children ? { children } : {}),
      };
    };
    return {
      name: 'document.ingest',
      queueName: DOCUMENT_QUEUES.ingest,
      data: envelope('document.ingest'),
      opts: { ...jobCatalog['document.ingest'].defaults, ...retention, jobId: doc.job_id },
      children: [stage('index', [stage('embed', [stage('chunk', [stage('parse')])])])],
    };
  }

  view(d: DocumentRecord): DocumentView {
    return {
      id: d.id,
      object: 'document',
      collection: d.collection,
      filename: d.filename,
      type: d.kind,
      mime: d.mime,
      bytes: d.bytes,
      sha256: d.sha256,
      metadata: d.metadata,
      status: d.state === 'deleted' ? 'failed' : d.state,
      stage: d.stage,
      job_id: d.job_id,
      progress: { pages_done: d.pages_done, pages_total: d.pages_total, chunks_done: d.chunks_done, chunks_total: d.chunks_total },
      chunks: d.indexed,
      error: d.error,
      created_at: Math.floor(d.created_at / 1000),
      updated_at: Math.floor(d.updated_at / 1000),
    };
  }
}
