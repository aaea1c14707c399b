import { resolveRanking } from '../../shared/documents/search-ranking.js';
import type { JobHandler } from '../jobs/job-handler.js';
import { CollectionGoneError } from '../index/collection-replicas.js';
import { permanent, type DocumentHandlerDeps } from './document-stage.js';

/**
 * Search: ranks the collection's chunks for the query (hybrid by default: the HNSW and BM25 rankings
 * fused in the index thread), with its filters. The query is embedded unless the search is lexical only.
 */
export function createSearchDocumentsHandler(deps: DocumentHandlerDeps): JobHandler<'document.search'> {
  return async (payload, ctx) => {
    const info = await deps.store.collectionInfo(payload.collection_id);
    if (!info || info.tenant !== ctx.tenant) throw permanent('collection_not_found', 'The collection does not exist.');
    const ranking = resolveRanking(payload.ranking_options);
    const rows = deps.engine.tokenizer.tokenize([payload.query]);
    const vector = ranking.mode === 'lexical' ? undefined : (await deps.engine.batcher.embed(rows, ctx.signal))[0];
    let found: Awaited<ReturnType<typeof deps.replicas.search>>;
    try {
      found = await deps.replicas.search(payload.collection_id, {
        text: payload.query,
        vector,
        k: payload.top_k,
        ef: payload.ef,
        ranking,
        filter: payload.filter,
        attributeFilter: payload.attribute_filter,
      });
    } catch (err) {
      if (err instanceof CollectionGoneError) throw permanent('collection_not_found', 'The collection does not exist.');
      throw err;
    }
    const fields = await deps.store.chunkFields(payload.collection_id, found.map((f) => f.label));
    const docIds = [...new Set(fields.flatMap((f) => (f ? [f.doc] : [])))];
    const pipe = deps.store.redis.pipeline();
    for (const d of docIds) pipe.hget(deps.store.keys.document(d), 'metadata');
    const metaRows = (await pipe.exec()) ?? [];
    const metadata = new Map(docIds.map((d, i) => [d, JSON.parse((metaRows[i]?.[1] as string | null) || '{}') as Record<string, unknown>]));
    const data = found.flatMap((f, i) => {
      const c = fields[i];
      // Deleted between the index search and this read: it is gone, so it is not a hit.
      if (!c) return [];
      return [
        {
          score: f.score,
          vector_score: f.vectorScore,
          lexical_score: f.lexicalScore,
          text: c.text,
          document_id: c.doc,
          chunk: c.idx,
          page: c.page,
          char_start: c.start,
          char_end: c.end,
          metadata: metadata.get(c.doc) ?? {},
        },
      ];
    });
    // A lexical search embeds nothing; its usage counts the query's tokens all the same, as the model would see them.
    return { object: 'list' as const, data, model: deps.engine.model.id, usage: { prompt_tokens: rows[0]!.length } };
  };
}
