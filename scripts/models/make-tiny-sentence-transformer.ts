/**
 * Writes a tiny, fully deterministic BERT-style sentence-transformers model in the same on-disk
 * layout that Optimum / sentence-transformers exports use, so the real loading code
 * (workers/embeddings/sentence-transformers/) can be exercised without downloading anything:
 *
 *   <outDir>/
 *     model.onnx                (or onnx/model.onnx with `onnxSubdir`)
 *     tokenizer.json            WordPiece, BertNormalizer(lowercase), BertPreTokenizer, [CLS] … [SEP]
 *     tokenizer_config.json
 *     special_tokens_map.json
 *     config.json               bert, hidden 64, 2 layers, 2 heads, intermediate 128, 128 positions
 *     sentence_bert_config.json
 *     modules.json              Transformer → Pooling → Normalize
 *     1_Pooling/config.json     mean pooling by default
 *
 * The ONNX graph is a real (if tiny, random-weight) BERT encoder: word + position + token-type
 * embeddings, LayerNorm, then `layers` post-LN encoder blocks (multi-head self-attention with the
 * attention mask turned into an additive -10000 bias, GELU feed-forward). LayerNorm and GELU are
 * decomposed into primitive ops the way PyTorch exports them at opset 14. Weights come from a
 * seeded PRNG, so every run writes byte-identical files.
 *
 * CLI: tsx scripts/models/make-tiny-sentence-transformer.ts [outDir] [--no-token-type-ids]
 *        [--onnx-subdir] [--pooling=mean|cls|max] [--no-normalize]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;

export interface TinySentenceTransformerOptions {
  /** Whether the graph declares a `token_type_ids` input (default true, like BERT exports). */
  tokenTypeIds?: boolean;
  /** Put the graph at onnx/model.onnx instead of model.onnx (default false). */
  onnxSubdir?: boolean;
  /** Pooling mode written to 1_Pooling/config.json (default 'mean'). */
  pooling?: 'mean' | 'cls' | 'max';
  /** Whether modules.json lists a Normalize module (default true). */
  normalize?: boolean;
  /** PRNG seed for the weights (default 1234). */
  seed?: number;
}

export const TINY_CONFIG = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 2,
  intermediateSize: 128,
  maxPositions: 128,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
} as const;

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

