/**
 * Weight formats of real decoder exports, as transforms of a generated fp32 model
 * (make-tiny-decoder.ts writes the fp32 graph; these rewrite it the way the export tools do), so the
 * chat runtime and transformers.js can be checked on the same files without downloading a model:
 *
 *   fp16           every float tensor float16: weights, activations, the KV cache inputs
 *                  (past_key_values.*) and outputs (present.*) and the logits, as Optimum's
 *                  `--dtype fp16` exports and onnx-community's model_fp16.onnx are. Constants beyond
 *                  float16's range (the -1e9 attention mask) are clamped to ±65504, as
 *                  onnxconverter-common's float16 converter does.
 *   q4             the MatMuls whose right-hand side is a weight become com.microsoft MatMulNBits
 *                  (4 bits, blocks of 32 along K, a float scale and a 4-bit zero point per block),
 *                  as onnxruntime's MatMulNBitsQuantizer and onnx-community's model_q4.onnx write
 *                  them; activations stay float32.
 *   q4f16          q4 then fp16 (onnx-community's model_q4f16.onnx).
 *   external data  initializers in `<graph file>_data` next to the graph (TensorProto.external_data:
 *                  location / offset / length, data_location EXTERNAL), the layout every export
 *                  over protobuf's 2 GB limit has, and many smaller ones.
 *
 * File names follow transformers.js (DEFAULT_DTYPE_SUFFIX_MAPPING in its utils/dtypes.js):
 * onnx/model.onnx, onnx/model_fp16.onnx, onnx/model_q4.onnx, onnx/model_q4f16.onnx, and the
 * external data of onnx/model_fp16.onnx is onnx/model_fp16.onnx_data.
 *
 * CLI: tsx scripts/models/export-variants.ts <modelDir> <fp16|q4|q4f16|fp32> [--external-data]
 *      (reads <modelDir>/onnx/model.onnx, writes the variant next to it)
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

import { DECODER_DTYPE_FILE_SUFFIX, type DecoderDtype } from '../../shared/models/model-registry.js';
import { DataType, isEntryPoint, writeFileAtomically } from './onnx-builder.js';

const { onnx } = onnxProto;

export type WeightDtype = DecoderDtype;
const DTYPE_FILE_SUFFIX = DECODER_DTYPE_FILE_SUFFIX;

/** Largest finite float16. */
const FLOAT16_MAX = 65504;

/**
 * A decoded graph: protobufjs decodes into message classes whose repeated fields are always
 * arrays, which the I-interfaces (every field optional) do not say.
 */
interface DecodedGraph {
  node: Onnx.NodeProto[];
  initializer: Onnx.TensorProto[];
  input: Onnx.ValueInfoProto[];
  output: Onnx.ValueInfoProto[];
  valueInfo: Onnx.ValueInfoProto[];
}

function graphOf(model: Onnx.ModelProto): DecodedGraph {
  if (!model.graph) throw new Error('export-variants: the model has no graph');
  return model.graph as unknown as DecodedGraph;
}

// ---------------------------------------------------------------------------------------------
// Reading and writing
// ---------------------------------------------------------------------------------------------

export async function readOnnxModel(file: string): Promise<Onnx.ModelProto> {
  return onnx.ModelProto.decode(await readFile(file));
}

export interface WriteModelOptions {
  /**
   * Move initializers of at least `threshold` bytes (default 1024, onnx's
   * convert_model_to_external_data default) into `<file>_data`; smaller ones (shapes, axes,
   * scalars) stay inline, as in real exports.
   */
  externalData?: boolean | { threshold?: number };
}

