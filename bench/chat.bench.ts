/**
 * npm run bench:chat: chat generation through the pipeline against the raw decode loop, in one
 * run, on the same model (the generated tiny decoder, or CHAT_MODEL_DIR), thread count and CHAT_PROMPTS.
 *   raw:      GenerationEngine + DecoderSession in this process, called directly;
 *   pipeline: REST submit → BullMQ → worker → token stream → Socket.IO client, and the SSE path
 *             (POST /v1/chat/completions with stream: true, read by the official openai client).
 * Reports time to first token (TTFT), inter-token latency (ITL) and end-to-end latency as
 * mean/p50/p99 (as vLLM's benchmark does), tokens/s for one stream and aggregate tokens/s for
 * 8 concurrent streams, and writes them to bench/results/.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { io as connect } from 'socket.io-client';
import { makeTinyDecoder } from '../scripts/models/make-tiny-decoder.js';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { KEYS, ROOT, authHeaders, startService, writeModelsConfig } from '../tests/helpers/service.js';
import { ChatTokenizer } from '../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../workers/chat/decoder-session.js';
import { GenerationEngine } from '../workers/chat/generation-engine.js';
import { CHAT_PROMPTS, summarise } from './corpus.js';

const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const MAX_TOKENS = Number(process.env.BENCH_MAX_TOKENS ?? 128);
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const CONCURRENT = 8;
const messages = (i: number) => [{ role: 'user' as const, content: CHAT_PROMPTS[i % CHAT_PROMPTS.length]! }];
const log = (s: string) => console.log(s);

interface StreamTiming {
  ttftMs: number;
  itlMs: number[];
  e2eMs: number;
  tokens: number;
  /** First to last token: the decode phase as the client saw it. */
  decodeMs: number;
}

function report(name: string, runs: StreamTiming[]) {
  const ttft = summarise(runs.map((r) => r.ttftMs));
  const itl = summarise(runs.flatMap((r) => r.itlMs));
  const e2e = summarise(runs.map((r) => r.e2eMs));
  // Delivered tokens/s: tokens after the first over the time from first to last token.
  const tokensPerSec = summarise(runs.map((r) => (r.tokens > 1 && r.decodeMs > 0 ? ((r.tokens - 1) / r.decodeMs) * 1000 : 0)));
  log(
    `${name}: TTFT mean ${ttft.mean.toFixed(1)} / p50 ${ttft.p50.toFixed(1)} / p99 ${ttft.p99.toFixed(1)} ms; ` +
      `ITL mean ${itl.mean.toFixed(2)} / p50 ${itl.p50.toFixed(2)} / p99 ${itl.p99.toFixed(2)} ms; ` +
      `E2E p50 ${e2e.p50.toFixed(1)} ms; ${tokensPerSec.p50.toFixed(0)} tokens/s per stream (p50)`,
  );
  return { ttft, itl, e2e, tokensPerSecP50: tokensPerSec.p50 };
}

/** Runs `n` streams at once with `start(i, onToken)` and returns per-stream timings and aggregate tokens/s. */
async function streams(n: number, start: (i: number, onToken: () => void) => Promise<void>) {
  const t0 = performance.now();
  const timings = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const begin = performance.now();
      const stamps: number[] = [];
      await start(i, () => stamps.push(performance.now()));
      const end = performance.now();
      return {
        ttftMs: (stamps[0] ?? end) - begin,
        itlMs: stamps.slice(1).map((t, j) => t - stamps[j]!),
        e2eMs: end - begin,
        tokens: stamps.length,
        decodeMs: stamps.length > 1 ? stamps[stamps.length - 1]! - stamps[0]! : 0,
      } satisfies StreamTiming;
    }),
  );
  const total = timings.reduce((a, t) => a + t.tokens, 0);
  return { timings, aggregateTokensPerSec: (total / (performance.now() - t0)) * 1000 };
}

