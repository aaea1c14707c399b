import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { DocumentStore } from '../../shared/documents/document-store.js';
import type { DocumentRecord } from '../../shared/documents/documents.js';
import { resolveRanking } from '../../shared/documents/search-ranking.js';
import { createLogger } from '../../shared/logger.js';
import { CollectionReplicas } from '../../workers/index/collection-replicas.js';
import { startPrivateRedis } from '../helpers/redis.js';

/**
 * What a search reads from Redis before it asks its index replica (workers/index/collection-replicas.ts),
 * against a real Redis and a real index thread: concurrent searches share one read of the
 * collection's log, a search still sees every chunk acknowledged before it (even while another
 * catch-up is under way), and the hits' fields and their documents' metadata come back together.
 * Reads are counted with Redis's own command statistics.
 */
const DIMS = 8;
const TENANT = 'acme';

describe('search catch-up and hit reads', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let conn: Redis;
  let store: DocumentStore;
  let replicas: CollectionReplicas;
  let cid: string;

  /** A unit vector along one of the first four axes, so a search for that axis finds exactly its chunks first. */
  const axis = (i: number) => Float32Array.from({ length: DIMS }, (_, d) => (d === i ? 1 : 0));
  /** Distinct filler vectors in the other four dimensions (HNSW copes badly with many equal vectors). */
  const filler = (i: number) => Float32Array.from({ length: DIMS }, (_, d) => (d < 4 ? 0 : Math.sin(i * 7.1 + d * 1.3) + 1.5));

  async function addDocument(texts: string[], axes: (number | Float32Array)[], metadata: Record<string, string | number | boolean> = {}): Promise<{ doc: DocumentRecord; from: number }> {
    const now = Date.now();
    const doc: DocumentRecord = {
      id: randomUUID(),
      tenant: TENANT,
      collection: 'notes',
      cid,
      filename: 'notes.txt',
      kind: 'text',
      mime: 'text/plain',
      bytes: 1,
      sha256: randomUUID(),
      metadata,
      chunking: null,
      state: 'processing',
      stage: 'index',
      stage_done: 'embed',
      job_id: 'test',
      pages_total: 1,
      pages_done: 1,
      chunks_total: texts.length,
      chunks_done: texts.length,
      indexed: 0,
      ranges: [],
      error: null,
      created_at: now,
      updated_at: now,
    };
    await store.createDocument(doc);
    const { from } = await store.commitChunks(
      doc,
      0,
      texts.map((text, i) => ({ index: i, page: 1, start: i * 10, end: i * 10 + text.length, text, vector: typeof axes[i] === 'number' ? axis(axes[i] as number) : (axes[i] as Float32Array) })),
    );
    return { doc, from };
  }

  /** Calls of one Redis command since the statistics were last reset. */
  async function calls(command: string): Promise<number> {
    const info = await conn.info('commandstats');
    const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
    return m ? Number(m[1]) : 0;
  }

  const vectorSearch = (i: number) => replicas.searchCaughtUp(cid, { text: 'x', vector: axis(i), k: 10, ef: 1000, ranking: resolveRanking({ ranker: 'vector' }) });

  before(async () => {
    redis = await startPrivateRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    store = new DocumentStore(conn, `t${randomUUID().slice(0, 8)}`);
    cid = await store.ensureCollection(TENANT, 'notes', randomUUID(), 'use-lite');
    replicas = new CollectionReplicas({
      store,
      indexDir: mkdtempSync(path.join(tmpdir(), 'qi-index-catch-up-')),
      dims: DIMS,
      params: { m: 8, efConstruction: 50 },
      efSearch: 32,
      snapshotEvery: 1_000_000,
      snapshotSeconds: 1_000_000,
      workerId: 'test',
      log: createLogger({ level: 'silent', name: 'search-catch-up-test' }),
    });
    await addDocument(['first chunk', 'second chunk', 'third chunk'], [0, 1, 2]);
    const opened = await replicas.catchUp(cid);
    assert.equal(opened.applied, 3);
    assert.equal(opened.collection.tenant, TENANT);
  });

  after(async () => {
    await replicas?.close();
    conn?.disconnect();
    await redis?.cleanup();
  });

  test('concurrent catch-ups of one collection share one read of its log, and each sees what was committed before it', async () => {
    await addDocument(['fourth chunk', 'fifth chunk'], [3, 3]);
    await conn.config('RESETSTAT');
    const results = await Promise.all(Array.from({ length: 10 }, () => replicas.catchUp(cid)));
    // One catch-up for all ten: one MULTI (record + first log page); the page was short, so no second read.
    assert.equal(await calls('xrange'), 1);
    assert.equal(await calls('hgetall'), 1);
    for (const r of results) assert.equal(r.applied, 2, 'every caller saw the two new chunks');
    const hits = await vectorSearch(3);
    assert.equal(hits.filter((h) => h.score > 0.99).length, 2);

    // Nothing new: a catch-up is that one read and nothing else.
    await conn.config('RESETSTAT');
    assert.equal((await replicas.catchUp(cid)).applied, 0);
    assert.equal(await calls('xrange'), 1);
    assert.equal(await calls('hmget'), 0);
  });

  test('a catch-up asked for after a commit sees it, even when another catch-up had started before the commit', async () => {
    // A large document keeps the first catch-up busy applying it (several Redis reads and index thread
    // messages) while the commit below is acknowledged.
    const many = Array.from({ length: 400 }, (_, i) => `bulk chunk ${i}`);
    await addDocument(many, many.map((_, i) => filler(i)));
    const running = replicas.catchUp(cid);
    // Let the first catch-up start and send its read, so that it reads the log before the commit below.
    await new Promise((r) => setImmediate(r));
    const { from } = await addDocument(['a late chunk'], [2]);
    const later = await replicas.catchUp(cid);
    await running;
    const hits = await vectorSearch(2);
    assert.ok(
      hits.some((h) => h.label === from),
      `the chunk committed before the second catch-up is searchable (applied by the second: ${later.applied})`,
    );
  });

  test("the hits' chunk fields and their documents' metadata come back in one script; a deleted chunk is null", async () => {
    const kept = await addDocument(['kept one', 'kept two'], [1, 1], { team: 'blue', year: 2024 });
    const gone = await addDocument(['gone one'], [1], { team: 'red' });
    await store.deleteDocument(gone.doc);
    await conn.config('RESETSTAT');
    const { chunks, metadata } = await store.searchHits(cid, [kept.from + 1, gone.from, kept.from]);
    assert.equal((await calls('eval')) + (await calls('evalsha')), 1);
    assert.deepEqual(chunks[0], { doc: kept.doc.id, idx: 1, page: 1, start: 10, end: 18, text: 'kept two' });
    assert.equal(chunks[1], null);
    assert.equal(chunks[2]?.text, 'kept one');
    assert.deepEqual(metadata.get(kept.doc.id), { team: 'blue', year: 2024 });
    assert.equal(metadata.has(gone.doc.id), false, 'no metadata is read for a chunk that is gone');
    assert.deepEqual(await store.searchHits(cid, []), { chunks: [], metadata: new Map() });
  });

  test('a deleted collection is reported as gone by the catch-up', async () => {
    assert.ok(await store.deleteCollection(TENANT, 'notes', cid));
    await assert.rejects(replicas.catchUp(cid), (e: Error) => e.name === 'CollectionGoneError' || /deleted/.test(e.message));
  });
});