/** Writes `model` to `file`, with its large initializers in `<file>_data` when asked. */
export async function writeOnnxModel(file: string, model: Onnx.ModelProto, options: WriteModelOptions = {}): Promise<void> {
  // Work on a copy: the caller's model keeps its inline weights.
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  if (options.externalData) {
    const threshold = typeof options.externalData === 'object' ? (options.externalData.threshold ?? 1024) : 1024;
    const dataFile = `${path.basename(file)}_data`;
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const tensor of graphOf(copy).initializer) {
      const raw = tensor.rawData;
      if (raw === undefined || raw === null || raw.length < threshold) continue;
      // 64-byte aligned offsets: a runtime that memory-maps the file can read tensors in place.
      const padding = (64 - (offset % 64)) % 64;
      if (padding > 0) chunks.push(new Uint8Array(padding));
      offset += padding;
      tensor.externalData = [
        { key: 'location', value: dataFile },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ];
      tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      chunks.push(raw);
      offset += raw.length;
      tensor.rawData = new Uint8Array(0);
    }
    await writeFileAtomically(path.join(path.dirname(file), dataFile), Buffer.concat(chunks));
  } else {
    // A data file left by an earlier external-data write of this graph would only mislead.
    await rm(`${file}_data`, { force: true });
  }
  await writeFileAtomically(file, onnx.ModelProto.encode(copy).finish());
}

// ---------------------------------------------------------------------------------------------
// fp16
// ---------------------------------------------------------------------------------------------

/** float32 values → float16 bit patterns (round to nearest even, clamped to the finite range). */
export function encodeFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const clamped = Math.min(FLOAT16_MAX, Math.max(-FLOAT16_MAX, values[i]!));
    setFloat16(view, i * 2, Number.isNaN(values[i]!) ? NaN : clamped, true);
  }
  return out;
}

/** float16 bit patterns → float32 values. */
export function decodeFloat16(bits: Uint16Array): Float32Array {
  const view = new DataView(bits.buffer, bits.byteOffset, bits.byteLength);
  return Float32Array.from({ length: bits.length }, (_, i) => getFloat16(view, i * 2, true));
}

function floatTensorValues(tensor: Onnx.ITensorProto): Float32Array {
  if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new Error(`export-variants: ${tensor.name} is in external data; transform the model before writing it out`);
  }
  if (tensor.rawData && tensor.rawData.length > 0) {
    // Copy: rawData may sit at an unaligned offset of the decoded buffer.
    return new Float32Array(Uint8Array.from(tensor.rawData).buffer);
  }
  return Float32Array.from(tensor.floatData ?? []);
}

function toFloat16Tensor(tensor: Onnx.ITensorProto): void {
  const bits = encodeFloat16(floatTensorValues(tensor));
  tensor.dataType = DataType.FLOAT16;
  tensor.rawData = new Uint8Array(bits.buffer);
  tensor.floatData = [];
}

function retypeValueInfo(info: Onnx.IValueInfoProto, from: number, to: number): void {
  const tensorType = info.type?.tensorType;
  if (tensorType && tensorType.elemType === from) tensorType.elemType = to;
}

/**
 * The whole graph in float16. In place; returns the model. Cast nodes that made floats now make
 * float16, so every float path (rotary angles, the attention bias) computes in float16 too, as in
 * an fp16 export; onnxruntime's CPU provider runs the ops it has no float16 kernel for in float32
 * behind Casts it inserts itself.
 */
export function convertToFloat16(model: Onnx.ModelProto): Onnx.ModelProto {
  const graph = graphOf(model);
  for (const tensor of graph.initializer) if (tensor.dataType === DataType.FLOAT) toFloat16Tensor(tensor);
  for (const node of graph.node) {
    for (const attribute of node.attribute) {
      if (node.opType === 'Cast' && attribute.name === 'to' && Number(attribute.i) === DataType.FLOAT) attribute.i = DataType.FLOAT16;
      if (attribute.t && attribute.t.dataType === DataType.FLOAT) toFloat16Tensor(attribute.t);
    }
  }
  for (const info of [...graph.input, ...graph.output, ...graph.valueInfo]) retypeValueInfo(info, DataType.FLOAT, DataType.FLOAT16);
  return model;
}

// ---------------------------------------------------------------------------------------------
// MatMulNBits
// ---------------------------------------------------------------------------------------------

