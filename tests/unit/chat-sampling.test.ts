import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { ChatTokenizer } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import { GenerationEngine, type GenerationRequest, type GenerationResult, type TokenEvent } from '../../workers/chat/generation-engine.js';

/**
 * `n` samples of one prompt in the generation engine: one prefill row shared by every choice (the
 * others continue from copies of its KV cache), choices that differ when sampled, and choice 0
 * equal to the same request with n = 1.
 */

const CPU = { intraOpThreads: 1, executionProviders: ['cpu'] };

let root: string;
let tokenizer: ChatTokenizer;
let decoder: DecoderSession;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'chat-sampling-'));
  const dir = path.join(root, 'tiny-chat');
  await makeTinyDecoder(dir);
  tokenizer = await ChatTokenizer.load(dir);
  decoder = await DecoderSession.open(dir, CPU);
});

after(async () => {
  await decoder?.release();
  await rm(root, { recursive: true, force: true });
});

interface Choice {
  tokens: number[];
  events: TokenEvent[];
  result: GenerationResult;
}

/** Runs a request to the end; resolves with each choice's tokens, events and result, by choice index. */
function generate(engine: GenerationEngine, request: GenerationRequest): Promise<Choice[]> {
  const n = request.n ?? 1;
  const choices = Array.from({ length: n }, () => ({ tokens: [] as number[], events: [] as TokenEvent[], result: undefined as GenerationResult | undefined }));
  let done = 0;
  return new Promise((resolve, reject) => {
    engine.submit(request, {
      onToken(_index, _text, tokenId, event) {
        choices[event.choice]!.tokens.push(tokenId);
        choices[event.choice]!.events.push(event);
      },
      onDone(result) {
        assert.equal(choices[result.choice]!.result, undefined, 'onDone once per choice');
        choices[result.choice]!.result = result;
        if (++done === n) resolve(choices as Choice[]);
      },
      onError: reject,
    });
  });
}

const prompt = () => tokenizer.applyChatTemplate([{ role: 'user', content: 'Tell me about the sea.' }]);

describe('n samples of one prompt', () => {
  it('prefills the prompt once for all choices, which differ, and choice 0 is the n = 1 answer', async () => {
    const engine = new GenerationEngine(decoder, tokenizer, { maxBatch: 8 });
    const request: GenerationRequest = { id: 'n3', promptIds: prompt(), maxTokens: 12, temperature: 1, seed: 1234, n: 3 };
    const prefillsBefore = decoder.runs.prefill;
    const choices = await generate(engine, request);
    assert.equal(decoder.runs.prefill - prefillsBefore, 1, 'one prefill session run for three choices');
    assert.equal(engine.stats.prefillRuns, 1);
    assert.deepEqual(
      choices.map((c) => c.result.choice),
      [0, 1, 2],
    );
    for (const c of choices) {
      assert.equal(c.result.promptTokens, request.promptIds.length);
      assert.equal(c.result.completionTokens, c.tokens.length);
      assert.ok(c.tokens.length > 0);
    }
    // An untrained model at temperature 1 over 50k tokens: three equal 12-token samples would mean one shared generator.
    assert.equal(new Set(choices.map((c) => c.tokens.join(','))).size, 3, 'the choices differ');

    const [single] = await generate(engine, { ...request, id: 'n1', n: 1 });
    assert.deepEqual(choices[0]!.tokens, single!.tokens, 'choice 0 samples with the request seed, from an intact copy of the prompt cache');
    const [second] = await generate(engine, { ...request, id: 'seed+1', n: 1, seed: 1235 });
    assert.deepEqual(choices[1]!.tokens, second!.tokens, 'choice 1 samples with seed + 1');
  });

  it('gives every choice its own logprobs', async () => {
    const engine = new GenerationEngine(decoder, tokenizer, { maxBatch: 4 });
    const choices = await generate(engine, { id: 'lp', promptIds: prompt(), maxTokens: 6, temperature: 1, seed: 7, n: 2, logprobs: true, topLogprobs: 3 });
    for (const c of choices) {
      assert.equal(c.events.length, c.tokens.length);
      c.events.forEach((e, i) => {
        assert.equal(e.logprobs?.id, c.tokens[i]);
        assert.equal(e.logprobs?.topLogprobs.length, 3);
      });
    }
  });

  it('refuses more samples than one batch holds, and cancels every choice at once', async () => {
    const engine = new GenerationEngine(decoder, tokenizer, { maxBatch: 2 });
    assert.throws(() => engine.submit({ id: 'big', promptIds: prompt(), n: 3 }, { onToken() {}, onDone() {} }), /n must be an integer from 1 to 2/);
    assert.equal(engine.has('big'), false);

    const finished: GenerationResult[] = [];
    let cancelled = false;
    await new Promise<void>((resolve, reject) => {
      engine.submit(
        { id: 'c', promptIds: prompt(), maxTokens: 200, temperature: 1, n: 2 },
        {
          onToken() {
            if (!cancelled) cancelled = engine.cancel('c');
          },
          onDone(result) {
            finished.push(result);
            if (finished.length === 2) resolve();
          },
          onError: reject,
        },
      );
    });
    assert.deepEqual(finished.map((r) => r.finishReason), ['cancelled', 'cancelled']);
    assert.equal(engine.has('c'), false);
  });
});
