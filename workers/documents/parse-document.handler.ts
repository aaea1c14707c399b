import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { DeferJob, type JobHandler } from '../jobs/job-handler.js';
import { documentStage, permanent, type DocumentHandlerDeps } from './document-stage.js';

/** How long a parse job past its tenant's share waits before it is offered again (plus jitter). */
const DEFER_MS = 1000;

/** Parse: the source file to pages of text (pages.json) in a parse process, OCR included; a tenant past its parse slots waits its turn. */
export function createParseDocumentHandler(deps: DocumentHandlerDeps): JobHandler<'document.parse'> {
  return documentStage(
    deps,
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
      await deps.blobs.write('docs', doc.id, 'pages.json', JSON.stringify(pages));
      await deps.progress(doc, { stage: 'parse', pages_done: pages.length, pages_total: pages.length }, { flush: true });
      await deps.store.updateDocument(doc.id, { pages_total: pages.length, pages_done: pages.length });
      return { pages: pages.length, ocr_pages: stats.ocr_pages, blank_pages: stats.blank_pages, ocr_ms: Math.round(stats.ocr_ms) };
    },
    (ctx) => {
      const release = deps.parseSlots.tryAcquire(ctx.tenant);
      if (!release) throw new DeferJob(DEFER_MS + Math.floor(Math.random() * 500), `tenant already has ${deps.parseSlots.perTenant} documents parsing on this worker`);
      return release;
    },
  );
}
