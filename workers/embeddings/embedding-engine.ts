import type { Logger } from '../../shared/logger.js';
import type { EmbeddingModelConfig } from '../../shared/models/model-registry.js';
import { ModelThreadPool } from './model-thread-pool.js';
import { EmbeddingBatcher, type BatchStats } from './embedding-batcher.js';
import { loadEmbeddingTokenizer } from './embedding-formats.js';
import type { EmbeddingTokenizer } from './embedding-model.js';

/** One loaded embedding model in a worker process: tokenizer here, sessions in model threads. */
export interface EmbeddingEngine {
  readonly model: EmbeddingModelConfig;
  readonly tokenizer: EmbeddingTokenizer;
  readonly dimensions: number;
  readonly provider: string;
  readonly batcher: EmbeddingBatcher;
  close(): Promise<void>;
}

export async function startEmbeddingEngine(
  model: EmbeddingModelConfig,
  log: Logger,
  onBatch: (model: EmbeddingModelConfig, stats: BatchStats) => void,
): Promise<EmbeddingEngine> {
  const started = performance.now();
  const [tokenizer, pool] = await Promise.all([
    loadEmbeddingTokenizer(model.format, model.dir),
    ModelThreadPool.start({
      format: model.format,
      dir: model.dir,
      replicas: model.replicas,
      session: { intraOpThreads: model.threads, executionProviders: model.execution_providers },
    }),
  ]);
  const batcher = new EmbeddingBatcher(pool, model.batching, (stats) => onBatch(model, stats));
  log.info(
    {
      model: model.id,
      dimensions: pool.dimensions,
      provider: pool.provider,
      replicas: model.replicas,
      threads: model.threads,
      loadMs: Math.round(performance.now() - started),
    },
    'embedding model loaded',
  );
  return {
    model,
    tokenizer,
    dimensions: pool.dimensions,
    provider: pool.provider,
    batcher,
    async close() {
      batcher.close();
      await pool.close();
    },
  };
}
