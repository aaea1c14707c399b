import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AutoModelForCausalLM, env } from '@huggingface/transformers';
import OpenAI from 'openai';
import { io as connect, type Socket } from 'socket.io-client';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';
import { referenceLogprobRows } from '../helpers/transformers-reference.js';

/**
 * The sampling surface of the OpenAI endpoints, through the official `openai` client: logprobs and
 * top_logprobs, n choices from one prefill, the legacy /v1/completions, and the parameters that
 * are accepted for compatibility. Every answer and stream chunk is checked against OpenAI's
 * published OpenAPI document.
 */

const messages = [{ role: 'user' as const, content: 'Say something.' }];
type TokenLogprob = OpenAI.ChatCompletionTokenLogprob;

/** What every logprobs entry must satisfy, whatever the (untrained) model says. */
function checkLogprobs(content: readonly TokenLogprob[], top: number): void {
  for (const t of content) {
    assert.ok(Number.isFinite(t.logprob) && Math.exp(t.logprob) <= 1 + 1e-9, `logprob ${t.logprob}`);
    assert.ok(Array.isArray(t.bytes) && t.bytes.length > 0);
    assert.equal(t.top_logprobs.length, top);
    for (let i = 1; i < t.top_logprobs.length; i++) assert.ok(t.top_logprobs[i - 1]!.logprob >= t.top_logprobs[i]!.logprob, 'top_logprobs best first');
    let mass = 0;
    for (const alt of t.top_logprobs) mass += Math.exp(alt.logprob);
    assert.ok(mass <= 1 + 1e-6, `the alternatives' probabilities sum to ${mass}`);
    if (top > 0) assert.ok(t.logprob <= t.top_logprobs[0]!.logprob + 1e-9, 'no token is likelier than the best alternative');
    const same = t.top_logprobs.find((alt) => alt.token === t.token && alt.bytes?.join() === t.bytes?.join());
    if (same) assert.ok(Math.abs(same.logprob - t.logprob) < 1e-9, 'the chosen token has the same logprob among the alternatives');
  }
}

/** The text the tokens' bytes spell. */
const textOf = (content: readonly TokenLogprob[]) => Buffer.from(content.flatMap((t) => t.bytes ?? [])).toString('utf8');

