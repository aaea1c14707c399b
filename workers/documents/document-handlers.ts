import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import type { DocumentJobType, DocumentStageType } from '../../shared/documents/document-jobs.js';
import { DocumentStoreError, type DocumentStore } from '../../shared/documents/document-store.js';
import { STAGES, type DocumentRecord, type Stage } from '../../shared/documents/documents.js';
import { jobCatalog } from '../../shared/jobs/job-catalog.js';
import type { EmbeddingEngine } from '../embeddings/embedding-engine.js';
import type { CollectionReplicas } from '../index/collection-replicas.js';
import { CollectionGoneError } from '../index/collection-replicas.js';
import { DeferJob, type JobContext, type JobHandler } from '../jobs/job-handler.js';
import type { Chunk, Chunker } from './chunker.js';
import { ParseFailure, type ParseJob, type ParseOutcome } from './parse-pool.js';
import type { ParsedPage, ParseLimits } from './parse-process.protocol.js';
import type { TenantSlots } from './tenant-slots.js';

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
  documentsDir: string;
  limits: ParseLimits;
  ocr: boolean;
  /** Parse jobs of one tenant this worker runs at once (the rest are deferred). */
  parseSlots: TenantSlots;
  progress: ProgressSink;
}

/** How long a parse job past its tenant's share waits before it is offered again (plus jitter). */
const DEFER_MS = 1000;

/** Chunks embedded per batcher call (progress is reported after each). */
const EMBED_SLICE = 64;
/** Chunks committed per Redis transaction. */
const COMMIT_BATCH = 128;

/** A stage failure the document is to blame for: not retried, shown to the client as it is. */
function permanent(code: string, message: string): UnrecoverableError {
  return Object.assign(new UnrecoverableError(message), { code });
}

