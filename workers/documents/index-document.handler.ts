import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobHandler } from '../jobs/job-handler.js';
import type { Chunk } from './chunker.js';
import { documentStage, type DocumentHandlerDeps } from './document-stage.js';

/** Chunks committed per Redis transaction. */
const COMMIT_BATCH = 128;

/** Index: commits the chunks and their vectors to the collection, resuming after those a killed attempt already committed. */
export function createIndexDocumentHandler(deps: DocumentHandlerDeps): JobHandler<'document.index'> {
  return documentStage(deps, 'index', async (doc, dir, ctx) => {
    const chunks = JSON.parse(await readFile(path.join(dir, 'chunks.json'), 'utf8')) as Chunk[];
    const raw = await readFile(path.join(dir, 'vectors.f32'));
    const dims = deps.engine.dimensions;
    const vectors = new Float32Array(raw.byteLength / 4);
    new Uint8Array(vectors.buffer).set(raw);
    if (vectors.length !== chunks.length * dims) throw new Error('vectors.f32 does not match chunks.json; embedding again');
    await deps.replicas.withWriterLease(doc.cid, ctx.signal, async () => {
      // Resume after the chunks a killed attempt already committed (they are acknowledged).
      let committed = (await deps.store.getDocument(doc.id))?.indexed ?? 0;
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
        await deps.store.commitChunks(doc, committed, batch);
        committed += batch.length;
        await deps.progress(doc, { stage: 'index', chunks_done: committed, chunks_total: chunks.length }).catch(() => {});
      }
    });
    await deps.store.updateDocument(doc.id, { state: 'ready', stage: 'done', chunks_done: chunks.length });
    await deps.progress(doc, { stage: 'done', chunks_done: chunks.length, chunks_total: chunks.length }, { flush: true });
    return { chunks: chunks.length };
  });
}
