import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';

import { makeTinyDecoder, type TinyDecoderInfo } from '../../scripts/models/make-tiny-decoder.js';
import { ChatTokenizer } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import {
  GenerationEngine,
  type GenerationEngineOptions,
  type EngineGrammar,
  type GenerationRequest,
  type GenerationResult,
  type StepReport,
  type TokenEvent,
} from '../../workers/chat/generation-engine.js';
import { logSoftmax } from '../helpers/log-softmax.js';
import { ScriptedDecoder } from '../helpers/scripted-decoder.js';
import { GrammarError } from '../../workers/chat/grammar/grammar-error.js';
import { GrammarRuntime } from '../../workers/chat/grammar/grammar-runtime.js';
import type { ResponseFormat } from '../../workers/chat/grammar/response-format.js';

/**
 * Grammar-constrained decoding (xgrammar) and logprobs on the real runtime: the generated tiny
 * chat model (the same bytes as models/tiny-chat from scripts/models/build-models.ts: an
 * UNTRAINED Llama-style decoder with GPT-2's byte-level BPE vocabulary), its real tokenizer, the
 * real xgrammar WebAssembly build. Outputs are checked with JSON.parse and ajv, never with
 * xgrammar itself.
 */

const CPU = { intraOpThreads: 1, executionProviders: ['cpu'] };

let root: string;
let info: TinyDecoderInfo;
let tokenizer: ChatTokenizer;
let decoder: DecoderSession;
let grammar: GrammarRuntime;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'chat-grammar-'));
  const modelDir = path.join(root, 'tiny-chat');
  info = await makeTinyDecoder(modelDir);
  tokenizer = await ChatTokenizer.load(modelDir);
  decoder = await DecoderSession.open(modelDir, CPU);
  grammar = new GrammarRuntime({ vocabulary: tokenizer.vocabulary, vocabSize: decoder.config.vocabSize, stopTokenIds: tokenizer.stopTokenIds });
  await grammar.warm();
});

after(async () => {
  grammar?.close();
  await decoder?.release();
  await rm(root, { recursive: true, force: true });
});

const ajv = new Ajv2020({ strict: false, allErrors: true });

const prompt = (content: string): number[] => tokenizer.applyChatTemplate([{ role: 'user', content }]);

interface Run {
  tokens: number[];
  deltas: string[];
  events: TokenEvent[];
  result: GenerationResult;
}

function submit(engine: GenerationEngine, request: GenerationRequest): Promise<Run> {
  return new Promise((resolve, reject) => {
    const run: Omit<Run, 'result'> = { tokens: [], deltas: [], events: [] };
    engine.submit(request, {
      onToken(_index, text, tokenId, event) {
        run.tokens.push(tokenId);
        run.deltas.push(text);
        run.events.push(event);
      },
      onDone: (result) => resolve({ ...run, result }),
      onError: reject,
    });
  });
}

function engine(options: GenerationEngineOptions = {}): GenerationEngine {
  return new GenerationEngine(decoder, tokenizer, { grammar, ...options });
}

/** A schema an untrained model can finish: every string, number and array is bounded. */
const CAT_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 30 },
    color: { enum: ['black', 'white', 'tabby'] },
    indoor: { type: 'boolean' },
    weight: { type: 'number', minimum: 0, maximum: 20 },
    toys: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
    owner: {
      type: 'object',
      properties: { first: { type: 'string', maxLength: 10 }, verified: { type: 'boolean' } },
      required: ['first', 'verified'],
      additionalProperties: false,
    },
  },
  required: ['name', 'age', 'color', 'indoor', 'weight', 'toys', 'owner'],
  additionalProperties: false,
};

const ORDER_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'integer', minimum: 1, maximum: 999 },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 1, maxItems: 4 },
    ok: { type: 'boolean' },
  },
  required: ['id', 'tags', 'ok'],
  additionalProperties: false,
};

const DIGITS_SCHEMA = { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 5 };

