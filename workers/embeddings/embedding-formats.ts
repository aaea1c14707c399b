import { access } from 'node:fs/promises';
import path from 'node:path';
import type { EmbeddingModelConfig } from '../../shared/models/model-registry.js';
import type { EmbeddingSession, EmbeddingSessionOptions, EmbeddingTokenizer } from './embedding-model.js';

/**
 * The one switch over embedding model formats. Adding a format means adding a case here and a
 * value to the models config schema; nothing else in the pipeline knows which format it runs.
 */
export type EmbeddingFormat = EmbeddingModelConfig['format'];

export async function loadEmbeddingTokenizer(format: EmbeddingFormat, dir: string): Promise<EmbeddingTokenizer> {
  await assertModelDir(dir);
  switch (format) {
    case 'use-lite': {
      const { UseLiteTokenizer } = await import('./use-lite/use-lite.tokenizer.js');
      return UseLiteTokenizer.load(dir);
    }
    case 'sentence-transformers': {
      const { SentenceTransformerTokenizer } = await import('./sentence-transformers/st.tokenizer.js');
      return SentenceTransformerTokenizer.load(dir);
    }
  }
}

/** Only ever called inside a model thread: onnxruntime's run() blocks its thread. */
export async function createEmbeddingSession(
  format: EmbeddingFormat,
  dir: string,
  options: EmbeddingSessionOptions,
): Promise<EmbeddingSession> {
  await assertModelDir(dir);
  switch (format) {
    case 'use-lite': {
      const { createUseLiteSession } = await import('./use-lite/use-lite.session.js');
      return createUseLiteSession(dir, options);
    }
    case 'sentence-transformers': {
      const { createSentenceTransformerSession } = await import('./sentence-transformers/st.session.js');
      return createSentenceTransformerSession(dir, options);
    }
  }
}

async function assertModelDir(dir: string): Promise<void> {
  try {
    await access(dir);
  } catch {
    const hint = path.basename(dir) === 'use-lite' ? ' (run `npm run models:build` to build it)' : '';
    throw new Error(`model folder ${dir} does not exist${hint}`);
  }
}
