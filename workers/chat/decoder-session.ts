import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { getFloat16 } from '@petamoriken/float16';
import * as ort from 'onnxruntime-node';

import { DECODER_DTYPE_FILE_SUFFIX, type DecoderDtype } from '../../shared/models/model-registry.js';
import { openOrtSession } from '../onnx/ort-session.js';

/**
 * onnxruntime session of a causal language model exported the way Hugging Face Optimum /
 * transformers.js ("onnx-community") export text-generation models with a KV cache:
 *
 *   inputs   input_ids [b, s], attention_mask [b, past + s], position_ids [b, s] (optional),
 *            past_key_values.{i}.key / .value [b, kv_heads, past, head_dim]
 *   outputs  logits [b, s, vocab], present.{i}.key / .value [b, kv_heads, past + s, head_dim]
 *
 * Each sequence owns its KV cache (`KvCache`). One `forward` runs any number of sequences with
 * caches of different lengths in ONE session run: every sequence's past is LEFT-padded to the
 * longest past and its new tokens left-padded to the longest new run, attention_mask is 0 on all
 * padding, position_ids continue each sequence's own positions, and afterwards only the new
 * positions of `present.*` are copied back into each cache (the past part of `present` is the
 * past that was fed in, so the padding is simply dropped).
 *
 * Weight formats (README, "Weight formats"): fp32, fp16 (float16 KV cache and logits), 4-bit
 * MatMulNBits (q4, q4f16), and any of them with external data (`model.onnx_data`, loaded by
 * onnxruntime from next to the graph, since the session is opened from a path). A float16 cache
 * is kept as float16 bit patterns (Uint16Array, onnxruntime-node's float16 type; Node 20 has no
 * Float16Array) end to end: fed, copied back and cloned without conversion, so it costs half the
 * memory of a float32 one. Only the logits rows handed out are widened to float32 for sampling.
 *
 * Blocks its thread while running (onnxruntime's run()), so it belongs in a worker thread.
 */

/** Element types of a KV cache the session can feed: onnxruntime's names for them. */
export type KvDtype = 'float32' | 'float16';
type KvArray = Float32Array | Uint16Array;

function newKvArray(dtype: KvDtype, size: number): KvArray {
  return dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size);
}

export interface DecoderModelConfig {
  modelType: string;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest sequence (prompt + completion) the model was trained for. */
  maxPositions: number;
  /** Id fed in padding slots of input_ids (masked out, so any valid id works). */
  padTokenId: number;
}

export interface DecoderSessionOptions {
  intraOpThreads: number;
  /** onnxruntime execution providers in order of preference, e.g. ['cuda', 'cpu']. */
  executionProviders: string[];
  /**
   * Weight format to load, as transformers.js files them: 'fp16' opens model_fp16.onnx, then
   * onnx/model_fp16.onnx (default 'fp32': model.onnx, then onnx/model.onnx).
   */
  dtype?: DecoderDtype;
  /** Graph file relative to the folder; overrides `dtype`. */
  modelFile?: string;
}

/** One sequence in a batched forward pass: its cache and the ids to append to it. */
export interface ForwardItem {
  cache: KvCache;
  ids: readonly number[];
}

export interface ForwardOptions {
  /** Return logits for every new position ([s * vocab]) instead of only the last ([vocab]). */
  allLogits?: boolean;
  /**
   * Run in buffers the session keeps and reuses (past inputs, logits and present outputs) instead
   * of allocating them per run: no garbage and no fresh pages per step, which matters at small
   * batch sizes. The returned logits are then views that the NEXT run with `reuseBuffers`
   * overwrites: use (or copy) them before.
   */
  reuseBuffers?: boolean;
}

export interface DecodeItem {
  cache: KvCache;
  tokenId: number;
}

export interface PrefillResult {
  cache: KvCache;
  /** Logits of the last prompt position ([vocab]), or of every position with `allLogits`. */
  logits: Float32Array;
}