const schemaFormat = (schema: Record<string, unknown>): ResponseFormat => ({ type: 'json_schema', schema, strict: true });

/**
 * Whether `text` is the beginning of a JSON object (RFC 8259): a character-level pushdown
 * automaton, independent of xgrammar, so that outputs cut by max_tokens can be checked too.
 */
function isJsonObjectPrefix(text: string): boolean {
  type Frame = 'object' | 'array';
  const stack: Frame[] = [];
  // value: a value must come; key: a key string or (if `closeOk`) '}' must come; colon; next: ',' or a closer
  type State = 'start' | 'value' | 'key' | 'colon' | 'next' | 'string' | 'number' | 'literal' | 'done';
  // Widened on purpose: endValue() changes it from a closure, which narrowing cannot see.
  let state = 'start' as State;
  let closeOk = false;
  let stringIsKey = false;
  let escape = 0; // 1 after '\', 2-5 inside \uXXXX
  let literal = '';
  let number = '';
  const ws = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  const endValue = () => {
    state = stack.length === 0 ? 'done' : 'next';
  };
  const numberComplete = (n: string) => /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(n);
  const numberPrefix = (n: string) => /^-?(0|[1-9]\d*)?(\.\d*)?([eE][+-]?\d*)?$/.test(n) && !/^-?0\d/.test(n) && !/^-?\./.test(n) && !/^-?[eE]/.test(n) && !/\.[eE]/.test(n);
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    switch (state) {
      case 'start':
        if (ws(c)) continue;
        if (c !== '{') return false;
        stack.push('object');
        state = 'key';
        closeOk = true;
        continue;
      case 'done':
        if (!ws(c)) return false;
        continue;
      case 'string':
        if (escape === 1) {
          if (c === 'u') escape = 2;
          else if ('"\\/bfnrt'.includes(c)) escape = 0;
          else return false;
        } else if (escape >= 2) {
          if (!/[0-9a-fA-F]/.test(c)) return false;
          escape = escape === 5 ? 0 : escape + 1;
        } else if (c === '\\') escape = 1;
        else if (c === '"') {
          if (stringIsKey) state = 'colon';
          else endValue();
        } else if (c < ' ') return false;
        continue;
      case 'number':
        if (numberPrefix(number + c)) {
          number += c;
          continue;
        }
        if (!numberComplete(number)) return false;
        endValue();
        i--; // this character belongs to what follows the number
        continue;
      case 'literal':
        literal += c;
        if (!['true', 'false', 'null'].some((l) => l.startsWith(literal))) return false;
        if (['true', 'false', 'null'].includes(literal)) endValue();
        continue;
      case 'colon':
        if (ws(c)) continue;
        if (c !== ':') return false;
        state = 'value';
        closeOk = false;
        continue;
      case 'key':
        if (ws(c)) continue;
        if (c === '}' && closeOk) {
          stack.pop();
          endValue();
          continue;
        }
        if (c !== '"') return false;
        state = 'string';
        stringIsKey = true;
        continue;
      case 'next':
        if (ws(c)) continue;
        if (c === ',') {
          if (stack.at(-1) === 'object') {
            state = 'key';
            closeOk = false;
          } else {
            state = 'value';
            closeOk = false;
          }
          continue;
        }
        if ((c === '}' && stack.at(-1) === 'object') || (c === ']' && stack.at(-1) === 'array')) {
          stack.pop();
          endValue();
          continue;
        }
        return false;
      case 'value':
        if (ws(c)) continue;
        if (c === ']' && closeOk) {
          stack.pop();
          endValue();
        } else if (c === '{') {
          stack.push('object');
          state = 'key';
          closeOk = true;
        } else if (c === '[') {
          stack.push('array');
          state = 'value';
          closeOk = true;
        } else if (c === '"') {
          state = 'string';
          stringIsKey = false;
        } else if (c === '-' || (c >= '0' && c <= '9')) {
          state = 'number';
          number = c;
        } else if ('tfn'.includes(c)) {
          state = 'literal';
          literal = c;
        } else return false;
        continue;
    }
  }
  return true;
}