describe('chat sampling: logprobs, n, legacy completions, compatibility parameters', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: OpenAI;
  const sockets: Socket[] = [];
  const validCompletion = openAiValidator('CreateChatCompletionResponse');
  const validChunk = openAiValidator('CreateChatCompletionStreamResponse');
  const validText = openAiValidator('CreateCompletionResponse');
  const validError = openAiValidator('ErrorResponse');

  let modelDir: string;

  before(async () => {
    // onnx/model.onnx, the layout transformers.js loads too (the echo-with-logprobs reference below).
    modelDir = path.join(mkdtempSync(path.join(tmpdir(), 'qi-sampling-')), 'tiny-chat');
    await makeTinyDecoder(modelDir, { maxPositions: 256, onnxSubdir: true });
    redis = await startPrivateRedis();
    const config = writeModelsConfig([
      { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 200, default_max_tokens: 32 },
      { id: 'tiny-pair', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 2, max_tokens_limit: 200, default_max_tokens: 32 },
      // Never reached: the requests below are refused before any job.
      { id: 'remote', task: 'chat', format: 'openai-upstream', base_url: 'http://127.0.0.1:9/v1', timeout_ms: 500 },
    ]);
    svc = await startService({ redisUrl: redis.url, modelsConfig: config });
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  test('logprobs and top_logprobs: OpenAI-valid, one entry per content token, sorted and consistent', async () => {
    const r = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 20, seed: 5, logprobs: true, top_logprobs: 5 });
    assert.deepEqual(validCompletion(r), []);
    const choice = r.choices[0]!;
    const content = choice.logprobs!.content!;
    // finish 'length': every sampled token is content (a 'stop' on end-of-sequence would leave that one out).
    assert.equal(choice.finish_reason, 'length');
    assert.equal(content.length, r.usage!.completion_tokens);
    assert.equal(textOf(content), choice.message.content);
    checkLogprobs(content, 5);

    const plain = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 20, seed: 5, logprobs: true });
    assert.deepEqual(plain.choices[0]!.logprobs!.content!.map((t) => t.logprob), content.map((t) => t.logprob), 'top_logprobs does not change the answer');
    checkLogprobs(plain.choices[0]!.logprobs!.content!, 0);
    const none = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 4 });
    assert.equal(none.choices[0]!.logprobs, null);
  });

  test('streamed logprobs: each chunk carries its delta\'s tokens, together the whole answer\'s', async () => {
    const whole = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 24, seed: 9, logprobs: true, top_logprobs: 2 });
    const stream = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 24, seed: 9, logprobs: true, top_logprobs: 2, stream: true });
    const streamed: TokenLogprob[] = [];
    let text = '';
    for await (const chunk of stream) {
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      const c = chunk.choices[0];
      if (!c) continue;
      const delta = c.logprobs?.content ?? [];
      streamed.push(...delta);
      text += c.delta.content ?? '';
      // A delta is the text of its tokens, once every character in it is complete.
      if (c.delta.content) assert.ok(delta.length > 0, 'a delta with text carries the logprobs of its tokens');
    }
    assert.equal(text, whole.choices[0]!.message.content);
    assert.deepEqual(streamed, whole.choices[0]!.logprobs!.content);
  });

  test('logprobs with a stop string: the tokens that started it are still reported, streamed or not', async () => {
    const probe = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 40, temperature: 0 });
    const text = probe.choices[0]!.message.content ?? '';
    const stop = text.slice(12, 15);
    assert.ok(stop.trim().length > 0, 'the probe produced text to stop on');
    const request: OpenAI.ChatCompletionCreateParamsNonStreaming = { model: 'tiny-chat', messages, max_tokens: 40, temperature: 0, stop: [stop], logprobs: true };
    const whole = await client.chat.completions.create(request);
    assert.equal(whole.choices[0]!.finish_reason, 'stop');
    const content = whole.choices[0]!.logprobs!.content!;
    // Stopped by a string, not by end-of-sequence: every sampled token has its entry.
    assert.equal(content.length, whole.usage!.completion_tokens);
    assert.ok(textOf(content).startsWith(whole.choices[0]!.message.content!) && textOf(content).includes(stop));
    const streamed: TokenLogprob[] = [];
    let streamedText = '';
    for await (const chunk of await client.chat.completions.create({ ...request, stream: true as const })) {
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
      streamedText += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(streamedText, whole.choices[0]!.message.content);
    assert.deepEqual(streamed, content);
  });

  test('models served by an upstream refuse n > 1, logprobs and tokenize with a 400', async () => {
    for (const [route, body, param] of [
      ['/v1/chat/completions', { model: 'remote', messages, n: 2 }, 'n'],
      ['/v1/chat/completions', { model: 'remote', messages, logprobs: true }, 'logprobs'],
      ['/v1/tokenize', { model: 'remote', prompt: 'hi' }, 'model'],
    ] as const) {
      const r = await postJson(svc.baseUrl, route, body);
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(validError(r.json), []);
      assert.equal(r.json.error.param, param);
    }
  });

  test('top_logprobs without logprobs, or above 20, is a 400 in OpenAI\'s error shape', async () => {
    for (const body of [{ top_logprobs: 3 }, { logprobs: true, top_logprobs: 21 }, { logprobs: false, top_logprobs: 2 }]) {
      const r = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages, ...body });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(validError(r.json), []);
      assert.match(r.json.error.message, /top_logprobs/);
    }
    const job = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, top_logprobs: 1 });
    assert.equal(job.status, 400, job.text);
  });

  test('n = 3: three indexed choices that differ, the prompt counted once in usage', async () => {
    const one = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 10, temperature: 1, seed: 21 });
    const r = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 10, temperature: 1, seed: 21, n: 3 });
    assert.deepEqual(validCompletion(r), []);
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2],
    );
    assert.equal(new Set(r.choices.map((c) => c.message.content)).size, 3, 'sampled choices differ');
    assert.equal(r.choices[0]!.message.content, one.choices[0]!.message.content, 'choice 0 is the n = 1 answer of the same seed');
    assert.equal(r.usage!.prompt_tokens, one.usage!.prompt_tokens);
    assert.equal(r.usage!.completion_tokens, 30);
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 30);
  });

  test('n = 3 streamed: chunks of the three choices interleave, each adds up to its choice', async () => {
    const whole = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 12, temperature: 1, seed: 33, n: 3 });
    const stream = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 12, temperature: 1, seed: 33, n: 3, stream: true, stream_options: { include_usage: true } });
    const texts = ['', '', ''];
    const finishes: (string | null)[] = [null, null, null];
    const order: number[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finishes[c.index] = c.finish_reason;
        if (c.delta.content) order.push(c.index);
      }
    }
    assert.deepEqual(texts, whole.choices.map((c) => c.message.content));
    assert.deepEqual(finishes, ['length', 'length', 'length']);
    assert.equal(usage?.completion_tokens, 36);
    // They decode in one batch, so their tokens alternate rather than come one choice after another.
    const switches = order.filter((c, i) => i > 0 && c !== order[i - 1]).length;
    assert.ok(switches >= 3, `choices interleave (${switches} switches in ${order.join('')})`);
  });

  test('n is bounded by the model\'s batch and by 8', async () => {
    const pair = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-pair', messages, n: 3 });
    assert.equal(pair.status, 400, pair.text);
    assert.match(pair.json.error.message, /'n' is 3.*at most 2/);
    assert.equal(pair.json.error.param, 'n');
    const nine = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages, n: 9 });
    assert.equal(nine.status, 400, nine.text);
    assert.deepEqual(validError(nine.json), []);
  });

  test('a chat job with n and logprobs: the result has every choice, Socket.IO token events carry choice and logprobs', async () => {
    const s = connect(svc.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    const events: { index: number; text: string; choice?: number; logprobs?: TokenLogprob[] }[] = [];
    s.on('token', (e) => events.push(e));
    const completed = new Promise<any>((resolve) => s.once('completed', resolve));
    const submitted = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, max_completion_tokens: 8, seed: 4, n: 2, logprobs: true, top_logprobs: 1 });
    assert.equal(submitted.status, 202, submitted.text);
    assert.equal((await s.timeout(5000).emitWithAck('subscribe', submitted.json.id)).ok, true);
    const { result } = await completed;
    assert.equal(result.choices.length, 2);
    assert.equal(result.usage.completion_tokens, 16, 'max_completion_tokens applies to each choice; usage sums them');
    for (const choice of [0, 1]) {
      const mine = events.filter((e) => (e.choice ?? 0) === choice);
      assert.equal(mine.map((e) => e.text).join(''), result.choices[choice].message.content);
      assert.deepEqual(mine.flatMap((e) => e.logprobs ?? []), result.choices[choice].logprobs.content);
      assert.equal(result.choices[choice].logprobs.content.length, 8);
    }
    assert.deepEqual(result.logprobs, result.choices[0].logprobs);
    assert.equal(result.message.content, result.choices[0].message.content);
  });

  test('compatibility parameters are accepted: max_completion_tokens, stop (4), user, metadata, store', async () => {
    const r = await client.chat.completions.create({
      model: 'tiny-chat',
      messages,
      max_completion_tokens: 7,
      max_tokens: 50,
      stop: ['@@1', '@@2', '@@3', '@@4'],
      user: 'user-42',
      metadata: { purpose: 'test' },
      store: false,
      seed: 1,
    });
    assert.deepEqual(validCompletion(r), []);
    assert.equal(r.usage!.completion_tokens, 7, 'max_completion_tokens wins over max_tokens');
    const five = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages, stop: ['a', 'b', 'c', 'd', 'e'] });
    assert.equal(five.status, 400, five.text);
    const meta = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages, metadata: { k: 'x'.repeat(600) } });
    assert.equal(meta.status, 400, meta.text);
  });

  test('legacy completions: a string prompt, a list of prompts with n, echo, logprobs, streaming', async () => {
    const one = await client.completions.create({ model: 'tiny-chat', prompt: 'Once upon a time', max_tokens: 8, seed: 3 });
    assert.deepEqual(validText(one), []);
    assert.equal(one.object, 'text_completion');
    assert.equal(one.choices.length, 1);
    assert.equal(one.choices[0]!.finish_reason, 'length');
    assert.equal(one.usage!.completion_tokens, 8);
    // Raw prompt, no chat template: far fewer prompt tokens than the same text as a chat message.
    const asChat = await client.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 1 });
    assert.ok(one.usage!.prompt_tokens < asChat.usage!.prompt_tokens, `${one.usage!.prompt_tokens} raw vs ${asChat.usage!.prompt_tokens} templated`);

    const list = await client.completions.create({ model: 'tiny-chat', prompt: ['Once upon a time', 'The weather today'], max_tokens: 5, n: 2, seed: 3 });
    assert.deepEqual(validText(list), []);
    assert.deepEqual(
      list.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    assert.equal(list.choices[0]!.text, one.choices[0]!.text.slice(0, list.choices[0]!.text.length), 'prompt 0 choice 0 is the single answer (same seed), cut at 5 tokens');
    assert.equal(list.usage!.completion_tokens, 20);

    const echo = await client.completions.create({ model: 'tiny-chat', prompt: 'Once upon a time', max_tokens: 8, seed: 3, echo: true });
    assert.equal(echo.choices[0]!.text, `Once upon a time${one.choices[0]!.text}`);

    const lp = await client.completions.create({ model: 'tiny-chat', prompt: 'Once upon a time', max_tokens: 8, seed: 3, logprobs: 3 });
    assert.deepEqual(validText(lp), []);
    const legacy = lp.choices[0]!.logprobs!;
    assert.equal(legacy.tokens!.length, 8);
    assert.equal(legacy.token_logprobs!.length, 8);
    assert.equal(legacy.text_offset![0], 0);
    for (let i = 0; i < 8; i++) {
      const top = legacy.top_logprobs![i]!;
      // The 3 alternatives, plus the chosen token when it is not among them.
      assert.ok(Object.keys(top).length >= 3 && Object.keys(top).length <= 4);
      assert.equal(top[legacy.tokens![i]!], legacy.token_logprobs![i]);
      if (i > 0) assert.ok(legacy.text_offset![i]! >= legacy.text_offset![i - 1]!);
    }
    assert.ok(legacy.text_offset![7]! <= lp.choices[0]!.text.length);

    const stream = await client.completions.create({ model: 'tiny-chat', prompt: 'Once upon a time', max_tokens: 8, seed: 3, echo: true, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      // OpenAI's document has no chunk schema for legacy completions: its chunks are
      // CreateCompletionResponse objects whose finish_reason is null until the last (as OpenAI and
      // vLLM send them), which the document's non-null finish_reason does not allow.
      assert.ok(chunk.choices.every((c) => c.finish_reason === null || typeof c.finish_reason === 'string'));
      const asFinal = { ...chunk, choices: chunk.choices.map((c) => ({ ...c, finish_reason: c.finish_reason ?? 'stop' })) };
      assert.deepEqual(validText(asFinal), [], JSON.stringify(chunk));
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, echo.choices[0]!.text);
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 8);
  });

  test('legacy completions: echo with logprobs lists the prompt tokens first, with transformers.js\'s log-probabilities', async () => {
    const prompt = 'Once upon a time, in a land';
    const TOP = 2;
    const check = (choice: { text: string; logprobs: OpenAI.Completions.CompletionChoice.Logprobs | null }, promptTokens: number) => {
      assert.ok(choice.text.startsWith(prompt), choice.text);
      const lp = choice.logprobs!;
      const tokens = lp.tokens!;
      assert.equal(tokens.length, promptTokens + 3, 'the prompt tokens, then the 3 completion tokens');
      assert.equal(tokens.join(''), choice.text, 'the tokens spell the text');
      assert.equal(lp.token_logprobs![0], null, 'nothing comes before the first prompt token');
      assert.equal(lp.top_logprobs![0], null);
      assert.equal(lp.text_offset![0], 0);
      for (let i = 1; i < tokens.length; i++) {
        const logprob = lp.token_logprobs![i]!;
        assert.ok(Number.isFinite(logprob) && logprob <= 0, `token ${i}: ${logprob}`);
        assert.ok(lp.text_offset![i]! >= lp.text_offset![i - 1]!, 'text_offset never goes back');
        assert.equal(lp.text_offset![i], lp.text_offset![i - 1]! + tokens[i - 1]!.length);
        const top = lp.top_logprobs![i]!;
        // The k alternatives, plus the chosen token itself (with its own logprob) when not among them.
        assert.ok(Object.keys(top).length >= TOP && Object.keys(top).length <= TOP + 1, JSON.stringify(top));
        assert.equal(top[tokens[i]!], logprob);
      }
      assert.equal(lp.text_offset![promptTokens], prompt.length, 'the completion starts after the prompt');
      return lp.token_logprobs!.slice(1, promptTokens) as number[];
    };

    const whole = await client.completions.create({ model: 'tiny-chat', prompt, echo: true, logprobs: TOP, max_tokens: 3, seed: 7 });
    // OpenAI's (and vLLM's) answers have null for the first prompt token's token_logprobs and
    // top_logprobs entries, which OpenAI's document does not allow (its items are numbers and
    // objects): checked above as null, the rest of the answer against the document.
    const withoutFirst = (c: OpenAI.Completions.CompletionChoice) => ({
      ...c,
      logprobs: Object.fromEntries(Object.entries(c.logprobs!).map(([k, v]) => [k, (v as unknown[]).slice(1)])),
    });
    assert.deepEqual(validText({ ...whole, choices: whole.choices.map(withoutFirst) }), [], JSON.stringify(whole));
    const promptTokens = whole.usage!.prompt_tokens;
    const ours = check(whole.choices[0]!, promptTokens);

    // The reference: transformers.js on the same model folder, fed the ids the service tokenized.
    const tokenized = await postJson(svc.baseUrl, '/v1/tokenize', { model: 'tiny-chat', prompt });
    assert.equal(tokenized.status, 200, tokenized.text);
    const ids = tokenized.json.tokens as number[];
    assert.equal(ids.length, promptTokens);
    env.allowRemoteModels = false; // nothing leaves this machine: the folder is the model
    env.localModelPath = path.dirname(modelDir);
    const model = await AutoModelForCausalLM.from_pretrained(path.basename(modelDir), { dtype: 'fp32', device: 'cpu' });
    try {
      const rows = await referenceLogprobRows(model, ids);
      for (let i = 1; i < ids.length; i++) {
        const theirs = rows[i - 1]![ids[i]!]!;
        assert.ok(Math.abs(ours[i - 1]! - theirs) < 1e-4, `prompt token ${i}: ours ${ours[i - 1]}, transformers.js ${theirs}`);
      }
    } finally {
      await model.dispose();
    }

    const stream = await client.completions.create({ model: 'tiny-chat', prompt, echo: true, logprobs: TOP, max_tokens: 3, seed: 7, stream: true });
    const joined = { text: '', logprobs: { tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as (Record<string, number> | null)[], text_offset: [] as number[] } };
    let first = true;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      if (first) {
        assert.equal(c.text, prompt, 'the first chunk echoes the prompt');
        assert.equal(c.logprobs!.tokens!.length, promptTokens, 'with its tokens');
        first = false;
      }
      joined.text += c.text;
      if (c.logprobs) for (const k of ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'] as const) (joined.logprobs[k] as unknown[]).push(...(c.logprobs[k] ?? []));
    }
    check(joined as never, promptTokens);
    assert.deepEqual(joined.logprobs, whole.choices[0]!.logprobs, 'streamed as answered whole (same seed)');

    // max_tokens 0 with echo: the prompt scored, nothing generated (OpenAI's perplexity use).
    const scored = await client.completions.create({ model: 'tiny-chat', prompt, echo: true, logprobs: TOP, max_tokens: 0 });
    assert.deepEqual(validText({ ...scored, choices: scored.choices.map(withoutFirst) }), [], JSON.stringify(scored));
    assert.equal(scored.choices[0]!.text, prompt);
    assert.equal(scored.usage!.completion_tokens, 0);
    assert.equal(scored.choices[0]!.finish_reason, 'length');
    const scoredLogprobs = scored.choices[0]!.logprobs!;
    assert.deepEqual(scoredLogprobs.tokens, whole.choices[0]!.logprobs!.tokens!.slice(0, promptTokens));
    assert.deepEqual(scoredLogprobs.token_logprobs, whole.choices[0]!.logprobs!.token_logprobs!.slice(0, promptTokens));
    const scoredStream = await client.completions.create({ model: 'tiny-chat', prompt, echo: true, logprobs: TOP, max_tokens: 0, stream: true });
    const scoredChunks = [];
    for await (const chunk of scoredStream) scoredChunks.push(...chunk.choices);
    assert.equal(scoredChunks.map((c) => c.text).join(''), prompt);
    assert.deepEqual(scoredChunks[0]!.logprobs, scoredLogprobs);
    assert.equal(scoredChunks.at(-1)!.finish_reason, 'length');
  });

  test('legacy completions refuse what they cannot do, with a clear 400', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ suffix: 'the end' }, /suffix/],
      [{ prompt: [1, 2, 3] }, /token ids/],
      [{ logprobs: 6 }, /logprobs/],
      [{ best_of: 3 }, /best_of/],
      [{ max_tokens: 0 }, /max_tokens/],
      [{ max_tokens: 0, echo: true }, /max_tokens/],
    ];
    for (const [body, message] of cases) {
      const r = await postJson(svc.baseUrl, '/v1/completions', { model: 'tiny-chat', prompt: 'hi', ...body });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(validError(r.json), []);
      assert.match(r.json.error.message, message);
    }
    const chat = await fetch(`${svc.baseUrl}/v1/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'tiny-chat', prompt: 'hi', max_tokens: 2 }) });
    assert.equal(chat.status, 200);
  });

  test('tokenize and detokenize (vLLM\'s shape) round-trip, with the counts generation sees', async () => {
    const text = 'Hello, wörld! 🙂 <|im_start|>';
    const t = await postJson(svc.baseUrl, '/v1/tokenize', { model: 'tiny-chat', prompt: text });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.count, t.json.tokens.length);
    assert.equal(t.json.max_model_len, 256);
    assert.ok(t.json.tokens.every((id: unknown) => Number.isInteger(id)));
    const d = await postJson(svc.baseUrl, '/v1/detokenize', { model: 'tiny-chat', tokens: t.json.tokens });
    assert.equal(d.status, 200, d.text);
    assert.equal(d.json.prompt, text);

    // Messages go through the chat template: their count is the prompt_tokens of a chat completion.
    const m = await postJson(svc.baseUrl, '/v1/tokenize', { model: 'tiny-chat', messages });
    assert.equal(m.status, 200, m.text);
    const r = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 1 });
    assert.equal(m.json.count, r.usage!.prompt_tokens);
    const open = await postJson(svc.baseUrl, '/v1/tokenize', { model: 'tiny-chat', messages, add_generation_prompt: false });
    assert.ok(open.json.count < m.json.count, 'without the assistant turn opened');
    // The raw prompt of a legacy completion is what /v1/tokenize counts for `prompt`.
    const raw = await postJson(svc.baseUrl, '/v1/tokenize', { model: 'tiny-chat', prompt: 'Once upon a time' });
    const c = await client.completions.create({ model: 'tiny-chat', prompt: 'Once upon a time', max_tokens: 1 });
    assert.equal(raw.json.count, c.usage!.prompt_tokens);

    for (const [route, body, status] of [
      ['/v1/tokenize', { model: 'tiny-chat' }, 400],
      ['/v1/tokenize', { model: 'tiny-chat', prompt: 'a', messages }, 400],
      ['/v1/detokenize', { model: 'tiny-chat', tokens: [1, -2] }, 400],
      ['/v1/detokenize', { model: 'tiny-chat', tokens: [10_000_000] }, 422],
      ['/v1/tokenize', { model: 'nope', prompt: 'a' }, 404],
    ] as const) {
      const bad = await postJson(svc.baseUrl, route, body);
      assert.equal(bad.status, status, `${route} ${JSON.stringify(body)}: ${bad.text}`);
      assert.deepEqual(validError(bad.json), []);
    }
  });
});