const PUNCTUATION = Array.from('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const DIGITS = Array.from('0123456789');
const LETTERS = Array.from('abcdefghijklmnopqrstuvwxyz');

const SUFFIXES = [
  's', 'es', 'ed', 'd', 'ing', 'ly', 'er', 'ers', 'est', 'ion', 'ions', 'tion', 'tions', 'ment',
  'ments', 'ness', 'able', 'ible', 'ful', 'less', 'ity', 'ive', 'al', 'ally', 'ous', 'ize', 'ise',
  'ized', 'izing', 'ism', 'ist', 'ists', 'ic', 'ical', 'y', 'ies', 'ied', 'en', 'ance', 'ence',
];

const COMMON_WORDS = `
the of and to in a is that for it as was with be by on not he i this are or his from at which
but have an they you were her she there one all we their can has been if more when will would
who so no what up out about into than them some could him my only other its then time also two
may these like first any new very see way just many over such most now people after our year
did made most back where much before make well through even get because years man good should
between state being those both under each world day three used same while life here might part
use work long down go great never still own last again old know take find against off without
place think come between right high end how public us around however every under four small
house since give large another need found few number general point group system case government
order fact early want set best school during city thing world family hand country important
often child children early night real water problem money question company program business
service story week word side kind head far example member information power area change level
line light small little big young open close start stop run read write learn teach love like
sentence embedding embeddings vector vectors model models text texts token tokens search query
queries document documents similar similarity meaning semantic language natural inference queue
worker workers server service request response batch batches fast slow test tests data cat cats
dog dogs fish bird birds car cars train trains plane city town road street river sea ocean
mountain tree trees flower flowers sun moon star stars sky rain snow wind weather hot cold warm
cool red blue green yellow black white color colour food eat eating drink drinking coffee tea
bread apple apples banana orange music song songs play playing game games ball football sport
book books paper letter letters phone computer computers software hardware code coding program
programming internet network web page pages file files folder disk memory cpu gpu speed price
buy sell market stock bank pay paid cost cheap expensive happy sad angry afraid quick brown fox
jumps jumped lazy over friend friends mother father brother sister baby girl boy woman women men
doctor hospital health sick medicine science math history art english french german spanish
chinese japanese morning evening today tomorrow yesterday monday friday weekend holiday travel
trip hotel room door window table chair bed kitchen garden park beach island forest desert
yes please thank thanks hello goodbye sorry okay maybe always sometimes never usually really
because although unless until while whether either neither both nothing something everything
anything someone everyone nobody somebody question answer answers ask asked tell told say said
speak spoke talk talked walk walked running ran swim swimming fly flying drive driving sleep
sleeping wake woke live lived die died born grow grew build built break broke fix fixed
`;

function buildVocab(): string[] {
  const seen = new Set<string>();
  const vocab: string[] = [];
  const add = (token: string): void => {
    if (!seen.has(token)) {
      seen.add(token);
      vocab.push(token);
    }
  };
  SPECIAL_TOKENS.forEach(add);
  [...PUNCTUATION, ...DIGITS, ...LETTERS].forEach(add);
  [...DIGITS, ...LETTERS].forEach((c) => add(`##${c}`));
  SUFFIXES.forEach((s) => add(`##${s}`));
  COMMON_WORDS.split(/\s+/)
    .filter((w) => w.length > 0)
    .forEach(add);
  // Two-letter word starts and continuations, so most words split into a few pieces rather than
  // single characters.
  for (const a of LETTERS) for (const b of LETTERS) add(`${a}${b}`);
  for (const a of LETTERS) for (const b of LETTERS) add(`##${a}${b}`);
  return vocab;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer files
// ---------------------------------------------------------------------------------------------

function buildTokenizerJson(vocab: readonly string[], maxLength: number): unknown {
  const id = (token: string): number => {
    const i = vocab.indexOf(token);
    if (i < 0) throw new Error(`token ${token} missing from vocab`);
    return i;
  };
  const vocabObject: Record<string, number> = {};
  vocab.forEach((token, i) => {
    vocabObject[token] = i;
  });
  return {
    version: '1.0',
    truncation: { direction: 'Right', max_length: maxLength, strategy: 'LongestFirst', stride: 0 },
    padding: {
      strategy: 'BatchLongest',
      direction: 'Right',
      pad_to_multiple_of: null,
      pad_id: id('[PAD]'),
      pad_type_id: 0,
      pad_token: '[PAD]',
    },
    added_tokens: SPECIAL_TOKENS.map((content) => ({
      id: id(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: vocabObject,
    },
  };
}

function buildTokenizerConfig(vocab: readonly string[]): unknown {
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const content of SPECIAL_TOKENS) {
    addedTokensDecoder[String(vocab.indexOf(content))] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  }
  return {
    added_tokens_decoder: addedTokensDecoder,
    clean_up_tokenization_spaces: true,
    cls_token: '[CLS]',
    do_basic_tokenize: true,
    do_lower_case: true,
    mask_token: '[MASK]',
    model_max_length: 512,
    never_split: null,
    pad_token: '[PAD]',
    sep_token: '[SEP]',
    strip_accents: null,
    tokenize_chinese_chars: true,
    tokenizer_class: 'BertTokenizer',
    unk_token: '[UNK]',
  };
}

// ---------------------------------------------------------------------------------------------
// Deterministic weights
// ---------------------------------------------------------------------------------------------

/** mulberry32: tiny 32-bit seeded PRNG, uniform in [0, 1). */
function makeUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeNormal(seed: number): () => number {
  const uniform = makeUniform(seed);
  return () => {
    // Box-Muller; 1 - u keeps the log argument in (0, 1].
    const u1 = 1 - uniform();
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

// ---------------------------------------------------------------------------------------------
// ONNX graph
// ---------------------------------------------------------------------------------------------

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const AttrType = onnx.AttributeProto.AttributeType;

type Attr = { name: string } & ({ i: number } | { f: number } | { ints: number[] });

class GraphBuilder {
  readonly nodes: Onnx.INodeProto[] = [];
  readonly initializers: Onnx.ITensorProto[] = [];
  private counter = 0;

  constructor(private readonly normal: () => number) {}

  /** Adds a node and returns the name of its (single) output. */
  op(opType: string, inputs: string[], attrs: Attr[] = [], outputName?: string): string {
    const output = outputName ?? `${opType.toLowerCase()}_${this.counter++}`;
    this.nodes.push({
      opType,
      name: `${opType}_${this.nodes.length}`,
      input: inputs,
      output: [output],
      attribute: attrs.map((a) => {
        if ('i' in a) return { name: a.name, type: AttrType.INT, i: a.i };
        if ('f' in a) return { name: a.name, type: AttrType.FLOAT, f: a.f };
        return { name: a.name, type: AttrType.INTS, ints: a.ints };
      }),
    });
    return output;
  }

  floatTensor(name: string, dims: number[], values: Float32Array): string {
    this.initializers.push({
      name,
      dims,
      dataType: FLOAT,
      rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    });
    return name;
  }

  int64Tensor(name: string, dims: number[], values: number[]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dims,
      dataType: INT64,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** Random N(0, std²) weights, optionally shifted by `mean`. */
  random(name: string, dims: number[], std: number, mean = 0): string {
    const size = dims.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = mean + std * this.normal();
    return this.floatTensor(name, dims, values);
  }

  scalar(name: string, value: number): string {
    return this.floatTensor(name, [], Float32Array.of(value));
  }

  /** PyTorch-style decomposed LayerNorm over the last axis. */
  layerNorm(x: string, prefix: string, hidden: number, eps: string, outputName?: string): string {
    const gamma = this.random(`${prefix}.weight`, [hidden], 0.05, 1);
    const beta = this.random(`${prefix}.bias`, [hidden], 0.02);
    const mean = this.op('ReduceMean', [x], [{ name: 'axes', ints: [-1] }, { name: 'keepdims', i: 1 }]);
    const centered = this.op('Sub', [x, mean]);
    const squared = this.op('Mul', [centered, centered]);
    const variance = this.op('ReduceMean', [squared], [{ name: 'axes', ints: [-1] }, { name: 'keepdims', i: 1 }]);
    const std = this.op('Sqrt', [this.op('Add', [variance, eps])]);
    const normed = this.op('Div', [centered, std]);
    return this.op('Add', [this.op('Mul', [normed, gamma]), beta], [], outputName);
  }

  linear(x: string, prefix: string, inDim: number, outDim: number): string {
    const weight = this.random(`${prefix}.weight`, [inDim, outDim], 1 / Math.sqrt(inDim));
    const bias = this.random(`${prefix}.bias`, [outDim], 0.02);
    return this.op('Add', [this.op('MatMul', [x, weight]), bias]);
  }
}

function buildModel(vocabSize: number, options: Required<TinySentenceTransformerOptions>): Uint8Array {
  const { hiddenSize: H, numLayers, numHeads, intermediateSize: I, maxPositions, typeVocabSize } = TINY_CONFIG;
  const headDim = H / numHeads;
  const g = new GraphBuilder(makeNormal(options.seed));

  // Shared constants.
  const eps = g.scalar('const.layer_norm_eps', TINY_CONFIG.layerNormEps);
  const one = g.scalar('const.one', 1);
  const half = g.scalar('const.half', 0.5);
  const sqrt2 = g.scalar('const.sqrt2', Math.SQRT2);
  const maskValue = g.scalar('const.mask_value', -10000);
  const attnScale = g.scalar('const.attention_scale', 1 / Math.sqrt(headDim));
  const splitHeadsShape = g.int64Tensor('const.split_heads_shape', [4], [0, 0, numHeads, headDim]);
  const mergeHeadsShape = g.int64Tensor('const.merge_heads_shape', [3], [0, 0, H]);
  const maskAxes = g.int64Tensor('const.mask_unsqueeze_axes', [2], [1, 2]);
  const zeroI64 = g.int64Tensor('const.zero_i64', [], [0]);
  const oneI64 = g.int64Tensor('const.one_i64', [], [1]);

  // Embeddings.
  const wordEmb = g.random('embeddings.word_embeddings.weight', [vocabSize, H], 1);
  const posEmb = g.random('embeddings.position_embeddings.weight', [maxPositions, H], 0.3);
  const typeEmb = g.random('embeddings.token_type_embeddings.weight', [typeVocabSize, H], 0.1);

  const words = g.op('Gather', [wordEmb, 'input_ids'], [{ name: 'axis', i: 0 }]);
  const seqLen = g.op('Gather', [g.op('Shape', ['input_ids']), oneI64], [{ name: 'axis', i: 0 }]);
  const positionIds = g.op('Range', [zeroI64, seqLen, oneI64]);
  const positions = g.op('Gather', [posEmb, positionIds], [{ name: 'axis', i: 0 }]);
  // Without a token_type_ids input, every position uses token type 0 (what BERT does when the
  // caller leaves token_type_ids out): a single [hidden] row broadcast over batch and sequence.
  const types = options.tokenTypeIds
    ? g.op('Gather', [typeEmb, 'token_type_ids'], [{ name: 'axis', i: 0 }])
    : g.op('Gather', [typeEmb, zeroI64], [{ name: 'axis', i: 0 }]);
  const embedded = g.op('Add', [g.op('Add', [words, positions]), types]);
  let hidden = g.layerNorm(embedded, 'embeddings.LayerNorm', H, eps);

  // Attention mask [B, S] int64 → additive bias [B, 1, 1, S]: 0 for tokens, -10000 for padding.
  const mask4d = g.op('Cast', [g.op('Unsqueeze', ['attention_mask', maskAxes])], [{ name: 'to', i: FLOAT }]);
  const maskBias = g.op('Mul', [g.op('Sub', [one, mask4d]), maskValue]);

  for (let layer = 0; layer < numLayers; layer++) {
    const p = `encoder.layer.${layer}`;
    const heads = (x: string, perm: number[]): string =>
      g.op('Transpose', [g.op('Reshape', [x, splitHeadsShape])], [{ name: 'perm', ints: perm }]);
    const q = heads(g.linear(hidden, `${p}.attention.self.query`, H, H), [0, 2, 1, 3]); // [B,h,S,d]
    const k = heads(g.linear(hidden, `${p}.attention.self.key`, H, H), [0, 2, 3, 1]); // [B,h,d,S]
    const v = heads(g.linear(hidden, `${p}.attention.self.value`, H, H), [0, 2, 1, 3]); // [B,h,S,d]
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, k]), attnScale]), maskBias]);
    const probs = g.op('Softmax', [scores], [{ name: 'axis', i: -1 }]);
    const context = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [probs, v])], [{ name: 'perm', ints: [0, 2, 1, 3] }]),
      mergeHeadsShape,
    ]);
    const attnOut = g.linear(context, `${p}.attention.output.dense`, H, H);
    const attnNormed = g.layerNorm(g.op('Add', [attnOut, hidden]), `${p}.attention.output.LayerNorm`, H, eps);

    const inter = g.linear(attnNormed, `${p}.intermediate.dense`, H, I);
    // Exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)).
    const gelu = g.op('Mul', [inter, g.op('Mul', [half, g.op('Add', [one, g.op('Erf', [g.op('Div', [inter, sqrt2])])])])]);
    const ffnOut = g.linear(gelu, `${p}.output.dense`, I, H);
    const last = layer === numLayers - 1;
    hidden = g.layerNorm(
      g.op('Add', [ffnOut, attnNormed]),
      `${p}.output.LayerNorm`,
      H,
      eps,
      last ? 'last_hidden_state' : undefined,
    );
  }

  const tokenInput = (name: string): Onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: INT64,
        shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }] },
      },
    },
  });
  const inputs = [tokenInput('input_ids'), tokenInput('attention_mask')];
  if (options.tokenTypeIds) inputs.push(tokenInput('token_type_ids'));

  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'make-tiny-sentence-transformer',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'tiny_bert',
      node: g.nodes,
      initializer: g.initializers,
      input: inputs,
      output: [
        {
          name: 'last_hidden_state',
          type: {
            tensorType: {
              elemType: FLOAT,
              shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimValue: H }] },
            },
          },
        },
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

