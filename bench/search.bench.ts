/**
 * npm run bench:search: search over ≥ 20,000 chunks of real text (sentences of the READMEs of the
 * installed npm packages, bench/corpus.ts, paired into distinct chunks):
 *   (1) recall@10 of the HNSW index (hnswlib-node, cosine, HNSW_M / HNSW_EF_CONSTRUCTION defaults)
 *       against exact brute force, at several ef values, with build time and raw searchKnn speed
 *       (skipped with BENCH_RECALL=0);
 *   (2) the same search three ways, side by side, at 1 and 8 concurrent callers, hybrid (the API's
 *       default) and vector-only:
 *       - in process (the baseline): the worker's own embedding engine (USE-Lite, model threads and
 *         batcher, so 8 callers share batches) and an index thread holding the same collection,
 *         replayed from the service's Redis: tokenize, embed, search;
 *       - through the API: POST /v1/collections/{name}/search (HTTP → API → BullMQ → worker:
 *         query embedding + index thread + chunk reads → reply);
 *       - through the API as OpenAI's vector store search (the official `openai` SDK, hybrid only);
 *     with API / baseline ratios of queries/s and p50. The collection is ingested once as files of
 *     one vector store, so all three search the same chunks.
 * Writes bench/results/search-<time>.json.  Env: BENCH_CHUNKS (20000), BENCH_QUERIES (300),
 * BENCH_SECONDS (8, per measurement), BENCH_RECALL (1).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import { Redis } from 'ioredis';
import OpenAI, { toFile } from 'openai';
import { Agent, setGlobalDispatcher } from 'undici';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { authHeaders, KEYS, ROOT, USE_LITE_DIR, startService, useLiteModel, writeModelsConfig } from '../tests/helpers/service.js';
import { DocumentStore } from '../shared/documents/document-store.js';
import { resolveRanking } from '../shared/documents/search-ranking.js';
import { createLogger } from '../shared/logger.js';
import { loadModelRegistry, type EmbeddingModelConfig } from '../shared/models/model-registry.js';
import { startEmbeddingEngine } from '../workers/embeddings/embedding-engine.js';
import { CollectionReplicas } from '../workers/index/collection-replicas.js';
import { createUseLiteSession } from '../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../workers/embeddings/use-lite/use-lite.tokenizer.js';
import { loadSentences, summarise } from './corpus.js';

const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 20_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const RECALL = process.env.BENCH_RECALL !== '0';
const M = 16;
const EF_CONSTRUCTION = 200;
const EFS = [16, 64, 256];
const log = (s: string) => console.log(s);
setGlobalDispatcher(new Agent({ connections: 64, keepAliveTimeout: 30_000 }));

const sentences = loadSentences(1e9);
const N = sentences.length;
/** Distinct chunk texts: two real sentences each, paired differently for every chunk. */
const chunkText = (k: number) => `${sentences[k % N]} ${sentences[(k * 7 + 13 + Math.floor(k / N)) % N]}`;
const queryText = (q: number) => sentences[(q * 37 + 5) % N]!.split(' ').slice(0, 10).join(' ');

async function embedAll(texts: string[]): Promise<Float32Array[]> {
  const tokenizer = await UseLiteTokenizer.load(USE_LITE_DIR);
  const session = await createUseLiteSession(USE_LITE_DIR, { intraOpThreads: 2, executionProviders: ['cpu'] });
  const rows = tokenizer.tokenize(texts);
  const order = rows.map((r, i) => ({ r, i })).sort((a, b) => a.r.length - b.r.length);
  const out: Float32Array[] = new Array(texts.length);
  for (let i = 0; i < order.length; i += 64) {
    const batch = order.slice(i, i + 64);
    const vs = await session.embed(batch.map((b) => b.r));
    batch.forEach((b, j) => (out[b.i] = vs[j]!));
  }
  await session.release();
  return out;
}

function exactTop(vectors: Float32Array[], q: Float32Array, k: number): number[] {
  const scores = new Float32Array(vectors.length);
  for (let i = 0; i < vectors.length; i++) {
    const v = vectors[i]!;
    let s = 0;
    for (let d = 0; d < v.length; d++) s += v[d]! * q[d]!;
    scores[i] = s;
  }
  return Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]!).slice(0, k);
}

interface Measured {
  qps: number;
  p50_ms: number;
  p99_ms: number;
  queries: number;
}

