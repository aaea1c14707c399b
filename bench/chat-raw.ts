/**
 * Raw in-process decode loop on the tiny chat model (or any model folder in the same layout):
 * no queue, no threads, no HTTP. Two layers are measured, one after the other:
 *
 *   session: DecoderSession + Sampler called directly (prefill, then batched decode steps);
 *   engine:  GenerationEngine (continuous batching, detokenizer, stop handling, callbacks).
 *
 * For one stream: time to first token (prefill + first sample) and decode tokens/s; for 8
 * concurrent streams: aggregate tokens/s (all tokens over wall time, prefill included). Greedy
 * and sampled (temperature 0.8, top_p 0.95) decoding.
 *
 *   tsx bench/chat-raw.ts [modelDir]      (default: a freshly generated tiny model)
 *   env: BENCH_THREADS (intra-op threads, default 1), BENCH_TOKENS (per stream, default 128),
 *        BENCH_REPEAT (best of, default 3)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { makeTinyDecoder } from '../scripts/models/make-tiny-decoder.js';
import { ChatTokenizer } from '../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../workers/chat/decoder-session.js';
import { GenerationEngine, type GenerationRequest } from '../workers/chat/generation-engine.js';
import { Sampler, type SamplingParams } from '../workers/chat/sampler.js';
import { CHAT_PROMPTS } from './corpus.js';

const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const STREAMS = 8;
const MODES: [string, SamplingParams][] = [
  ['greedy', { temperature: 0 }],
  ['sampled', { temperature: 0.8, topP: 0.95 }],
];

interface Measurement {
  ttftMs: number;
  tokens: number;
  ms: number;
}

const rate = (m: Measurement) => (m.tokens / m.ms) * 1000;

/** The best (fastest) of REPEAT runs: the machine may be shared. */
async function best(run: () => Promise<Measurement>): Promise<Measurement> {
  let fastest: Measurement | undefined;
  for (let i = 0; i < REPEAT; i++) {
    const m = await run();
    if (fastest === undefined || m.ms < fastest.ms) fastest = m;
  }
  return fastest!;
}

async function main(): Promise<void> {
  const given = process.argv[2];
  const tmp = given ? undefined : mkdtempSync(path.join(os.tmpdir(), 'chat-raw-'));
  const modelDir = given ? path.resolve(given) : path.join(tmp!, 'tiny-chat');
  try {
    if (!given) await makeTinyDecoder(modelDir);
    const tokenizer = await ChatTokenizer.load(modelDir);
    const session = await DecoderSession.open(modelDir, { intraOpThreads: THREADS, executionProviders: ['cpu'] });
    const { config } = session;
    const prompts = CHAT_PROMPTS.map((q) => tokenizer.applyChatTemplate([{ role: 'user', content: q }]));
    console.log(
      `model ${modelDir}: ${config.modelType}, ${config.numLayers} layers, ${config.numHeads}/${config.numKvHeads} heads x ${config.headDim}, ` +
        `vocab ${config.vocabSize}; ${session.provider}, ${THREADS} intra-op thread(s); ${TOKENS} tokens per stream, ` +
        `prompts ${Math.min(...prompts.map((p) => p.length))}–${Math.max(...prompts.map((p) => p.length))} tokens; best of ${REPEAT}`,
    );

    /** Session layer: prefill all streams in one run, then decode them together. */
    const rawLoop = async (streams: number, params: SamplingParams): Promise<Measurement> => {
      const started = performance.now();
      const chosen = prompts.slice(0, streams);
      const samplers = chosen.map((_, i) => new Sampler({ ...params, seed: i }));
      const prefilled = await session.prefillBatch(chosen);
      const next = prefilled.map((r, i) => samplers[i]!.sample(r.logits));
      const ttftMs = performance.now() - started;
      const caches = prefilled.map((r) => r.cache);
      for (let step = 1; step < TOKENS; step++) {
        const logits = await session.decodeStep(
          caches.map((cache, i) => ({ cache, tokenId: next[i]! })),
          undefined,
          { reuseBuffers: true },
        );
        logits.forEach((row, i) => (next[i] = samplers[i]!.sample(row)));
      }
      return { ttftMs, tokens: streams * TOKENS, ms: performance.now() - started };
    };

    /** Engine layer: `streams` concurrent requests; TTFT of the first one. */
    const engineRun = async (streams: number, params: SamplingParams): Promise<Measurement> => {
      const engine = new GenerationEngine(session, tokenizer, { maxBatch: STREAMS });
      const started = performance.now();
      let ttftMs = Infinity;
      let tokens = 0;
      await Promise.all(
        prompts.slice(0, streams).map(
          (promptIds, i) =>
            new Promise<void>((resolve, reject) => {
              const request: GenerationRequest = { id: `s${i}`, promptIds, maxTokens: TOKENS, ...params, seed: i };
              engine.submit(request, {
                onToken: (index) => {
                  if (index === 0) ttftMs = Math.min(ttftMs, performance.now() - started);
                },
                onDone: (r) => {
                  tokens += r.completionTokens;
                  resolve();
                },
                onError: reject,
              });
            }),
        ),
      );
      return { ttftMs, tokens, ms: performance.now() - started };
    };

    // Warm-up: JIT, onnxruntime's arenas and the session's reusable buffers for both batch sizes.
    for (const streams of [1, STREAMS]) {
      await rawLoop(streams, MODES[1]![1]);
      await engineRun(streams, MODES[1]![1]);
    }

    const rows: string[][] = [];
    for (const [layer, run] of [
      ['session', rawLoop],
      ['engine', engineRun],
    ] as const) {
      for (const [mode, params] of MODES) {
        const one = await best(() => run(1, params));
        const many = await best(() => run(STREAMS, params));
        // Decode rate of one stream: the tokens after the first over the time after the first.
        const oneDecode = ((one.tokens - 1) / (one.ms - one.ttftMs)) * 1000;
        rows.push([
          layer,
          mode,
          one.ttftMs.toFixed(1),
          oneDecode.toFixed(0),
          rate(one).toFixed(0),
          rate(many).toFixed(0),
          (rate(many) / rate(one)).toFixed(2),
        ]);
      }
    }
    const header = ['layer', 'decoding', 'TTFT ms (1 stream)', 'decode tok/s (1 stream)', 'tok/s (1 stream, e2e)', `tok/s (${STREAMS} streams)`, 'ratio'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
    console.log(line(header));
    for (const row of rows) console.log(line(row));
    await session.release();
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
