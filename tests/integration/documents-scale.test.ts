import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadSentences } from '../../bench/corpus.js';
import { textPdf, uploadDocument } from '../helpers/documents.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Scale-out: two worker processes, each with its own index folder (no shared disk for indexes),
 * one killed with SIGKILL in the middle of ingestion. Every document still finishes, and searches
 * answered by any worker, including a fresh one with no snapshot at all, see every committed chunk
 * exactly once.
 */
describe('documents with several workers, one killed mid-ingestion', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  const DOCS = 6;
  const PAGES = 24;

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      workers: 0,
      waitReady: false,
      env: {
        DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-docs-')),
        WORKER_LOCK_DURATION_MS: '2000',
        WORKER_STALLED_INTERVAL_MS: '1000',
        INDEX_SNAPSHOT_EVERY: '200',
      },
    });
    await svc.startWorker({ INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-index-a-')) });
    await svc.startWorker({ INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-index-b-')) });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const getDoc = async (id: string) => (await fetch(`${svc.baseUrl}/v1/documents/${id}`, { headers: authHeaders() })).json() as Promise<any>;

  /** Every chunk of a document, through search (filtered to the document, asking for more than it has). */
  const chunksFound = async (docNo: number, expected: number) => {
    const r = await postJson(svc.baseUrl, '/v1/collections/scale/search', { query: `document number ${docNo}`, top_k: Math.min(100, expected + 5), filter: { doc: docNo }, ef: 400 });
    assert.equal(r.status, 200, r.text);
    return r.json.data.map((h: any) => h.chunk as number).sort((a: number, b: number) => a - b);
  };

  test('all documents finish, no chunk is lost or duplicated, and every worker’s search sees them all', async () => {
    // Short sentences only: the corpus is the prose of whatever READMEs node_modules holds, and a
    // document must stay under search's top_k ceiling (100) for one search to list all its chunks.
    const sentences = loadSentences(DOCS * PAGES * 8 * 4)
      .filter((s) => s.split(' ').length <= 16)
      .slice(0, DOCS * PAGES * 8);
    assert.equal(sentences.length, DOCS * PAGES * 8, 'enough short sentences in the corpus');
    const uploads: any[] = [];
    for (let d = 0; d < DOCS; d++) {
      const pages = Array.from({ length: PAGES }, (_, p) => sentences.slice((d * PAGES + p) * 8, (d * PAGES + p + 1) * 8).join(' '));
      const u = await uploadDocument(svc.baseUrl, await textPdf(pages), { collection: 'scale', filename: `doc-${d}.pdf`, metadata: { doc: d } });
      assert.equal(u.status, 202, JSON.stringify(u.json));
      uploads.push(u.json);
    }
    // Kill the first worker once ingestion is well under way.
    await waitFor('ingestion under way', async () => {
      const docs = await Promise.all(uploads.map((u) => getDoc(u.id)));
      const underWay = docs.some((d) => d.stage === 'embed' || d.stage === 'index' || d.status === 'ready');
      return underWay && docs.some((d) => d.status !== 'ready') ? true : undefined;
    }, 60_000);
    const victim = svc.workers[0]!;
    victim.child.kill('SIGKILL');
    await new Promise((r) => victim.child.once('exit', r));

    const done = await Promise.all(
      uploads.map((u) =>
        waitFor(`document ${u.id} ready`, async () => {
          const d = await getDoc(u.id);
          if (d.status === 'failed') throw new Error(`failed: ${JSON.stringify(d.error)}`);
          return d.status === 'ready' ? d : undefined;
        }, 180_000, () => svc.workers[1]!.output().slice(-3000)),
      ),
    );
    for (const d of done) assert.ok(d.chunks > 0 && d.chunks === d.progress.chunks_total, JSON.stringify(d));
    for (const d of done) assert.ok(d.chunks <= 95, `document ${d.id} has ${d.chunks} chunks: more than one search can list`);

    // The surviving worker answers every search now.
    for (let d = 0; d < DOCS; d++) {
      assert.deepEqual(await chunksFound(d, done[d].chunks), Array.from({ length: done[d].chunks }, (_, i) => i), `document ${d}`);
    }

    // A fresh worker with an empty index folder rebuilds every collection from the log alone.
    await svc.startWorker({ INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-index-c-')) });
    const survivor = svc.workers[1]!;
    await survivor.stop('SIGTERM');
    for (let d = 0; d < DOCS; d++) {
      assert.deepEqual(await chunksFound(d, done[d].chunks), Array.from({ length: done[d].chunks }, (_, i) => i), `document ${d} on the fresh worker`);
    }
  });
});
