import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutoModelForCausalLM, AutoTokenizer, Tensor, env, type PreTrainedModel, type PreTrainedTokenizer } from '@huggingface/transformers';

import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { referenceContinuationLogprobs, referenceGreedy } from '../helpers/transformers-reference.js';
import { ChatTokenizer, type ChatMessage } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import { GenerationEngine, type GenerationRequest, type PromptTokenLogprobs, type TokenEvent } from '../../workers/chat/generation-engine.js';

/**
 * Our chat runtime (tokenizer + chat template, DecoderSession's batched KV-cache forward, sampler,
 * logprobs) against a reference that shares none of its code: transformers.js 4, which loads the
 * same model folder from disk (Hugging Face layout, weights at onnx/model.onnx) as a Llama model
 * and runs its own tokenizer, chat template, cache handling and greedy loop.
 */

let root: string;
let ours: { tokenizer: ChatTokenizer; decoder: DecoderSession };
let theirs: { tokenizer: PreTrainedTokenizer; model: PreTrainedModel };

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'chat-reference-'));
  await makeTinyDecoder(path.join(root, 'tiny-chat'), { onnxSubdir: true });
  ours = {
    tokenizer: await ChatTokenizer.load(path.join(root, 'tiny-chat')),
    decoder: await DecoderSession.open(path.join(root, 'tiny-chat'), { intraOpThreads: 1, executionProviders: ['cpu'] }),
  };
  env.allowRemoteModels = false; // nothing leaves this machine: the folder is the model
  env.localModelPath = root;
  theirs = {
    tokenizer: await AutoTokenizer.from_pretrained('tiny-chat'),
    model: await AutoModelForCausalLM.from_pretrained('tiny-chat', { dtype: 'fp32', device: 'cpu' }),
  };
});

after(async () => {
  await theirs?.model.dispose();
  await ours?.decoder.release();
  await rm(root, { recursive: true, force: true });
});

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'Hello!' }],
  [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Tell me a long story about a dragon who learns to bake bread.' },
  ],
  [{ role: 'user', content: 'Wie geht es dir? 🙂 日本語も少し。' }],
  [
    { role: 'user', content: 'What is 2 + 2?' },
    { role: 'assistant', content: 'It is 4.' },
    { role: 'user', content: 'And 3 + 3?' },
  ],
];

const NEW_TOKENS = 32;
const TOP = 5;

function theirPromptIds(messages: ChatMessage[]): number[] {
  const encoded = theirs.tokenizer.apply_chat_template(messages, { add_generation_prompt: true, tokenize: true, return_dict: true }) as unknown as {
    input_ids: Tensor;
  };
  return Array.from(encoded.input_ids.data as BigInt64Array, Number);
}

/** transformers.js' own greedy generate(); the generation_config's sampling defaults are switched off. */
const theirGreedy = (promptIds: number[], repetitionPenalty: number) => referenceGreedy(theirs.model, promptIds, NEW_TOKENS, repetitionPenalty);

/** Log-softmax rows of transformers.js' logits for the positions that predict each new token. */
const theirLogprobs = (promptIds: number[], continuation: number[]) => referenceContinuationLogprobs(theirs.model, promptIds, continuation);

function ourGreedy(promptIds: number[], extra: Partial<GenerationRequest> = {}): Promise<{ tokens: number[]; events: TokenEvent[] }> {
  const engine = new GenerationEngine(ours.decoder, ours.tokenizer);
  return new Promise((resolve, reject) => {
    const tokens: number[] = [];
    const events: TokenEvent[] = [];
    engine.submit(
      { id: 'ref', promptIds, temperature: 0, maxTokens: NEW_TOKENS, logprobs: true, topLogprobs: TOP, ...extra },
      {
        onToken: (_i, _text, id, event) => {
          tokens.push(id);
          events.push(event);
        },
        onDone: () => resolve({ tokens, events }),
        onError: reject,
      },
    );
  });
}

