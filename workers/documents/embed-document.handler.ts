import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { JobHandler } from '../jobs/job-handler.js';
import type { Chunk } from './chunker.js';
import { documentStage, type DocumentHandlerDeps } from './document-stage.js';

/** Chunks embedded per batcher call (progress is reported after each). */
const EMBED_SLICE = 64;
/** Embed: chunks to vectors (vectors.f32), through the embedding model's batcher like any other text. */
export function createEmbedDocumentHandler(deps: DocumentHandlerDeps): JobHandler<'document.embed'> {
  return documentStage(deps, 'embed', async (doc, dir, ctx) => {
    const chunks = JSON.parse(await readFile(path.join(dir, 'chunks.json'), 'utf8')) as Chunk[];
    const dims = deps.engine.dimensions;
    const vectors = new Float32Array(chunks.length * dims);
    let done = 0;
    const slices: Promise<void>[] = [];
    for (let i = 0; i < chunks.length; i += EMBED_SLICE) {
      const slice = chunks.slice(i, i + EMBED_SLICE);
      // Slice by slice, yielding in between, as in the chunk stage: a long document's chunks take
      // seconds to tokenize on this thread, which must keep renewing its jobs' locks meanwhile.
      if (i > 0) await yieldToLoop();
      const rows = deps.engine.tokenizer.tokenize(slice.map((c) => c.text));
      slices.push(
        deps.engine.batcher.embed(rows, ctx.signal).then(async (vs) => {
          vs.forEach((v, j) => vectors.set(v, (i + j) * dims));
          done += slice.length;
          await deps.progress(doc, { stage: 'embed', chunks_done: done, chunks_total: chunks.length }).catch(() => {});
        }),
      );
    }
    await Promise.all(slices);
    await deps.blobs.write('docs', doc.id, 'vectors.f32', new Uint8Array(vectors.buffer));
    await deps.progress(doc, { stage: 'embed', chunks_done: chunks.length, chunks_total: chunks.length }, { flush: true });
    return { chunks: chunks.length, dimensions: dims };
  });
}
