import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../config/env.js';

/**
 * The models config file: which models exist, where their files are, and how each one is served
 * (threads, batching, concurrency, queue bound, execution providers). Both the API (to validate,
 * route and list) and the workers (to load and run) read it.
 */
const executionProvider = z.enum(['cpu', 'cuda']);

const batchingSchema = z
  .object({
    /** Most texts in one ONNX run. */
    max_batch_size: z.number().int().min(1).max(1024).default(32),
    /** Most padded tokens (rows × longest row) in one ONNX run. */
    max_batch_tokens: z.number().int().min(1).default(4096),
    /** How long an idle model waits for more texts before running a partial batch. */
    max_wait_ms: z.number().min(0).max(1000).default(0),
    /**
     * Texts join a batch only when their length is within this ratio of the batch's first text,
     * because padding costs: rows padded to 4x their length do 4x the work.
     */
    length_ratio: z.number().min(1).default(1.5),
  })
  .strict();

const embeddingModelSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$/, 'model ids are 1-128 characters of [A-Za-z0-9._/:-]'),
    task: z.literal('embedding'),
    format: z.enum(['use-lite', 'sentence-transformers']),
    /** Folder with the model files, relative to the config file's folder unless absolute. */
    path: z.string().min(1),
    description: z.string().optional(),
    /** Output size; lets the API check `dimensions` requests before enqueueing. */
    dimensions: z.number().int().positive().optional(),
    /** onnxruntime intra-op threads per model thread. */
    threads: z.number().int().min(1).max(64).default(2),
    /** Model threads per worker process (each runs one ONNX session). */
    replicas: z.number().int().min(1).max(16).default(1),
    execution_providers: z.array(executionProvider).min(1).default(['cpu']),
    /** BullMQ jobs one worker process holds at once for this model (they feed the batcher). */
    concurrency: z.number().int().min(1).max(1024).default(64),
    /** Waiting jobs past which new submissions are refused with 429. */
    max_queue: z.number().int().min(1).default(5000),
    batching: batchingSchema.default(batchingSchema.parse({})),
  })
  .strict();

const modelsFileSchema = z
  .object({
    models: z.array(embeddingModelSchema).min(1),
  })
  .strict();

export type ModelConfig = z.infer<typeof embeddingModelSchema> & {
  /** Absolute folder of the model files. */
  dir: string;
  /** BullMQ queue that carries this model's jobs (names cannot contain ':'). */
  queueName: string;
};

export interface ModelRegistry {
  readonly models: readonly ModelConfig[];
  get(id: string): ModelConfig | undefined;
}

export function queueNameFor(task: string, modelId: string): string {
  return `${task}.${modelId.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')}`;
}

export function parseModelRegistry(raw: unknown, baseDir: string): ModelRegistry {
  const parsed = modelsFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `models config ${i.path.join('.')}: ${i.message}`));
  }
  const models: ModelConfig[] = [];
  const queues = new Set<string>();
  const problems: string[] = [];
  for (const m of parsed.data.models) {
    const queueName = queueNameFor(m.task, m.id);
    if (models.some((x) => x.id === m.id)) problems.push(`models config: duplicate model id "${m.id}"`);
    if (queues.has(queueName)) problems.push(`models config: model "${m.id}" maps to queue "${queueName}" of another model`);
    queues.add(queueName);
    models.push({ ...m, dir: path.resolve(baseDir, m.path), queueName });
  }
  if (problems.length) throw new ConfigError(problems);
  const byId = new Map(models.map((m) => [m.id, m]));
  return { models, get: (id) => byId.get(id) };
}

export function loadModelRegistry(file: string): ModelRegistry {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([`MODELS_CONFIG ${file}: ${(err as Error).message}`]);
  }
  return parseModelRegistry(raw, path.dirname(path.resolve(file)));
}
