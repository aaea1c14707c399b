import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutoModelForCausalLM, AutoTokenizer, env, type PreTrainedModel } from '@huggingface/transformers';
import { Ajv2020 } from 'ajv/dist/2020.js';

import { castGraphIo, quantizeMatMulNBits, readOnnxModel, roundTripMatMulWeights, writeExportVariant, writeOnnxModel } from '../../scripts/models/export-variants.js';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { DataType, tensorValueInfo } from '../../scripts/models/onnx-builder.js';
import type { DecoderDtype } from '../../shared/models/model-registry.js';
import { ChatTokenizer, type ChatMessage } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import { GenerationEngine, type GenerationRequest, type GenerationResult, type TokenEvent } from '../../workers/chat/generation-engine.js';
import { GrammarRuntime } from '../../workers/chat/grammar/grammar-runtime.js';
import { referenceContinuationLogprobs, referenceGreedy } from '../helpers/transformers-reference.js';

/**
 * The weight formats real decoder exports come in, each written from the generated tiny Llama by
 * scripts/models/export-variants.ts and run by both our runtime and transformers.js (which picks
 * the file by `dtype` and loads external data by `use_external_data_format`) from the same folder:
 *
 *   fp32 + external data   onnx/model.onnx with its weights in onnx/model.onnx_data
 *   fp16 + external data   onnx/model_fp16.onnx(_data): float16 weights, KV cache and logits
 *   q4                     onnx/model_q4.onnx: MatMulNBits (4-bit, block 32, zero points)
 *   q4f16                  onnx/model_q4f16.onnx: MatMulNBits in a float16 graph
 *
 * Both sides run the same graph on the same onnxruntime, so log-probabilities agree to rounding:
 * 1e-3 for float32 graphs, 3e-2 for float16 ones (our cache-based decode steps and
 * transformers.js' one full forward round differently in float16), and the greedy continuations
 * are the same.
 */

const CPU = { intraOpThreads: 1, executionProviders: ['cpu'] };
const NEW_TOKENS = 16;
const TOP = 5;
const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'Hello!' }],
  [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Tell me a story about a dragon who learns to bake bread.' },
  ],
];

let root: string;
/** fp16, q4 and q4f16 variants next to the inline fp32 graph. */
let variantsDir: string;
/** The fp32 graph with its weights in onnx/model.onnx_data. */
let externalDir: string;
let tokenizer: ChatTokenizer;

/** The folder's tokenizer and config files, without any graph. */
async function copyModelFolder(from: string, to: string): Promise<void> {
  await mkdir(path.join(to, 'onnx'), { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isFile()) await copyFile(path.join(from, entry.name), path.join(to, entry.name));
  }
}

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'chat-export-formats-'));
  variantsDir = path.join(root, 'tiny-chat');
  externalDir = path.join(root, 'tiny-chat-external');
  await makeTinyDecoder(variantsDir, { onnxSubdir: true });
  await writeExportVariant(variantsDir, 'fp16', { externalData: true });
  await writeExportVariant(variantsDir, 'q4');
  await writeExportVariant(variantsDir, 'q4f16');
  await copyModelFolder(variantsDir, externalDir);
  await copyFile(path.join(variantsDir, 'onnx', 'model.onnx'), path.join(externalDir, 'onnx', 'model.onnx'));
  await writeExportVariant(externalDir, 'fp32', { externalData: true });
  tokenizer = await ChatTokenizer.load(variantsDir);
  env.allowRemoteModels = false; // nothing leaves this machine: the folders are the models
  env.localModelPath = root;
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Run {
  tokens: number[];
  events: TokenEvent[];
  result: GenerationResult;
}

function generate(engine: GenerationEngine, request: GenerationRequest): Promise<Run[]> {
  const n = request.n ?? 1;
  const runs = Array.from({ length: n }, () => ({ tokens: [] as number[], events: [] as TokenEvent[] }));
  const done: Run[] = [];
  return new Promise((resolve, reject) => {
    engine.submit(request, {
      onToken: (_index, _text, id, event) => {
        runs[event.choice]!.tokens.push(id);
        runs[event.choice]!.events.push(event);
      },
      onDone: (result) => {
        done[result.choice] = { ...runs[result.choice]!, result };
        if (done.filter(Boolean).length === n) resolve(done);
      },
      onError: reject,
    });
  });
}

