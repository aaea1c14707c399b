import { UnrecoverableError } from 'bullmq';
import type { DocumentJobType, DocumentStageType } from '../../shared/documents/document-jobs.js';
import type { DocumentStore } from '../../shared/documents/document-store.js';
import { STAGES, type DocumentRecord, type Stage } from '../../shared/documents/documents.js';
import { jobCatalog } from '../../shared/jobs/job-catalog.js';
import type { BlobStore } from '../../shared/storage/blob-store.js';
import type { EmbeddingEngine } from '../embeddings/embedding-engine.js';
import type { CollectionReplicas } from '../index/collection-replicas.js';
import type { JobContext, JobHandler } from '../jobs/job-handler.js';
import type { Chunker } from './chunker.js';
import { jobErrorCode } from '../jobs/job.error.js';
import { DocumentFailedError } from './document-failed.error.js';
import type { ParseJob, ParseOutcome } from './parse-pool.js';
import type { ParseLimits } from './parse-process.protocol.js';
import type { TenantSlots } from './tenant-slots.js';

/**
 * What the document pipeline's handlers (`*.handler.ts` beside this file) share: their
 * dependencies, and the frame every ingestion stage runs in. Each stage reads the previous stage's
 * output file from the document's folder and writes its own atomically, so a retried stage (or one
 * taken over by another worker after a crash) starts from the last finished stage. The document
 * record says which stage finished last; a stage whose predecessor failed fails with that reason.
 */
export type DocumentHandlers = { [K in DocumentJobType]: JobHandler<K> };

/** Progress of an ingestion, as its subscribers and GET /v1/documents/:id see it. */
export interface DocumentProgress {
  stage?: Stage | 'done';
  pages_done?: number;
  pages_total?: number;
  chunks_done?: number;
  chunks_total?: number;
}

/** Where stage progress goes: the document record and the Socket.IO room of the ingestion's job. */
export type ProgressSink = (doc: DocumentRecord, progress: DocumentProgress, opts?: { flush?: boolean }) => Promise<void>;

/** What the parse stage needs of the parse processes (workers/documents/parse-pool.ts). */
export interface DocumentParser {
  parse(job: ParseJob, opts: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void }): Promise<ParseOutcome>;
}

export interface DocumentHandlerDeps {
  store: DocumentStore;
  replicas: CollectionReplicas;
  parser: DocumentParser;
  engine: EmbeddingEngine;
  chunker: Chunker;
  /** The shared data root (shared/storage/blob-store.ts): a document's source and stage files live in its `docs/<id>/` folder. */
  blobs: BlobStore;
  limits: ParseLimits;
  ocr: boolean;
  /** Parse jobs of one tenant this worker runs at once (the rest are deferred). */
  parseSlots: TenantSlots;
  progress: ProgressSink;
}

/** A stage failure the document is to blame for: not retried, shown to the client as it is. */
export function permanent(code: string, message: string): DocumentFailedError {
  return new DocumentFailedError(code, message);
}

async function loadLiveDocument(store: DocumentStore, id: string, cid: string, tenant: string): Promise<DocumentRecord> {
  const doc = await store.getDocument(id);
  if (!doc || doc.tenant !== tenant || doc.cid !== cid) throw permanent('document_deleted', 'The document does not exist (it was deleted).');
  if (doc.state === 'deleted') throw permanent('document_deleted', 'The document was deleted.');
  if (doc.state === 'failed') throw permanent(doc.error?.code ?? 'stage_failed', doc.error?.message ?? 'The document failed to ingest.');
  return doc;
}

/** A stage's handler: `run` does the stage's own work; `admit` may defer the job (DeferJob) before it starts. */
export function documentStage(
  deps: DocumentHandlerDeps,
  name: Stage,
  run: (doc: DocumentRecord, dir: string, ctx: JobContext) => Promise<Record<string, unknown>>,
  admit?: (ctx: JobContext) => () => void,
): JobHandler<DocumentStageType> {
  const type = `document.${name}` as const;
  const attempts = jobCatalog[type].defaults.attempts;
  return async (payload, ctx) => {
    const doc = await loadLiveDocument(deps.store, payload.document_id, payload.collection_id, ctx.tenant);
    const previous = STAGES[STAGES.indexOf(name) - 1];
    if (previous && !stageDone(doc, previous)) {
      const error = { message: `The ${previous} stage failed.`, code: 'stage_failed' };
      await deps.store.markFailed(doc.id, error);
      throw permanent(error.code, error.message);
    }
    if (stageDone(doc, name)) return { document_id: doc.id, stage: name, resumed: true };
    // Before the document shows as processing: a deferred job is still waiting its turn.
    const release = admit?.(ctx);
    try {
      return await runStage(doc, ctx);
    } finally {
      release?.();
    }
  };

  async function runStage(doc: DocumentRecord, ctx: JobContext) {
    await deps.store.updateDocument(doc.id, { state: 'processing', stage: name });
    await deps.progress(doc, { stage: name }, { flush: true });
    const dir = deps.blobs.dir('docs', doc.id);
    try {
      const out = await run(doc, dir, ctx);
      await deps.store.updateDocument(doc.id, { stage_done: name });
      return { document_id: doc.id, stage: name, ...out };
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      // Terminal failures (the document's own fault, or gone) end the ingestion now; the others once out of attempts.
      const terminal = err instanceof UnrecoverableError;
      if (terminal || ctx.attempt >= attempts) {
        const error = terminal ? { message: err.message, code: jobErrorCode(err, 'stage_failed') } : { message: `${name} failed: ${(err as Error).message}`, code: 'stage_failed' };
        await deps.store.markFailed(doc.id, error).catch(() => {});
        ctx.log.warn({ documentId: doc.id, stage: name, error }, 'document ingestion failed');
      }
      throw err;
    }
  }
}

function stageDone(doc: DocumentRecord, stage: Stage): boolean {
  return doc.stage_done !== null && STAGES.indexOf(doc.stage_done) >= STAGES.indexOf(stage);
}