export function documentDir(documentsDir: string, id: string): string {
  return path.join(documentsDir, 'docs', id);
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/**
 * Handlers of the ingestion flow's jobs and of search. Each stage reads the previous stage's output
 * file from the document's folder and writes its own atomically, so a retried stage (or one taken
 * over by another worker after a crash) starts from the last finished stage. The document record
 * says which stage finished last; a stage whose predecessor failed fails with that reason.
 */
export function createDocumentHandlers(deps: DocumentHandlerDeps): DocumentHandlers {
  const { store, replicas, engine } = deps;

  const stage = (
    name: Stage,
    run: (doc: DocumentRecord, dir: string, ctx: JobContext) => Promise<Record<string, unknown>>,
    admit?: (ctx: JobContext) => () => void,
  ): JobHandler<DocumentStageType> => {
    const type = `document.${name}` as const;
    const attempts = (jobCatalog[type].defaults as { attempts: number }).attempts;
    return async (payload, ctx) => {
      const doc = await loadLiveDocument(payload.document_id, payload.collection_id, ctx.tenant);
      const previous = STAGES[STAGES.indexOf(name) - 1];
      if (previous && !stageDone(doc, previous)) {
        const error = { message: `The ${previous} stage failed.`, code: 'stage_failed' };
        await store.markFailed(doc.id, error);
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
      await store.updateDocument(doc.id, { state: 'processing', stage: name });
      await deps.progress(doc, { stage: name }, { flush: true });
      const dir = documentDir(deps.documentsDir, doc.id);
      try {
        const out = await run(doc, dir, ctx);
        await store.updateDocument(doc.id, { stage_done: name });
        return { document_id: doc.id, stage: name, ...out };
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        const known = toPermanent(err);
        const final = known !== undefined || ctx.attempt >= attempts;
        if (final) {
          const error = known ? { message: known.message, code: (known as { code?: string }).code ?? 'stage_failed' } : { message: `${name} failed: ${(err as Error).message}`, code: 'stage_failed' };
          await store.markFailed(doc.id, error).catch(() => {});
          ctx.log.warn({ documentId: doc.id, stage: name, error }, 'document ingestion failed');
        }
        throw known ?? err;
      }
    }
  };

  async function loadLiveDocument(id: string, cid: string, tenant: string): Promise<DocumentRecord> {
    const doc = await store.getDocument(id);
    if (!doc || doc.tenant !== tenant || doc.cid !== cid) throw permanent('document_deleted', 'The document does not exist (it was deleted).');
    if (doc.state === 'deleted') throw permanent('document_deleted', 'The document was deleted.');
    if (doc.state === 'failed') throw permanent(doc.error?.code ?? 'stage_failed', doc.error?.message ?? 'The document failed to ingest.');
    return doc;
  }

  const parse = stage(
    'parse',
    async (doc, dir, ctx) => {
      await mkdir(dir, { recursive: true });
      let lastReport = 0;
      const { pages, stats } = await deps.parser.parse(
        { docId: doc.id, tenant: doc.tenant, kind: doc.kind, path: path.join(dir, 'source'), workDir: dir, ocr: deps.ocr, limits: deps.limits },
        {
          signal: ctx.signal,
          onProgress: (done, total) => {
            const now = Date.now();
            if (done < total && now - lastReport < 200) return;
            lastReport = now;
            void deps.progress(doc, { stage: 'parse', pages_done: done, pages_total: total }).catch(() => {});
          },
        },
      );
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const chars = pages.reduce((n, p) => n + p.text.trim().length, 0);
      if (chars === 0) {
        const blank = stats.blank_pages > 0 ? ` ${stats.blank_pages} of its ${pages.length} page${pages.length === 1 ? ' is' : 's are'} blank.` : '';
        throw permanent(
          'no_text',
          doc.kind === 'png' || doc.kind === 'jpeg' ? 'No text could be read from the image.' : `The document contains no text (nothing to index).${blank}`,
        );
      }
      await writeAtomic(path.join(dir, 'pages.json'), JSON.stringify(pages));
      await deps.progress(doc, { stage: 'parse', pages_done: pages.length, pages_total: pages.length }, { flush: true });
      await store.updateDocument(doc.id, { pages_total: pages.length, pages_done: pages.length });
      return { pages: pages.length, ocr_pages: stats.ocr_pages, blank_pages: stats.blank_pages, ocr_ms: Math.round(stats.ocr_ms) };
    },
    (ctx) => {
      const release = deps.parseSlots.tryAcquire(ctx.tenant);
      if (!release) throw new DeferJob(DEFER_MS + Math.floor(Math.random() * 500), `tenant already has ${deps.parseSlots.perTenant} documents parsing on this worker`);
      return release;
    },
  );

  const chunk = stage('chunk', async (doc, dir) => {
    const pages = JSON.parse(await readFile(path.join(dir, 'pages.json'), 'utf8')) as ParsedPage[];
    const chunks: Chunk[] = [];
    for (const p of pages) {
      // Page by page, yielding in between: tokenizing runs on this thread.
      for (const c of deps.chunker.chunk([p])) chunks.push({ ...c, index: chunks.length });
      await yieldToLoop();
    }
    await writeAtomic(path.join(dir, 'chunks.json'), JSON.stringify(chunks));
    await store.updateDocument(doc.id, { chunks_total: chunks.length });
    await deps.progress(doc, { stage: 'chunk', chunks_total: chunks.length, chunks_done: 0 }, { flush: true });
    return { chunks: chunks.length };
  });

  const embed = stage('embed', async (doc, dir, ctx) => {
    const chunks = JSON.parse(await readFile(path.join(dir, 'chunks.json'), 'utf8')) as Chunk[];
    const dims = engine.dimensions;
    const vectors = new Float32Array(chunks.length * dims);
    let done = 0;
    const slices: Promise<void>[] = [];
    for (let i = 0; i < chunks.length; i += EMBED_SLICE) {
      const slice = chunks.slice(i, i + EMBED_SLICE);
      // Slice by slice, yielding in between, as in the chunk stage: a long document's chunks take
      // seconds to tokenize on this thread, which must keep renewing its jobs' locks meanwhile.
      if (i > 0) await yieldToLoop();
      const rows = engine.tokenizer.tokenize(slice.map((c) => c.text));
      slices.push(
        engine.batcher.embed(rows, ctx.signal).then(async (vs) => {
          vs.forEach((v, j) => vectors.set(v, (i + j) * dims));
          done += slice.length;
          await deps.progress(doc, { stage: 'embed', chunks_done: done, chunks_total: chunks.length }).catch(() => {});
        }),
      );
    }
    await Promise.all(slices);
    await writeAtomic(path.join(dir, 'vectors.f32'), new Uint8Array(vectors.buffer));
    await deps.progress(doc, { stage: 'embed', chunks_done: chunks.length, chunks_total: chunks.length }, { flush: true });
    return { chunks: chunks.length, dimensions: dims };
  });

  const index = stage('index', async (doc, dir, ctx) => {
    const chunks = JSON.parse(await readFile(path.join(dir, 'chunks.json'), 'utf8')) as Chunk[];
    const raw = await readFile(path.join(dir, 'vectors.f32'));
    const dims = engine.dimensions;
    const vectors = new Float32Array(raw.byteLength / 4);
    new Uint8Array(vectors.buffer).set(raw);
    if (vectors.length !== chunks.length * dims) throw new Error('vectors.f32 does not match chunks.json; embedding again');
    await replicas.withWriterLease(doc.cid, ctx.signal, async () => {
      // Resume after the chunks a killed attempt already committed (they are acknowledged).
      let committed = (await store.getDocument(doc.id))?.indexed ?? 0;
      while (committed < chunks.length) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const batch = chunks.slice(committed, committed + COMMIT_BATCH).map((c) => ({
          index: c.index,
          page: c.page,
          start: c.start,
          end: c.end,
          text: c.text,
          vector: vectors.subarray(c.index * dims, (c.index + 1) * dims),
        }));
        await store.commitChunks(doc, committed, batch);
        committed += batch.length;
        await deps.progress(doc, { stage: 'index', chunks_done: committed, chunks_total: chunks.length }).catch(() => {});
      }
    });
    await store.updateDocument(doc.id, { state: 'ready', stage: 'done', chunks_done: chunks.length });
    await deps.progress(doc, { stage: 'done', chunks_done: chunks.length, chunks_total: chunks.length }, { flush: true });
    return { chunks: chunks.length };
  });

  const ingest: JobHandler<'document.ingest'> = async (payload, ctx) => {
    const doc = await store.getDocument(payload.document_id);
    const dir = documentDir(deps.documentsDir, payload.document_id);
    if (!doc || doc.tenant !== ctx.tenant || doc.state === 'deleted') {
      await rm(dir, { recursive: true, force: true });
      throw permanent('document_deleted', 'The document was deleted.');
    }
    if (doc.state !== 'ready') {
      const error = doc.error ?? { message: 'Ingestion did not finish (a stage failed).', code: 'stage_failed' };
      if (doc.state !== 'failed') await store.markFailed(doc.id, error);
      await rm(dir, { recursive: true, force: true });
      throw permanent(error.code, error.message);
    }
    // Stage files are only needed while ingesting: the chunks now live in the collection.
    await rm(dir, { recursive: true, force: true });
    return { document_id: doc.id, status: 'ready', pages: doc.pages_total ?? 0, chunks: doc.indexed };
  };

  const search: JobHandler<'document.search'> = async (payload, ctx) => {
    const info = await store.collectionInfo(payload.collection_id);
    if (!info || info.tenant !== ctx.tenant) throw permanent('collection_not_found', 'The collection does not exist.');
    const rows = engine.tokenizer.tokenize([payload.query]);
    const [vector] = await engine.batcher.embed(rows, ctx.signal);
    let found: { label: number; score: number }[];
    try {
      found = await replicas.search(payload.collection_id, vector!, payload.top_k, payload.ef, payload.filter);
    } catch (err) {
      if (err instanceof CollectionGoneError) throw permanent('collection_not_found', 'The collection does not exist.');
      throw err;
    }
    const fields = await store.chunkFields(payload.collection_id, found.map((f) => f.label));
    const docIds = [...new Set(fields.flatMap((f) => (f ? [f.doc] : [])))];
    const pipe = store.redis.pipeline();
    for (const d of docIds) pipe.hget(store.keys.document(d), 'metadata');
    const metaRows = (await pipe.exec()) ?? [];
    const metadata = new Map(docIds.map((d, i) => [d, JSON.parse((metaRows[i]?.[1] as string | null) || '{}') as Record<string, unknown>]));
    const data = found.flatMap((f, i) => {
      const c = fields[i];
      // Deleted between the index search and this read: it is gone, so it is not a hit.
      if (!c) return [];
      return [{ score: f.score, text: c.text, document_id: c.doc, chunk: c.idx, page: c.page, char_start: c.start, char_end: c.end, metadata: metadata.get(c.doc) ?? {} }];
    });
    return { object: 'list' as const, data, model: engine.model.id, usage: { prompt_tokens: rows[0]!.length } };
  };

  return {
    'document.ingest': ingest,
    'document.parse': parse,
    'document.chunk': chunk,
    'document.embed': embed,
    'document.index': index,
    'document.search': search,
  };
}

function stageDone(doc: DocumentRecord, stage: Stage): boolean {
  return doc.stage_done !== null && STAGES.indexOf(doc.stage_done) >= STAGES.indexOf(stage);
}

function toPermanent(err: unknown): Error | undefined {
  if (err instanceof UnrecoverableError) return err;
  if (err instanceof ParseFailure && err.permanent) return permanent(err.code, err.message);
  if (err instanceof DocumentStoreError && err.code !== 'stale_commit') return permanent(err.code, err.message);
  if (err instanceof CollectionGoneError) return permanent('collection_deleted', 'The collection was deleted during ingestion.');
  return undefined;
}