export async function makeTinySentenceTransformer(
  outDir: string,
  options: TinySentenceTransformerOptions = {},
): Promise<void> {
  const opts: Required<TinySentenceTransformerOptions> = {
    tokenTypeIds: options.tokenTypeIds ?? true,
    onnxSubdir: options.onnxSubdir ?? false,
    pooling: options.pooling ?? 'mean',
    normalize: options.normalize ?? true,
    seed: options.seed ?? 1234,
  };
  const vocab = buildVocab();
  const maxSeqLength = TINY_CONFIG.maxPositions;

  await mkdir(outDir, { recursive: true });
  const modelPath = opts.onnxSubdir ? path.join(outDir, 'onnx', 'model.onnx') : path.join(outDir, 'model.onnx');
  await mkdir(path.dirname(modelPath), { recursive: true });
  await writeFile(modelPath, buildModel(vocab.length, opts));

  await writeJson(path.join(outDir, 'tokenizer.json'), buildTokenizerJson(vocab, maxSeqLength));
  await writeJson(path.join(outDir, 'tokenizer_config.json'), buildTokenizerConfig(vocab));
  await writeJson(path.join(outDir, 'special_tokens_map.json'), {
    cls_token: '[CLS]',
    mask_token: '[MASK]',
    pad_token: '[PAD]',
    sep_token: '[SEP]',
    unk_token: '[UNK]',
  });
  await writeJson(path.join(outDir, 'config.json'), {
    _name_or_path: 'tiny-minilm',
    architectures: ['BertModel'],
    attention_probs_dropout_prob: 0.1,
    classifier_dropout: null,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    hidden_size: TINY_CONFIG.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: TINY_CONFIG.intermediateSize,
    layer_norm_eps: TINY_CONFIG.layerNormEps,
    max_position_embeddings: TINY_CONFIG.maxPositions,
    model_type: 'bert',
    num_attention_heads: TINY_CONFIG.numHeads,
    num_hidden_layers: TINY_CONFIG.numLayers,
    pad_token_id: vocab.indexOf('[PAD]'),
    position_embedding_type: 'absolute',
    type_vocab_size: TINY_CONFIG.typeVocabSize,
    use_cache: true,
    vocab_size: vocab.length,
  });
  await writeJson(path.join(outDir, 'sentence_bert_config.json'), {
    max_seq_length: maxSeqLength,
    do_lower_case: false,
  });

  const modules: unknown[] = [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  ];
  if (opts.normalize) {
    modules.push({ idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' });
  }
  await writeJson(path.join(outDir, 'modules.json'), modules);
  await writeJson(path.join(outDir, '1_Pooling', 'config.json'), {
    word_embedding_dimension: TINY_CONFIG.hiddenSize,
    pooling_mode_cls_token: opts.pooling === 'cls',
    pooling_mode_mean_tokens: opts.pooling === 'mean',
    pooling_mode_max_tokens: opts.pooling === 'max',
    pooling_mode_mean_sqrt_len_tokens: false,
    pooling_mode_weightedmean_tokens: false,
    pooling_mode_lasttoken: false,
    include_prompt: true,
  });
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = process.argv.slice(2);
  const positional = args.filter((a) => !a.startsWith('--'));
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  const poolingFlag = [...flags].find((f) => f.startsWith('--pooling='))?.slice('--pooling='.length);
  if (poolingFlag !== undefined && !['mean', 'cls', 'max'].includes(poolingFlag)) {
    console.error(`unknown pooling mode ${poolingFlag} (expected mean, cls or max)`);
    process.exit(2);
  }
  const outDir = path.resolve(positional[0] ?? 'models/tiny-minilm');
  const started = performance.now();
  await makeTinySentenceTransformer(outDir, {
    tokenTypeIds: !flags.has('--no-token-type-ids'),
    onnxSubdir: flags.has('--onnx-subdir'),
    pooling: poolingFlag as TinySentenceTransformerOptions['pooling'],
    normalize: !flags.has('--no-normalize'),
  });
  console.log(`wrote tiny sentence-transformer to ${outDir} in ${(performance.now() - started).toFixed(0)} ms`);
}
