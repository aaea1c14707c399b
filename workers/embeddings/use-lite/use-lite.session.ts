import path from 'node:path';

import * as ort from 'onnxruntime-node';

import { openOrtSession } from '../../onnx/ort-session.js';
import type { EmbeddingSession, EmbeddingSessionOptions } from '../embedding-model.js';

const DIMENSIONS = 512;

export interface UseLiteSession extends EmbeddingSession {
  /** Execution provider the session was created with ('cpu' or 'cuda'). */
  readonly provider: string;
}

/**
 * Loads `model.onnx` (built by scripts/models/build-use-lite.ts) from `modelDir`, on the first of
 * the configured execution providers that starts (see openOrtSession).
 */
export async function createUseLiteSession(modelDir: string, options: EmbeddingSessionOptions): Promise<UseLiteSession> {
  const { session, provider } = await openOrtSession(path.join(modelDir, 'model.onnx'), options);
  return wrap(session, provider);
}

function wrap(session: ort.InferenceSession, provider: string): UseLiteSession {
  return {
    dimensions: DIMENSIONS,
    provider,
    async embed(batch) {
      const rows = batch.length;
      if (rows === 0) return [];
      let width = 0;
      for (const row of batch) if (row.length > width) width = row.length;
      // A batch of empty texts still needs one (fully masked) column.
      width = Math.max(width, 1);

      const ids = new BigInt64Array(rows * width);
      const mask = new BigInt64Array(rows * width);
      for (let r = 0; r < rows; r++) {
        const row = batch[r]!;
        const offset = r * width;
        for (let c = 0; c < row.length; c++) {
          ids[offset + c] = BigInt(row[c]!);
          mask[offset + c] = 1n;
        }
      }
      const feeds = {
        input_ids: new ort.Tensor('int64', ids, [rows, width]),
        attention_mask: new ort.Tensor('int64', mask, [rows, width]),
      };
      const results = await session.run(feeds);
      const output = results['sentence_embedding'];
      if (!output) throw new Error('use-lite: model returned no sentence_embedding');
      const data = output.data as Float32Array;
      const vectors: Float32Array[] = [];
      for (let r = 0; r < rows; r++) vectors.push(data.slice(r * DIMENSIONS, (r + 1) * DIMENSIONS));
      output.dispose?.();
      return vectors;
    },
    async release() {
      await session.release();
    },
  };
}