export interface QuantizeOptions {
  /** Weights per block along K (a power of two ≥ 16; default 32, onnx-community's q4). */
  blockSize?: number;
  /** Write a 4-bit zero point per block (asymmetric, the default); false: symmetric, zero point 8. */
  zeroPoints?: boolean;
}

interface QuantizedWeight {
  /** [N, blocks, blockSize / 2]: two 4-bit values per byte, the first in the low nibble. */
  packed: Uint8Array;
  /** [N, blocks] */
  scales: Float32Array;
  /** [N, ceil(blocks / 2)], packed like `packed`; undefined when symmetric. */
  zeroPoints: Uint8Array | undefined;
}

/**
 * Block-wise 4-bit quantization of a weight W[K, N] (MatMul's right-hand side) as MatMulNBits
 * reads it (onnxruntime docs/ContribOperators.md): blocks run along K within one output column n,
 * value = (q - zero_point) * scale. Asymmetric blocks map [min(block, 0), max(block, 0)] onto 0..15;
 * symmetric ones map ±max|block| onto -8..7 around the implicit zero point 8.
 */
export function quantizeWeight4Bit(weight: Float32Array, K: number, N: number, blockSize: number, asymmetric: boolean): QuantizedWeight {
  const blocks = Math.ceil(K / blockSize);
  const blobSize = blockSize / 2;
  const packed = new Uint8Array(N * blocks * blobSize);
  const scales = new Float32Array(N * blocks);
  const zeroPoints = asymmetric ? new Uint8Array(N * Math.ceil(blocks / 2)) : undefined;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const start = b * blockSize;
      const end = Math.min(K, start + blockSize);
      let min = 0;
      let max = 0;
      for (let k = start; k < end; k++) {
        const w = weight[k * N + n]!;
        min = Math.min(min, w);
        max = Math.max(max, w);
      }
      let scale: number;
      let zero: number;
      if (asymmetric) {
        scale = (max - min) / 15;
        zero = scale === 0 ? 8 : Math.min(15, Math.max(0, Math.round(-min / scale)));
      } else {
        // The value of largest magnitude maps to -8 (the end of the range with one more step).
        const extreme = -min >= max ? min : max;
        scale = extreme / -8;
        zero = 8;
      }
      // The stored scale is what dequantization uses: round it first so q is chosen against it.
      scale = Math.fround(scale);
      scales[n * blocks + b] = scale;
      if (zeroPoints) zeroPoints[n * Math.ceil(blocks / 2) + (b >> 1)]! |= zero << ((b & 1) * 4);
      for (let k = start; k < end; k++) {
        const w = weight[k * N + n]!;
        const q = scale === 0 ? zero : Math.min(15, Math.max(0, Math.round(w / scale) + zero));
        const index = (n * blocks + b) * blobSize + ((k - start) >> 1);
        packed[index]! |= q << (((k - start) & 1) * 4);
      }
      // Padding past K (a K that is not a multiple of the block) dequantizes to 0.
      for (let k = end; k < start + blockSize; k++) {
        packed[(n * blocks + b) * blobSize + ((k - start) >> 1)]! |= zero << (((k - start) & 1) * 4);
      }
    }
  }
  return { packed, scales, zeroPoints };
}

/**
 * The float weight W[K, N] that MatMulNBits computes with, read back from the packed form
 * (nibbles, scales, zero points) by the documented formula (q - zero_point) * scale.
 */
export function dequantizeWeight4Bit(q: QuantizedWeight, K: number, N: number, blockSize: number): Float32Array {
  const blocks = Math.ceil(K / blockSize);
  const weight = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / blockSize);
      const offset = k - b * blockSize;
      const nibble = (q.packed[(n * blocks + b) * (blockSize / 2) + (offset >> 1)]! >> ((offset & 1) * 4)) & 0xf;
      const zero = q.zeroPoints ? (q.zeroPoints[n * Math.ceil(blocks / 2) + (b >> 1)]! >> ((b & 1) * 4)) & 0xf : 8;
      weight[k * N + n] = (nibble - zero) * q.scales[n * blocks + b]!;
    }
  }
  return weight;
}

