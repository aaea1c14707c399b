import type { DocumentStore } from '../../shared/documents/document-store.js';
import type { Logger } from '../../shared/logger.js';
import type { JobHandler } from '../jobs/job-handler.js';
import type { KnowledgeSearch } from './chatbot.handler.js';

/**
 * The chatbot's knowledge base is the tenant's document collections: a search here is the same
 * `document.search` handler the search endpoint's jobs run, called in process.
 */
export function createKnowledgeSearch(deps: { store: DocumentStore; search: JobHandler<'document.search'>; model: string; log: Logger }): KnowledgeSearch {
  return async (tenant, collection, query, topK, signal) => {
    const collectionId = await deps.store.findCollection(tenant, collection);
    if (!collectionId) return [];
    const res = await deps.search(
      { collection_id: collectionId, model: deps.model, query, top_k: topK },
      { jobId: 'chatbot-knowledge', tenant, attempt: 1, log: deps.log, signal, reportProgress: async () => {} },
    );
    // Ranked by the hybrid search; the score kept is the cosine similarity, which bots' knowledge_threshold is set against.
    return res.data.map((h) => ({ document_id: h.document_id, page: h.page ?? null, score: h.vector_score ?? h.score, text: h.text }));
  };
}