/** Log-softmax rows of transformers.js' logits (widened from float16 where the graph gives them so). */
const theirLogprobs = referenceContinuationLogprobs;

const theirGreedy = (model: PreTrainedModel, promptIds: number[]) => referenceGreedy(model, promptIds, NEW_TOKENS);

interface FormatCase {
  label: string;
  folder: () => string;
  dtype: DecoderDtype;
  externalData: boolean;
  kvDtype: 'float32' | 'float16';
  tolerance: number;
}

const FORMATS: FormatCase[] = [
  { label: 'fp32 with external data', folder: () => externalDir, dtype: 'fp32', externalData: true, kvDtype: 'float32', tolerance: 1e-3 },
  { label: 'fp16 with external data', folder: () => variantsDir, dtype: 'fp16', externalData: true, kvDtype: 'float16', tolerance: 3e-2 },
  { label: 'q4 (MatMulNBits)', folder: () => variantsDir, dtype: 'q4', externalData: false, kvDtype: 'float32', tolerance: 1e-3 },
  { label: 'q4f16 (MatMulNBits, float16)', folder: () => variantsDir, dtype: 'q4f16', externalData: false, kvDtype: 'float16', tolerance: 3e-2 },
];

for (const format of FORMATS) {
  describe(`${format.label}: ours against transformers.js (dtype ${format.dtype}) on the same files`, () => {
    let decoder: DecoderSession;
    let model: PreTrainedModel;

    before(async () => {
      decoder = await DecoderSession.open(format.folder(), { ...CPU, dtype: format.dtype });
      model = await AutoModelForCausalLM.from_pretrained(path.basename(format.folder()), {
        dtype: format.dtype,
        device: 'cpu',
        use_external_data_format: format.externalData,
      });
    });
    after(async () => {
      await model?.dispose();
      await decoder?.release();
    });

    it(`loads onnx/model${format.dtype === 'fp32' ? '' : `_${format.dtype}`}.onnx with a ${format.kvDtype} KV cache`, async () => {
      assert.equal(path.basename(decoder.modelPath), `model${format.dtype === 'fp32' ? '' : `_${format.dtype}`}.onnx`);
      assert.equal(decoder.kvDtype, format.kvDtype);
      const { cache } = await decoder.prefill([1, 2, 3]);
      assert.ok(cache.keys[0] instanceof (format.kvDtype === 'float16' ? Uint16Array : Float32Array));
    });

    it(`greedy continuations are identical and log-probabilities agree within ${format.tolerance}`, async () => {
      const engine = new GenerationEngine(decoder, tokenizer);
      let worst = 0;
      for (const messages of CONVERSATIONS) {
        const promptIds = tokenizer.applyChatTemplate(messages);
        const [run] = await generate(engine, { id: 'ref', promptIds, temperature: 0, maxTokens: NEW_TOKENS, logprobs: true, topLogprobs: TOP });
        assert.deepEqual(run!.tokens, await theirGreedy(model, promptIds), JSON.stringify(messages.at(-1)!.content));
        const reference = await theirLogprobs(model, promptIds, run!.tokens);
        run!.events.forEach((event, i) => {
          const row = reference[i]!;
          const chosen = event.logprobs!;
          worst = Math.max(worst, Math.abs(chosen.logprob - row[run!.tokens[i]!]!));
          for (const alternative of chosen.topLogprobs) {
            worst = Math.max(worst, Math.abs(alternative.logprob - row[alternative.id]!));
          }
        });
      }
      console.log(`  ${format.label}: largest |ours - transformers.js| log-probability ${worst.toExponential(2)}`);
      assert.ok(worst < format.tolerance, `${worst} ≥ ${format.tolerance}`);
    });
  });
}

