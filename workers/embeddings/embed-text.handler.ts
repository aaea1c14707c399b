import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import { encodeVector } from '../../shared/jobs/job-catalog.js';
import type { EmbeddingEngine } from './embedding-engine.js';
import type { JobContext, JobHandler } from '../jobs/job-handler.js';

/**
 * Embeds a job's texts. The texts join the model's batcher alongside every other job in flight,
 * so one job of 32 texts and 32 jobs of one text end up in the same kind of ONNX runs.
 */
export function createEmbedTextHandler(engines: ReadonlyMap<string, EmbeddingEngine>): JobHandler<'embedding'> {
  return async (payload, ctx) => {
    const engine = engines.get(payload.model);
    if (!engine) throw new UnrecoverableError(`model ${payload.model} is not served by this worker`);
    const rows = await tokenizeYielding(engine, payload.input);
    const vectors = await embedWithProgress(engine, rows, ctx);
    const dims = payload.dimensions ?? engine.dimensions;
    if (dims > engine.dimensions) throw new UnrecoverableError(`dimensions ${dims} exceeds the model's ${engine.dimensions}`);
    return {
      model: payload.model,
      dimensions: dims,
      embeddings_b64: vectors.map((v) => encodeVector(dims === engine.dimensions ? v : truncateAndNormalise(v, dims))),
      prompt_tokens: rows.reduce((n, r) => n + r.length, 0),
      input_tokens: rows.map((r) => r.length),
    };
  };
}

/** Texts tokenized per turn of the event loop. */
const TOKENIZE_SLICE = 128;

/**
 * Tokenizing runs on the worker's main thread: 2 MiB of text (the largest request body) takes a few
 * hundred milliseconds, seconds on a busy machine, during which no lock of any job of this worker
 * would be renewed. So it goes a slice at a time, letting the event loop turn in between.
 */
async function tokenizeYielding(engine: EmbeddingEngine, texts: readonly string[]): Promise<number[][]> {
  if (texts.length <= TOKENIZE_SLICE) return engine.tokenizer.tokenize(texts);
  const rows: number[][] = [];
  for (let i = 0; i < texts.length; i += TOKENIZE_SLICE) {
    if (i > 0) await yieldToLoop();
    rows.push(...engine.tokenizer.tokenize(texts.slice(i, i + TOKENIZE_SLICE)));
  }
  return rows;
}

/** Texts per progress step: small jobs finish too fast for progress to mean anything. */
const PROGRESS_STEP = 256;

async function embedWithProgress(engine: EmbeddingEngine, rows: number[][], ctx: JobContext): Promise<Float32Array[]> {
  const lane = ctx.background ? 'background' : 'interactive';
  if (rows.length <= PROGRESS_STEP) return engine.batcher.embed(rows, ctx.signal, lane);
  let done = 0;
  const parts: Promise<Float32Array[]>[] = [];
  for (let i = 0; i < rows.length; i += PROGRESS_STEP) {
    const part = rows.slice(i, i + PROGRESS_STEP);
    parts.push(
      engine.batcher.embed(part, ctx.signal, lane).then(async (v) => {
        done += part.length;
        await ctx.reportProgress({ texts_done: done, texts_total: rows.length }).catch(() => {});
        return v;
      }),
    );
  }
  return (await Promise.all(parts)).flat();
}

function truncateAndNormalise(v: Float32Array, dims: number): Float32Array {
  const out = v.slice(0, dims);
  let norm = 0;
  for (const x of out) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / norm;
  return out;
}