/** Shape of one forward run, for timing and metrics. */
export interface ForwardStats {
  batchSize: number;
  /** Longest past in the batch (every past was padded to it). */
  pastLength: number;
  /** Longest new run (every new run was padded to it). */
  newLength: number;
  /** Real (unpadded) new tokens. */
  tokens: number;
  runMs: number;
}

/**
 * Keys and values of one sequence, per layer, laid out [kv_heads, capacity, head_dim] so that
 * appending a position writes `head_dim` elements per head; capacity doubles when full. Elements
 * are the model's KV type: float32, or float16 bit patterns (`dtype: 'float16'`, Uint16Array).
 */
export class KvCache {
  /** Positions held (the sequence's length so far). */
  length = 0;
  private capacity: number;
  readonly keys: KvArray[];
  readonly values: KvArray[];

  constructor(
    readonly numLayers: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    initialCapacity = 32,
    readonly dtype: KvDtype = 'float32',
  ) {
    this.capacity = Math.max(1, initialCapacity);
    const size = numKvHeads * this.capacity * headDim;
    this.keys = Array.from({ length: numLayers }, () => newKvArray(dtype, size));
    this.values = Array.from({ length: numLayers }, () => newKvArray(dtype, size));
  }

  /** Bytes held, capacity included. */
  get bytes(): number {
    return 2 * this.numLayers * this.numKvHeads * this.capacity * this.headDim * this.keys[0]!.BYTES_PER_ELEMENT;
  }

  /** Makes room for `length` positions. */
  reserve(length: number): void {
    if (length <= this.capacity) return;
    let capacity = this.capacity;
    while (capacity < length) capacity *= 2;
    const { numKvHeads: heads, headDim: d } = this;
    const grow = (old: KvArray): KvArray => {
      const next = newKvArray(this.dtype, heads * capacity * d);
      for (let h = 0; h < heads; h++) {
        next.set(old.subarray(h * this.capacity * d, (h * this.capacity + this.length) * d), h * capacity * d);
      }
      return next;
    };
    for (let l = 0; l < this.numLayers; l++) {
      this.keys[l] = grow(this.keys[l]!);
      this.values[l] = grow(this.values[l]!);
    }
    this.capacity = capacity;
  }

  /**
   * An independent copy holding the same positions: n samples of one prompt each continue from
   * the prompt's cache without running its prefill again.
   */
  clone(): KvCache {
    const copy = new KvCache(this.numLayers, this.numKvHeads, this.headDim, this.capacity, this.dtype);
    for (let l = 0; l < this.numLayers; l++) {
      copy.keys[l]!.set(this.keys[l]!);
      copy.values[l]!.set(this.values[l]!);
    }
    copy.length = this.length;
    return copy;
  }

  /** Copies this cache into a batch tensor [b, heads, width, d] at row `row`, right-aligned. */
  writeTo(target: KvArray, which: 'keys' | 'values', layer: number, row: number, width: number): void {
    const { numKvHeads: heads, headDim: d, length } = this;
    const source = this[which][layer]!;
    const pad = width - length;
    for (let h = 0; h < heads; h++) {
      const from = h * this.capacity * d;
      target.set(source.subarray(from, from + length * d), ((row * heads + h) * width + pad) * d);
    }
  }

  /**
   * Appends `count` positions taken from the end of row `row` of a present tensor
   * [b, heads, width, d] (the new positions are its last `count` columns).
   */
  appendFrom(present: KvArray, which: 'keys' | 'values', layer: number, row: number, width: number, count: number): void {
    const { numKvHeads: heads, headDim: d, length } = this;
    const target = this[which][layer]!;
    for (let h = 0; h < heads; h++) {
      const from = ((row * heads + h) * width + width - count) * d;
      target.set(present.subarray(from, from + count * d), (h * this.capacity + length) * d);
    }
  }
}

type IntType = 'int32' | 'int64';

/** The element types a graph's inputs and outputs use, read from its signature at load. */
interface SignatureTypes {
  ids: IntType;
  mask: IntType;
  positions: IntType;
  /** past_key_values.* and present.* (always the same type). */
  kv: KvDtype;
  logits: KvDtype;
}

