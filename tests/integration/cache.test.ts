import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { after, before, describe, test } from 'node:test';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Jobs the worker has taken (its own /metrics), i.e. what was really enqueued and run. Counted when
 * a job starts, so before its answer leaves: a count read after an answer always includes its job
 * (jobs are counted as finished only after the answer, which a busy machine can delay).
 */
async function jobsRun(svc: ServiceHandle, queue = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('request_queue_time_seconds_count{') && l.includes(`queue="${queue}`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

async function cacheCounter(svc: ServiceHandle, kind: string, result: string): Promise<number> {
  const text = await (await fetch(`${svc.baseUrl}/metrics`, { headers: { authorization: `Bearer ${KEYS.admin}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`cache_lookups_total{kind="${kind}",result="${result}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('response cache: exact-match embeddings per text and deterministic chat, x-cache, opt-out, tenant isolation, metrics', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;

  before(async () => {
    redis = await startPrivateRedis();
    const chatDir = mkdtempSync(path.join(tmpdir(), 'qi-cache-chat-'));
    await makeTinyDecoder(chatDir, { maxPositions: 256 });
    const chat = { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: chatDir, threads: 1, concurrency: 4, max_tokens_limit: 64, default_max_tokens: 16 };
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel(), chat]), env: { CACHE_TTL_SECONDS: '60' } });
  });
  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const embed = (input: string | string[], headers: Record<string, string> = authHeaders(), extra: Record<string, unknown> = {}) =>
    postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input, ...extra }, headers);

  test('a repeated request is a hit: same vectors and usage, no job enqueued, hit counted', async () => {
    const first = await embed(['the cache test sentence', 'and a second one']);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers.get('x-cache'), 'miss');
    const ran = await jobsRun(svc);
    const hitsBefore = await cacheCounter(svc, 'embedding', 'hit');

    const second = await embed(['the cache test sentence', 'and a second one']);
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('x-cache'), 'hit');
    assert.deepEqual(second.json.data, first.json.data, 'the cached vectors are the computed ones');
    assert.deepEqual(second.json.usage, first.json.usage);
    assert.equal(second.json.model, 'use-lite');
    assert.equal(await jobsRun(svc), ran, 'a hit enqueues no job');
    assert.equal(await cacheCounter(svc, 'embedding', 'hit'), hitsBefore + 2, 'two texts hit');
  });

  test('per text: a request mixing cached and new texts only computes the new ones, in input order', async () => {
    const a = await embed('mixed alpha');
    assert.equal(a.status, 200);
    const fresh = await embed(['mixed beta']);
    const mixed = await embed(['mixed beta', 'mixed alpha', 'mixed gamma']);
    assert.equal(mixed.status, 200);
    assert.equal(mixed.headers.get('x-cache'), 'miss', 'not every text was cached');
    assert.deepEqual(mixed.json.data[0].embedding, fresh.json.data[0].embedding);
    assert.deepEqual(mixed.json.data[1].embedding, a.json.data[0].embedding);
    assert.deepEqual(mixed.json.data.map((d: any) => d.index), [0, 1, 2]);
    assert.equal((await embed(['mixed gamma', 'mixed alpha'])).headers.get('x-cache'), 'hit');
  });

  test('dimensions and encoding: different dimensions are different entries; base64 of a hit decodes to the same floats', async () => {
    const full = await embed('dims text');
    const small = await embed('dims text', authHeaders(), { dimensions: 64 });
    assert.equal(small.headers.get('x-cache'), 'miss', 'another dimensions value is another entry');
    assert.equal(small.json.data[0].embedding.length, 64);
    const smallAgain = await embed('dims text', authHeaders(), { dimensions: 64, encoding_format: 'base64' });
    assert.equal(smallAgain.headers.get('x-cache'), 'hit');
    const buf = Buffer.from(smallAgain.json.data[0].embedding, 'base64');
    const floats = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
    assert.deepEqual(floats, small.json.data[0].embedding);
    assert.equal(full.json.data[0].embedding.length, 512);
  });

  test('Cache-Control: no-cache recomputes (and refreshes), no-store bypasses the cache', async () => {
    await embed('opt out text');
    const ran = await jobsRun(svc);
    const refreshed = await embed('opt out text', { ...authHeaders(), 'cache-control': 'no-cache' });
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.headers.get('x-cache'), 'miss');
    const bypassed = await embed('no store text', { ...authHeaders(), 'cache-control': 'no-store' });
    assert.equal(bypassed.headers.get('x-cache'), 'miss');
    assert.equal(await jobsRun(svc), ran + 2, 'both ran a job');
    assert.equal((await embed('no store text')).headers.get('x-cache'), 'miss', 'no-store did not store');
  });

  test("tenants never share entries: another tenant's identical request is a miss", async () => {
    await embed('tenant private text');
    assert.equal((await embed('tenant private text')).headers.get('x-cache'), 'hit');
    const other = await embed('tenant private text', authHeaders(KEYS.globex));
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('x-cache'), 'miss');
  });

  const chat = (body: Record<string, unknown>, headers: Record<string, string> = authHeaders()) =>
    postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages: [{ role: 'user', content: 'Cache me.' }], max_tokens: 8, ...body }, headers);

  test('deterministic chat (temperature 0) is cached: the same answer, no new job; streamed hits too', async () => {
    const first = await chat({ temperature: 0 });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers.get('x-cache'), 'miss');
    const ran = await jobsRun(svc, 'chat.');
    const second = await chat({ temperature: 0 });
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('x-cache'), 'hit');
    assert.equal(second.json.choices[0].message.content, first.json.choices[0].message.content);
    assert.deepEqual(second.json.usage, first.json.usage);
    assert.equal(second.json.object, 'chat.completion');
    // Normalised parameters: top_p does not change a greedy answer, so it is the same entry.
    assert.equal((await chat({ temperature: 0, top_p: 0.5 })).headers.get('x-cache'), 'hit');
    const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'Cache me.' }], max_tokens: 8, temperature: 0, stream: true }),
    });
    assert.equal(res.headers.get('x-cache'), 'hit');
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: ') && !e.includes('[DONE]')).map((e) => JSON.parse(e.slice(6)));
    assert.equal(events.map((e) => e.choices[0]?.delta?.content ?? '').join(''), first.json.choices[0].message.content);
    assert.equal(await jobsRun(svc, 'chat.'), ran, 'hits enqueue no chat job');
    assert.ok((await cacheCounter(svc, 'chat', 'hit')) >= 3);
  });

  test('a fixed seed is deterministic too; sampling without a seed is never cached; other tenants miss', async () => {
    assert.equal((await chat({ temperature: 0.8, seed: 7 })).headers.get('x-cache'), 'miss');
    assert.equal((await chat({ temperature: 0.8, seed: 7 })).headers.get('x-cache'), 'hit');
    assert.equal((await chat({ temperature: 0.8, seed: 8 })).headers.get('x-cache'), 'miss');
    assert.equal((await chat({ temperature: 0.8 })).headers.get('x-cache'), 'miss');
    assert.equal((await chat({ temperature: 0.8 })).headers.get('x-cache'), 'miss');
    assert.equal((await chat({ temperature: 0 }, authHeaders(KEYS.globex))).headers.get('x-cache'), 'miss');
  });

  test('cache hit and miss counters are Prometheus metrics', async () => {
    assert.ok((await cacheCounter(svc, 'embedding', 'hit')) > 0);
    assert.ok((await cacheCounter(svc, 'embedding', 'miss')) > 0);
    assert.ok((await cacheCounter(svc, 'chat', 'miss')) > 0);
  });
});
