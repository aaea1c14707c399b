import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, postJson, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const RPM = 30;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('rate limits: requests and tokens per minute, per key and per tenant, under a 10x flood', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: { RATE_LIMIT_RPM: String(RPM), RATE_LIMIT_TPM: '1000000', JWT_SECRET: 'rate-limit-jwt-secret-0123456789abcdef-0123' },
    });
  });
  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const embed = (key: string, input: string | string[] = 'rate limited text') =>
    postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input }, { authorization: `Bearer ${key}`, 'content-type': 'application/json' });
  const admin = (route: string, body: unknown) => postJson(svc.baseUrl, route, body, { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json' });
  /** Texts the worker has embedded so far (its own /metrics), i.e. the work that really reached it. */
  const textsEmbedded = async () => {
    const text = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('embedding_batch_size_sum{model="use-lite"}'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const timed = async (key: string, i: number) => {
    const t = performance.now();
    const r = await embed(key, `latency probe ${i}`);
    assert.equal(r.status, 200, r.text);
    return performance.now() - t;
  };

  test('answers carry x-ratelimit-* headers for requests and tokens', async () => {
    const k = await admin('/v1/admin/keys', { tenant: 'globex', scopes: ['embeddings'] });
    const r = await embed(k.json.key, 'x'.repeat(400));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), String(RPM));
    assert.equal(r.headers.get('x-ratelimit-remaining-requests'), String(RPM - 1));
    assert.match(r.headers.get('x-ratelimit-reset-requests') ?? '', /^\d+s$/);
    assert.equal(r.headers.get('x-ratelimit-limit-tokens'), '1000000');
    assert.equal(r.headers.get('x-ratelimit-remaining-tokens'), String(1_000_000 - 100), '400 characters are estimated as 100 tokens');
    const r2 = await embed(k.json.key);
    assert.equal(r2.headers.get('x-ratelimit-remaining-requests'), String(RPM - 2));
  });

  test(`at 10x the allowed rate (${RPM * 10} requests within one minute against ${RPM}/min) the excess gets 429s without reaching a worker, while another tenant is served throughout`, async () => {
    // Baseline: globex alone, on a key allowed enough for the probes.
    const probe = (await admin('/v1/admin/keys', { tenant: 'globex', scopes: ['embeddings'], limits: { rpm: 10_000 } })).json.key as string;
    for (let i = 0; i < 3; i++) await timed(probe, -1 - i); // warm-up
    const baseline: number[] = [];
    for (let i = 0; i < 12; i++) baseline.push(await timed(probe, i));

    // acme sends 10x its per-minute allowance within one window, paced evenly over ~6 s (50 requests/s),
    // while globex keeps sending one request after another.
    const statuses: number[] = [];
    const retryAfter: number[] = [];
    const total = RPM * 10;
    const one = async (n: number) => {
      const r = await embed(KEYS.acme, `flood ${n}`);
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(r.json.error.type, 'rate_limit_error');
        assert.equal(r.json.error.code, 'rate_limit_exceeded');
        assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
        retryAfter.push(Number(r.headers.get('retry-after')));
      } else assert.equal(r.status, 200, r.text);
    };
    const during: number[] = [];
    const textsBefore = await textsEmbedded();
    const started = performance.now();
    let done = false;
    const flood = (async () => {
      const inFlight: Promise<void>[] = [];
      for (let n = 0; n < total; n++) {
        inFlight.push(one(n));
        const due = started + ((n + 1) * 6000) / total;
        await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
      }
      await Promise.all(inFlight);
      done = true;
    })();
    let i = 100;
    while (!done) during.push(await timed(probe, i++));
    await flood;
    const seconds = (performance.now() - started) / 1000;

    const ok = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 429).length;
    console.log(
      `# flood: ${statuses.length} requests in ${seconds.toFixed(1)} s, ${ok} answered, ${limited} got 429; ` +
        `globex latency p50/p95 alone ${percentile(baseline, 50).toFixed(1)}/${percentile(baseline, 95).toFixed(1)} ms, ` +
        `during the flood ${percentile(during, 50).toFixed(1)}/${percentile(during, 95).toFixed(1)} ms (${during.length} requests)`,
    );
    assert.equal(ok, RPM, 'exactly the allowance got through');
    assert.equal(limited, total - RPM);
    assert.ok(retryAfter.every((s) => s >= 1 && s <= 60), 'Retry-After within the window');
    assert.ok(during.length >= 5, 'globex was served during the flood');
    // What keeps the other tenant's latency normal: a refused request costs no inference. The worker
    // embedded exactly the texts of the answered requests (one each), none of the 429s'. The latencies
    // printed above are figures, not assertions: on a shared 2-core machine they measure the machine.
    assert.equal(await textsEmbedded() - textsBefore, ok + during.length, 'only answered requests reached the worker');
  });

  test('per-key overrides: a key with its own rpm is limited at it; the 429 says when to retry', async () => {
    const k = await admin('/v1/admin/keys', { tenant: 'globex', scopes: ['embeddings'], limits: { rpm: 3 } });
    for (let i = 0; i < 3; i++) assert.equal((await embed(k.json.key)).status, 200);
    const r = await embed(k.json.key);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.match(r.json.error.message, /this key/);
  });

  test('tokens per minute: estimated input tokens are counted; a request larger than the whole allowance is refused', async () => {
    const k = await admin('/v1/admin/keys', { tenant: 'globex', scopes: ['embeddings', 'chat'], limits: { rpm: 1000, tpm: 1000 } });
    const text = 'y'.repeat(1200); // 300 tokens
    assert.equal((await embed(k.json.key, text)).status, 200);
    assert.equal((await embed(k.json.key, [text, text])).status, 200);
    const over = await embed(k.json.key, text);
    assert.equal(over.status, 429);
    assert.equal(over.headers.get('x-ratelimit-remaining-tokens'), '0');
    assert.match(over.json.error.message, /tokens per minute/);
    // Larger than a whole minute's allowance: no retry can help, so 400 rather than a 429 clients would retry forever.
    const huge = await embed(k.json.key, 'z'.repeat(8000));
    assert.equal(huge.status, 400, huge.text);
    assert.equal(huge.json.error.code, 'request_too_large');
    assert.equal(huge.headers.get('retry-after'), null);
    // Chat: prompt plus max_tokens (checked on another key so the allowance is fresh).
    const c = await admin('/v1/admin/keys', { tenant: 'globex', scopes: ['chat'], limits: { tpm: 10_000 } });
    const r = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'no-such-chat-model', messages: [{ role: 'user', content: 'w'.repeat(400) }], max_tokens: 100 }, { authorization: `Bearer ${c.json.key}`, 'content-type': 'application/json' });
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('x-ratelimit-remaining-tokens'), String(10_000 - (100 + 4 + 100)), '100 prompt + 4 framing + 100 max_tokens');
  });

  test('per-tenant limits span all of a tenant\'s keys', async () => {
    const t = await admin('/v1/admin/tenants', { id: 'umbrella', limits: { rpm: 4 } });
    assert.equal(t.status, 201, t.text);
    const a = await admin('/v1/admin/keys', { tenant: 'umbrella', scopes: ['embeddings'] });
    const b = await admin('/v1/admin/keys', { tenant: 'umbrella', scopes: ['embeddings'] });
    assert.equal((await embed(a.json.key)).status, 200);
    assert.equal((await embed(b.json.key)).status, 200);
    assert.equal((await embed(a.json.key)).status, 200);
    const last = await embed(b.json.key);
    assert.equal(last.status, 200);
    assert.equal(last.headers.get('x-ratelimit-remaining-requests'), '0', 'the tenant limit is the tighter one');
    const refused = await embed(a.json.key);
    assert.equal(refused.status, 429);
    assert.match(refused.json.error.message, /this tenant/);
    assert.equal((await embed(KEYS.globex)).status, 200, 'other tenants are unaffected');
  });

  test("a token minted from a key spends that key's allowance: it is not a second one", async () => {
    const k = await admin('/v1/admin/keys', { tenant: 'globex', scopes: ['embeddings'], limits: { rpm: 1000 } });
    const minted = await postJson(svc.baseUrl, '/v1/auth/token', {}, { authorization: `Bearer ${k.json.key}`, 'content-type': 'application/json' });
    assert.equal(minted.status, 200, minted.text);
    const bootToken = await postJson(svc.baseUrl, '/v1/auth/token', {}, { authorization: `Bearer ${KEYS.globex}`, 'content-type': 'application/json' });
    assert.equal(bootToken.status, 200, bootToken.text);
    const remaining = async (key: string) => {
      const r = await embed(key);
      assert.equal(r.status, 200, r.text);
      return Number(r.headers.get('x-ratelimit-remaining-requests'));
    };
    for (const [key, token] of [[k.json.key, minted.json.access_token], [KEYS.globex, bootToken.json.access_token]] as const) {
      // Key, token, key: one shared count goes down by one each time. A minute window may roll over
      // between two requests, which resets the count: then the three are tried again.
      let counts: number[] = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        counts = [await remaining(key), await remaining(token), await remaining(key)];
        if (counts[1]! <= counts[0]! && counts[2]! <= counts[1]!) break;
      }
      assert.deepEqual(counts, [counts[0], counts[0]! - 1, counts[0]! - 2], `key and token share one allowance (${counts.join(', ')})`);
    }
  });
});
