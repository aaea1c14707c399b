import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { makeTinySentenceTransformer } from '../../scripts/models/make-tiny-sentence-transformer.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const cosine = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('POST /v1/embeddings through the queue', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: OpenAI;
  const validEmbedding = openAiValidator('CreateEmbeddingResponse');
  const validError = openAiValidator('ErrorResponse');
  const validModels = openAiValidator('ListModelsResponse');

  before(async () => {
    redis = await startPrivateRedis();
    const tinyDir = mkdtempSync(path.join(tmpdir(), 'qi-tiny-'));
    await makeTinySentenceTransformer(tinyDir);
    const config = writeModelsConfig([
      useLiteModel(),
      { id: 'local/tiny-minilm', task: 'embedding', format: 'sentence-transformers', path: tinyDir, dimensions: 64, threads: 1 },
    ]);
    svc = await startService({ redisUrl: redis.url, modelsConfig: config });
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  test('the official openai client gets real USE-Lite embeddings (base64 by default, decoded by the client)', async () => {
    const res = await client.embeddings.create({
      model: 'use-lite',
      input: ['A man is playing a guitar.', 'Someone is strumming a guitar.', 'The stock market fell sharply today.'],
    });
    assert.equal(res.object, 'list');
    assert.equal(res.model, 'use-lite');
    assert.equal(res.data.length, 3);
    for (const [i, d] of res.data.entries()) {
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, 512);
      assert.ok(Math.abs(cosine(d.embedding, d.embedding) - 1) < 1e-4, 'unit length');
    }
    const para = cosine(res.data[0]!.embedding, res.data[1]!.embedding);
    const unrelated = cosine(res.data[0]!.embedding, res.data[2]!.embedding);
    assert.ok(para > 0.6 && unrelated < 0.2, `paraphrase ${para} vs unrelated ${unrelated}`);
    assert.ok(res.usage.prompt_tokens > 10 && res.usage.total_tokens === res.usage.prompt_tokens);
  });

  test('float and base64 encodings agree and match the OpenAI schema', async () => {
    const body = { model: 'use-lite', input: 'hello world' };
    const f = await postJson(svc.baseUrl, '/v1/embeddings', { ...body, encoding_format: 'float' });
    const b = await postJson(svc.baseUrl, '/v1/embeddings', { ...body, encoding_format: 'base64' });
    assert.equal(f.status, 200);
    assert.deepEqual(validEmbedding(f.json), []);
    const floats: number[] = f.json.data[0].embedding;
    const buf = Buffer.from(b.json.data[0].embedding as string, 'base64');
    const decoded = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
    assert.deepEqual(decoded, floats);
  });

  test('a single string input gives one embedding; dimensions truncates and re-normalises', async () => {
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'hello', dimensions: 128 });
    assert.equal(r.status, 200);
    assert.equal(r.json.data.length, 1);
    const v: number[] = r.json.data[0].embedding;
    assert.equal(v.length, 128);
    assert.ok(Math.abs(cosine(v, v) - 1) < 1e-4);
  });

  test('a Hugging Face sentence-transformers model from disk is served through the same pipeline', async () => {
    const res = await client.embeddings.create({ model: 'local/tiny-minilm', input: ['the cat sat', 'the cat sat on the mat today'], encoding_format: 'float' });
    assert.equal(res.data.length, 2);
    assert.equal(res.data[0]!.embedding.length, 64);
    assert.ok(Math.abs(cosine(res.data[0]!.embedding, res.data[0]!.embedding) - 1) < 1e-4);
    // Batched with a longer text, the short one must still get its own vector (masking works).
    const alone = await client.embeddings.create({ model: 'local/tiny-minilm', input: 'the cat sat', encoding_format: 'float' });
    assert.ok(cosine(alone.data[0]!.embedding, res.data[0]!.embedding) > 0.9999);
  });

  test('GET /v1/models lists the registry in the OpenAI shape; unknown model ids are 404', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    assert.deepEqual(ids.sort(), ['local/tiny-minilm', 'use-lite']);
    const raw = await fetch(`${svc.baseUrl}/v1/models`, { headers: authHeaders() });
    assert.deepEqual(validModels(await raw.json()), []);
    const one = await fetch(`${svc.baseUrl}/v1/models/local/tiny-minilm`, { headers: authHeaders() });
    assert.equal(one.status, 200);
    assert.equal((await one.json()).id, 'local/tiny-minilm');
    const missing = await fetch(`${svc.baseUrl}/v1/models/nope`, { headers: authHeaders() });
    assert.equal(missing.status, 404);
    assert.deepEqual(validError(await missing.json()), []);
  });

  test('the openai client sees an unknown model as a NotFoundError', async () => {
    await assert.rejects(client.embeddings.create({ model: 'no-such-model', input: 'x' }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      return true;
    });
  });

  const badInputs: [string, () => Promise<{ status: number; json: any }>, number, RegExp][] = [
    ['malformed JSON', () => postJson(svc.baseUrl, '/v1/embeddings', '{"model": "use-lite", "input": '), 400, /Malformed JSON/],
    ['input of the wrong type', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 42 }), 400, /input/],
    ['model of the wrong type', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 7, input: 'x' }), 400, /model/],
    ['missing input', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite' }), 400, /input/],
    ['empty input array', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: [] }), 400, /empty array/],
    ['empty string', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: '' }), 400, /empty string/],
    ['an empty string among others', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: ['a', ''] }), 400, /item 1/],
    ['token-id arrays', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: [1, 2, 3] }), 400, /token-id/],
    ['10,000 inputs', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: Array(10_000).fill('hi') }), 400, /at most 2048/],
    ['a 5 MB string', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'a'.repeat(5 * 1024 * 1024) }), 413, /exceeds/],
    ['unknown fields', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x', temperature: 1 }), 400, /temperature|Unrecognized/i],
    ['unknown model', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'gpt-9', input: 'x' }), 404, /gpt-9/],
    ['dimensions above the model', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x', dimensions: 4096 }), 400, /at most 512/],
    ['bad encoding_format', () => postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x', encoding_format: 'int8' }), 400, /encoding_format/],
  ];
  for (const [name, send, status, message] of badInputs) {
    test(`bad input: ${name} → ${status} with a readable OpenAI-shaped error`, async () => {
      const r = await send();
      assert.equal(r.status, status, JSON.stringify(r.json));
      assert.deepEqual(validError(r.json), []);
      assert.match(r.json.error.message, message);
    });
  }

  test('after all the bad input the service still answers, and no process crashed', async () => {
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'still alive' });
    assert.equal(r.status, 200);
    assert.equal(svc.api.child.exitCode, null);
    assert.equal(svc.workers[0]!.child.exitCode, null);
  });

  test('auth: no key and a wrong key are 401; Bearer and X-API-Key both work', async () => {
    const none = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x' }, { 'content-type': 'application/json' });
    assert.equal(none.status, 401);
    assert.deepEqual(validError(none.json), []);
    const wrong = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x' }, authHeaders('not-a-real-key-123'));
    assert.equal(wrong.status, 401);
    const viaHeader = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x' }, { 'x-api-key': KEYS.globex, 'content-type': 'application/json' });
    assert.equal(viaHeader.status, 200);
    const models = await fetch(`${svc.baseUrl}/v1/models`);
    assert.equal(models.status, 401);
  });

  test('logs carry request ids and job ids, and never a key', async () => {
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'log me' }, { ...authHeaders(), 'x-request-id': 'req-test-123' });
    assert.equal(r.headers.get('x-request-id'), 'req-test-123');
    // The request's log line is written as its answer finishes; wait for it rather than for a fixed time.
    await waitFor('the request logged', async () => (/"id":"req-test-123"/.test(svc.api.output()) ? true : undefined), 10_000);
    const apiLog = svc.api.output();
    for (const secret of [KEYS.acme, KEYS.globex, KEYS.admin]) {
      assert.ok(!apiLog.includes(secret), 'API log leaks a key');
      assert.ok(!svc.workers[0]!.output().includes(secret), 'worker log leaks a key');
    }
    assert.match(apiLog, /"authorization":"\[redacted\]"/);
  });
});