function kvTensor(dtype: KvDtype, data: KvArray, dims: number[]): ort.Tensor {
  return dtype === 'float16'
    ? new ort.Tensor('float16', data as Uint16Array, dims)
    : new ort.Tensor('float32', data as Float32Array, dims);
}

let float16Table: Float32Array | undefined;

/**
 * float16 bit patterns → float32 through a 65536-entry table (256 KiB, built once): one lookup
 * per logit, cheap enough to widen a vocabulary-sized row per sequence every step.
 */
function widenFloat16(bits: Uint16Array, target: Float32Array): Float32Array {
  if (float16Table === undefined) {
    const view = new DataView(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer);
    float16Table = Float32Array.from({ length: 65536 }, (_, i) => getFloat16(view, i * 2, true));
  }
  const table = float16Table;
  for (let i = 0; i < bits.length; i++) target[i] = table[bits[i]!]!;
  return target;
}

const KNOWN_INPUTS = new Set(['input_ids', 'attention_mask', 'position_ids']);
const PAST_INPUT = /^past_key_values\.(\d+)\.(key|value)$/;

/** What the inputs of export layouts this runtime does not run are, to say so in the load error. */
const UNSUPPORTED_INPUT_HINTS: readonly (readonly [RegExp, string])[] = [
  [/^past_key_values\.\d+\.key_value$/, 'a multi-query key_value cache, as gpt_bigcode exports have'],
  [/^past_key_values\.\d+\.(encoder|decoder)\./, 'an encoder-decoder cache: this runtime runs decoder-only models'],
  [/^past_(conv|ssm|recurrent)/, 'recurrent state of a hybrid model (Mamba / linear-attention layers)'],
  [/^num_logits_to_keep$/, 'an export that computes only the last logits; export without it'],
  [/^inputs_embeds$/, 'an embedding-input graph (multimodal exports split it from embed_tokens)'],
];

