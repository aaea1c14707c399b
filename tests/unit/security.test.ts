import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { chatCacheKeyMaterial, isDeterministic } from '../../api/cache/response-cache.js';
import { looksLikeJwt } from '../../api/auth/jwt.js';
import { requiredScope } from '../../api/auth/identity.js';
import { estimateRequestTokens } from '../../api/limits/token-estimate.js';
import { TenantLoad } from '../../api/limits/tenant-load.js';
import { BATCH_PRIORITY, INTERACTIVE_PRIORITY } from '../../api/jobs/chat-service.js';
import { deriveSigningKey, sha256Hex, signRequest, stringToSign } from '../../shared/api/sign-request.js';
import { loadEnv } from '../../shared/config/env.js';
import { parseModelRegistry } from '../../shared/models/model-registry.js';
import { ROOT } from '../helpers/service.js';

test('signRequest reproduces the worked example of docs/SIGNED_REQUESTS.md', () => {
  const apiKey = 'qik_0123456789ab_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS';
  const body = '{"model":"use-lite","input":["hello world"]}';
  const headers = signRequest({ apiKey, method: 'POST', path: '/v1/embeddings', body, timestamp: 1767225600, nonce: 'n0nce-0123456789abcdef' });
  assert.deepEqual(headers, {
    'x-qi-key-id': '0123456789ab',
    'x-qi-timestamp': '1767225600',
    'x-qi-nonce': 'n0nce-0123456789abcdef',
    'x-qi-signature': 'bd895f4f1ec3f63825c98c986262dcb3febaf8d71ece2c6c0b17464525c7e1d1',
  });
  const doc = readFileSync(path.join(ROOT, 'docs', 'SIGNED_REQUESTS.md'), 'utf8');
  for (const v of [deriveSigningKey(apiKey), sha256Hex(body), headers['x-qi-signature']!, sha256Hex('')]) assert.ok(doc.includes(v), `the document shows ${v}`);
  assert.ok(doc.includes(stringToSign({ method: 'POST', path: '/v1/embeddings', timestamp: '1767225600', nonce: 'n0nce-0123456789abcdef', bodySha256: sha256Hex(body) })));
  assert.throws(() => signRequest({ apiKey: 'acme-key-0123456789abcdef', method: 'GET', path: '/v1/models' }), /not a managed API key/);
});