/** `clients` callers, each issuing its next query when its last one is answered, for SECONDS. */
async function measure(clients: number, run: (i: number) => Promise<void>): Promise<Measured> {
  const lat: number[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  let n = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const s = performance.now();
        await run(n++);
        lat.push(performance.now() - s);
      }
    }),
  );
  const sum = summarise(lat);
  return { qps: (lat.length / (performance.now() - started)) * 1000, p50_ms: sum.p50, p99_ms: sum.p99, queries: lat.length };
}

/** Sum and count of a histogram in the worker's /metrics, over the series whose labels contain `labels`. */
async function histogram(metricsUrl: string, name: string, labels: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const read = (suffix: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}_${suffix}{`) && l.includes(labels))
      .reduce((acc, l) => acc + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { sum: read('sum'), count: read('count') };
}

/** Where the API's time went during a measurement, from the worker's own histograms (deltas). */
async function workerShare(metricsUrl: string, run: () => Promise<Measured>): Promise<Measured & { breakdown: Record<string, number> }> {
  const names = [
    ['request_queue_time_seconds', 'queue="documents.search"'],
    ['request_run_seconds', 'queue="documents.search"'],
    ['embedding_batch_size', 'model="use-lite"'],
    ['embedding_batch_queue_seconds', 'model="use-lite"'],
    ['embedding_inference_seconds', 'model="use-lite"'],
  ] as const;
  const before = await Promise.all(names.map(([n, l]) => histogram(metricsUrl, n, l)));
  const m = await run();
  const after = await Promise.all(names.map(([n, l]) => histogram(metricsUrl, n, l)));
  const d = after.map((a, i) => ({ sum: a.sum - before[i]!.sum, count: a.count - before[i]!.count }));
  const mean = (i: number) => (d[i]!.count ? (d[i]!.sum / d[i]!.count) * 1000 : 0);
  const breakdown = {
    queue_wait_ms: mean(0),
    handler_ms: mean(1),
    embedding_batch_wait_ms: mean(3),
    embedding_run_ms: mean(4),
    queries_per_model_run: d[2]!.count ? d[2]!.sum / d[2]!.count : 0,
    jobs: d[1]!.count,
  };
  return { ...m, breakdown };
}

const fmtBreakdown = (b: Record<string, number>) =>
  `worker: queue wait ${b.queue_wait_ms!.toFixed(1)} ms, handler ${b.handler_ms!.toFixed(1)} ms (embedding: batch wait ${b.embedding_batch_wait_ms!.toFixed(1)} ms, run ${b.embedding_run_ms!.toFixed(1)} ms, ${b.queries_per_model_run!.toFixed(1)} queries per model run)`;

const fmt = (m: Measured) => `${m.qps.toFixed(0)} q/s  p50 ${m.p50_ms.toFixed(2)} ms  p99 ${m.p99_ms.toFixed(2)} ms`;

/**
 * The worker's search parts in this process, as workers/main.ts and document-runtime.ts build them
 * (same models config, HNSW defaults), with the collection's index replayed from the service's Redis.
 */
async function startInProcess(modelsConfig: string, redisUrl: string, prefix: string, collection: string) {
  const quiet = createLogger({ level: 'warn', name: 'bench' });
  const model = loadModelRegistry(modelsConfig).get('use-lite') as EmbeddingModelConfig;
  const engine = await startEmbeddingEngine(model, quiet, () => {});
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const store = new DocumentStore(redis, prefix);
  const cid = await store.findCollection('acme', collection);
  if (!cid) throw new Error(`no collection ${collection}`);
  const replicas = new CollectionReplicas({
    store,
    indexDir: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-local-index-')),
    dims: engine.dimensions,
    params: { m: M, efConstruction: EF_CONSTRUCTION },
    efSearch: 64,
    snapshotEvery: Number.MAX_SAFE_INTEGER,
    snapshotSeconds: Number.MAX_SAFE_INTEGER,
    workerId: 'bench',
    log: quiet,
  });
  const caughtUp = await replicas.catchUp(cid);
  const rankings = { hybrid: resolveRanking(undefined), vector: resolveRanking({ ranker: 'vector' }) };
  return {
    chunks: caughtUp.applied,
    async search(query: string, ranker: 'hybrid' | 'vector'): Promise<number> {
      const rows = engine.tokenizer.tokenize([query]);
      const [vector] = await engine.batcher.embed(rows);
      const r = await replicas.thread.request({ op: 'search', cid, text: query, vector, k: 10, ef: 64, ranking: rankings[ranker] });
      return r.hits.length;
    },
    async close() {
      await replicas.close();
      await engine.close();
      redis.disconnect();
    },
  };
}

/** Part (1): HNSW recall and raw hnswlib-node speed in process, on vectors embedded here. */
async function hnswRecall(queries: string[]) {
  const texts = Array.from({ length: CHUNKS }, (_, k) => chunkText(k));
  let t = performance.now();
  const vectors = await embedAll(texts);
  const qv = await embedAll(queries);
  const embedSeconds = (performance.now() - t) / 1000;
  log(`embedded ${CHUNKS + QUERIES} texts in process in ${embedSeconds.toFixed(1)} s`);

  t = performance.now();
  const truth = qv.map((q) => exactTop(vectors, q, 10));
  const bruteMs = (performance.now() - t) / QUERIES;

  t = performance.now();
  const index = new hnswlib.HierarchicalNSW('cosine', 512);
  index.initIndex({ maxElements: CHUNKS, m: M, efConstruction: EF_CONSTRUCTION, randomSeed: 100 });
  vectors.forEach((v, i) => index.addPoint(Array.from(v), i));
  const buildSeconds = (performance.now() - t) / 1000;
  log(`HNSW build (M=${M}, efConstruction=${EF_CONSTRUCTION}): ${buildSeconds.toFixed(1)} s; brute force: ${bruteMs.toFixed(2)} ms/query`);

  const inProcess: Record<string, unknown>[] = [];
  for (const ef of EFS) {
    index.setEf(ef);
    let hits = 0;
    const lat: number[] = [];
    qv.forEach((q, i) => {
      const arr = Array.from(q);
      const s = performance.now();
      const r = index.searchKnn(arr, 10);
      lat.push(performance.now() - s);
      const want = new Set(truth[i]);
      hits += r.neighbors.filter((n) => want.has(n)).length;
    });
    const sum = summarise(lat);
    const row = { ef, recall_at_10: hits / (QUERIES * 10), qps: 1000 / sum.mean, p50_ms: sum.p50, p99_ms: sum.p99 };
    inProcess.push(row);
    log(`in process  ef=${String(ef).padEnd(4)} recall@10 ${row.recall_at_10.toFixed(4)}  ${row.qps.toFixed(0)} q/s  p50 ${sum.p50.toFixed(3)} ms  p99 ${sum.p99.toFixed(3)} ms`);
  }

  return { build_seconds: buildSeconds, brute_force_ms_per_query: bruteMs, rows: inProcess };
}

async function main() {
  log(`corpus: ${N} sentences → ${CHUNKS} chunks; ${QUERIES} queries; ${os.cpus().length} cores; load average ${os.loadavg()[0]!.toFixed(1)}`);
  const queries = Array.from({ length: QUERIES }, (_, q) => queryText(q));
  const recall = RECALL ? await hnswRecall(queries) : null;

  let t = performance.now();
  // Through the service: the same chunk texts as text files in one vector store (its collection is
  // the one /v1/collections/<vs id>/search reads), chunked like POST /v1/documents (128-token windows).
  const redis = await startPrivateRedis();
  const modelsConfig = writeModelsConfig([useLiteModel({ max_queue: 100_000 })]);
  const svc = await startService({
    redisUrl: redis.url,
    modelsConfig,
    env: {
      LOG_LEVEL: 'warn',
      DOCUMENTS_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-docs-')),
      INDEX_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-index-')),
      RATE_LIMIT_RPM: '0',
      RATE_LIMIT_TPM: '0',
    },
  });
  const openai = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0, timeout: 900_000 });
  const rows: Record<string, unknown>[] = [];
  let apiChunks = 0;
  let local: Awaited<ReturnType<typeof startInProcess>> | undefined;
  try {
    t = performance.now();
    const store = await openai.vectorStores.create({ name: 'bench' });
    // Paragraph texts of 2 sentences chunk into roughly one 128-token chunk per 2.5 of them.
    const perDoc = 250;
    const needed = Math.ceil((CHUNKS * 2.6) / perDoc);
    const fileIds: string[] = [];
    for (let d = 0; d < needed; d++) {
      const body = Array.from({ length: perDoc }, (_, i) => chunkText(d * perDoc + i)).join('\n\n');
      const f = await openai.files.create({ file: await toFile(Buffer.from(`Document ${d}.\n\n${body}`), `d${d}.txt`), purpose: 'assistants' });
      fileIds.push(f.id);
    }
    const batch = await openai.vectorStores.fileBatches.createAndPoll(
      store.id,
      { file_ids: fileIds, chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 128, chunk_overlap_tokens: 24 } } },
      { pollIntervalMs: 1000 },
    );
    if (batch.file_counts.completed !== fileIds.length) throw new Error(`ingest: ${JSON.stringify(batch.file_counts)}`);
    const ingestSeconds = (performance.now() - t) / 1000;
    const collections = (await (await fetch(`${svc.baseUrl}/v1/collections`, { headers: authHeaders() })).json()) as { data: { name: string }[] };
    if (!collections.data.some((c) => c.name === store.id)) throw new Error('the vector store has no collection');

    // The fair baseline: the worker's own parts in this process, on the same index. Same model and
    // batcher (8 callers share batches), the index replayed from the same Redis log into an index
    // thread of this process; per query: tokenize, embed, search the thread. No HTTP, queue or Redis.
    local = await startInProcess(modelsConfig, redis.url, svc.prefix, store.id);
    apiChunks = local.chunks;
    log(`ingested ${fileIds.length} files → ${apiChunks} chunks through the API in ${ingestSeconds.toFixed(1)} s (${(apiChunks / ingestSeconds).toFixed(0)} chunks/s)`);

    const metricsUrl = `http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`;
    const collectionSearch = (ranker: 'hybrid' | 'vector') => async (i: number) => {
      const r = await fetch(`${svc.baseUrl}/v1/collections/${store.id}/search`, {
        method: 'POST',
        headers: authHeaders(),
        body: JSON.stringify({ query: queries[i % QUERIES], top_k: 10, ranking_options: { ranker } }),
      });
      if (r.status !== 200) throw new Error(`search: ${r.status} ${await r.text()}`);
      const body = (await r.json()) as { data: unknown[] };
      if (body.data.length === 0) throw new Error('search found nothing');
    };
    const vectorStoreSearch = async (i: number) => {
      const page = await openai.vectorStores.search(store.id, { query: queries[i % QUERIES]!, max_num_results: 10 });
      if (page.data.length === 0) throw new Error('vector store search found nothing');
    };
    const inProcess = (ranker: 'hybrid' | 'vector') => async (i: number) => {
      const hits = await local!.search(queries[i % QUERIES]!, ranker);
      if (hits === 0) throw new Error('in-process search found nothing');
    };

    // Warm every path (model threads, index thread, HTTP keep-alive, the worker's replica).
    for (let i = 0; i < 20; i++) {
      await inProcess('hybrid')(i);
      await collectionSearch('hybrid')(i);
      await vectorStoreSearch(i);
    }
    for (const ranker of ['hybrid', 'vector'] as const) {
      for (const clients of [1, 8]) {
        const base = await measure(clients, inProcess(ranker));
        const api = await workerShare(metricsUrl, () => measure(clients, collectionSearch(ranker)));
        const vs = ranker === 'hybrid' ? await measure(clients, vectorStoreSearch) : undefined;
        const ratio = { qps: api.qps / base.qps, p50: api.p50_ms / base.p50_ms };
        rows.push({ ranker, clients, in_process: base, api_collection: api, api_vector_store: vs ?? null, api_over_in_process: ratio, vector_store_over_in_process: vs ? { qps: vs.qps / base.qps, p50: vs.p50_ms / base.p50_ms } : null });
        log(`${ranker.padEnd(6)} ${clients} caller(s)  in process: ${fmt(base)}`);
        log(`${' '.repeat(17)} API collection search: ${fmt(api)}  → ${ratio.qps.toFixed(2)}× the q/s, ${ratio.p50.toFixed(1)}× the p50`);
        log(`${' '.repeat(19)}${fmtBreakdown(api.breakdown)}`);
        if (vs) log(`${' '.repeat(17)} API vector store (openai SDK): ${fmt(vs)}  → ${(vs.qps / base.qps).toFixed(2)}× the q/s, ${(vs.p50_ms / base.p50_ms).toFixed(1)}× the p50`);
      }
    }
    const at8 = rows.find((r) => r.ranker === 'hybrid' && r.clients === 8)!.api_over_in_process as { qps: number };
    log(`target: API q/s ≥ 0.7 of the in-process baseline at 8 callers (hybrid): ${at8.qps.toFixed(2)} → ${at8.qps >= 0.7 ? 'met' : 'missed'}`);
  } finally {
    await local?.close();
    await svc.stop();
    await redis.cleanup();
  }
  const outDir = path.join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `search-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ chunks: CHUNKS, api_chunks: apiChunks, queries: QUERIES, seconds: SECONDS, m: M, ef_construction: EF_CONSTRUCTION, hnsw_recall: recall, search: rows, cores: os.cpus().length }, null, 2));
  log(`wrote ${path.relative(ROOT, file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