export class DecoderSession {
  /** Session runs so far: decode = one new token per sequence on top of a past; prefill = the rest. */
  readonly runs = { prefill: 0, decode: 0 };

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly modelPath: string,
    readonly config: DecoderModelConfig,
    readonly provider: string,
    readonly providerFallback: string | undefined,
    readonly usesPositionIds: boolean,
    private readonly types: SignatureTypes,
  ) {}

  /** Element type of the KV cache (and of the caches `newCache` makes). */
  get kvDtype(): KvDtype {
    return this.types.kv;
  }

  /** Opens `model.onnx` (or `onnx/model.onnx`) of a model folder with its `config.json`. */
  static async open(modelDir: string, options: DecoderSessionOptions): Promise<DecoderSession> {
    const modelPath = await findModelFile(modelDir, options.modelFile, options.dtype ?? 'fp32');
    const config = await readModelConfig(modelDir);
    let opened;
    try {
      opened = await openOrtSession(modelPath, options);
    } catch (err) {
      const message = (err as Error).message;
      // onnxruntime's wording (tensorprotoutils.cc) buried after each provider's attempt: say it first.
      const missingData = /External data path does not exist: "?([^"\s]+)"?/.exec(message);
      if (missingData) {
        throw new Error(
          `decoder: ${modelPath} keeps its weights in the external data file ${missingData[1]}, which is missing: ` +
            `put it next to the graph, as the export wrote it (${message})`,
        );
      }
      throw new Error(`decoder: ${message}`);
    }
    const { session } = opened;
    try {
      const types = checkSignature(session, modelPath, config);
      return new DecoderSession(
        session,
        modelPath,
        config,
        opened.provider,
        opened.fallback,
        session.inputNames.includes('position_ids'),
        types,
      );
    } catch (err) {
      await session.release().catch(() => undefined);
      throw err;
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  newCache(initialCapacity?: number): KvCache {
    const { numLayers, numKvHeads, headDim } = this.config;
    return new KvCache(numLayers, numKvHeads, headDim, initialCapacity, this.types.kv);
  }

  /** Runs one prompt from an empty cache. */
  async prefill(ids: readonly number[], options: ForwardOptions = {}): Promise<PrefillResult> {
    const [result] = await this.prefillBatch([ids], options);
    return result!;
  }

  /** Runs several prompts (of any lengths) in one session run, each into a new cache. */
  async prefillBatch(
    prompts: readonly (readonly number[])[],
    options: ForwardOptions = {},
    onStats?: (stats: ForwardStats) => void,
  ): Promise<PrefillResult[]> {
    const items = prompts.map((ids) => ({ ids, cache: this.newCache(Math.max(32, ids.length + 32)) }));
    const logits = await this.forward(items, options, onStats);
    return items.map((item, i) => ({ cache: item.cache, logits: logits[i]! }));
  }

  /** Feeds one token per sequence (caches of any lengths) in one session run; returns next-token logits. */
  async decodeStep(
    sequences: readonly DecodeItem[],
    onStats?: (stats: ForwardStats) => void,
    options: ForwardOptions = {},
  ): Promise<Float32Array[]> {
    return this.forward(
      sequences.map((s) => ({ cache: s.cache, ids: [s.tokenId] })),
      options,
      onStats,
    );
  }

  /**
   * The general step: appends `ids` to each item's cache in one session run and returns, per
   * item, the logits of its last new position ([vocab]) or of all its new positions
   * ([ids.length * vocab] with `allLogits`). The returned arrays are views of the run's output.
   * Caches change only when the run succeeds.
   */
  async forward(
    items: readonly ForwardItem[],
    options: ForwardOptions = {},
    onStats?: (stats: ForwardStats) => void,
  ): Promise<Float32Array[]> {
    if (items.length === 0) return [];
    const { numLayers, numKvHeads: heads, headDim: d, vocabSize, maxPositions, padTokenId } = this.config;
    const batch = items.length;
    let past = 0;
    let width = 0;
    let tokens = 0;
    for (const { cache, ids } of items) {
      if (ids.length === 0) throw new Error('decoder: every sequence in a forward pass needs at least one new id');
      if (cache.length + ids.length > maxPositions) {
        throw new Error(`decoder: ${cache.length + ids.length} positions exceed the model's ${maxPositions}`);
      }
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`decoder: token id ${id} is outside the vocabulary`);
      }
      past = Math.max(past, cache.length);
      width = Math.max(width, ids.length);
      tokens += ids.length;
    }
    const total = past + width;

    // Row b: [pad past | past_b | pad new | ids_b]; only the pads are masked.
    const inputIds = intBuffer(this.types.ids, batch * width, padTokenId);
    const positionIds = intBuffer(this.types.positions, batch * width, 0);
    const mask = intBuffer(this.types.mask, batch * total, 0);
    items.forEach(({ cache, ids }, b) => {
      const p = cache.length;
      for (let t = past - p; t < past; t++) mask.set(b * total + t, 1);
      const start = width - ids.length;
      for (let j = 0; j < ids.length; j++) {
        inputIds.set(b * width + start + j, ids[j]!);
        positionIds.set(b * width + start + j, p + j);
        mask.set(b * total + past + start + j, 1);
      }
    });

    const feeds: Record<string, ort.Tensor> = {
      input_ids: inputIds.tensor([batch, width]),
      attention_mask: mask.tensor([batch, total]),
    };
    if (this.usesPositionIds) feeds['position_ids'] = positionIds.tensor([batch, width]);
    const reuse = options.reuseBuffers === true;
    const { kv, logits: logitsType } = this.types;
    const fetches: Record<string, ort.Tensor> = {};
    if (reuse) {
      fetches['logits'] = kvTensor(logitsType, this.pooled('logits', batch * width * vocabSize, logitsType), [batch, width, vocabSize]);
    }
    for (let l = 0; l < numLayers; l++) {
      for (const [kind, which] of [['key', 'keys'], ['value', 'values']] as const) {
        const name = `past_key_values.${l}.${kind}`;
        const size = batch * heads * past * d;
        const data = reuse ? this.pooled(name, size, kv) : newKvArray(kv, size);
        if (past > 0) {
          items.forEach(({ cache }, b) => {
            // A reused buffer holds old values where this run pads: clear them (masked, but
            // they must at least be finite).
            if (reuse && cache.length < past) data.fill(0, b * heads * past * d, (b + 1) * heads * past * d);
            cache.writeTo(data, which, l, b, past);
          });
        }
        feeds[name] = kvTensor(kv, data, [batch, heads, past, d]);
        if (reuse) {
          const present = `present.${l}.${kind}`;
          fetches[present] = kvTensor(kv, this.pooled(present, batch * heads * total * d, kv), [batch, heads, total, d]);
        }
      }
    }

    const started = performance.now();
    const results = reuse ? await this.session.run(feeds, fetches) : await this.session.run(feeds);
    const runMs = performance.now() - started;
    if (past > 0 && width === 1) this.runs.decode++;
    else this.runs.prefill++;

    const logits = results['logits'];
    if (logits === undefined || logits.type !== logitsType) {
      throw new Error(`decoder: ${this.modelPath} gave no ${logitsType} logits`);
    }
    const logitsData = (reuse ? fetches['logits']!.data : logits.data) as KvArray;
    if (logitsData.length !== batch * width * vocabSize) {
      throw new Error(`decoder: logits have shape [${logits.dims.join(', ')}], expected [${batch}, ${width}, ${vocabSize}]`);
    }
    const presents: KvArray[][] = [];
    for (let l = 0; l < numLayers; l++) {
      const pair = (['key', 'value'] as const).map((kind) => {
        const t = results[`present.${l}.${kind}`];
        if (t === undefined || t.type !== kv || t.dims[2] !== total) {
          throw new Error(`decoder: output present.${l}.${kind} is missing or has shape [${t?.dims.join(', ') ?? ''}]`);
        }
        return (reuse ? fetches[`present.${l}.${kind}`]!.data : t.data) as KvArray;
      });
      presents.push(pair);
    }

    const out = items.map(({ cache, ids }, b) => {
      const s = ids.length;
      cache.reserve(cache.length + s);
      for (let l = 0; l < numLayers; l++) {
        cache.appendFrom(presents[l]![0]!, 'keys', l, b, total, s);
        cache.appendFrom(presents[l]![1]!, 'values', l, b, total, s);
      }
      cache.length += s;
      const rowEnd = (b + 1) * width * vocabSize;
      const rowStart = options.allLogits ? rowEnd - s * vocabSize : rowEnd - vocabSize;
      const rows = logitsData.subarray(rowStart, rowEnd);
      if (rows instanceof Float32Array) return rows;
      // float16 logits: widen only the rows handed out; with reuseBuffers into a kept buffer at
      // the same offsets, so the views keep the "valid until the next run" contract.
      const widened = reuse
        ? (this.pooled('logits.widened', batch * width * vocabSize, 'float32') as Float32Array).subarray(rowStart, rowEnd)
        : new Float32Array(rows.length);
      return widenFloat16(rows, widened);
    });
    onStats?.({ batchSize: batch, pastLength: past, newLength: width, tokens, runMs });
    return out;
  }

  release(): Promise<void> {
    this.pool.clear();
    return this.session.release();
  }

  private readonly pool = new Map<string, KvArray>();

  /** A view of `size` elements of the session's reusable buffer `name` (grown by half as needed). */
  private pooled(name: string, size: number, dtype: KvDtype): KvArray {
    let buffer = this.pool.get(name);
    if (buffer === undefined || buffer.length < size) {
      buffer = newKvArray(dtype, Math.max(size, Math.ceil((buffer?.length ?? 0) * 1.5)));
      this.pool.set(name, buffer);
    }
    return buffer.subarray(0, size);
  }
}