test('token estimate: characters / 4 for texts; chat adds framing and the completion budget', () => {
  assert.equal(estimateRequestTokens({ input: 'abcd' }), 1);
  assert.equal(estimateRequestTokens({ input: ['abcde', 'x'.repeat(400)] }), 2 + 100);
  assert.equal(estimateRequestTokens({ messages: [{ role: 'user', content: 'x'.repeat(40) }], max_tokens: 50 }), 4 + 10 + 50);
  assert.equal(estimateRequestTokens({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x'.repeat(8) }] }], max_completion_tokens: 10, max_tokens: 99 }), 4 + 2 + 10);
  assert.equal(estimateRequestTokens({ messages: [{ role: 'user', content: '' }] }), 4 + 256, 'default budget when the model is unknown');
  assert.equal(estimateRequestTokens(undefined), 0);
  assert.equal(estimateRequestTokens('a string'), 0);
});

test('fairness priority: base + one step per FAIRNESS_STEP jobs in flight, at most +10; chat keeps interactive before batch at equal load', () => {
  const load = new TenantLoad({ redis: undefined as never, prefix: 'x', maxJobs: 100, fairnessStep: 50, log: pino({ level: 'silent' }) });
  assert.equal(load.priorityFor(undefined, 0), 1);
  assert.equal(load.priorityFor(undefined, 49), 1);
  assert.equal(load.priorityFor(undefined, 50), 2);
  assert.equal(load.priorityFor(undefined, 10_000), 11);
  assert.equal(load.priorityFor(5, 120), 7);
  for (const n of [0, 60, 500]) assert.ok(load.priorityFor(INTERACTIVE_PRIORITY, n) < load.priorityFor(BATCH_PRIORITY, n));
  // A quiet tenant's batch work still goes before a flooding tenant's.
  assert.ok(load.priorityFor(BATCH_PRIORITY, 0) < load.priorityFor(INTERACTIVE_PRIORITY, 1000));
});

test('scopes per route', () => {
  assert.equal(requiredScope('POST', '/v1/embeddings', {}), 'embeddings');
  assert.equal(requiredScope('POST', '/v1/chat/completions', {}), 'chat');
  assert.equal(requiredScope('POST', '/v1/jobs', { type: 'chat' }), 'chat');
  assert.equal(requiredScope('POST', '/v1/jobs', { type: 'embedding' }), 'embeddings');
  assert.equal(requiredScope('POST', '/v1/jobs', { type: 'document.ingest' }), 'documents');
  assert.equal(requiredScope('GET', '/v1/jobs/chat.tiny~abc', undefined), 'chat');
  assert.equal(requiredScope('DELETE', '/v1/jobs/embedding.use-lite~abc', undefined), 'embeddings');
  assert.equal(requiredScope('GET', '/v1/admin/keys', undefined), 'admin');
  assert.equal(requiredScope('GET', '/v1/models', undefined), undefined);
  assert.equal(requiredScope('POST', '/v1/auth/token', {}), undefined);
});

test('JWT shape detection: compact JWS only', () => {
  assert.ok(looksLikeJwt('eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJhIn0.'));
  assert.ok(!looksLikeJwt('acme-key-0123456789abcdef'));
  assert.ok(!looksLikeJwt('qik_0123456789ab_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS'));
});

test('chat cache: deterministic only at temperature 0 or with a seed; greedy keys ignore sampling knobs', () => {
  const base = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 8, temperature: 0, top_p: 1, top_k: 0, repetition_penalty: 1, stop: [] as string[] };
  assert.ok(isDeterministic(base));
  assert.ok(isDeterministic({ ...base, temperature: 0.7, seed: 1 }));
  assert.ok(!isDeterministic({ ...base, temperature: 0.7 }));
  assert.equal(chatCacheKeyMaterial(base), chatCacheKeyMaterial({ ...base, top_p: 0.3, top_k: 5 }));
  assert.notEqual(chatCacheKeyMaterial({ ...base, temperature: 0.7, seed: 1 }), chatCacheKeyMaterial({ ...base, temperature: 0.7, seed: 2 }));
  assert.notEqual(chatCacheKeyMaterial(base), chatCacheKeyMaterial({ ...base, max_tokens: 9 }));
});

test('models config tenancy: tenants and default_for are validated', () => {
  const m = (extra: Record<string, unknown>) => ({ id: `m${Math.random()}`.replace('.', ''), task: 'embedding', format: 'use-lite', path: 'p', ...extra });
  const reg = parseModelRegistry({ models: [m({ id: 'a', tenants: ['acme'], default_for: ['acme'] }), m({ id: 'b' })] }, '/x');
  assert.deepEqual(reg.get('a')!.tenants, ['acme']);
  assert.equal(reg.get('b')!.tenants, undefined);
  assert.throws(() => parseModelRegistry({ models: [m({ tenants: ['acme'], default_for: ['globex'] })] }, '/x'), /may not use it/);
  assert.throws(() => parseModelRegistry({ models: [m({ default_for: ['acme'] }), m({ default_for: ['acme'] })] }, '/x'), /two default embedding models/);
  assert.throws(() => parseModelRegistry({ models: [m({ tenants: ['bad tenant'] })] }, '/x'), /tenants/);
});

test('security settings: defaults, empty values mean unset, TLS needs both files', () => {
  const env = loadEnv({});
  assert.equal(env.RATE_LIMIT_RPM, 600);
  assert.equal(env.RATE_LIMIT_TPM, 1_000_000);
  assert.deepEqual(env.CORS_ORIGINS, []);
  assert.equal(env.JWT_SECRET, undefined);
  assert.equal(loadEnv({ JWT_SECRET: '', TLS_CERT_FILE: '', TLS_KEY_FILE: '' }).JWT_SECRET, undefined);
  assert.throws(() => loadEnv({ JWT_SECRET: 'short' }), /JWT_SECRET/);
  assert.throws(() => loadEnv({ TLS_CERT_FILE: '/x.pem' }), /TLS_CERT_FILE and TLS_KEY_FILE/);
  assert.deepEqual(loadEnv({ CORS_ORIGINS: 'https://a.example, https://b.example' }).CORS_ORIGINS, ['https://a.example', 'https://b.example']);
});
