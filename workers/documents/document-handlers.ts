import { createChunkDocumentHandler } from './chunk-document.handler.js';
import type { DocumentHandlerDeps, DocumentHandlers } from './document-stage.js';
import { createEmbedDocumentHandler } from './embed-document.handler.js';
import { createIndexDocumentHandler } from './index-document.handler.js';
import { createIngestDocumentHandler } from './ingest-document.handler.js';
import { createParseDocumentHandler } from './parse-document.handler.js';
import { createSearchDocumentsHandler } from './search-documents.handler.js';

export type { DocumentHandlerDeps, DocumentHandlers, DocumentParser, DocumentProgress, ProgressSink } from './document-stage.js';

/** Handlers of the ingestion flow's jobs and of search, one file each (`*.handler.ts`). */
export function createDocumentHandlers(deps: DocumentHandlerDeps): DocumentHandlers {
  return {
    'document.ingest': createIngestDocumentHandler(deps),
    'document.parse': createParseDocumentHandler(deps),
    'document.chunk': createChunkDocumentHandler(deps),
    'document.embed': createEmbedDocumentHandler(deps),
    'document.index': createIndexDocumentHandler(deps),
    'document.search': createSearchDocumentsHandler(deps),
  };
}
