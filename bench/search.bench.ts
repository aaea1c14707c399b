/**
 * npm run bench:search: vector search over ≥ 20,000 chunks of real text (sentences of the READMEs
 * of the installed npm packages, bench/corpus.ts, paired into distinct chunks):
 *   (1) recall@10 of the HNSW index (hnswlib-node, cosine, HNSW_M / HNSW_EF_CONSTRUCTION defaults)
 *       against exact brute force, at several ef values, with build time;
 *   (2) queries/s and p50/p99 latency of hnswlib-node called directly in this process;
 *   (3) the same through the service: HTTP → API → BullMQ → worker (query embedding + index
 *       thread) → answer, on a collection of ≥ 20,000 chunks ingested through POST /v1/documents.
 * Writes bench/results/search-<time>.json.  Env: BENCH_CHUNKS (20000), BENCH_QUERIES (300), BENCH_SECONDS (8).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import { Agent, setGlobalDispatcher } from 'undici';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { authHeaders, ROOT, startService, USE_LITE_DIR, useLiteModel, waitFor, writeModelsConfig } from '../tests/helpers/service.js';
import { uploadDocument } from '../tests/helpers/documents.js';
import { createUseLiteSession } from '../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../workers/embeddings/use-lite/use-lite.tokenizer.js';
import { loadSentences, summarise } from './corpus.js';

const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 20_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
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

async function main() {

  log(`corpus: ${N} sentences → ${CHUNKS} chunks; ${QUERIES} queries; ${os.cpus().length} cores`);
  const texts = Array.from({ length: CHUNKS }, (_, k) => chunkText(k));
  const queries = Array.from({ length: QUERIES }, (_, q) => queryText(q));
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

  // Through the service: ingest the same chunk texts as text documents (the chunker regroups them
  // into 128-token windows), then query with real clients.
  const redis = await startPrivateRedis();
  const svc = await startService({
    redisUrl: redis.url,
    modelsConfig: writeModelsConfig([useLiteModel({ max_queue: 100_000 })]),
    env: {
      LOG_LEVEL: 'warn',
      DOCUMENTS_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-docs-')),
      INDEX_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-index-')),
      RATE_LIMIT_RPM: '0',
      RATE_LIMIT_TPM: '0',
    },
  });
  const api: Record<string, unknown>[] = [];
  let apiChunks = 0;
  try {
    t = performance.now();
    const ids: string[] = [];
    // Paragraph texts of 2 sentences chunk into roughly one 128-token chunk per 2.5 of them.
    const perDoc = 250;
    const needed = Math.ceil((CHUNKS * 2.6) / perDoc);
    for (let d = 0; d < needed; d++) {
      const body = Array.from({ length: perDoc }, (_, i) => chunkText(d * perDoc + i)).join('\n\n');
      const u = await uploadDocument(svc.baseUrl, `Document ${d}.\n\n${body}`, { collection: 'bench', filename: `d${d}.txt` });
      if (u.status !== 202) throw new Error(`upload ${d}: ${u.status} ${JSON.stringify(u.json)}`);
      ids.push(u.json.id);
    }
    for (const id of ids) {
      const d = await waitFor(`doc ${id}`, async () => {
        const r = (await (await fetch(`${svc.baseUrl}/v1/documents/${id}`, { headers: authHeaders() })).json()) as any;
        if (r.status === 'failed') throw new Error(JSON.stringify(r.error));
        return r.status === 'ready' ? r : undefined;
      }, 900_000);
      apiChunks += d.chunks;
    }
    const ingestSeconds = (performance.now() - t) / 1000;
    log(`through the API: ${ids.length} documents → ${apiChunks} chunks ingested in ${ingestSeconds.toFixed(1)} s (${(apiChunks / ingestSeconds).toFixed(0)} chunks/s)`);

    const search = async (i: number, ef: number) => {
      const s = performance.now();
      const r = await fetch(`${svc.baseUrl}/v1/collections/bench/search`, {
        method: 'POST',
        headers: authHeaders(),
        body: JSON.stringify({ query: queries[i % QUERIES], top_k: 10, ef }),
      });
      if (r.status !== 200) throw new Error(`search: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
      return performance.now() - s;
    };
    for (let i = 0; i < 20; i++) await search(i, 64);
    for (const [clients, ef] of [[1, 64], [8, 64], [8, 256]] as const) {
      const lat: number[] = [];
      const deadline = performance.now() + SECONDS * 1000;
      let n = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (performance.now() < deadline) lat.push(await search(n++, ef));
        }),
      );
      const sum = summarise(lat);
      const row = { clients, ef, qps: (lat.length / (performance.now() - started)) * 1000, p50_ms: sum.p50, p99_ms: sum.p99, chunks: apiChunks };
      api.push(row);
      log(`through API ${clients} client(s) ef=${ef}: ${row.qps.toFixed(0)} q/s  p50 ${sum.p50.toFixed(2)} ms  p99 ${sum.p99.toFixed(2)} ms`);
    }
  } finally {
    await svc.stop();
    await redis.cleanup();
  }
  const outDir = path.join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `search-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ chunks: CHUNKS, queries: QUERIES, m: M, ef_construction: EF_CONSTRUCTION, build_seconds: buildSeconds, brute_force_ms_per_query: bruteMs, in_process: inProcess, api, cores: os.cpus().length }, null, 2));
  log(`wrote ${path.relative(ROOT, file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
