import { UnrecoverableError } from 'bullmq';
import { encodeVector } from '../../shared/jobs/job-catalog.js';
import type { EmbeddingEngine } from '../embeddings/embedding-engine.js';
import type { JobHandler } from '../jobs/job-handler.js';

/**
 * Embeds a job's texts. The texts join the model's batcher alongside every other job in flight,
 * so one job of 32 texts and 32 jobs of one text end up in the same kind of ONNX runs.
 */
export function createEmbedTextHandler(engines: ReadonlyMap<string, EmbeddingEngine>): JobHandler<'embedding'> {
  return async (payload, ctx) => {
    const engine = engines.get(payload.model);
    if (!engine) throw new UnrecoverableError(`model ${payload.model} is not served by this worker`);
    const rows = engine.tokenizer.tokenize(payload.input);
    const vectors = await engine.batcher.embed(rows, ctx.signal);
    const dims = payload.dimensions ?? engine.dimensions;
    if (dims > engine.dimensions) throw new UnrecoverableError(`dimensions ${dims} exceeds the model's ${engine.dimensions}`);
    return {
      model: payload.model,
      dimensions: dims,
      embeddings_b64: vectors.map((v) => encodeVector(dims === engine.dimensions ? v : truncateAndNormalise(v, dims))),
      prompt_tokens: rows.reduce((n, r) => n + r.length, 0),
    };
  };
}

function truncateAndNormalise(v: Float32Array, dims: number): Float32Array {
  const out = v.slice(0, dims);
  let norm = 0;
  for (const x of out) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / norm;
  return out;
}