describe('(a) the grammar sees the model’s real vocabulary', () => {
  it('token bytes rebuild the UTF-8 of any text, split characters included', () => {
    const texts = ['{"name": "Zoë", "emoji": "🎉👍🏽", "cjk": "日本語"}', '  \n\t spaces', 'naïve café — Ελληνικά'];
    for (const text of texts) {
      const ids = tokenizer.encode(text);
      const bytes = Buffer.concat(ids.map((id) => tokenizer.vocabulary.tokenBytes(id)));
      assert.deepEqual(bytes, Buffer.from(text, 'utf8'), text);
    }
    // A byte-level vocabulary, and some of its tokens are single bytes of multi-byte characters.
    assert.equal(tokenizer.vocabulary.type, 'byte_level');
    const party = tokenizer.encode('🎉');
    assert.ok(party.length > 1 && party.some((id) => tokenizer.vocabulary.tokenText(id).includes('\uFFFD')));
  });

  it('a matcher accepts exactly the tokenizer’s tokens of valid JSON, multi-byte characters included', async () => {
    const text = '{"name": "Zoë 🎉 日本", "n": -12.5e3, "list": [true, null, {"k": "\\u00e9"}]}';
    const matcher = await grammar.matcher({ type: 'json_object' });
    try {
      for (const id of tokenizer.encode(text)) assert.equal(matcher.accept(id), true, `token ${id} (${JSON.stringify(tokenizer.vocabulary.tokenText(id))})`);
      assert.equal(matcher.terminated, false);
      assert.equal(matcher.accept(info.specialIds.imEnd), true, 'the end token is allowed once the object is complete');
      assert.equal(matcher.terminated, true);
    } finally {
      matcher.dispose();
    }
    // Special tokens other than the stop tokens are never allowed, not even inside a string.
    const inString = await grammar.matcher({ type: 'json_object' });
    try {
      for (const id of tokenizer.encode('{"a": "x')) assert.equal(inString.accept(id), true);
      const mask = await inString.nextTokenBitmask();
      const allowed = (id: number) => ((mask[id >> 5]! >>> (id & 31)) & 1) === 1;
      assert.equal(allowed(info.specialIds.imStart), false, '<|im_start|> inside a JSON string');
      assert.equal(allowed(info.specialIds.imEnd), false, 'the end token before the object is complete');
      assert.equal(allowed(tokenizer.encode('"}')[0]!), true);
      assert.equal(inString.accept(tokenizer.encode(',')[0]!), true, 'a comma inside a string is text');
    } finally {
      inString.dispose();
    }
  });
});

describe('(b) json_object', () => {
  it('untrained model, temperature 1, several seeds: always the start of a JSON object, and a complete one whenever it stops', async () => {
    const e = engine();
    const runs = await Promise.all(
      [1, 2, 3, 4, 5].map((seed) =>
        submit(e, { id: `obj-${seed}`, promptIds: prompt('Describe a cat as JSON.'), temperature: 1, seed, maxTokens: 96, responseFormat: { type: 'json_object' } }),
      ),
    );
    let stopped = 0;
    for (const run of runs) {
      const { text, finishReason } = run.result;
      assert.equal(run.deltas.join(''), text);
      assert.ok(isJsonObjectPrefix(text), `not a JSON object prefix: ${JSON.stringify(text)}`);
      if (finishReason === 'stop') {
        stopped++;
        const value: unknown = JSON.parse(text);
        assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), text);
      } else {
        assert.equal(finishReason, 'length');
        assert.equal(run.result.completionTokens, 96);
      }
    }
    // This model does not know JSON: free-form strings rarely close within the budget, so most
    // runs end with `length` (and the schema tests below are the ones that always finish).
    console.log(`  json_object, untrained model: ${stopped}/${runs.length} complete within 96 tokens`);
  });

  it('once the object is complete only whitespace and the end token are allowed: finish_reason stop, JSON that parses', async () => {
    // Logits that spell a script regardless of the prompt: a complete object, then more text.
    const script = [...tokenizer.encode('{"a": [1, "x"], "b": {"c": null}}'), ...tokenizer.encode(' and then some prose')];
    const e = new GenerationEngine(new ScriptedDecoder(script, info.vocabSize), tokenizer, { grammar });
    const run = await submit(e, { id: 'scripted', promptIds: prompt('hi'), temperature: 0, maxTokens: 200, responseFormat: { type: 'json_object' } });
    assert.equal(run.result.finishReason, 'stop');
    assert.deepEqual(JSON.parse(run.result.text), { a: [1, 'x'], b: { c: null } });
    assert.ok(!run.result.text.includes('prose'));
    assert.ok(run.events.at(-1)?.endOfSequence, 'ended by an end-of-sequence token');
    assert.ok(tokenizer.stopTokenIds.has(run.tokens.at(-1)!));
  });
});