describe('the transforms compute the fp32 model', () => {
  const promptIds = [100, 200, 300, 400, 500, 600, 700, 800];

  async function allLogits(dir: string, dtype: DecoderDtype): Promise<Float32Array> {
    const decoder = await DecoderSession.open(dir, { ...CPU, dtype });
    try {
      return Float32Array.from((await decoder.prefill(promptIds, { allLogits: true })).logits);
    } finally {
      await decoder.release();
    }
  }
  function largestDifference(a: Float32Array, b: Float32Array): number {
    assert.equal(a.length, b.length);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    return worst;
  }

  it('q4: MatMulNBits gives the logits of the fp32 graph whose weights are their own 4-bit round trip', async () => {
    // The float model with dequantized weights, computed by our dequantizer from the packed
    // nibbles: if onnxruntime read the packing differently (nibble order, block layout, zero
    // points), the two would part.
    const dir = path.join(root, 'round-trip');
    await copyModelFolder(variantsDir, dir);
    const model = roundTripMatMulWeights(await readOnnxModel(path.join(variantsDir, 'onnx', 'model.onnx')));
    await writeOnnxModel(path.join(dir, 'onnx', 'model.onnx'), model);
    const q4 = await allLogits(variantsDir, 'q4');
    const roundTrip = await allLogits(dir, 'fp32');
    const fp32 = await allLogits(variantsDir, 'fp32');
    const q4VsRoundTrip = largestDifference(q4, roundTrip);
    const q4VsFp32 = largestDifference(q4, fp32);
    console.log(`  largest logit difference: q4 vs round-tripped fp32 ${q4VsRoundTrip.toExponential(2)}, q4 vs fp32 ${q4VsFp32.toFixed(2)}`);
    assert.ok(q4VsRoundTrip < 1e-3, `${q4VsRoundTrip}`);
    assert.ok(q4VsFp32 > 1e-2, 'the weights really are quantized');
  });

  it('q4 without zero points (symmetric, the implicit zero point 8) likewise', async () => {
    const dir = path.join(root, 'symmetric');
    await copyModelFolder(variantsDir, dir);
    const source = path.join(variantsDir, 'onnx', 'model.onnx');
    const quantized = quantizeMatMulNBits(await readOnnxModel(source), { zeroPoints: false });
    assert.ok(quantized.graph!.node!.some((n) => n.opType === 'MatMulNBits' && n.input!.length === 3), 'no zero_points input');
    await writeOnnxModel(path.join(dir, 'onnx', 'model_q4.onnx'), quantized);
    await writeOnnxModel(path.join(dir, 'onnx', 'model.onnx'), roundTripMatMulWeights(await readOnnxModel(source), { zeroPoints: false }));
    const difference = largestDifference(await allLogits(dir, 'q4'), await allLogits(dir, 'fp32'));
    assert.ok(difference < 1e-3, `${difference}`);
  });

  it('fp16: logits within 0.1 of fp32, same argmax at every position', async () => {
    const fp16 = await allLogits(variantsDir, 'fp16');
    const fp32 = await allLogits(variantsDir, 'fp32');
    const worst = largestDifference(fp16, fp32);
    console.log(`  largest logit difference fp16 vs fp32: ${worst.toExponential(2)}`);
    assert.ok(worst < 0.1 && worst > 0, `${worst}`);
    const vocab = fp32.length / promptIds.length;
    const argmax = (x: Float32Array, p: number): number => {
      const row = x.subarray(p * vocab, (p + 1) * vocab);
      return row.indexOf(Math.max(...row));
    };
    for (let p = 0; p < promptIds.length; p++) assert.equal(argmax(fp16, p), argmax(fp32, p), `position ${p}`);
  });
});

