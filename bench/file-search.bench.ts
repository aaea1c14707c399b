/**
 * npm run bench:file-search: what the Responses API's `file_search` tool costs, side by side in one
 * run on one service (127.0.0.1 only), each measured the same way (BENCH_REQUESTS requests, at
 * BENCH_CONCURRENCY in flight, at most BENCH_SECONDS each):
 *   (1) raw baseline: POST /v1/vector_stores/{id}/search, the search alone;
 *   (2) peer: POST /v1/responses without tools, one chat job of the tiny model (16 tokens);
 *   (3) full pipeline: POST /v1/responses with the file_search tool: the search, then the chat job
 *       answering extractively from the hits (the tiny model is `untrained`).
 * The store holds docs/ARCHITECTURE.md (one file, a few dozen chunks). Prints p50/p99 and requests/s with the
 * ratios of (3) to (1) and (2); writes bench/results/file-search-<time>.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { KEYS, ROOT, startService, useLiteModel, writeModelsConfig } from '../tests/helpers/service.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 60);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const QUESTIONS = ['How do I add a job type?', 'Where do handlers live?', 'What does the job catalog hold?', 'How does a worker announce an outcome?', 'Which queue does a job go to?'];
const log = (s: string) => console.log(s);

interface Figures {
  name: string;
  done: number;
  p50: number;
  p99: number;
  perSecond: number;
}

async function measure(name: string, call: (i: number) => Promise<unknown>): Promise<Figures> {
  const latencies: number[] = [];
  const deadline = Date.now() + SECONDS * 1000;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS && Date.now() < deadline) {
        const i = next++;
        const t = performance.now();
        await call(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const f = { name, done: latencies.length, p50: at(0.5), p99: at(0.99), perSecond: latencies.length / seconds };
  log(`${name.padEnd(44)} ${String(f.done).padStart(4)} req  p50 ${f.p50.toFixed(1).padStart(7)} ms  p99 ${f.p99.toFixed(1).padStart(7)} ms  ${f.perSecond.toFixed(1).padStart(6)} req/s`);
  return f;
}

const redis = await startPrivateRedis();
const svc = await startService({
  redisUrl: redis.url,
  modelsConfig: writeModelsConfig([
    useLiteModel(),
    { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: path.join(ROOT, 'models', 'tiny-chat'), untrained: true, threads: 1, concurrency: 8, default_max_tokens: 16 },
  ]),
  env: { DOCUMENTS_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-fs-')), INDEX_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-fs-index-')) },
});
try {
  const client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0, timeout: 120_000 });
  const file = await client.files.create({ file: await toFile(readFileSync(path.join(ROOT, 'docs', 'ARCHITECTURE.md')), 'ARCHITECTURE.md'), purpose: 'assistants' });
  const store = await client.vectorStores.create({ name: 'bench' });
  const attached = await client.vectorStores.files.createAndPoll(store.id, { file_id: file.id }, { pollIntervalMs: 250 });
  if (attached.status !== 'completed') throw new Error(`ingestion failed: ${JSON.stringify(attached.last_error)}`);
  const question = (i: number) => QUESTIONS[i % QUESTIONS.length]!;
  log(`file_search bench: ${REQUESTS} requests each, ${CONCURRENCY} in flight, ${os.cpus().length} CPUs`);
  // One of each first, so that no row pays for the first model call.
  await client.vectorStores.search(store.id, { query: question(0) });
  await client.responses.create({ model: 'tiny-chat', input: question(0), max_output_tokens: 16 });
  const raw = await measure('(1) vector store search (baseline)', (i) => client.vectorStores.search(store.id, { query: question(i), max_num_results: 10 }));
  const peer = await measure('(2) responses, no tools (peer)', (i) => client.responses.create({ model: 'tiny-chat', input: question(i), max_output_tokens: 16 }));
  const full = await measure('(3) responses + file_search (full pipeline)', (i) =>
    client.responses.create({ model: 'tiny-chat', input: question(i), tools: [{ type: 'file_search', vector_store_ids: [store.id], max_num_results: 10 }] }),
  );
  log(`p50 ratio (3)/(1): ${(full.p50 / raw.p50).toFixed(2)}   (3)/(2): ${(full.p50 / peer.p50).toFixed(2)}`);
  log(`req/s ratio (3)/(1): ${(full.perSecond / raw.perSecond).toFixed(2)}   (3)/(2): ${(full.perSecond / peer.perSecond).toFixed(2)}`);
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  const out = path.join(ROOT, 'bench', 'results', `file-search-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ requests: REQUESTS, concurrency: CONCURRENCY, cpus: os.cpus().length, raw, peer, full }, null, 2));
  log(`wrote ${path.relative(ROOT, out)}`);
} finally {
  await svc.stop();
  await redis.cleanup();
}
