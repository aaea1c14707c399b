import path from 'node:path';
import { Job, Queue, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Env } from '../../shared/config/env.js';
import type { DocumentJobType } from '../../shared/documents/document-jobs.js';
import { DocumentStore } from '../../shared/documents/document-store.js';
import { DOCUMENT_QUEUES, type DocumentRecord } from '../../shared/documents/documents.js';
import type { Logger } from '../../shared/logger.js';
import type { EmbeddingEngine } from '../embeddings/embedding-engine.js';
import { CollectionReplicas } from '../index/collection-replicas.js';
import type { ResultDelivery } from '../jobs/job-runner.js';
import { Chunker } from './chunker.js';
import { createDocumentHandlers, type DocumentHandlers, type DocumentProgress, type ProgressSink } from './document-handlers.js';
import { BlobStore } from '../../shared/storage/blob-store.js';
import { CrashMarks } from './crash-marks.js';
import { ParsePool } from './parse-pool.js';
import { TenantSlots } from './tenant-slots.js';

export interface DocumentRuntime {
  /** Handlers of every document job type (they refuse work when this worker does not serve documents). */
  readonly handlers: DocumentHandlers;
  /** Whether this worker consumes the document queues: only where it serves the documents' model. */
  readonly serves: boolean;
  close(): Promise<void>;
}

/**
 * The document pipeline of a worker process: parse threads, the chunker, the index thread with its
 * collection replicas, and the workers of the document queues. It runs where the documents'
 * embedding model (DOCUMENTS_EMBEDDING_MODEL) is served, since chunking needs its tokenizer and
 * embedding and search need the model.
 */
export function startDocumentRuntime(deps: {
  env: Env;
  log: Logger;
  engines: ReadonlyMap<string, EmbeddingEngine>;
  connection: Redis;
  /** How progress reaches a job's subscribers (workers/jobs/outcome-delivery.ts). */
  announce: Pick<ResultDelivery, 'progress'>;
  workerId: string;
}): DocumentRuntime {
  const { env, log } = deps;
  const engine = deps.engines.get(env.DOCUMENTS_EMBEDDING_MODEL);
  if (!engine) {
    const refuse = async () => {
      throw new UnrecoverableError(`documents are served by workers of model ${env.DOCUMENTS_EMBEDDING_MODEL}, not by this one`);
    };
    const handlers = Object.fromEntries(Object.keys(DOCUMENT_HANDLER_TYPES).map((t) => [t, refuse])) as unknown as DocumentHandlers;
    return { handlers, serves: false, close: async () => {} };
  }

  const store = new DocumentStore(deps.connection, env.QUEUE_PREFIX);
  const replicas = new CollectionReplicas({
    store,
    indexDir: path.resolve(env.INDEX_DIR),
    dims: engine.dimensions,
    params: { m: env.HNSW_M, efConstruction: env.HNSW_EF_CONSTRUCTION },
    efSearch: env.HNSW_EF_SEARCH,
    snapshotEvery: env.INDEX_SNAPSHOT_EVERY,
    snapshotSeconds: env.INDEX_SNAPSHOT_SECONDS,
    workerId: deps.workerId,
    log,
  });
  const parser = new ParsePool({
    processes: env.DOCUMENTS_PARSE_PROCESSES,
    ocrThreads: 1,
    maxHeapMb: env.DOCUMENTS_PARSE_MAX_HEAP_MB,
    recycleMb: env.DOCUMENTS_PARSE_RECYCLE_MB,
    stepTimeoutMs: env.DOCUMENTS_PARSE_STEP_TIMEOUT_SECONDS * 1000,
    poisonCrashes: env.DOCUMENTS_POISON_CRASHES,
    marks: new CrashMarks(deps.connection, store.keys),
    log,
  });
  const ingestQueue = new Queue(DOCUMENT_QUEUES.ingest, { connection: deps.connection, prefix: env.QUEUE_PREFIX });

  // Progress of every stage goes to the ingestion job (its progress field and its Socket.IO room),
  // the one job the client knows about. Updates are throttled per document; stage ends always go out.
  const last = new Map<string, { at: number; progress: Required<DocumentProgress> & { document_id: string } }>();
  const progress: ProgressSink = async (doc: DocumentRecord, update, opts = {}) => {
    let entry = last.get(doc.id);
    if (!entry) {
      entry = {
        at: 0,
        progress: {
          document_id: doc.id,
          stage: doc.stage ?? 'parse',
          pages_done: doc.pages_done,
          pages_total: doc.pages_total ?? 0,
          chunks_done: doc.chunks_done,
          chunks_total: doc.chunks_total ?? 0,
        },
      };
      last.set(doc.id, entry);
    }
    Object.assign(entry.progress, update);
    const now = Date.now();
    if (!opts.flush && now - entry.at < 250) return;
    entry.at = now;
    const snapshot = { ...entry.progress };
    if (snapshot.stage === 'done') last.delete(doc.id);
    deps.announce.progress(doc.job_id, snapshot);
    const { document_id: _d, stage, ...counts } = snapshot;
    await Promise.all([
      store.updateDocument(doc.id, { ...counts, ...(stage === 'done' ? {} : { stage }) }),
      Job.fromId(ingestQueue, doc.job_id).then((job) => job?.updateProgress(snapshot)),
    ]);
  };

  const handlers = createDocumentHandlers({
    store,
    replicas,
    parser,
    engine,
    chunker: new Chunker(engine.tokenizer, { overlap: env.CHUNK_OVERLAP_TOKENS }),
    blobs: new BlobStore(path.resolve(env.DOCUMENTS_DIR)),
    limits: {
      maxPages: env.DOCUMENTS_MAX_PAGES,
      maxPagePoints: env.DOCUMENTS_MAX_PAGE_POINTS,
      maxImagePixels: env.DOCUMENTS_MAX_IMAGE_PIXELS,
      ocrMaxPixels: env.DOCUMENTS_OCR_MAX_PIXELS,
      ocrBudgetMs: env.DOCUMENTS_OCR_BUDGET_SECONDS * 1000,
    },
    ocr: env.DOCUMENTS_OCR,
    parseSlots: new TenantSlots(env.DOCUMENTS_PARSE_TENANT_SLOTS),
    progress,
  });
  log.info({ model: engine.model.id, indexDir: env.INDEX_DIR, documentsDir: env.DOCUMENTS_DIR }, 'document pipeline ready');

  return {
    handlers,
    serves: true,
    async close() {
      await replicas.flush().catch((err) => log.warn({ err }, 'index flush failed'));
      await Promise.allSettled([replicas.close(), parser.close(), ingestQueue.close()]);
    },
  };
}

const DOCUMENT_HANDLER_TYPES: Record<DocumentJobType, true> = {
  'document.ingest': true,
  'document.parse': true,
  'document.chunk': true,
  'document.embed': true,
  'document.index': true,
  'document.search': true,
};