describe('fp16: n > 1, logprobs and structured output on a float16 cache', () => {
  let decoder: DecoderSession;
  let grammar: GrammarRuntime;

  before(async () => {
    decoder = await DecoderSession.open(variantsDir, { ...CPU, dtype: 'fp16' });
    grammar = new GrammarRuntime({ vocabulary: tokenizer.vocabulary, vocabSize: decoder.config.vocabSize, stopTokenIds: tokenizer.stopTokenIds });
    await grammar.warm();
  });
  after(async () => {
    grammar?.close();
    await decoder?.release();
  });

  it('greedy n = 3 continues three clones of one cache to the same text as n = 1; the JSON answer validates', async () => {
    const engine = new GenerationEngine(decoder, tokenizer, { grammar });
    const promptIds = tokenizer.applyChatTemplate([{ role: 'user', content: 'Name three colours.' }]);
    const [single] = await generate(engine, { id: 'one', promptIds, temperature: 0, maxTokens: 12, logprobs: true, topLogprobs: 2 });
    const three = await generate(engine, { id: 'three', promptIds, temperature: 0, maxTokens: 12, logprobs: true, topLogprobs: 2, n: 3 });
    assert.equal(three.length, 3);
    for (const run of three) {
      assert.deepEqual(run.tokens, single!.tokens);
      run.events.forEach((event, i) => {
        assert.ok(event.logprobs!.logprob <= 0 && Math.abs(event.logprobs!.logprob - single!.events[i]!.logprobs!.logprob) < 1e-6);
      });
    }

    const schema = {
      type: 'object',
      properties: { id: { type: 'integer', minimum: 1, maximum: 999 }, ok: { type: 'boolean' } },
      required: ['id', 'ok'],
      additionalProperties: false,
    };
    const [json] = await generate(engine, {
      id: 'json',
      promptIds,
      temperature: 1,
      seed: 7,
      // Strict JSON schemas still allow whitespace, which an untrained model writes freely.
      maxTokens: 768,
      responseFormat: { type: 'json_schema', schema, strict: true },
    });
    assert.equal(json!.result.finishReason, 'stop', `${json!.result.completionTokens} tokens: ${JSON.stringify(json!.result.text)}`);
    const validate = new Ajv2020({ strict: false }).compile(schema);
    assert.ok(validate(JSON.parse(json!.result.text)), json!.result.text);
  });
});

describe('exports the runtime cannot run are refused at load, naming what is wrong', () => {
  /** A folder with the tiny model's config.json and `model` as onnx/model.onnx. */
  async function folderWith(name: string, transform: (model: Awaited<ReturnType<typeof readOnnxModel>>) => void): Promise<string> {
    const dir = path.join(root, name);
    await copyModelFolder(variantsDir, dir);
    const model = await readOnnxModel(path.join(variantsDir, 'onnx', 'model.onnx'));
    transform(model);
    await writeOnnxModel(path.join(dir, 'onnx', 'model.onnx'), model);
    return dir;
  }

  it('a missing external data file is named', async () => {
    const dir = path.join(root, 'missing-data');
    await copyModelFolder(externalDir, dir);
    await copyFile(path.join(externalDir, 'onnx', 'model.onnx'), path.join(dir, 'onnx', 'model.onnx'));
    await assert.rejects(
      DecoderSession.open(dir, CPU),
      /keeps its weights in the external data file .*model\.onnx_data, which is missing/,
    );
    // With the file in place the same graph loads.
    await copyFile(path.join(externalDir, 'onnx', 'model.onnx_data'), path.join(dir, 'onnx', 'model.onnx_data'));
    await (await DecoderSession.open(dir, CPU)).release();
    await unlink(path.join(dir, 'onnx', 'model.onnx_data'));
  });

  it('a dtype whose file is not in the folder names the files looked for', async () => {
    await assert.rejects(DecoderSession.open(externalDir, { ...CPU, dtype: 'q4' }), /model_q4\.onnx and .*onnx\/model_q4\.onnx/);
  });

  it('a float64 KV cache is refused with the supported types', async () => {
    const dir = await folderWith('float64-kv', (model) =>
      castGraphIo(model, (name) => name.startsWith('past_key_values.') || name.startsWith('present.'), DataType.DOUBLE),
    );
    await assert.rejects(DecoderSession.open(dir, CPU), /KV cache as float64; supported KV caches are float32 and float16/);
  });

  it('present outputs of another type than the past inputs are refused', async () => {
    const dir = await folderWith('mixed-kv', (model) => castGraphIo(model, (name) => name === 'present.1.value', DataType.FLOAT16));
    await assert.rejects(DecoderSession.open(dir, CPU), /present\.1\.value as float16 but past_key_values\.0\.key as float32/);
  });

  it('an input the runtime does not know how to feed is named', async () => {
    const dir = await folderWith('extra-input', (model) => {
      model.graph!.input!.push(tensorValueInfo('token_type_ids', DataType.INT64, ['batch_size', 'sequence_length']));
    });
    await assert.rejects(DecoderSession.open(dir, CPU), /input "token_type_ids" this loader does not know how to feed/);
  });
});
