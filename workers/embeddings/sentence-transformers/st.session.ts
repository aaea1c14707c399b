import { access } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

import { openOrtSession } from '../../onnx/ort-session.js';
import type { EmbeddingSession, EmbeddingSessionOptions } from '../embedding-model.js';
import { assertDirectory, isObject, readJson, readJsonObject, resolvePadId } from './st.tokenizer.js';

/**
 * Pooling modes of sentence-transformers' Pooling module that this session implements, in the
 * order sentence-transformers concatenates them when a config turns on more than one.
 */
export type PoolingMode = 'cls' | 'max' | 'mean' | 'mean_sqrt_len';

const POOLING_FLAGS: readonly (readonly [string, PoolingMode | null])[] = [
  ['pooling_mode_cls_token', 'cls'],
  ['pooling_mode_max_tokens', 'max'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_mean_sqrt_len_tokens', 'mean_sqrt_len'],
  ['pooling_mode_weightedmean_tokens', null],
  ['pooling_mode_lasttoken', null],
];

/** Graph outputs tried in order. `sentence_embedding` is already pooled (exports that include the Pooling module). */
const POOLED_OUTPUT = 'sentence_embedding';
const TOKEN_OUTPUTS = ['last_hidden_state', 'token_embeddings'];
const KNOWN_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids']);

export interface SentenceTransformerSessionOptions extends EmbeddingSessionOptions {
  /** Id to pad short rows with; read from the folder's tokenizer files when left out. */
  padId?: number;
  /**
   * L2-normalise the outputs. Default true: see `createSentenceTransformerSession` for why this
   * does not simply follow modules.json.
   */
  normalize?: boolean;
}

export interface SentenceTransformerSession extends EmbeddingSession {
  readonly modelPath: string;
  /** Pooling done here, or 'graph' when the model outputs `sentence_embedding` itself. */
  readonly pooling: readonly PoolingMode[] | 'graph';
  readonly normalize: boolean;
  /** Whether modules.json lists a Normalize module (true when modules.json is absent). */
  readonly modelNormalizes: boolean;
  readonly usesTokenTypeIds: boolean;
  /** Providers the session was actually created with. */
  readonly executionProviders: readonly string[];
  /** Why the requested providers were replaced by ['cpu'], when they were. */
  readonly providerFallback?: string;
}

/**
 * Session of a Hugging Face sentence-transformers model exported to ONNX (Optimum layout):
 * `model.onnx` (or `onnx/model.onnx`) taking `input_ids`, `attention_mask` and optionally
 * `token_type_ids`, and giving `last_hidden_state` / `token_embeddings` (pooled here, with the
 * attention mask, per `1_Pooling/config.json`; mean pooling when there is none) or an already
 * pooled `sentence_embedding`.
 *
 * Normalisation: outputs are L2-normalised by default whatever modules.json says. The
 * EmbeddingSession contract promises unit-length vectors and the rest of the service (cosine
 * scores, the vector index) relies on it. For the usual models (MiniLM, bge, e5, mpnet...)
 * modules.json lists Normalize and this changes nothing; for a model trained for raw dot product
 * (no Normalize module) it drops the vector length, which a unit-vector store could not use
 * anyway, and keeps cosine rankings the same. `modelNormalizes` reports what modules.json says
 * (true when the file is absent); pass `normalize: false` to get raw pooled vectors.
 */
export async function createSentenceTransformerSession(
  modelDir: string,
  options: SentenceTransformerSessionOptions,
): Promise<SentenceTransformerSession> {
  await assertDirectory(modelDir);
  const modelPath = await findModelFile(modelDir);
  const { modes, modelNormalizes } = await readModules(modelDir);
  const padId =
    options.padId ??
    resolvePadId(
      await readJsonObject(path.join(modelDir, 'tokenizer.json'), 'needed for the pad token id'),
      await readJsonObject(path.join(modelDir, 'tokenizer_config.json')),
    );
  const normalize = options.normalize ?? true;

  const { session, providers, fallback } = await openSession(modelPath, options);
  try {
    for (const name of session.inputNames) {
      if (!KNOWN_INPUTS.has(name)) {
        throw new Error(`sentence-transformers: ${modelPath} has an input "${name}" this loader does not know how to feed`);
      }
    }
    for (const name of ['input_ids', 'attention_mask']) {
      if (!session.inputNames.includes(name)) {
        throw new Error(`sentence-transformers: ${modelPath} has no "${name}" input (inputs: ${session.inputNames.join(', ')})`);
      }
    }
    const usesTokenTypeIds = session.inputNames.includes('token_type_ids');
    const idType = integerInputType(session, 'input_ids', modelPath);
    const maskType = integerInputType(session, 'attention_mask', modelPath);
    const typeIdsType = usesTokenTypeIds ? integerInputType(session, 'token_type_ids', modelPath) : 'int64';

    const pooled = session.outputNames.includes(POOLED_OUTPUT);
    const outputName = pooled ? POOLED_OUTPUT : TOKEN_OUTPUTS.find((n) => session.outputNames.includes(n));
    if (outputName === undefined) {
      throw new Error(
        `sentence-transformers: ${modelPath} has none of the outputs ${[POOLED_OUTPUT, ...TOKEN_OUTPUTS].join(', ')} ` +
          `(outputs: ${session.outputNames.join(', ')})`,
      );
    }

    /** int64 or int32 token tensor [rows, width] filled with `fill`, written through `set`. */
    const intTensor = (type: 'int32' | 'int64', rows: number, width: number, fill: number) => {
      const size = rows * width;
      if (type === 'int64') {
        const data = new BigInt64Array(size).fill(BigInt(fill));
        return { tensor: new ort.Tensor('int64', data, [rows, width]), set: (i: number, v: number) => void (data[i] = BigInt(v)) };
      }
      const data = new Int32Array(size).fill(fill);
      return { tensor: new ort.Tensor('int32', data, [rows, width]), set: (i: number, v: number) => void (data[i] = v) };
    };

    const embed = async (batch: readonly (readonly number[])[]): Promise<Float32Array[]> => {
      if (batch.length === 0) return [];
      const rows = batch.length;
      let width = 0;
      for (const row of batch) {
        if (row.length === 0) throw new Error('sentence-transformers: cannot embed an empty token row');
        width = Math.max(width, row.length);
      }
      // Right padding: row r holds its ids at [r * width, r * width + length), then padId with mask 0.
      const ids = intTensor(idType, rows, width, padId);
      const mask = intTensor(maskType, rows, width, 0);
      batch.forEach((row, r) => {
        for (let t = 0; t < row.length; t++) {
          ids.set(r * width + t, row[t]!);
          mask.set(r * width + t, 1);
        }
      });
      const feeds: Record<string, ort.Tensor> = { input_ids: ids.tensor, attention_mask: mask.tensor };
      if (usesTokenTypeIds) feeds['token_type_ids'] = intTensor(typeIdsType, rows, width, 0).tensor;

      const results = await session.run(feeds, [outputName]);
      const output = results[outputName];
      if (output === undefined || output.type !== 'float32') {
        throw new Error(`sentence-transformers: ${modelPath} output ${outputName} is ${output?.type ?? 'missing'}, expected float32`);
      }
      const data = output.data as Float32Array;
      const vectors = pooled
        ? splitPooled(data, output.dims, rows, outputName)
        : poolTokens(data, output.dims, batch, modes, outputName);
      if (normalize) vectors.forEach(l2Normalize);
      return vectors;
    };

    const dimensions = await resolveDimensions(session, outputName, pooled ? 1 : modes.length, modelDir, embed, padId);

    return {
      dimensions,
      modelPath,
      pooling: pooled ? 'graph' : modes,
      normalize,
      modelNormalizes,
      usesTokenTypeIds,
      executionProviders: providers,
      ...(fallback === undefined ? {} : { providerFallback: fallback }),
      embed,
      release: () => session.release(),
    };
  } catch (err) {
    await session.release().catch(() => undefined);
    throw err;
  }
}

async function findModelFile(modelDir: string): Promise<string> {
  const candidates = [path.join(modelDir, 'model.onnx'), path.join(modelDir, 'onnx', 'model.onnx')];
  for (const candidate of candidates) {
    try {
      await access(candidate);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(`sentence-transformers: model.onnx not found in ${modelDir} (looked for ${candidates.join(' and ')})`);
}

/** Pooling modes and the Normalize flag from modules.json and the Pooling module's config. */
async function readModules(modelDir: string): Promise<{ modes: PoolingMode[]; modelNormalizes: boolean }> {
  const modulesFile = path.join(modelDir, 'modules.json');
  const modules = await readJson(modulesFile);
  let poolingDir = '1_Pooling';
  let modelNormalizes = true;
  if (modules !== undefined) {
    if (!Array.isArray(modules)) throw new Error(`sentence-transformers: ${modulesFile} is not a list of modules`);
    const typeOf = (m: unknown): string => (isObject(m) && typeof m['type'] === 'string' ? m['type'] : '');
    modelNormalizes = modules.some((m) => typeOf(m).endsWith('.Normalize'));
    const poolingModule = modules.find((m) => typeOf(m).endsWith('.Pooling'));
    if (isObject(poolingModule) && typeof poolingModule['path'] === 'string' && poolingModule['path'] !== '') {
      poolingDir = poolingModule['path'];
    }
  }

  const poolingFile = path.join(modelDir, poolingDir, 'config.json');
  const config = await readJson(poolingFile);
  if (config === undefined) return { modes: ['mean'], modelNormalizes };
  if (!isObject(config)) throw new Error(`sentence-transformers: ${poolingFile} does not hold a JSON object`);

  const modes: PoolingMode[] = [];
  for (const [flag, mode] of POOLING_FLAGS) {
    if (config[flag] !== true) continue;
    if (mode === null) throw new Error(`sentence-transformers: ${poolingFile} asks for ${flag}, which is not supported`);
    modes.push(mode);
  }
  if (modes.length === 0) throw new Error(`sentence-transformers: ${poolingFile} turns on no pooling mode`);
  return { modes, modelNormalizes };
}

async function openSession(
  modelPath: string,
  options: EmbeddingSessionOptions,
): Promise<{ session: ort.InferenceSession; providers: string[]; fallback?: string }> {
  try {
    const { session, provider, fallback } = await openOrtSession(modelPath, options);
    return { session, providers: [provider], ...(fallback === undefined ? {} : { fallback }) };
  } catch (err) {
    throw new Error(`sentence-transformers: ${(err as Error).message}`);
  }
}

function integerInputType(session: ort.InferenceSession, name: string, modelPath: string): 'int32' | 'int64' {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (meta === undefined || !meta.isTensor) return 'int64';
  if (meta.type === 'int64' || meta.type === 'int32') return meta.type;
  throw new Error(`sentence-transformers: ${modelPath} input ${name} is ${meta.type}, expected int64 or int32`);
}

/**
 * Width of the vectors: the output's static last dimension, else config.json's hidden size, else
 * whatever one probe run returns. Token pooling concatenates `modes` vectors of that width.
 */
async function resolveDimensions(
  session: ort.InferenceSession,
  outputName: string,
  modeCount: number,
  modelDir: string,
  embed: (batch: readonly (readonly number[])[]) => Promise<Float32Array[]>,
  padId: number,
): Promise<number> {
  const meta = session.outputMetadata.find((m) => m.name === outputName);
  const last = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  if (typeof last === 'number' && last > 0) return last * modeCount;

  const config = await readJsonObject(path.join(modelDir, 'config.json'));
  for (const key of ['hidden_size', 'd_model', 'dim']) {
    const value = config[key];
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value * modeCount;
  }
  const [probe] = await embed([[padId]]);
  return probe!.length;
}

function splitPooled(data: Float32Array, dims: readonly number[], rows: number, outputName: string): Float32Array[] {
  if (dims.length !== 2 || dims[0] !== rows) {
    throw new Error(`sentence-transformers: ${outputName} has shape [${dims.join(', ')}], expected [${rows}, dims]`);
  }
  const width = dims[1]!;
  return Array.from({ length: rows }, (_, r) => data.slice(r * width, (r + 1) * width));
}

/**
 * Masked pooling of token vectors [rows, seq, hidden]. Rows are right-padded, so a row's real
 * tokens are exactly its first `row.length` positions; padding never enters a vector.
 */
function poolTokens(
  data: Float32Array,
  dims: readonly number[],
  batch: readonly (readonly number[])[],
  modes: readonly PoolingMode[],
  outputName: string,
): Float32Array[] {
  const rows = batch.length;
  if (dims.length !== 3 || dims[0] !== rows) {
    throw new Error(`sentence-transformers: ${outputName} has shape [${dims.join(', ')}], expected [${rows}, seq, hidden]`);
  }
  const seq = dims[1]!;
  const hidden = dims[2]!;
  const sum = new Float64Array(hidden);
  const max = new Float64Array(hidden);
  return batch.map((row, r) => {
    const length = Math.min(row.length, seq);
    const base = r * seq * hidden;
    sum.fill(0);
    max.fill(-Infinity);
    for (let t = 0; t < length; t++) {
      const offset = base + t * hidden;
      for (let h = 0; h < hidden; h++) {
        const v = data[offset + h]!;
        sum[h] = sum[h]! + v;
        if (v > max[h]!) max[h] = v;
      }
    }
    const out = new Float32Array(hidden * modes.length);
    modes.forEach((mode, m) => {
      const at = m * hidden;
      for (let h = 0; h < hidden; h++) {
        switch (mode) {
          case 'cls':
            out[at + h] = data[base + h]!;
            break;
          case 'max':
            out[at + h] = max[h]!;
            break;
          case 'mean':
            out[at + h] = sum[h]! / length;
            break;
          case 'mean_sqrt_len':
            out[at + h] = sum[h]! / Math.sqrt(length);
            break;
        }
      }
    });
    return out;
  });
}

function l2Normalize(vector: Float32Array): void {
  let squares = 0;
  for (let i = 0; i < vector.length; i++) squares += vector[i]! * vector[i]!;
  // Same floor as torch.nn.functional.normalize, so an all-zero vector stays zero instead of NaN.
  const scale = 1 / Math.max(Math.sqrt(squares), 1e-12);
  for (let i = 0; i < vector.length; i++) vector[i] = vector[i]! * scale;
}