/** The weights quantizeMatMulNBits would quantize: right-hand sides of MatMuls, 2-D float32, used once. */
function quantizableWeights(graph: DecodedGraph): Map<Onnx.NodeProto, Onnx.TensorProto> {
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const uses = new Map<string, number>();
  for (const node of graph.node) for (const input of node.input) uses.set(input, (uses.get(input) ?? 0) + 1);
  const found = new Map<Onnx.NodeProto, Onnx.TensorProto>();
  for (const node of graph.node) {
    const weight = node.opType === 'MatMul' ? initializers.get(node.input[1] ?? '') : undefined;
    if (weight && weight.dataType === DataType.FLOAT && weight.dims.length === 2 && uses.get(weight.name) === 1) found.set(node, weight);
  }
  return found;
}

/**
 * The float graph with each weight that quantizeMatMulNBits would quantize replaced by its 4-bit
 * round trip (quantize, then dequantizeWeight4Bit): the model a q4 graph must compute exactly, if
 * the packing is what onnxruntime reads. In place; returns the model.
 */
export function roundTripMatMulWeights(model: Onnx.ModelProto, options: QuantizeOptions = {}): Onnx.ModelProto {
  const blockSize = options.blockSize ?? 32;
  for (const weight of quantizableWeights(graphOf(model)).values()) {
    const [K, N] = weight.dims.map(Number) as [number, number];
    const q = quantizeWeight4Bit(floatTensorValues(weight), K, N, blockSize, options.zeroPoints ?? true);
    weight.rawData = new Uint8Array(dequantizeWeight4Bit(q, K, N, blockSize).buffer);
    weight.floatData = [];
  }
  return model;
}

/**
 * Replaces every MatMul whose right-hand side is a 2-D float32 initializer with a MatMulNBits
 * node (domain com.microsoft), dropping the float weight. MatMuls of two activations (attention
 * scores) and the tied output projection (its weight comes through a Transpose) stay float, as
 * onnxruntime's quantizer leaves anything that is not a constant weight. In place; returns the model.
 */
export function quantizeMatMulNBits(model: Onnx.ModelProto, options: QuantizeOptions = {}): Onnx.ModelProto {
  const blockSize = options.blockSize ?? 32;
  const asymmetric = options.zeroPoints ?? true;
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`export-variants: block size ${blockSize} is not a power of two ≥ 16`);
  const graph = graphOf(model);
  const weights = quantizableWeights(graph);
  const quantized = new Set<string>();

  graph.node = graph.node.map((node) => {
    const weight = weights.get(node);
    if (!weight) return node;
    const [K, N] = weight.dims.map(Number) as [number, number];
    const q = quantizeWeight4Bit(floatTensorValues(weight), K, N, blockSize, asymmetric);
    const blocks = Math.ceil(K / blockSize);
    const base = weight.name;
    const added: Onnx.ITensorProto[] = [
      { name: `${base}_Q4`, dims: [N, blocks, blockSize / 2], dataType: DataType.UINT8, rawData: q.packed },
      { name: `${base}_scales`, dims: [N, blocks], dataType: DataType.FLOAT, rawData: new Uint8Array(q.scales.buffer) },
    ];
    if (q.zeroPoints) added.push({ name: `${base}_zp`, dims: [N, Math.ceil(blocks / 2)], dataType: DataType.UINT8, rawData: q.zeroPoints });
    graph.initializer.push(...added.map((t) => onnx.TensorProto.create(t)));
    quantized.add(base);
    const Type = onnx.AttributeProto.AttributeType;
    const int = (name: string, i: number): Onnx.IAttributeProto => ({ name, type: Type.INT, i });
    return onnx.NodeProto.create({
      opType: 'MatMulNBits',
      domain: 'com.microsoft',
      name: `${node.name}_Q4`,
      input: [node.input[0]!, ...added.map((t) => t.name!)],
      output: node.output,
      attribute: [int('K', K), int('N', N), int('bits', 4), int('block_size', blockSize)],
    });
  });
  if (quantized.size === 0) throw new Error('export-variants: no MatMul with a float32 weight to quantize');
  graph.initializer = graph.initializer.filter((t) => !quantized.has(t.name));
  if (!model.opsetImport.some((o) => o.domain === 'com.microsoft')) model.opsetImport.push({ domain: 'com.microsoft', version: 1 });
  return model;
}