describe('(c) json_schema', () => {
  const validate = ajv.compile(CAT_SCHEMA);

  it('nested object, enum, array, required, integer/number/string/boolean: every seed finishes and validates, properties in schema order', async () => {
    const e = engine();
    const runs = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((seed) =>
        submit(e, { id: `cat-${seed}`, promptIds: prompt('Give me a JSON object describing a cat.'), temperature: 1, seed, maxTokens: 768, responseFormat: schemaFormat(CAT_SCHEMA) }),
      ),
    );
    for (const run of runs) {
      const { text, finishReason, completionTokens } = run.result;
      assert.equal(finishReason, 'stop', `${completionTokens} tokens: ${JSON.stringify(text)}`);
      const value = JSON.parse(text) as Record<string, unknown>;
      assert.ok(validate(value), `${ajv.errorsText(validate.errors)}: ${text}`);
      assert.deepEqual(Object.keys(value), Object.keys(CAT_SCHEMA.properties), 'properties come in the schema’s order');
      assert.equal(run.deltas.join(''), text);
    }
    // Different seeds, different objects.
    assert.ok(new Set(runs.map((r) => r.result.text)).size > 1);
  });

  it('without strict, properties the schema does not forbid may appear; the output still validates', async () => {
    const loose = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] };
    const run = await submit(engine(), {
      id: 'loose',
      promptIds: prompt('JSON please'),
      temperature: 1,
      seed: 3,
      maxTokens: 768,
      responseFormat: { type: 'json_schema', schema: loose },
    });
    if (run.result.finishReason === 'stop') assert.ok(ajv.validate(loose, JSON.parse(run.result.text)), run.result.text);
    else assert.ok(isJsonObjectPrefix(run.result.text));
  });

  it('max_tokens reached before the grammar completes: finish_reason length, an incomplete (unparseable) prefix', async () => {
    const run = await submit(engine(), { id: 'short', promptIds: prompt('cat'), temperature: 1, seed: 1, maxTokens: 6, responseFormat: schemaFormat(CAT_SCHEMA) });
    assert.equal(run.result.finishReason, 'length');
    assert.equal(run.result.completionTokens, 6);
    assert.ok(isJsonObjectPrefix(run.result.text));
    assert.throws(() => JSON.parse(run.result.text));
  });

  it('sequences with different schemas and one without share the same batch; the unconstrained one is unaffected', async () => {
    const plain: GenerationRequest = { id: 'plain', promptIds: prompt('Tell me a story.'), temperature: 1, seed: 11, maxTokens: 48 };
    const alone = await submit(engine(), plain);

    const steps: StepReport[] = [];
    const e = engine({ maxBatch: 8, onStep: (s) => steps.push(s) });
    const [cat, order, digits, free] = await Promise.all([
      submit(e, { id: 'cat', promptIds: prompt('A cat, as JSON.'), temperature: 1, seed: 4, maxTokens: 768, responseFormat: schemaFormat(CAT_SCHEMA) }),
      submit(e, { id: 'order', promptIds: prompt('An order, as JSON.'), temperature: 1, seed: 5, maxTokens: 768, responseFormat: schemaFormat(ORDER_SCHEMA) }),
      submit(e, { id: 'digits', promptIds: prompt('Some digits.'), temperature: 1, seed: 6, maxTokens: 768, responseFormat: schemaFormat(DIGITS_SCHEMA) }),
      submit(e, { ...plain, id: 'plain-in-batch' }),
    ]);
    assert.ok(
      steps.some((s) => s.kind === 'decode' && s.batchSize === 4),
      `decode batch sizes ${[...new Set(steps.map((s) => s.batchSize))].join(', ')}`,
    );
    for (const [run, schema] of [
      [cat, CAT_SCHEMA],
      [order, ORDER_SCHEMA],
      [digits, DIGITS_SCHEMA],
    ] as const) {
      assert.equal(run.result.finishReason, 'stop', run.result.text);
      assert.ok(ajv.validate(schema, JSON.parse(run.result.text)), `${ajv.errorsText()}: ${run.result.text}`);
    }
    assert.ok(Array.isArray(JSON.parse(digits.result.text)));
    assert.deepEqual(free.tokens, alone.tokens, 'the unconstrained sequence samples as it does alone');
    assert.equal(free.result.text, alone.result.text);
  });
});

