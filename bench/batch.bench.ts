/**
 * npm run bench:batch: the Batch API's embedding path against its peers, in one run, on the same
 * model (USE-Lite), thread count and texts (real sentences, bench/corpus.ts, one per line):
 *   (c) raw onnxruntime-node in this process at batch 32 (arrival order and length-sorted): the
 *       machine's limit, for reference;
 *   (b) the same texts through POST /v1/embeddings, 32 texts per request, 8 concurrent clients;
 *   (a) the same texts as an embeddings batch, one text per line: batches.create → completed →
 *       output file downloaded (the official openai client for files and batches);
 *   (d) the latency of interactive one-text /v1/embeddings requests (a few clients, a bounded count),
 *       idle and while a large embeddings batch runs (cancelled once measured).
 * Phases run one after another so they never compete for the CPU. Prints lines/s, latencies and the
 * ratios a/b, a/c and p50(during)/p50(idle), and writes bench/results/batch-<time>.json.
 *
 * Env: BENCH_TEXTS (lines of (a) and texts of (b), default 5000), BENCH_BATCH_LINES (the batch run
 * during (d), default 50000), BENCH_INTERACTIVE (requests per (d) phase, default 200, over
 * BENCH_INTERACTIVE_CLIENTS clients, default 4), BENCH_THREADS (default 2), BENCH_TIMEOUT_S (the
 * most any one phase may take, default 600). Service settings (BATCH_POLL_MS, ...) pass through.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { Agent, setGlobalDispatcher } from 'undici';
import { ensureModels } from '../scripts/models/build-models.js';
import { parseModelRegistry } from '../shared/models/model-registry.js';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { KEYS, ROOT, USE_LITE_DIR, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../tests/helpers/service.js';
import { createUseLiteSession } from '../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../workers/embeddings/use-lite/use-lite.tokenizer.js';
import { loadSentences, summarise } from './corpus.js';

const TEXTS = Number(process.env.BENCH_TEXTS ?? 5000);
const BATCH_LINES = Number(process.env.BENCH_BATCH_LINES ?? 50_000);
const INTERACTIVE = Number(process.env.BENCH_INTERACTIVE ?? 200);
const INTERACTIVE_CLIENTS = Number(process.env.BENCH_INTERACTIVE_CLIENTS ?? 4);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_S ?? 600) * 1000;
const PER_REQUEST = 32;
const CLIENTS = 8;
const log = (s: string) => console.log(s);

setGlobalDispatcher(new Agent({ connections: 64, keepAliveTimeout: 30_000 }));

const sentences = loadSentences(1e9);
/** The i-th text: the corpus has ~5,000 distinct sentences, so larger runs cycle through it (the response cache is off). */
const textAt = (i: number) => sentences[i % sentences.length]!;
const texts = Array.from({ length: TEXTS }, (_, i) => textAt(i));

const rate = (count: number, ms: number) => (count / ms) * 1000;
const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : String(n));

async function rawBaseline() {
  const tokenizer = await UseLiteTokenizer.load(USE_LITE_DIR);
  const session = await createUseLiteSession(USE_LITE_DIR, { intraOpThreads: THREADS, executionProviders: ['cpu'] });
  try {
    await session.embed(tokenizer.tokenize(texts.slice(0, PER_REQUEST)));
    // Tokenizing is part of the work in every phase, so it is timed here too.
    let started = performance.now();
    for (let i = 0; i < texts.length; i += PER_REQUEST) await session.embed(tokenizer.tokenize(texts.slice(i, i + PER_REQUEST)));
    const arrival = rate(texts.length, performance.now() - started);
    started = performance.now();
    const sorted = tokenizer.tokenize(texts).sort((x, y) => x.length - y.length);
    for (let i = 0; i < sorted.length; i += PER_REQUEST) await session.embed(sorted.slice(i, i + PER_REQUEST));
    const lengthSorted = rate(texts.length, performance.now() - started);
    return { batch: PER_REQUEST, arrivalOrderTextsPerSec: arrival, lengthSortedTextsPerSec: lengthSorted };
  } finally {
    await session.release();
  }
}

/** (b): every text once, in requests of 32, 8 clients taking the next request as they finish. */
async function onlineEmbeddings(client: OpenAI) {
  const latencies: number[] = [];
  let next = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const from = next;
      next += PER_REQUEST;
      if (from >= texts.length) return;
      const t0 = performance.now();
      const r = await client.embeddings.create({ model: 'use-lite', input: texts.slice(from, from + PER_REQUEST), encoding_format: 'base64' });
      latencies.push(performance.now() - t0);
      done += r.data.length;
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  const ms = performance.now() - started;
  if (done !== texts.length) throw new Error(`(b) embedded ${done} of ${texts.length} texts`);
  return { texts: done, seconds: ms / 1000, textsPerSec: rate(done, ms), requestLatencyMs: summarise(latencies) };
}