interface IntBuffer {
  set(index: number, value: number): void;
  tensor(dims: number[]): ort.Tensor;
}

function intBuffer(type: IntType, size: number, fill: number): IntBuffer {
  if (type === 'int64') {
    const data = new BigInt64Array(size).fill(BigInt(fill));
    return { set: (i, v) => void (data[i] = BigInt(v)), tensor: (dims) => new ort.Tensor('int64', data, dims) };
  }
  const data = new Int32Array(size).fill(fill);
  return { set: (i, v) => void (data[i] = v), tensor: (dims) => new ort.Tensor('int32', data, dims) };
}

async function findModelFile(modelDir: string, modelFile: string | undefined, dtype: DecoderDtype): Promise<string> {
  const file = `model${DECODER_DTYPE_FILE_SUFFIX[dtype]}.onnx`;
  const candidates = modelFile ? [path.join(modelDir, modelFile)] : [path.join(modelDir, file), path.join(modelDir, 'onnx', file)];
  for (const candidate of candidates) {
    try {
      await access(candidate);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(`decoder: model graph not found in ${modelDir} (looked for ${candidates.join(' and ')})`);
}

async function readModelConfig(modelDir: string): Promise<DecoderModelConfig> {
  const file = path.join(modelDir, 'config.json');
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`decoder: ${file} not found (needed for the number of layers, heads and head size)`);
    }
    throw new Error(`decoder: cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(`decoder: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`decoder: ${file} does not hold a JSON object`);
  // Multimodal configs keep the language model's settings under text_config.
  const outer = parsed as Record<string, unknown>;
  const c = (typeof outer['text_config'] === 'object' && outer['text_config'] !== null
    ? { ...outer, ...(outer['text_config'] as Record<string, unknown>) }
    : outer) as Record<string, unknown>;

  // GPT-2 style configs (gpt2, gptj, codegen, …) name the sizes n_head / n_layer / n_embd /
  // n_positions; transformers.js maps them the same way (its getNormalizedConfig).
  const read = (keys: readonly string[], fallback?: number): number => {
    const key = keys.find((k) => c[k] !== undefined && c[k] !== null);
    const value = key === undefined ? fallback : c[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      const named = keys.join(' or ');
      throw new Error(
        key === undefined
          ? `decoder: ${file} has no ${named}; the runtime needs it to shape the KV cache`
          : `decoder: ${file} has no usable ${key} (${JSON.stringify(c[key])})`,
      );
    }
    return value;
  };
  if (c['multi_query'] === true) {
    throw new Error(
      `decoder: ${file} describes a multi-query model (multi_query: true, as gpt_bigcode): its single ` +
        'past_key_values.N.key_value cache is not supported, only separate .key / .value caches',
    );
  }
  const numHeads = read(['num_attention_heads', 'n_head']);
  const numKvHeads = read(['num_key_value_heads'], numHeads);
  // head_dim where the config gives it (Gemma's differs from hidden / heads), else hidden / heads.
  const given = (key: string): boolean => c[key] !== undefined && c[key] !== null;
  let headDim: number;
  if (given('head_dim')) headDim = read(['head_dim']);
  else if (given('hidden_size') || given('n_embd')) headDim = read(['hidden_size', 'n_embd']) / numHeads;
  else throw new Error(`decoder: ${file} has neither head_dim nor hidden_size (or n_embd); the runtime needs one to shape the KV cache`);
  if (!Number.isInteger(headDim)) {
    throw new Error(`decoder: ${file}: the hidden size is not a multiple of ${numHeads} heads and there is no head_dim`);
  }
  const pad = c['pad_token_id'];
  return {
    modelType: typeof c['model_type'] === 'string' ? (c['model_type'] as string) : 'unknown',
    numLayers: read(['num_hidden_layers', 'n_layer']),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: read(['vocab_size']),
    maxPositions: read(['max_position_embeddings', 'n_positions'], 2048),
    padTokenId: typeof pad === 'number' && Number.isInteger(pad) && pad >= 0 ? pad : 0,
  };
}