describe('(d) formats the engine cannot compile', () => {
  it('a schema that is not valid JSON Schema is refused at submit with a readable GrammarError', () => {
    const e = engine();
    const refuse = (schema: Record<string, unknown>, pattern: RegExp) =>
      assert.throws(
        () => e.submit({ id: 'bad', promptIds: prompt('x'), responseFormat: { type: 'json_schema', schema } }, { onToken() {}, onDone() {} }),
        (err: unknown) => err instanceof GrammarError && err.code === 'invalid_response_format' && err.param === 'response_format' && pattern.test(err.message),
      );
    refuse({ type: 'objekt' }, /schema\/type must be equal to one of the allowed values/);
    refuse({ type: 'object', required: 'name' }, /schema\/required must be array/);
    refuse({ type: 'object', properties: { a: { minLength: -1 } } }, /minLength/);
    assert.equal(e.has('bad'), false, 'nothing was queued');
    assert.throws(
      () => new GenerationEngine(decoder, tokenizer).submit({ id: 'x', promptIds: prompt('x'), responseFormat: { type: 'json_object' } }, { onToken() {}, onDone() {} }),
      /needs an engine with grammar support/,
    );
  });

  it('valid JSON Schema the compiler rejects fails the sequence with the compiler’s reason; the runtime keeps serving after many', async () => {
    const e = engine();
    const failure = (schema: Record<string, unknown>, id: string) =>
      submit(e, { id, promptIds: prompt('x'), maxTokens: 8, responseFormat: { type: 'json_schema', schema } }).then(
        () => assert.fail(`${id} should have failed`),
        (err: unknown) => err,
      );
    const contradiction = await failure({ type: 'integer', minimum: 5, maximum: 1 }, 'range');
    assert.ok(contradiction instanceof GrammarError);
    assert.equal(contradiction.code, 'invalid_response_format');
    assert.match(contradiction.message, /minimum greater than maximum/);
    assert.doesNotMatch(contradiction.message, /Aborted|\.cc:\d+|Check failed/, 'no WebAssembly abort text or C++ internals');

    // Each rejection aborts the compiler's WebAssembly instance, which would be corrupt after
    // about 20; 24 distinct ones in a row, then real work.
    const before = grammar.stats;
    for (let i = 0; i < 24; i++) {
      const err = await failure({ type: 'string', pattern: `(?<=a)b${i}` }, `lookbehind-${i}`);
      assert.ok(err instanceof GrammarError && err.code === 'unsupported_response_format', String(err));
      assert.match(err.message, /Lookbehind is not supported/);
    }
    const after = grammar.stats;
    assert.equal(after.rejected - before.rejected, 24);
    assert.ok(after.instances - before.instances >= 23, `instances ${before.instances} → ${after.instances}`);
    // The same bad schema again is answered from the cache, without compiling.
    const again = await failure({ type: 'string', pattern: '(?<=a)b3' }, 'again');
    assert.match(String(again), /Lookbehind/);
    assert.equal(grammar.stats.rejected, after.rejected);

    const ok = await submit(e, { id: 'after', promptIds: prompt('An order.'), temperature: 1, seed: 2, maxTokens: 768, responseFormat: schemaFormat(ORDER_SCHEMA) });
    assert.equal(ok.result.finishReason, 'stop');
    assert.ok(ajv.validate(ORDER_SCHEMA, JSON.parse(ok.result.text)), ok.result.text);
  });

  it('a matcher that breaks mid-generation ends its own sequence only', async () => {
    let calls = 0;
    const breaking: EngineGrammar = {
      prepare: (format) => grammar.prepare(format),
      matcher: async (format) => {
        const inner = await grammar.matcher(format);
        return {
          nextTokenBitmask: () => (++calls > 3 ? Promise.reject(new Error('matcher state lost')) : inner.nextTokenBitmask()),
          accept: (id) => inner.accept(id),
          get terminated() {
            return inner.terminated;
          },
          dispose: () => inner.dispose(),
        };
      },
    };
    const e = new GenerationEngine(decoder, tokenizer, { grammar: breaking });
    const [broken, plain] = await Promise.allSettled([
      submit(e, { id: 'broken', promptIds: prompt('x'), temperature: 1, seed: 1, maxTokens: 32, responseFormat: { type: 'json_object' } }),
      submit(e, { id: 'plain', promptIds: prompt('y'), temperature: 1, seed: 1, maxTokens: 16 }),
    ]);
    assert.equal(broken.status, 'rejected');
    assert.match(String((broken as PromiseRejectedResult).reason), /the grammar failed: matcher state lost/);
    assert.equal(plain.status, 'fulfilled');
    assert.equal((plain as PromiseFulfilledResult<Run>).value.result.completionTokens, 16);
  });

  it('an EBNF grammar works, and one that does not parse is refused with the parser’s message', async () => {
    const yesNo = await submit(engine(), {
      id: 'ebnf',
      promptIds: prompt('yes or no?'),
      temperature: 1,
      seed: 9,
      maxTokens: 20,
      responseFormat: { type: 'ebnf', grammar: 'root ::= ("yes" | "no") "!"' },
    });
    assert.equal(yesNo.result.finishReason, 'stop');
    assert.match(yesNo.result.text, /^(yes|no)!$/);
    const bad = await submit(engine(), { id: 'bad-ebnf', promptIds: prompt('x'), responseFormat: { type: 'ebnf', grammar: 'root ::= ' } }).catch((e: unknown) => e);
    assert.ok(bad instanceof GrammarError && bad.code === 'invalid_response_format', String(bad));
    assert.match(bad.message, /EBNF parser error/);
  });
});