async function uploadBatchFile(client: OpenAI, lines: number, tag: string) {
  const body = Array.from({ length: lines }, (_, i) =>
    JSON.stringify({ custom_id: `${tag}-${i}`, method: 'POST', url: '/v1/embeddings', body: { model: 'use-lite', input: textAt(i), encoding_format: 'base64' } }),
  ).join('\n');
  const t0 = performance.now();
  const file = await client.files.create({ file: await toFile(Buffer.from(`${body}\n`), `${tag}.jsonl`), purpose: 'batch' });
  return { file, uploadMs: performance.now() - t0, bytes: Buffer.byteLength(body) + 1 };
}

async function poll(client: OpenAI, id: string, until: (b: OpenAI.Batches.Batch) => boolean, deadline: number): Promise<OpenAI.Batches.Batch> {
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (until(b) || performance.now() > deadline) return b;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ENDED = new Set(['completed', 'failed', 'expired', 'cancelled']);

/** (a): the texts as a batch, from batches.create to the output file downloaded and every line read back. */
async function batchRun(client: OpenAI) {
  const { file, uploadMs, bytes } = await uploadBatchFile(client, texts.length, 'a');
  const started = performance.now();
  const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
  const timeline: { s: number; status: string; completed: number }[] = [];
  const end = await poll(
    client,
    created.id,
    (b) => {
      timeline.push({ s: (performance.now() - started) / 1000, status: b.status, completed: b.request_counts?.completed ?? 0 });
      return ENDED.has(b.status);
    },
    started + TIMEOUT_MS,
  );
  const completedMs = performance.now() - started;
  if (end.status !== 'completed') {
    await client.batches.cancel(end.id).catch(() => {});
    throw new Error(`(a) the batch ended ${end.status} (${end.request_counts?.completed}/${end.request_counts?.total} lines) within ${TIMEOUT_MS / 1000} s`);
  }
  const output = await (await client.files.content(end.output_file_id!)).text();
  const totalMs = performance.now() - started;
  const lines = output.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: { data: { embedding: string }[] } } });
  const ok = lines.filter((l) => l.response?.status_code === 200 && typeof l.response.body.data[0]?.embedding === 'string').length;
  if (ok !== texts.length) throw new Error(`(a) ${ok} of ${texts.length} lines answered with an embedding`);
  const firstLine = timeline.find((t) => t.completed > 0)?.s ?? NaN;
  const validated = timeline.find((t) => t.status !== 'validating')?.s ?? NaN;
  return {
    lines: texts.length,
    inputBytes: bytes,
    uploadSeconds: uploadMs / 1000,
    secondsToCompleted: completedMs / 1000,
    secondsWithDownload: totalMs / 1000,
    secondsValidating: validated,
    secondsToFirstLine: firstLine,
    outputBytes: Buffer.byteLength(output),
    linesPerSec: rate(texts.length, totalMs),
    failedLines: end.request_counts?.failed ?? 0,
  };
}

/** INTERACTIVE one-text requests over INTERACTIVE_CLIENTS clients, each waiting for its answer before the next. */
async function interactive(client: OpenAI, offset: number) {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < INTERACTIVE) {
      const i = next++;
      const t0 = performance.now();
      await client.embeddings.create({ model: 'use-lite', input: textAt(offset + i * 13), encoding_format: 'base64' });
      latencies.push(performance.now() - t0);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: INTERACTIVE_CLIENTS }, worker));
  return { seconds: (performance.now() - started) / 1000, latencyMs: summarise(latencies) };
}

/** (d): interactive latency idle, then while a BATCH_LINES batch runs (measured once its lines flow; then cancelled). */
async function interactiveUnderBatch(client: OpenAI) {
  await interactive(client, 7); // warm-up
  const idle = await interactive(client, 11);
  const { file } = await uploadBatchFile(client, BATCH_LINES, 'd');
  const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
  const deadline = performance.now() + TIMEOUT_MS;
  // Measured only once the batch is past validation and its lines are running.
  const flowing = await poll(client, created.id, (b) => ENDED.has(b.status) || (b.request_counts?.completed ?? 0) > 0, deadline);
  if (flowing.status !== 'in_progress') throw new Error(`(d) the batch is ${flowing.status} before any measurement`);
  const before = await client.batches.retrieve(created.id);
  const during = await interactive(client, 11);
  const after = await client.batches.retrieve(created.id);
  const stillRunning = after.status === 'in_progress';
  const linesDuring = (after.request_counts?.completed ?? 0) - (before.request_counts?.completed ?? 0);
  await client.batches.cancel(created.id).catch(() => {});
  const ended = await poll(client, created.id, (b) => ENDED.has(b.status), performance.now() + TIMEOUT_MS);
  return {
    batchLines: BATCH_LINES,
    idle,
    during,
    batchRanThroughout: stillRunning,
    batchLinesDuring: linesDuring,
    batchLinesPerSecDuring: rate(linesDuring, during.seconds * 1000),
    batchEnd: { status: ended.status, completed: ended.request_counts?.completed ?? 0 },
  };
}

