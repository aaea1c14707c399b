import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutoModelForCausalLM, AutoTokenizer, Tensor, env, type PreTrainedModel, type PreTrainedTokenizer } from '@huggingface/transformers';
import onnxProto from 'onnx-proto';

import { makeTinyDecoder, type DecoderArchitecture } from '../../scripts/models/make-tiny-decoder.js';
import { ChatTokenizer, type ChatMessage } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import { GenerationEngine } from '../../workers/chat/generation-engine.js';
import { logSoftmax } from '../helpers/log-softmax.js';
import { referenceGreedy, referenceLogprobRows } from '../helpers/transformers-reference.js';

/**
 * The export architectures of real models (Qwen2 with q/k/v biases, Phi-3 with fused qkv_proj and
 * gate_up_proj, GPT-2 with learned positions and n_head / n_embd config names), generated tiny by
 * make-tiny-decoder, run by our chat runtime and by transformers.js from the same folder. Agreement
 * here means our runtime reads each family's config.json, tokenizer and chat template and feeds the
 * graph (position ids, attention mask, left-padded batches, KV cache) the way transformers.js does.
 * tests/unit/chat-reference.test.ts does the same, at length, for the default Llama export.
 */

const CPU = { intraOpThreads: 1, executionProviders: ['cpu'] };
const { onnx } = onnxProto;

interface ExportCase {
  name: string;
  architecture: DecoderArchitecture;
  positionIds: boolean;
  /** The class transformers.js must load it as: proof that it read config.json's model_type. */
  referenceClass: string;
  expected: { numLayers: number; numHeads: number; numKvHeads: number; headDim: number; maxPositions: number };
  /** Initializers the family's graph must carry (name → dims), and ones it must not. */
  weights: Record<string, number[]>;
  absent: string[];
}

const VOCAB = 50257; // GPT-2's; the ChatML and Phi-3 tokenizers append their chat tokens after it

/** GPT-2 with and without a position_ids input: the same weights and sizes. */
const GPT2_EXPECTATIONS: Pick<ExportCase, 'referenceClass' | 'expected' | 'weights' | 'absent'> = {
  referenceClass: 'GPT2LMHeadModel',
  expected: { numLayers: 2, numHeads: 4, numKvHeads: 4, headDim: 16, maxPositions: 1024 },
  weights: {
    'transformer.wte.weight': [VOCAB, 64],
    'transformer.wpe.weight': [1024, 64],
    'transformer.h.0.ln_1.bias': [64],
    'transformer.h.0.attn.c_attn.weight': [64, 192],
    'transformer.h.1.attn.c_attn.bias': [192],
    'transformer.h.1.mlp.c_fc.bias': [128],
    'transformer.ln_f.bias': [64],
  },
  absent: ['const.inv_freq', 'lm_head.weight'],
};

const CASES: ExportCase[] = [
  {
    name: 'qwen2',
    architecture: 'qwen2',
    positionIds: true,
    referenceClass: 'Qwen2ForCausalLM',
    // Qwen2's config has no head_dim: the runtime derives it from hidden_size / num_attention_heads.
    expected: { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, maxPositions: 2048 },
    weights: {
      'model.layers.0.self_attn.q_proj.bias': [64],
      'model.layers.1.self_attn.k_proj.bias': [32],
      'model.layers.1.self_attn.v_proj.bias': [32],
      'model.embed_tokens.weight': [VOCAB + 2, 64],
    },
    absent: ['lm_head.weight', 'model.layers.0.self_attn.o_proj.bias'],
  },
  {
    name: 'phi3',
    architecture: 'phi3',
    positionIds: true,
    referenceClass: 'Phi3ForCausalLM',
    expected: { numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, maxPositions: 2048 },
    weights: {
      // q (4 heads × 16) | k (2 × 16) | v (2 × 16), and gate | up (2 × 128)
      'model.layers.0.self_attn.qkv_proj.weight': [64, 128],
      'model.layers.1.mlp.gate_up_proj.weight': [64, 256],
      'lm_head.weight': [64, VOCAB + 4],
    },
    absent: ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.gate_proj.weight'],
  },
  {
    name: 'gpt2',
    architecture: 'gpt2',
    positionIds: true,
    ...GPT2_EXPECTATIONS,
  },
  {
    // Learned positions computed inside the graph from the mask: left padding must not shift them.
    name: 'gpt2-no-position-ids',
    architecture: 'gpt2',
    positionIds: false,
    ...GPT2_EXPECTATIONS,
  },
];

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'Hello!' }],
  [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Tell me a story about a dragon who learns to bake bread.' },
  ],
  [{ role: 'user', content: 'Wie geht es dir? 🙂 日本語も少し。' }],
];

