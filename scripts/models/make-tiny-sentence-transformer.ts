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
import path from 'node:path';
import {
  DataType,
  OnnxGraphBuilder,
  isEntryPoint,
  seededNormal,
  tensorValueInfo,
  writeFileAtomically,
  writeJsonFile,
} from './onnx-builder.js';

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
// ONNX graph
// ---------------------------------------------------------------------------------------------

const { FLOAT, INT64 } = DataType;

/** The graph builder plus BERT's two parametrised layers, with seeded random weights. */
class TinyBertGraph extends OnnxGraphBuilder {
  /** PyTorch-style decomposed LayerNorm over the last axis. */
  layerNorm(x: string, prefix: string, hidden: number, eps: string, outputName?: string): string {
    const gamma = this.randomNormal(`${prefix}.weight`, [hidden], 0.05, 1);
    const beta = this.randomNormal(`${prefix}.bias`, [hidden], 0.02);
    const mean = this.node('ReduceMean', [x], { axes: [-1], keepdims: 1 });
    const centered = this.node('Sub', [x, mean]);
    const squared = this.node('Mul', [centered, centered]);
    const variance = this.node('ReduceMean', [squared], { axes: [-1], keepdims: 1 });
    const std = this.node('Sqrt', [this.node('Add', [variance, eps])]);
    const normed = this.node('Div', [centered, std]);
    return this.node('Add', [this.node('Mul', [normed, gamma]), beta], {}, outputName);
  }

  linear(x: string, prefix: string, inDim: number, outDim: number): string {
    const weight = this.randomNormal(`${prefix}.weight`, [inDim, outDim], 1 / Math.sqrt(inDim));
    const bias = this.randomNormal(`${prefix}.bias`, [outDim], 0.02);
    return this.node('Add', [this.node('MatMul', [x, weight]), bias]);
  }
}

function buildModel(vocabSize: number, options: Required<TinySentenceTransformerOptions>): Uint8Array {
  const { hiddenSize: H, numLayers, numHeads, intermediateSize: I, maxPositions, typeVocabSize } = TINY_CONFIG;
  const headDim = H / numHeads;
  // One normal sample per two uniforms (the sine half is dropped): how these weights were always drawn.
  const g = new TinyBertGraph(seededNormal(options.seed, { useBothHalves: false }));

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
  const wordEmb = g.randomNormal('embeddings.word_embeddings.weight', [vocabSize, H], 1);
  const posEmb = g.randomNormal('embeddings.position_embeddings.weight', [maxPositions, H], 0.3);
  const typeEmb = g.randomNormal('embeddings.token_type_embeddings.weight', [typeVocabSize, H], 0.1);

  const words = g.node('Gather', [wordEmb, 'input_ids'], { axis: 0 });
  const seqLen = g.node('Gather', [g.node('Shape', ['input_ids']), oneI64], { axis: 0 });
  const positionIds = g.node('Range', [zeroI64, seqLen, oneI64]);
  const positions = g.node('Gather', [posEmb, positionIds], { axis: 0 });
  // Without a token_type_ids input, every position uses token type 0 (what BERT does when the
  // caller leaves token_type_ids out): a single [hidden] row broadcast over batch and sequence.
  const types = options.tokenTypeIds
    ? g.node('Gather', [typeEmb, 'token_type_ids'], { axis: 0 })
    : g.node('Gather', [typeEmb, zeroI64], { axis: 0 });
  const embedded = g.node('Add', [g.node('Add', [words, positions]), types]);
  let hidden = g.layerNorm(embedded, 'embeddings.LayerNorm', H, eps);

  // Attention mask [B, S] int64 → additive bias [B, 1, 1, S]: 0 for tokens, -10000 for padding.
  const mask4d = g.node('Cast', [g.node('Unsqueeze', ['attention_mask', maskAxes])], { to: FLOAT });
  const maskBias = g.node('Mul', [g.node('Sub', [one, mask4d]), maskValue]);

  for (let layer = 0; layer < numLayers; layer++) {
    const p = `encoder.layer.${layer}`;
    const heads = (x: string, perm: number[]): string =>
      g.node('Transpose', [g.node('Reshape', [x, splitHeadsShape])], { perm });
    const q = heads(g.linear(hidden, `${p}.attention.self.query`, H, H), [0, 2, 1, 3]); // [B,h,S,d]
    const k = heads(g.linear(hidden, `${p}.attention.self.key`, H, H), [0, 2, 3, 1]); // [B,h,d,S]
    const v = heads(g.linear(hidden, `${p}.attention.self.value`, H, H), [0, 2, 1, 3]); // [B,h,S,d]
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, k]), attnScale]), maskBias]);
    const probs = g.node('Softmax', [scores], { axis: -1 });
    const context = g.node('Reshape', [
      g.node('Transpose', [g.node('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }),
      mergeHeadsShape,
    ]);
    const attnOut = g.linear(context, `${p}.attention.output.dense`, H, H);
    const attnNormed = g.layerNorm(g.node('Add', [attnOut, hidden]), `${p}.attention.output.LayerNorm`, H, eps);

    const inter = g.linear(attnNormed, `${p}.intermediate.dense`, H, I);
    // Exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)).
    const gelu = g.node('Mul', [inter, g.node('Mul', [half, g.node('Add', [one, g.node('Erf', [g.node('Div', [inter, sqrt2])])])])]);
    const ffnOut = g.linear(gelu, `${p}.output.dense`, I, H);
    const last = layer === numLayers - 1;
    hidden = g.layerNorm(
      g.node('Add', [ffnOut, attnNormed]),
      `${p}.output.LayerNorm`,
      H,
      eps,
      last ? 'last_hidden_state' : undefined,
    );
  }

  const tokenInput = (name: string) => tensorValueInfo(name, INT64, ['batch_size', 'sequence_length']);
  const inputs = [tokenInput('input_ids'), tokenInput('attention_mask')];
  if (options.tokenTypeIds) inputs.push(tokenInput('token_type_ids'));

  return g.encodeModel({
    graphName: 'tiny_bert',
    inputs,
    outputs: [tensorValueInfo('last_hidden_state', FLOAT, ['batch_size', 'sequence_length', H])],
    irVersion: 8,
    opsetVersion: 14,
    producerName: 'make-tiny-sentence-transformer',
    producerVersion: '1',
  });
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

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

  const modelPath = opts.onnxSubdir ? path.join(outDir, 'onnx', 'model.onnx') : path.join(outDir, 'model.onnx');
  await writeFileAtomically(modelPath, buildModel(vocab.length, opts));

  await writeJsonFile(path.join(outDir, 'tokenizer.json'), buildTokenizerJson(vocab, maxSeqLength));
  await writeJsonFile(path.join(outDir, 'tokenizer_config.json'), buildTokenizerConfig(vocab));
  await writeJsonFile(path.join(outDir, 'special_tokens_map.json'), {
    cls_token: '[CLS]',
    mask_token: '[MASK]',
    pad_token: '[PAD]',
    sep_token: '[SEP]',
    unk_token: '[UNK]',
  });
  await writeJsonFile(path.join(outDir, 'config.json'), {
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
  await writeJsonFile(path.join(outDir, 'sentence_bert_config.json'), {
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
  await writeJsonFile(path.join(outDir, 'modules.json'), modules);
  await writeJsonFile(path.join(outDir, '1_Pooling', 'config.json'), {
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

if (isEntryPoint(import.meta.url)) {
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
