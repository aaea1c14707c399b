import { resolveRanking } from '../../shared/documents/search-ranking.js';
import type { JobHandler } from '../jobs/job-handler.js';
import { CollectionGoneError, type CaughtUp } from '../index/collection-replicas.js';
import { permanent, type DocumentHandlerDeps } from './document-stage.js';

/**
 * Search: ranks the collection's chunks for the query (hybrid by default: the HNSW and BM25 rankings
 * fused in the index thread), with its filters. The query is embedded unless the search is lexical only.
 *
 * Redis is read twice per search, each read overlapping other work or other searches: the
 * collection's record with the log since the replica's position (read while the query is embedded,
 * and shared by searches arriving together), then the hits' chunk fields with their documents'
 * metadata in one script.
 */
export function createSearchDocumentsHandler(deps: DocumentHandlerDeps): JobHandler<'document.search'> {
  return async (payload, ctx) => {
    const cid = payload.collection_id;
    const ranking = resolveRanking(payload.ranking_options);
    // Started now, after the request arrived: the replica then holds every chunk acknowledged before it.
    const caughtUp = deps.replicas.catchUp(cid).then(
      (c): CaughtUp | 'gone' => c,
      (err: unknown) => {
        if (err instanceof CollectionGoneError) return 'gone' as const;
        throw err;
      },
    );
    // Awaited below; a failed embedding must not leave its rejection unhandled.
    void caughtUp.catch(() => {});
    const rows = deps.engine.tokenizer.tokenize([payload.query]);
    const vector = ranking.mode === 'lexical' ? undefined : (await deps.engine.batcher.embed(rows, ctx.signal))[0];
    const caught = await caughtUp;
    if (caught === 'gone' || caught.collection.tenant !== ctx.tenant) throw permanent('collection_not_found', 'The collection does not exist.');
    const found = await deps.replicas.searchCaughtUp(cid, {
      text: payload.query,
      vector,
      k: payload.top_k,
      ef: payload.ef,
      ranking,
      filter: payload.filter,
      attributeFilter: payload.attribute_filter,
    });
    const { chunks, metadata } = await deps.store.searchHits(cid, found.map((f) => f.label));
    const data = found.flatMap((f, i) => {
      const c = chunks[i];
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