const NEW_TOKENS = 12;
const LOGPROB_TOLERANCE = 1e-4;

let root: string;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'chat-exports-'));
  env.allowRemoteModels = false; // nothing leaves this machine: each folder is the model
  env.localModelPath = root;
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

for (const c of CASES) {
  describe(`${c.name} export against transformers.js on the same folder`, () => {
    let ours: { tokenizer: ChatTokenizer; decoder: DecoderSession };
    let theirs: { tokenizer: PreTrainedTokenizer; model: PreTrainedModel };

    before(async () => {
      const dir = path.join(root, c.name);
      await makeTinyDecoder(dir, { architecture: c.architecture, positionIds: c.positionIds, onnxSubdir: true });
      ours = { tokenizer: await ChatTokenizer.load(dir), decoder: await DecoderSession.open(dir, CPU) };
      theirs = {
        tokenizer: await AutoTokenizer.from_pretrained(c.name),
        model: await AutoModelForCausalLM.from_pretrained(c.name, { dtype: 'fp32', device: 'cpu' }),
      };
    });

    after(async () => {
      await theirs?.model.dispose();
      await ours?.decoder.release();
    });

    const theirPromptIds = (messages: ChatMessage[]): number[] => {
      const encoded = theirs.tokenizer.apply_chat_template(messages, { add_generation_prompt: true, tokenize: true, return_dict: true }) as unknown as {
        input_ids: Tensor;
      };
      return Array.from(encoded.input_ids.data as BigInt64Array, Number);
    };

    /** transformers.js' logits for every position of one unpadded sequence, as log-softmax rows. */
    const theirLogprobRows = (ids: number[]) => referenceLogprobRows(theirs.model, ids);

    it(`loads as ${c.referenceClass} there, and our runtime reads the same sizes from its config.json`, () => {
      assert.equal(theirs.model.constructor.name, c.referenceClass);
      const { numLayers, numHeads, numKvHeads, headDim, maxPositions } = ours.decoder.config;
      assert.deepEqual({ numLayers, numHeads, numKvHeads, headDim, maxPositions }, c.expected);
      assert.equal(ours.decoder.config.modelType, c.architecture);
      assert.equal(ours.decoder.usesPositionIds, c.positionIds);
    });

    it("the graph carries the family's weights, shaped as its checkpoints shape them", async () => {
      const model = onnx.ModelProto.decode(await readFile(ours.decoder.modelPath));
      const dims = new Map(model.graph!.initializer!.map((t) => [t.name!, t.dims!.map(Number)]));
      for (const [name, shape] of Object.entries(c.weights)) assert.deepEqual(dims.get(name), shape, name);
      for (const name of c.absent) assert.equal(dims.has(name), false, `${name} should not be there`);
    });

    it('the chat template gives the same prompt ids', () => {
      for (const messages of CONVERSATIONS) assert.deepEqual(ours.tokenizer.applyChatTemplate(messages), theirPromptIds(messages));
    });

    it(`log-probabilities agree within ${LOGPROB_TOLERANCE} at every prompt position, the prompts run as one left-padded batch`, async () => {
      const prompts = CONVERSATIONS.map(theirPromptIds);
      assert.ok(new Set(prompts.map((p) => p.length)).size > 1, 'prompts of different lengths, so the batch is padded');
      const vocab = ours.decoder.config.vocabSize;
      const caches = prompts.map(() => ours.decoder.newCache());
      const logits = await ours.decoder.forward(
        prompts.map((ids, i) => ({ cache: caches[i]!, ids })),
        { allLogits: true },
      );
      let worst = 0;
      for (const [i, ids] of prompts.entries()) {
        const reference = await theirLogprobRows(ids);
        ids.forEach((_, position) => {
          const row = logSoftmax(logits[i]!.subarray(position * vocab, (position + 1) * vocab));
          worst = Math.max(worst, maxAbsDiff(row, reference[position]!));
        });
      }
      assert.ok(worst < LOGPROB_TOLERANCE, `largest |ours - transformers.js| log-probability ${worst}`);
      console.log(`  ${c.name}: largest |ours - transformers.js| log-probability over the prompts: ${worst.toExponential(2)}`);
    });

    it(`greedy continuations of ${NEW_TOKENS} tokens are the same ids and text, and their log-probabilities agree`, async () => {
      const engine = new GenerationEngine(ours.decoder, ours.tokenizer);
      const prompts = CONVERSATIONS.map(theirPromptIds);
      // All three at once: the engine decodes them together, each with its own KV cache.
      const runs = await Promise.all(
        prompts.map(
          (promptIds, i) =>
            new Promise<{ tokens: number[]; logprobs: number[]; text: string }>((resolve, reject) => {
              const tokens: number[] = [];
              const logprobs: number[] = [];
              engine.submit(
                { id: `greedy-${i}`, promptIds, temperature: 0, maxTokens: NEW_TOKENS, logprobs: true },
                {
                  onToken: (_index, _text, id, event) => {
                    tokens.push(id);
                    logprobs.push(event.logprobs!.logprob);
                  },
                  onDone: (result) => resolve({ tokens, logprobs, text: result.text }),
                  onError: reject,
                },
              );
            }),
        ),
      );
      let worst = 0;
      for (const [i, promptIds] of prompts.entries()) {
        const run = runs[i]!;
        const reference = await referenceGreedy(theirs.model, promptIds, NEW_TOKENS);
        assert.deepEqual(run.tokens, reference, `conversation ${i}`);
        assert.equal(run.tokens.length, NEW_TOKENS, 'no end token cut the comparison short');
        assert.equal(run.text, theirs.tokenizer.decode(reference, { skip_special_tokens: true }), `conversation ${i}: text`);

        // The sampled tokens' log-probabilities, from our incremental decode steps, against
        // transformers.js' single full forward over prompt + continuation.
        const rows = await theirLogprobRows([...promptIds, ...reference]);
        run.logprobs.forEach((logprob, k) => {
          worst = Math.max(worst, Math.abs(logprob - rows[promptIds.length - 1 + k]![reference[k]!]!));
        });
      }
      assert.ok(worst < LOGPROB_TOLERANCE, `largest |ours - transformers.js| log-probability of a generated token ${worst}`);
    });
  });
}