describe('against transformers.js on the same model folder', () => {
  it('the chat template gives the same prompt ids', () => {
    for (const messages of CONVERSATIONS) assert.deepEqual(ours.tokenizer.applyChatTemplate(messages), theirPromptIds(messages));
  });

  it('log-probabilities: the top-5 ids and values agree within 1e-3 at every position of a 32-token continuation', async () => {
    let worst = 0;
    for (const messages of CONVERSATIONS) {
      const promptIds = theirPromptIds(messages);
      const { tokens, events } = await ourGreedy(promptIds);
      assert.equal(tokens.length, NEW_TOKENS);
      const reference = await theirLogprobs(promptIds, tokens);
      events.forEach((event, i) => {
        const row = reference[i]!;
        const expected = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, TOP);
        const got = event.logprobs!.topLogprobs;
        got.forEach((entry, k) => {
          worst = Math.max(worst, Math.abs(entry.logprob - row[entry.id]!));
          assert.ok(Math.abs(entry.logprob - row[expected[k]!]!) < 1e-3, `position ${i}, rank ${k}: ${entry.logprob} vs ${row[expected[k]!]}`);
          // Ranks may swap only between values that are equal to within rounding.
          if (entry.id !== expected[k]) assert.ok(Math.abs(row[entry.id]! - row[expected[k]!]!) < 1e-5, `position ${i}, rank ${k}: id ${entry.id} vs ${expected[k]}`);
        });
        assert.ok(Math.abs(event.logprobs!.logprob - row[tokens[i]!]!) < 1e-3);
      });
    }
    console.log(`  largest |ours - transformers.js| log-probability: ${worst.toExponential(2)}`);
  });

  it('prompt logprobs (legacy echo): every prompt token under the logits before it, in a batched prefill with a shorter prompt', async () => {
    const [long, short] = CONVERSATIONS.map((messages) => theirPromptIds(messages)).sort((a, b) => b.length - a.length) as [number[], number[]];
    const plain = await ourGreedy(long);
    const engine = new GenerationEngine(ours.decoder, ours.tokenizer);
    const run = (promptIds: number[], extra: Partial<GenerationRequest>) =>
      new Promise<{ tokens: number[]; prompt?: PromptTokenLogprobs[] }>((resolve, reject) => {
        const out: { tokens: number[]; prompt?: PromptTokenLogprobs[] } = { tokens: [] };
        engine.submit(
          { id: `ref-${promptIds.length}`, promptIds, temperature: 0, maxTokens: NEW_TOKENS, ...extra },
          {
            onPromptLogprobs: (entries) => {
              assert.equal(out.tokens.length, 0, 'before any token');
              out.prompt = entries;
            },
            onToken: (_i, _text, id) => void out.tokens.push(id),
            onDone: () => resolve(out),
            onError: reject,
          },
        );
      });
    // Submitted together, so admitted together (one prefill run, the shorter prompt padded, when the
    // padding is small enough for groupByLength); only one of them asks for every position's logits.
    const [withPrompt, other] = await Promise.all([run(long, { promptLogprobs: TOP }), run(short, {})]);
    assert.equal(other.prompt, undefined);
    assert.deepEqual(withPrompt.tokens, plain.tokens, 'keeping every position\'s logits does not change what is sampled');
    const entries = withPrompt.prompt!;
    assert.deepEqual(
      entries.map((e) => e.id),
      long,
    );
    assert.equal(entries[0]!.logprob, null);
    assert.equal(entries[0]!.topLogprobs, null);
    const reference = await theirLogprobs(long.slice(0, 1), long.slice(1));
    let worst = 0;
    entries.slice(1).forEach((entry, i) => {
      const row = reference[i]!;
      worst = Math.max(worst, Math.abs(entry.logprob! - row[entry.id]!));
      assert.ok(Math.abs(entry.logprob! - row[entry.id]!) < 1e-4, `prompt position ${i + 1}: ${entry.logprob} vs ${row[entry.id]}`);
      assert.equal(entry.topLogprobs!.length, TOP);
      for (const alt of entry.topLogprobs!) assert.ok(Math.abs(alt.logprob - row[alt.id]!) < 1e-4);
    });
    console.log(`  largest |ours - transformers.js| prompt log-probability: ${worst.toExponential(2)}`);
  });

  it('greedy continuations of 32 tokens are identical, with and without a repetition penalty', async () => {
    let penaltyMattered = false;
    for (const messages of CONVERSATIONS) {
      const promptIds = theirPromptIds(messages);
      const continuations: number[][] = [];
      for (const penalty of [1, 1.3]) {
        const { tokens } = await ourGreedy(promptIds, { repetitionPenalty: penalty });
        const reference = await theirGreedy(promptIds, penalty);
        assert.deepEqual(tokens, reference, `${JSON.stringify(messages.at(-1)!.content)}, repetition_penalty ${penalty}`);
        continuations.push(tokens);
      }
      penaltyMattered ||= continuations[0]!.join() !== continuations[1]!.join();
    }
    assert.ok(penaltyMattered, 'the penalty changed some continuation (else the second comparison proves nothing)');
  });
});