async function main() {
  await ensureModels(parseModelRegistry({ models: [useLiteModel({ build: 'use-lite' })] }, ROOT).models);
  log(`# batch benchmark: USE-Lite ONNX, ${THREADS} intra-op threads, ${TEXTS} texts (${sentences.length} distinct real sentences), ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const raw = await rawBaseline();
  log(`(c) raw onnxruntime, batch ${raw.batch}: ${fmt(raw.arrivalOrderTextsPerSec, 0)} texts/s in arrival order, ${fmt(raw.lengthSortedTextsPerSec, 0)} texts/s length-sorted`);

  const redis = await startPrivateRedis();
  let svc: ServiceHandle | undefined;
  try {
    const config = writeModelsConfig([useLiteModel({ threads: THREADS, concurrency: 256, max_queue: 100_000 })]);
    svc = await startService({ redisUrl: redis.url, modelsConfig: config, env: { LOG_LEVEL: 'warn', ...passThroughEnv() } });
    const client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0, timeout: TIMEOUT_MS });
    await client.embeddings.create({ model: 'use-lite', input: texts.slice(0, PER_REQUEST) }); // warm-up

    const online = await onlineEmbeddings(client);
    log(`(b) /v1/embeddings, ${PER_REQUEST} texts/request x ${CLIENTS} clients: ${fmt(online.textsPerSec, 0)} texts/s (${fmt(online.seconds, 1)} s), request p50 ${fmt(online.requestLatencyMs.p50)} ms`);
    const batch = await batchRun(client);
    log(
      `(a) batch of ${batch.lines} lines: ${fmt(batch.linesPerSec, 0)} lines/s create → completed → output downloaded (${fmt(batch.secondsWithDownload, 1)} s; ` +
        `validated by ${fmt(batch.secondsValidating, 1)} s, first line at ${fmt(batch.secondsToFirstLine, 1)} s, completed at ${fmt(batch.secondsToCompleted, 1)} s; upload ${fmt(batch.uploadSeconds, 2)} s, output ${fmt(batch.outputBytes / 1e6, 1)} MB)`,
    );
    const d = await interactiveUnderBatch(client);
    log(
      `(d) interactive 1-text requests, ${INTERACTIVE} over ${INTERACTIVE_CLIENTS} clients: idle p50 ${fmt(d.idle.latencyMs.p50)} ms, p99 ${fmt(d.idle.latencyMs.p99)} ms; ` +
        `during a ${d.batchLines}-line batch p50 ${fmt(d.during.latencyMs.p50)} ms, p99 ${fmt(d.during.latencyMs.p99)} ms ` +
        `(the batch ran ${fmt(d.batchLinesPerSecDuring, 0)} lines/s meanwhile${d.batchRanThroughout ? '' : ', but ended before the measurement did'}; then ${d.batchEnd.status} at ${d.batchEnd.completed} lines)`,
    );
    const ratios = {
      a_over_b: batch.linesPerSec / online.textsPerSec,
      a_over_c_arrival: batch.linesPerSec / raw.arrivalOrderTextsPerSec,
      b_over_c_arrival: online.textsPerSec / raw.arrivalOrderTextsPerSec,
      p50_during_over_idle: d.during.latencyMs.p50 / d.idle.latencyMs.p50,
    };
    const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
    log(
      `ratios: a/b ${fmt(ratios.a_over_b, 2)} (target ≥ 0.9: ${met(ratios.a_over_b >= 0.9)}); a/c ${fmt(ratios.a_over_c_arrival, 2)}, b/c ${fmt(ratios.b_over_c_arrival, 2)} (c in arrival order); ` +
        `interactive p50 during/idle ${fmt(ratios.p50_during_over_idle, 2)} (target ≤ 1.2: ${met(ratios.p50_during_over_idle <= 1.2)})`,
    );
    const out = path.join(ROOT, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const file = path.join(out, `batch-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify({ at: new Date().toISOString(), cpus: os.cpus().length, loadavg: os.loadavg(), threads: THREADS, texts: TEXTS, settings: passThroughEnv(), raw, online, batch, interactive: d, ratios }, null, 2),
    );
    log(`written ${path.relative(ROOT, file)}`);
  } finally {
    await svc?.stop();
    await redis.cleanup();
  }
}

/** The service's batch settings, when set for this run (otherwise the defaults apply). */
function passThroughEnv(): Record<string, string> {
  const names = ['BATCH_POLL_MS', 'BATCH_LINES_IN_FLIGHT', 'COALESCE_WINDOW_MS', 'TENANT_MAX_JOBS'];
  return Object.fromEntries(names.filter((n) => process.env[n] !== undefined).map((n) => [n, process.env[n]!]));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
