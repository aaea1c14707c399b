import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { uploadDocument, waitDocumentReady } from '../helpers/documents.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Hybrid retrieval through the real service: an identifier the embedding model cannot tell from its
 * neighbours is found by the lexical (BM25) index; deletes reach the lexical index; and the lexical
 * index comes back from the worker's snapshot after a restart.
 */
const RUNBOOK = {
  quota: 'Error E4711-ZQ means the tenant has used up its disk quota. Free some space and the upload resumes by itself.',
  codes: 'An error code tells you which component failed, and what the error means; the appendix lists every error code with its meaning.',
  restart: 'Most errors clear up after a restart: stop the service, wait a few seconds, then start it again and watch the error log.',
  logs: 'When the service reports an error, read the error message first, then the log of the worker that ran the failing job.',
  disk: 'Disk space is checked every minute; when a volume is nearly full, an alert goes to the operators on call.',
  signals: 'On SIGTERM a worker stops taking jobs, finishes the ones it holds and exits; a second signal makes it exit at once.',
};
const QUERY = 'What does error E4711-ZQ mean?';

describe('hybrid search', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  const indexDir = mkdtempSync(path.join(tmpdir(), 'qi-index-hybrid-'));
  const ids: Record<string, string> = {};

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: { DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-docs-hybrid-')), INDEX_DIR: indexDir, INDEX_SNAPSHOT_EVERY: '1' },
    });
    for (const [name, text] of Object.entries(RUNBOOK)) {
      const up = await uploadDocument(svc.baseUrl, text, { collection: 'runbook', filename: `${name}.txt`, metadata: { section: name } });
      assert.equal(up.status, 202, JSON.stringify(up.json));
      ids[name] = up.json.id;
    }
    for (const id of Object.values(ids)) await waitDocumentReady(svc.baseUrl, id);
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const search = async (query: string, ranker?: string, extra: Record<string, unknown> = {}) => {
    const r = await postJson(svc.baseUrl, '/v1/collections/runbook/search', { query, top_k: 6, ...(ranker ? { ranking_options: { ranker } } : {}), ...extra });
    assert.equal(r.status, 200, r.text);
    return r.json.data as { document_id: string; score: number; vector_score: number | null; lexical_score: number | null; text: string }[];
  };

  test('an exact identifier ranks its chunk first in hybrid and lexical search, where vector search does not', async () => {
    const vector = await search(QUERY, 'vector');
    assert.notEqual(vector[0]?.document_id, ids.quota, `vector-only puts another chunk first: ${vector.map((h) => h.text.slice(0, 30)).join(' | ')}`);
    for (const ranker of [undefined, 'hybrid', 'lexical']) {
      const hits = await search(QUERY, ranker);
      assert.equal(hits[0]?.document_id, ids.quota, `${ranker ?? 'default'}: ${hits.map((h) => h.text.slice(0, 30)).join(' | ')}`);
    }
    const hybrid = await search(QUERY);
    const top = hybrid[0]!;
    assert.ok(top.lexical_score! > 0, 'the top hybrid hit matched lexically');
    assert.ok(top.vector_score !== null && top.vector_score > -1 && top.vector_score <= 1.0001, 'and carries its cosine similarity too');
    assert.ok(top.score > 0 && top.score <= 1);
    // Scores of each mode: cosine for vector, relative BM25 for lexical (the best hit is 1).
    assert.equal((await search(QUERY, 'lexical'))[0]!.score, 1);
    assert.ok(Math.abs(vector[0]!.score - vector[0]!.vector_score!) < 1e-6);
    // A lexical search for words in no chunk finds nothing; a score threshold cuts the rest.
    assert.deepEqual(await search('xylophone quartz', 'lexical'), []);
    const cut = await search(QUERY, 'hybrid', { ranking_options: { ranker: 'hybrid', score_threshold: 0.9 } });
    assert.ok(cut.length < hybrid.length && cut.every((h) => h.score >= 0.9));
    // Every fusion the request can choose keeps the identifier's chunk first.
    for (const options of [{ fusion: 'rrf' }, { rrf_k: 5 }, { fusion: 'convex', normalization: 'z_score' }, { fusion: 'convex', hybrid_search: { embedding_weight: 1, text_weight: 1 } }]) {
      const hits = await search(QUERY, undefined, { ranking_options: { ranker: 'hybrid', ...options } });
      assert.equal(hits[0]?.document_id, ids.quota, `${JSON.stringify(options)}: ${hits.map((h) => h.text.slice(0, 30)).join(' | ')}`);
      assert.ok(hits.every((h) => h.score >= 0 && h.score <= 1));
    }
  });

  test('a query sharing no word with any chunk still gets the vector ranking from hybrid search', async () => {
    const PARAPHRASE = 'storage almost exhausted';
    assert.deepEqual(await search(PARAPHRASE, 'lexical'), [], 'no chunk contains its words');
    const hybrid = await search(PARAPHRASE);
    const vector = await search(PARAPHRASE, 'vector');
    assert.equal(hybrid.length, 6);
    assert.ok(hybrid.every((h) => h.lexical_score === null));
    // Without a term match the lexical half of a convex score is 0, so no hit scores as a perfect match.
    assert.ok(hybrid.every((h) => h.score <= 0.5), hybrid.map((h) => h.score).join(' '));
    assert.deepEqual(
      hybrid.map((h) => h.document_id),
      vector.map((h) => h.document_id),
      'with BM25 silent, the order is the vector\'s',
    );
  });

  test('filters apply to both rankings; bad ranking options are a 400', async () => {
    const filtered = await search(QUERY, 'hybrid', { filter: { section: 'signals' } });
    assert.deepEqual(
      filtered.map((h) => h.document_id),
      [ids.signals],
    );
    const lexicalFiltered = await search('SIGTERM', 'lexical', { filter: { section: 'quota' } });
    assert.deepEqual(lexicalFiltered, []);
    // OpenAI-style attribute filters (the vector stores' `filters`): comparison and compound.
    const inFilter = await search(QUERY, 'hybrid', { filters: { type: 'in', key: 'section', value: ['disk', 'logs'] } });
    assert.deepEqual(new Set(inFilter.map((h) => h.document_id)), new Set([ids.disk, ids.logs]));
    const compound = await search(QUERY, 'lexical', {
      filters: { type: 'or', filters: [{ type: 'eq', key: 'section', value: 'quota' }, { type: 'and', filters: [{ type: 'ne', key: 'section', value: 'quota' }, { type: 'eq', key: 'section', value: 'codes' }] }] },
    });
    assert.deepEqual(
      compound.map((h) => h.document_id),
      [ids.quota, ids.codes],
    );
    const badFilter = await postJson(svc.baseUrl, '/v1/collections/runbook/search', { query: QUERY, filters: { type: 'like', key: 'section', value: 'q%' } });
    assert.equal(badFilter.status, 400);
    const bad = await postJson(svc.baseUrl, '/v1/collections/runbook/search', { query: QUERY, ranking_options: { ranker: 'magic' } });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /ranker/);
    const badFusion = await postJson(svc.baseUrl, '/v1/collections/runbook/search', { query: QUERY, ranking_options: { fusion: 'borda' } });
    assert.equal(badFusion.status, 400);
    assert.match(badFusion.json.error.message, /fusion/);
  });

  test('deleting a document removes its chunks from the lexical index, and the lexical index survives a worker restart', async () => {
    const before = await search('SIGTERM', 'lexical');
    assert.equal(before[0]?.document_id, ids.signals);
    const del = await fetch(`${svc.baseUrl}/v1/documents/${ids.signals}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(del.status, 200);
    assert.deepEqual(await search('SIGTERM', 'lexical'), [], 'the deleted chunk is gone from the lexical index');

    // A clean stop snapshots the replica (HNSW and lexical files named by state.json).
    const old = svc.workers[0]!;
    await old.stop();
    const cidDirs = readdirSync(indexDir);
    assert.equal(cidDirs.length, 1);
    const files = readdirSync(path.join(indexDir, cidDirs[0]!));
    assert.ok(files.some((f) => /^lexical-.*\.json$/.test(f)), `snapshot files: ${files.join(', ')}`);
    assert.ok(existsSync(path.join(indexDir, cidDirs[0]!, 'state.json')));

    const fresh = await svc.startWorker();
    const hits = await waitFor('search on the restarted worker', async () => {
      const r = await postJson(svc.baseUrl, '/v1/collections/runbook/search', { query: QUERY, top_k: 6, ranking_options: { ranker: 'lexical' } });
      return r.status === 200 ? (r.json.data as { document_id: string }[]) : undefined;
    });
    assert.equal(hits[0]?.document_id, ids.quota, 'the lexical index answers after the restart');
    assert.deepEqual(await search('SIGTERM', 'lexical'), [], 'and still without the deleted chunk');
    // It was loaded from the snapshot, with nothing left to replay from the log.
    assert.match(fresh.output(), /"fromSnapshot":true/);
  });
});
