import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { JobHandler } from '../jobs/job-handler.js';
import type { Chunk } from './chunker.js';
import { documentStage, type DocumentHandlerDeps } from './document-stage.js';
import type { ParsedPage } from './parse-process.protocol.js';

/** Chunk: pages to token-aware chunks with their page and offsets (chunks.json). */
export function createChunkDocumentHandler(deps: DocumentHandlerDeps): JobHandler<'document.chunk'> {
  return documentStage(deps, 'chunk', async (doc, dir) => {
    const pages = JSON.parse(await readFile(path.join(dir, 'pages.json'), 'utf8')) as ParsedPage[];
    const chunks: Chunk[] = [];
    for (const p of pages) {
      // Page by page, yielding in between: tokenizing runs on this thread.
      for (const c of deps.chunker.chunk([p], doc.chunking ? { maxTokens: doc.chunking.max_tokens, overlap: doc.chunking.overlap } : undefined)) chunks.push({ ...c, index: chunks.length });
      await yieldToLoop();
    }
    await deps.blobs.write('docs', doc.id, 'chunks.json', JSON.stringify(chunks));
    await deps.store.updateDocument(doc.id, { chunks_total: chunks.length });
    await deps.progress(doc, { stage: 'chunk', chunks_total: chunks.length, chunks_done: 0 }, { flush: true });
    return { chunks: chunks.length };
  });
}