describe('exports the runtime cannot run fail at load, naming what is missing', () => {
  let dir: string;

  before(async () => {
    dir = path.join(root, 'broken');
  });

  const rewriteJson = async (file: string, edit: (json: Record<string, unknown>) => void): Promise<void> => {
    const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    edit(json);
    await writeFile(file, JSON.stringify(json));
  };

  /** Decodes the folder's graph, lets `edit` change its declared inputs / outputs, and writes it back. */
  const rewriteGraph = async (edit: (graph: onnxProto.onnx.IGraphProto) => void): Promise<void> => {
    const file = path.join(dir, 'model.onnx');
    const model = onnx.ModelProto.decode(await readFile(file));
    edit(model.graph!);
    await writeFile(file, onnx.ModelProto.encode(model).finish());
  };

  it("a GPT-2 prompt longer than n_positions is refused by the runtime, not by a Gather past wpe's last row", async () => {
    await makeTinyDecoder(dir, { architecture: 'gpt2', maxPositions: 16 });
    const decoder = await DecoderSession.open(dir, CPU);
    try {
      assert.equal(decoder.config.maxPositions, 16);
      const fits = await decoder.prefill(Array.from({ length: 16 }, (_, i) => 100 + i));
      assert.equal(fits.cache.length, 16);
      await assert.rejects(decoder.prefill(Array.from({ length: 17 }, (_, i) => 100 + i)), /decoder: 17 positions exceed the model's 16/);
    } finally {
      await decoder.release();
    }
  });

  it('a GPT-2 config.json without n_head', async () => {
    await makeTinyDecoder(dir, { architecture: 'gpt2' });
    await rewriteJson(path.join(dir, 'config.json'), (config) => delete config['n_head']);
    await assert.rejects(DecoderSession.open(dir, CPU), /config\.json has no num_attention_heads or n_head; the runtime needs it/);
  });

  it('a config.json without the layer count', async () => {
    await makeTinyDecoder(dir, { architecture: 'phi3' });
    await rewriteJson(path.join(dir, 'config.json'), (config) => delete config['num_hidden_layers']);
    await assert.rejects(DecoderSession.open(dir, CPU), /has no num_hidden_layers or n_layer/);
  });

  it('a config.json whose key/value head count does not match the graph (GQA misread)', async () => {
    await makeTinyDecoder(dir, { architecture: 'qwen2' });
    await rewriteJson(path.join(dir, 'config.json'), (config) => (config['num_key_value_heads'] = 4));
    await assert.rejects(DecoderSession.open(dir, CPU), /past_key_values\.0\.key of .* is \[batch_size, 2, past_sequence_length, 16\], config\.json implies \[batch, 4, past, 16\]/);
  });

  it('a multi-query config (gpt_bigcode)', async () => {
    await makeTinyDecoder(dir, { architecture: 'gpt2' });
    await rewriteJson(path.join(dir, 'config.json'), (config) => {
      config['model_type'] = 'gpt_bigcode';
      config['multi_query'] = true;
    });
    await assert.rejects(DecoderSession.open(dir, CPU), /multi-query model \(multi_query: true, as gpt_bigcode\).*key_value cache is not supported/);
  });

  it('a graph with an input the runtime does not feed', async () => {
    await makeTinyDecoder(dir, { architecture: 'qwen2' });
    await rewriteGraph((graph) => {
      graph.input!.push({
        name: 'num_logits_to_keep',
        type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: [] } } },
      });
    });
    await assert.rejects(
      DecoderSession.open(dir, CPU),
      /has an input "num_logits_to_keep" this loader does not know how to feed \(an export that computes only the last logits.*\); supported inputs are input_ids, attention_mask, position_ids and past_key_values\.N\.key \/ \.value/,
    );
  });

  it('a graph without one of its present outputs', async () => {
    await makeTinyDecoder(dir, { architecture: 'phi3' });
    await rewriteGraph((graph) => {
      graph.output = graph.output!.filter((o) => o.name !== 'present.1.value');
    });
    await assert.rejects(DecoderSession.open(dir, CPU), /has no output present\.1\.value/);
  });

  it('a graph exported without a KV cache', async () => {
    await makeTinyDecoder(dir, { architecture: 'gpt2' });
    // An export without past: the past inputs become empty constants, so the graph still runs.
    await rewriteGraph((graph) => {
      const past = graph.input!.filter((i) => i.name!.startsWith('past_key_values.'));
      graph.input = graph.input!.filter((i) => !i.name!.startsWith('past_key_values.'));
      for (const input of past) {
        graph.initializer!.push({ name: input.name!, dims: [1, 4, 0, 16], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(0) });
      }
    });
    await assert.rejects(DecoderSession.open(dir, CPU), /has no past_key_values inputs: export it with a KV cache/);
  });
});
