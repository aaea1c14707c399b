/**
 * Shared plumbing for the scripts that write ONNX graphs by hand with `onnx-proto`
 * (build-use-lite.ts, make-tiny-sentence-transformer.ts, make-tiny-decoder.ts): a graph builder
 * (nodes, attributes, initializers), graph input/output declarations, model serialisation, a
 * seeded normal sampler for generated weights, and file writing. Each script keeps only the
 * layers and files of its own model.
 *
 * Everything here is deterministic: the same calls always give the same bytes, so a rebuilt model
 * is byte-identical to the one it replaces. Several choices below (two node naming schemes, two
 * ways of drawing normal samples) exist only because unifying them would change the bytes of a
 * model some script already writes.
 */
import { realpathSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX element types (TensorProto.DataType): value-info element types and Cast's `to`. */
export const DataType = onnx.TensorProto.DataType;

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

export type AttributeValue = number | number[] | string;
/** Node attributes as a plain object; they are written in key order. */
export type Attributes = Record<string, AttributeValue>;

/**
 * A JS number does not say whether it is an int or a float, so the attribute's name decides: these
 * names (the float attributes of the standard ops the scripts use) are FLOAT, every other number
 * is INT. Arrays are INTS, strings STRING.
 */
const FLOAT_ATTRIBUTE_NAMES = new Set(['epsilon', 'alpha', 'beta']);

function attributeProtos(attributes: Attributes): Onnx.IAttributeProto[] {
  const Type = onnx.AttributeProto.AttributeType;
  return Object.entries(attributes).map(([name, value]): Onnx.IAttributeProto => {
    if (Array.isArray(value)) return { name, type: Type.INTS, ints: value };
    if (typeof value === 'string') return { name, type: Type.STRING, s: new TextEncoder().encode(value) };
    if (FLOAT_ATTRIBUTE_NAMES.has(name)) return { name, type: Type.FLOAT, f: value };
    // Catches a float attribute missing from FLOAT_ATTRIBUTE_NAMES before it is silently truncated.
    if (!Number.isInteger(value)) throw new Error(`onnx-builder: attribute ${name}=${value} is not an integer`);
    return { name, type: Type.INT, i: value };
  });
}

// ---------------------------------------------------------------------------------------------
// Graph builder
// ---------------------------------------------------------------------------------------------

export interface NodeSpec {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes?: Attributes;
}

export interface ModelSpec {
  graphName: string;
  inputs: Onnx.IValueInfoProto[];
  outputs: Onnx.IValueInfoProto[];
  irVersion: number;
  /** Version of the default ('ai.onnx') operator set. */
  opsetVersion: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
}

/**
 * Collects the nodes and initializers of one graph. Extend it to add a model's own layers (see
 * make-tiny-decoder.ts); `encodeModel` turns it into the bytes of a .onnx file.
 */
export class OnnxGraphBuilder {
  readonly nodes: Onnx.INodeProto[] = [];
  readonly initializers: Onnx.ITensorProto[] = [];
  private readonly initializerNames = new Set<string>();
  private serial = 0;

  /** `normal`: source of N(0, 1) samples for `randomNormal`; only graphs with generated weights need one. */
  constructor(private readonly normal?: () => number) {}

  /** Appends a node exactly as given. */
  addNode({ opType, name, inputs, outputs, attributes = {} }: NodeSpec): void {
    this.nodes.push({ opType, name, input: inputs, output: outputs, attribute: attributeProtos(attributes) });
  }

  /**
   * Adds a single-output node named `${opType}_${index}`, as PyTorch exports name them, and
   * returns its output: `output` where given (graph outputs and KV-cache tensors need exact
   * names), else a fresh `${optype}_${serial}`.
   */
  node(opType: string, inputs: string[], attributes: Attributes = {}, output?: string): string {
    const out = output ?? `${opType.toLowerCase()}_${this.serial++}`;
    this.addNode({ opType, name: `${opType}_${this.nodes.length}`, inputs, outputs: [out], attributes });
    return out;
  }

  /**
   * Adds a single-output node whose name and output are both `${hint}_${serial}`: descriptive
   * names (as seen in Netron or an onnxruntime error) that stay unique however often a hint
   * repeats. Returns the output. A graph uses either this or `node`, not both.
   */
  hintedNode(opType: string, inputs: string[], attributes: Attributes = {}, hint = opType): string {
    const name = `${hint}_${this.serial++}`;
    this.addNode({ opType, name, inputs, outputs: [name], attributes });
    return name;
  }

  /** A float32 initializer; returns its name. */
  floatTensor(name: string, dims: number[], data: Float32Array): string {
    if (elementCount(dims) !== data.length) throw new Error(`onnx-builder: ${data.length} values do not fill ${name} [${dims}]`);
    return this.addInitializer({
      name,
      dims,
      dataType: DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
  }

  /** An int64 initializer (shapes, axes, indices); returns its name. */
  int64Tensor(name: string, dims: number[], values: number[]): string {
    if (elementCount(dims) !== values.length) throw new Error(`onnx-builder: ${values.length} values do not fill ${name} [${dims}]`);
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    return this.addInitializer({ name, dims, dataType: DataType.INT64, rawData: new Uint8Array(data.buffer) });
  }

  /** A 1-D int64 initializer, the usual form of a shape or axes operand. */
  int64Vector(name: string, values: number[]): string {
    return this.int64Tensor(name, [values.length], values);
  }

  /** A rank-0 float32 initializer, for constants that broadcast. */
  scalar(name: string, value: number): string {
    return this.floatTensor(name, [], Float32Array.of(value));
  }

  /** A float32 initializer of N(mean, std²) samples from the builder's seeded sampler. */
  randomNormal(name: string, dims: number[], std: number, mean = 0): string {
    const normal = this.normal;
    if (!normal) throw new Error(`onnx-builder: ${name} needs a builder constructed with a normal sampler`);
    const values = new Float32Array(elementCount(dims));
    for (let i = 0; i < values.length; i++) values[i] = mean + std * normal();
    return this.floatTensor(name, dims, values);
  }

  /** The serialised ModelProto: the bytes of a .onnx file. */
  encodeModel(spec: ModelSpec): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: spec.irVersion,
      opsetImport: [{ domain: '', version: spec.opsetVersion }],
      producerName: spec.producerName,
      producerVersion: spec.producerVersion,
      ...(spec.docString === undefined ? {} : { docString: spec.docString }),
      graph: {
        name: spec.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: spec.inputs,
        output: spec.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private addInitializer(tensor: Onnx.ITensorProto & { name: string }): string {
    // onnxruntime rejects a graph with two initializers of one name; fail here, with the name.
    if (this.initializerNames.has(tensor.name)) throw new Error(`onnx-builder: duplicate initializer ${tensor.name}`);
    this.initializerNames.add(tensor.name);
    this.initializers.push(tensor);
    return tensor.name;
  }
}

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** A graph input or output: string dims are symbolic (dimParam, e.g. 'batch'), numbers fixed. */
export function tensorValueInfo(name: string, elemType: number, dims: (number | string)[]): Onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Deterministic weights
// ---------------------------------------------------------------------------------------------

/**
 * mulberry32: a tiny 32-bit seeded PRNG, uniform in [0, 1). Generated weights come from a seed
 * rather than Math.random so that every run writes byte-identical models.
 */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Standard normal samples by the Box-Muller transform, which makes a (cos, sin) pair from two
 * uniforms. `useBothHalves: false` returns only the cosine half (one sample per two uniforms),
 * `true` also returns the sine half on the next call. Both stay because each generator script
 * drew its weights one way or the other, and switching would change every weight it writes.
 */
export function seededNormal(seed: number, { useBothHalves }: { useBothHalves: boolean }): () => number {
  const uniform = seededUniform(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    // 1 - u keeps the log argument in (0, 1].
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    if (useBothHalves) spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

// ---------------------------------------------------------------------------------------------
// Files and entry points
// ---------------------------------------------------------------------------------------------

let tempSerial = 0;

/**
 * Writes `data` to `file`, creating its directory, through a temp file and a rename: a worker
 * loading the directory, or build-models' "is it built already?" check, never sees half a file,
 * even when a build is interrupted.
 */
export async function writeFileAtomically(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  // pid + serial: unique across processes and across concurrent writes within one.
  const temp = `${file}.${process.pid}.${tempSerial++}.tmp`;
  await writeFile(temp, data);
  await rename(temp, file);
}

/** Writes `value` as 2-space indented JSON with a final newline, the way HF tooling writes configs. */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  await writeFileAtomically(file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Whether the module at `moduleUrl` (pass `import.meta.url`) is the script node was started with,
 * so one file serves as both a CLI and a library (tests, build-models import them). Compares
 * real paths, since the script may be reached through a symlink.
 */
export function isEntryPoint(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
