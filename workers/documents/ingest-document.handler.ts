import type { JobHandler } from '../jobs/job-handler.js';
import { permanent, type DocumentHandlerDeps } from './document-stage.js';

/** Ingest: the flow's parent job, the one the client follows; it runs after every stage and reports how the ingestion ended. */
export function createIngestDocumentHandler(deps: DocumentHandlerDeps): JobHandler<'document.ingest'> {
  return async (payload, ctx) => {
    const doc = await deps.store.getDocument(payload.document_id);
    const remove = () => deps.blobs.remove('docs', payload.document_id);
    if (!doc || doc.tenant !== ctx.tenant || doc.state === 'deleted') {
      await remove();
      throw permanent('document_deleted', 'The document was deleted.');
    }
    if (doc.state !== 'ready') {
      const error = doc.error ?? { message: 'Ingestion did not finish (a stage failed).', code: 'stage_failed' };
      if (doc.state !== 'failed') await deps.store.markFailed(doc.id, error);
      await remove();
      throw permanent(error.code, error.message);
    }
    // Stage files are only needed while ingesting: the chunks now live in the collection.
    await remove();
    return { document_id: doc.id, status: 'ready', pages: doc.pages_total ?? 0, chunks: doc.indexed };
  };
}