describe('(e) logprobs', () => {

  it('each token carries its log-probability and the top alternatives of the model’s distribution', async () => {
    const promptIds = prompt('Hello there, how are you?');
    const run = await submit(engine(), { id: 'lp', promptIds, temperature: 0, maxTokens: 12, logprobs: true, topLogprobs: 5 });
    assert.equal(run.events.length, run.tokens.length);
    run.events.forEach((event, i) => {
      const lp = event.logprobs!;
      assert.equal(lp.id, run.tokens[i]);
      assert.equal(lp.topLogprobs.length, 5);
      // Greedy: the chosen token is the most likely one.
      assert.equal(lp.topLogprobs[0]!.id, lp.id);
      assert.equal(lp.topLogprobs[0]!.logprob, lp.logprob);
      for (let k = 1; k < 5; k++) assert.ok(lp.topLogprobs[k]!.logprob <= lp.topLogprobs[k - 1]!.logprob);
      assert.ok(lp.logprob <= 0);
      assert.deepEqual(lp.bytes, [...tokenizer.vocabulary.tokenBytes(lp.id)]);
    });
    // Joining the tokens' bytes gives the text.
    const bytes = run.events.filter((e) => !e.endOfSequence).flatMap((e) => e.logprobs!.bytes);
    assert.equal(Buffer.from(bytes).toString('utf8'), run.result.text);

    // The first position against a log-softmax computed here from the session's own logits.
    const { logits } = await decoder.prefill(promptIds);
    const reference = logSoftmax(logits);
    const first = run.events[0]!.logprobs!;
    for (const t of first.topLogprobs) assert.ok(Math.abs(t.logprob - reference[t.id]!) < 1e-6, `${t.id}: ${t.logprob} vs ${reference[t.id]}`);
    const best5 = [...reference.keys()].sort((a, b) => reference[b]! - reference[a]! || a - b).slice(0, 5);
    assert.deepEqual(first.topLogprobs.map((t) => t.id), best5);
  });

  it('are the raw distribution: temperature, top-k and the repetition penalty do not change them', async () => {
    const promptIds = prompt('Name a colour.');
    const base = { promptIds, maxTokens: 1, logprobs: true, topLogprobs: 8 };
    const [cold, hot, clipped] = await Promise.all([
      submit(engine(), { ...base, id: 'cold', temperature: 0.2, seed: 1 }),
      submit(engine(), { ...base, id: 'hot', temperature: 1.8, seed: 1, repetitionPenalty: 1.5 }),
      submit(engine(), { ...base, id: 'clipped', temperature: 1, topK: 2, seed: 1 }),
    ]);
    const tops = [cold, hot, clipped].map((r) => r.events[0]!.logprobs!.topLogprobs);
    assert.deepEqual(tops[1], tops[0]);
    assert.deepEqual(tops[2], tops[0]);
  });

  it('under a grammar, only allowed tokens are listed and their probabilities are renormalised', async () => {
    const run = await submit(engine(), { id: 'lp-grammar', promptIds: prompt('cat'), temperature: 1, seed: 2, maxTokens: 3, logprobs: true, topLogprobs: 20, responseFormat: schemaFormat(CAT_SCHEMA) });
    const first = run.events[0]!.logprobs!;
    // The schema's object must open: every listed token starts with '{' (possibly after whitespace).
    assert.ok(first.topLogprobs.length > 0 && first.topLogprobs.length <= 20);
    for (const t of first.topLogprobs) assert.match(t.token, /^\s*(\{.*)?$/s, JSON.stringify(t.token));
    const mass = first.topLogprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(mass <= 1 + 1e-9);
    // Unconstrained, the same position puts most of its mass elsewhere.
    const free = await submit(engine(), { id: 'lp-free', promptIds: prompt('cat'), temperature: 1, seed: 2, maxTokens: 1, logprobs: true, topLogprobs: 20 });
    const freeBrace = free.events[0]!.logprobs!.topLogprobs.filter((t) => /^\s*\{/.test(t.token)).reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(mass > freeBrace, `constrained ${mass} vs unconstrained ${freeBrace}`);
  });

  it('rejects top_logprobs outside 0-20 or without logprobs', () => {
    const e = engine();
    const noop = { onToken() {}, onDone() {} };
    assert.throws(() => e.submit({ id: 'a', promptIds: prompt('x'), logprobs: true, topLogprobs: 21 }, noop), /0 to 20/);
    assert.throws(() => e.submit({ id: 'b', promptIds: prompt('x'), topLogprobs: 3 }, noop), /needs logprobs/);
  });
});