const KV_DTYPES: readonly string[] = ['float32', 'float16'] satisfies KvDtype[];

/** Checks the graph's inputs and outputs against the config; returns the element types they use. */
function checkSignature(session: ort.InferenceSession, modelPath: string, config: DecoderModelConfig): SignatureTypes {
  const layers = new Set<number>();
  for (const name of session.inputNames) {
    const past = PAST_INPUT.exec(name);
    if (past) {
      layers.add(Number(past[1]));
      continue;
    }
    if (!KNOWN_INPUTS.has(name)) {
      const hint = UNSUPPORTED_INPUT_HINTS.find(([pattern]) => pattern.test(name))?.[1];
      throw new Error(
        `decoder: ${modelPath} has an input "${name}" this loader does not know how to feed` +
          (hint ? ` (${hint})` : '') +
          `; supported inputs are ${[...KNOWN_INPUTS].join(', ')} and past_key_values.N.key / .value`,
      );
    }
  }
  for (const name of ['input_ids', 'attention_mask']) {
    if (!session.inputNames.includes(name)) {
      throw new Error(`decoder: ${modelPath} has no "${name}" input (inputs: ${session.inputNames.join(', ')})`);
    }
  }
  if (layers.size === 0) {
    throw new Error(`decoder: ${modelPath} has no past_key_values inputs: export it with a KV cache ("-with-past")`);
  }
  if (layers.size !== config.numLayers) {
    throw new Error(`decoder: ${modelPath} has ${layers.size} layers of past_key_values, config.json says ${config.numLayers}`);
  }
  const tensorType = (meta: ort.InferenceSession.ValueMetadata | undefined): string | undefined =>
    meta?.isTensor ? meta.type : undefined;
  const kv = tensorType(session.inputMetadata.find((m) => m.name === 'past_key_values.0.key')) ?? 'float32';
  if (!KV_DTYPES.includes(kv)) {
    throw new Error(
      `decoder: ${modelPath} keeps its KV cache as ${kv}; supported KV caches are ${KV_DTYPES.join(' and ')} ` +
        '(fp32, fp16, q4 and q4f16 exports)',
    );
  }
  for (let l = 0; l < config.numLayers; l++) {
    for (const kind of ['key', 'value']) {
      const input = `past_key_values.${l}.${kind}`;
      const meta = session.inputMetadata.find((m) => m.name === input);
      if (meta === undefined) throw new Error(`decoder: ${modelPath} has no input ${input}`);
      const present = `present.${l}.${kind}`;
      for (const [name, type] of [
        [input, tensorType(meta)],
        [present, tensorType(session.outputMetadata.find((m) => m.name === present))],
      ] as const) {
        if (type !== undefined && type !== kv) {
          throw new Error(`decoder: ${modelPath} has ${name} as ${type} but past_key_values.0.key as ${kv}; one KV type is supported per model`);
        }
      }
      if (meta.isTensor) {
        const [, heads, , dim] = meta.shape;
        if ((typeof heads === 'number' && heads !== config.numKvHeads) || (typeof dim === 'number' && dim !== config.headDim)) {
          throw new Error(
            `decoder: ${input} of ${modelPath} is [${meta.shape.join(', ')}], config.json implies ` +
              `[batch, ${config.numKvHeads}, past, ${config.headDim}]`,
          );
        }
      }
      if (!session.outputNames.includes(`present.${l}.${kind}`)) {
        throw new Error(`decoder: ${modelPath} has no output present.${l}.${kind}`);
      }
    }
  }
  if (!session.outputNames.includes('logits')) throw new Error(`decoder: ${modelPath} has no "logits" output`);
  const logits = tensorType(session.outputMetadata.find((m) => m.name === 'logits')) ?? 'float32';
  if (!KV_DTYPES.includes(logits)) {
    throw new Error(`decoder: ${modelPath} gives its logits as ${logits}; supported logits are ${KV_DTYPES.join(' and ')}`);
  }

  const intType = (name: string): IntType => {
    const meta = session.inputMetadata.find((m) => m.name === name);
    if (meta === undefined || !meta.isTensor) return 'int64';
    if (meta.type === 'int64' || meta.type === 'int32') return meta.type;
    throw new Error(`decoder: ${modelPath} input ${name} is ${meta.type}, expected int64 or int32`);
  };
  return {
    ids: intType('input_ids'),
    mask: intType('attention_mask'),
    positions: intType('position_ids'),
    kv: kv as KvDtype,
    logits: logits as KvDtype,
  };
}