// ---------------------------------------------------------------------------------------------
// Graph input / output types
// ---------------------------------------------------------------------------------------------

/**
 * Gives the graph inputs and outputs that `select` picks the element type `to`, with Cast nodes
 * between them and the float32 graph (the way Optimum's fp16 exports with fp32 compute and some
 * bfloat16 exports look from outside). Used to make exports with I/O types the runtime must refuse.
 */
export function castGraphIo(model: Onnx.ModelProto, select: (name: string) => boolean, to: number): Onnx.ModelProto {
  const graph = graphOf(model);
  const Type = onnx.AttributeProto.AttributeType;
  const cast = (input: string, output: string, type: number): Onnx.NodeProto =>
    onnx.NodeProto.create({ opType: 'Cast', name: `Cast_${output}`, input: [input], output: [output], attribute: [{ name: 'to', type: Type.INT, i: type }] });
  const before: Onnx.NodeProto[] = [];
  const after: Onnx.NodeProto[] = [];
  for (const input of graph.input) {
    if (!select(input.name) || input.type?.tensorType?.elemType !== DataType.FLOAT) continue;
    const inner = `${input.name}_as_float`;
    for (const node of graph.node) node.input = node.input.map((name) => (name === input.name ? inner : name));
    before.push(cast(input.name, inner, DataType.FLOAT));
    input.type.tensorType.elemType = to;
  }
  for (const output of graph.output) {
    if (!select(output.name) || output.type?.tensorType?.elemType !== DataType.FLOAT) continue;
    const inner = `${output.name}_as_float`;
    for (const node of graph.node) {
      node.output = node.output.map((name) => (name === output.name ? inner : name));
      node.input = node.input.map((name) => (name === output.name ? inner : name));
    }
    after.push(cast(inner, output.name, to));
    output.type.tensorType.elemType = to;
  }
  graph.node = [...before, ...graph.node, ...after];
  return model;
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/**
 * Writes the `dtype` variant of `<modelDir>/onnx/model.onnx` next to it under transformers.js'
 * name (onnx/model_fp16.onnx, …); `externalData` puts its weights in `<that file>_data` (for
 * 'fp32' that rewrites onnx/model.onnx itself). Returns the graph file written.
 */
export async function writeExportVariant(
  modelDir: string,
  dtype: WeightDtype,
  options: { externalData?: boolean } = {},
): Promise<string> {
  const source = path.join(modelDir, 'onnx', 'model.onnx');
  const model = await readOnnxModel(source);
  if (dtype === 'q4' || dtype === 'q4f16') quantizeMatMulNBits(model);
  if (dtype === 'fp16' || dtype === 'q4f16') convertToFloat16(model);
  model.producerName = `${model.producerName}+export-variants`;
  const target = path.join(modelDir, 'onnx', `model${DTYPE_FILE_SUFFIX[dtype]}.onnx`);
  await writeOnnxModel(target, model, { externalData: options.externalData ?? false });
  return target;
}

if (isEntryPoint(import.meta.url)) {
  const [modelDir, dtype] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (!modelDir || !dtype || !(dtype in DTYPE_FILE_SUFFIX)) {
    console.error('usage: tsx scripts/models/export-variants.ts <modelDir> <fp32|fp16|q4|q4f16> [--external-data]');
    process.exit(2);
  }
  const written = await writeExportVariant(path.resolve(modelDir), dtype as WeightDtype, {
    externalData: process.argv.includes('--external-data'),
  });
  console.log(`wrote ${written}`);
}