async function main() {
  const modelDir = process.env.CHAT_MODEL_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'qi-bench-chat-'));
  if (!process.env.CHAT_MODEL_DIR) await makeTinyDecoder(modelDir, { maxPositions: 1024 });
  log(`# chat benchmark: ${process.env.CHAT_MODEL_DIR ? modelDir : 'generated tiny decoder'}, ${THREADS} onnxruntime thread(s), max_tokens ${MAX_TOKENS}, ${RUNS} sequential runs, ${CONCURRENT} concurrent streams, ${os.cpus().length} CPUs`);

  // Raw: the engine in process. Token callbacks with empty text (held back) count as tokens too,
  // since the model did produce them; the pipeline only sees non-empty ones.
  const [tokenizer, session] = await Promise.all([ChatTokenizer.load(modelDir), DecoderSession.open(modelDir, { intraOpThreads: THREADS, executionProviders: ['cpu'] })]);
  const engine = new GenerationEngine(session, tokenizer, { maxBatch: CONCURRENT });
  let seq = 0;
  const rawStream = (i: number, onToken: () => void) =>
    new Promise<void>((resolve, reject) =>
      engine.submit(
        { id: `raw-${seq++}`, promptIds: tokenizer.applyChatTemplate(messages(i), { addGenerationPrompt: true }), maxTokens: MAX_TOKENS, temperature: 0 },
        { onToken: (_i, text) => text && onToken(), onDone: () => resolve(), onError: reject },
      ),
    );
  await streams(1, rawStream);
  const rawOne: StreamTiming[] = [];
  for (let r = 0; r < RUNS; r++) rawOne.push(...(await streams(1, rawStream)).timings);
  const rawMany = await streams(CONCURRENT, rawStream);
  await engine.close();
  await session.release();

  const redis = await startPrivateRedis();
  const config = writeModelsConfig([{ id: 'bench-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: THREADS, concurrency: CONCURRENT, max_tokens_limit: 4096 }]);
  const svc = await startService({ redisUrl: redis.url, modelsConfig: config, env: { LOG_LEVEL: 'warn' } });
  try {
    const socket = connect(svc.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'] });
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const listeners = new Map<string, { onToken: () => void; done: () => void }>();
    socket.on('token', (e) => listeners.get(e.id)?.onToken());
    socket.on('completed', (e) => listeners.get(e.id)?.done());
    socket.on('failed', (e) => listeners.get(e.id)?.done());
    const socketStream = async (i: number, onToken: () => void) => {
      const res = await fetch(`${svc.baseUrl}/v1/jobs`, {
        method: 'POST',
        headers: authHeaders(),
        body: JSON.stringify({ type: 'chat', model: 'bench-chat', messages: messages(i), max_tokens: MAX_TOKENS, temperature: 0, priority: 1 }),
      });
      const { id } = (await res.json()) as { id: string };
      await new Promise<void>((done) => {
        listeners.set(id, { onToken, done });
        socket.emitWithAck('subscribe', id).catch(() => {});
      });
      listeners.delete(id);
    };
    const client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
    const sseStream = async (i: number, onToken: () => void) => {
      const stream = await client.chat.completions.create({ model: 'bench-chat', messages: messages(i), max_tokens: MAX_TOKENS, temperature: 0, stream: true });
      for await (const c of stream) if (c.choices[0]?.delta?.content) onToken();
    };
    await streams(2, socketStream);
    await streams(2, sseStream);
    const sockOne: StreamTiming[] = [];
    for (let r = 0; r < RUNS; r++) sockOne.push(...(await streams(1, socketStream)).timings);
    const sockMany = await streams(CONCURRENT, socketStream);
    const sseOne: StreamTiming[] = [];
    for (let r = 0; r < RUNS; r++) sseOne.push(...(await streams(1, sseStream)).timings);
    const sseMany = await streams(CONCURRENT, sseStream);
    socket.disconnect();

    const out = {
      raw: { one: report('raw decode loop, 1 stream', rawOne), aggregate8: rawMany.aggregateTokensPerSec },
      socketio: { one: report('pipeline REST → Socket.IO, 1 stream', sockOne), aggregate8: sockMany.aggregateTokensPerSec },
      sse: { one: report('pipeline SSE (openai client), 1 stream', sseOne), aggregate8: sseMany.aggregateTokensPerSec },
    };
    log(`aggregate tokens/s with ${CONCURRENT} streams: raw ${rawMany.aggregateTokensPerSec.toFixed(0)}, Socket.IO ${sockMany.aggregateTokensPerSec.toFixed(0)}, SSE ${sseMany.aggregateTokensPerSec.toFixed(0)}`);
    const ratios = {
      socketio_ttft_p50_overhead_ms: out.socketio.one.ttft.p50 - out.raw.one.ttft.p50,
      sse_ttft_p50_overhead_ms: out.sse.one.ttft.p50 - out.raw.one.ttft.p50,
      socketio_tokens_per_sec_vs_raw: out.socketio.one.tokensPerSecP50 / out.raw.one.tokensPerSecP50,
      sse_tokens_per_sec_vs_raw: out.sse.one.tokensPerSecP50 / out.raw.one.tokensPerSecP50,
      socketio_8_streams_vs_1: sockMany.aggregateTokensPerSec / out.socketio.one.tokensPerSecP50,
      raw_8_streams_vs_1: rawMany.aggregateTokensPerSec / out.raw.one.tokensPerSecP50,
    };
    log(
      `ratios: TTFT p50 overhead +${ratios.socketio_ttft_p50_overhead_ms.toFixed(1)} ms (Socket.IO), +${ratios.sse_ttft_p50_overhead_ms.toFixed(1)} ms (SSE); ` +
        `tokens/s vs raw ${ratios.socketio_tokens_per_sec_vs_raw.toFixed(2)} (Socket.IO), ${ratios.sse_tokens_per_sec_vs_raw.toFixed(2)} (SSE); ` +
        `8 streams vs 1: ${ratios.socketio_8_streams_vs_1.toFixed(1)}x through the pipeline (raw ${ratios.raw_8_streams_vs_1.toFixed(1)}x)`,
    );
    const dir = path.join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `chat-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), threads: THREADS, maxTokens: MAX_TOKENS, runs: RUNS, ...out, ratios }, null, 2));
    log(`written ${path.relative(ROOT, file)}`);
  } finally {
    await svc.stop();
    await redis.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
