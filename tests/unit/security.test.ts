import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { chatCacheKeyMaterial, isDeterministic } from '../../api/cache/response-cache.js';
import { looksLikeJwt } from '../../api/auth/jwt.js';
import { checkRotation, grantableLimits } from '../../api/auth/grants.js';
import type { Identity } from '../../api/auth/identity.js';
import { nonCanonical } from '../../api/http/canonical-path.js';
import { ROUTES, scopeOfJobId, type RouteSpec, type ScopeResolver } from '../../api/http/route-table.js';
import { checkCompletionBudget, estimateRequestTokens } from '../../api/limits/token-estimate.js';
import { AppError } from '../../shared/errors/app-error.js';
import { CHATBOT_QUEUE, chatbotConfigSchema, loadChatbotConfig } from '../../shared/chatbot/chatbot-config.js';
import { DOCUMENT_QUEUES, documentMetadataSchema } from '../../shared/documents/documents.js';
import { searchRequestSchema } from '../../shared/documents/document-api.js';
import { createJobRequestSchema } from '../../shared/jobs/job-requests.js';
import { isValidId } from '../../shared/api/ids.js';
import { createTenantSchema } from '../../api/auth/admin-schemas.js';
import { parseModelRegistry, queueNameFor, type ModelRegistry } from '../../shared/models/model-registry.js';
import { TenantLoad } from '../../shared/limits/tenant-load.js';
import { BATCH_PRIORITY, INTERACTIVE_PRIORITY } from '../../api/jobs/chat-service.js';
import { deriveSigningKey, sha256Hex, signRequest, stringToSign } from '../../shared/api/sign-request.js';
import { loadEnv } from '../../shared/config/env.js';
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
  // Responses: input items and instructions count like messages, max_output_tokens is the budget.
  assert.equal(estimateRequestTokens({ input: [{ role: 'user', content: 'x'.repeat(40) }], instructions: 'y'.repeat(8), max_output_tokens: 30 }), 4 + 10 + 2 + 30);
  assert.equal(estimateRequestTokens({ input: 'x'.repeat(8), max_output_tokens: 30 }), 2 + 30);
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

const routes = ROUTES as readonly RouteSpec[];
const route = (method: string, path: string) => {
  const r = routes.find((x) => x.method === method && x.path === path);
  assert.ok(r, `${method} ${path} is in the route table`);
  return r;
};
const resolver = (method: string, path: string): ScopeResolver => {
  const a = route(method, path).access;
  assert.ok(a.kind === 'tenant' && typeof a.scope === 'object', `${method} ${path} resolves its scope`);
  return a.scope as ScopeResolver;
};
const refusal = (status: number, code: string) => (err: unknown) => err instanceof AppError && err.status === status && err.code === code;

test('route table: scopes per route; outside /v1 only public and admin-key routes', () => {
  const scopeOf = (method: string, path: string) => {
    const a = route(method, path).access;
    return a.kind === 'tenant' ? a.scope : a.kind;
  };
  assert.equal(scopeOf('POST', '/v1/embeddings'), 'embeddings');
  // Chat, and with the file_search tool the documents scope too (the search reads the tenant's vector stores).
  for (const path of ['/v1/chat/completions', '/v1/responses']) {
    const chat = resolver('POST', path);
    assert.equal(chat.resolve({ params: {}, body: { model: 'x', messages: [] } }), 'chat');
    assert.equal(chat.resolve({ params: {}, body: { tools: [{ type: 'function', name: 'f' }] } }), 'chat');
    assert.deepEqual(chat.resolve({ params: {}, body: { tools: [{ type: 'function', name: 'f' }, { type: 'file_search', vector_store_ids: ['vs_1'] }] } }), ['chat', 'documents']);
  }
  assert.equal(scopeOf('POST', '/v1/chatbot'), 'chat');
  assert.equal(scopeOf('GET', '/v1/models'), 'any');
  assert.equal(scopeOf('POST', '/v1/auth/token'), 'any');
  assert.equal(scopeOf('GET', '/metrics'), 'admin-key');
  assert.equal(scopeOf('GET', '/admin/queues'), 'admin-key');
  assert.equal(scopeOf('GET', '/healthz'), 'public');
  for (const r of routes) {
    if (r.path.startsWith('/v1/admin/')) assert.equal(r.access.kind === 'tenant' && r.access.scope, 'admin', `${r.method} ${r.path} needs the admin scope`);
    if (r.path.startsWith('/v1/collections') || r.path.startsWith('/v1/documents')) assert.equal(scopeOf(r.method, r.path), 'documents');
    assert.equal(r.access.kind === 'tenant', r.path.startsWith('/v1/'), `${r.method} ${r.path}: /v1 routes take tenant credentials, others are public or admin-key`);
  }
  for (const path of ['/v1/admin/tenants', '/v1/admin/tenants/:id']) {
    const a = route(path.endsWith(':id') ? 'DELETE' : 'POST', path).access;
    assert.ok(a.kind === 'tenant' && a.globalAdmin, `${path}: the admin key only`);
  }
  assert.equal(new Set(routes.map((r) => `${r.method} ${r.path}`)).size, routes.length, 'no route listed twice');
});

test("route table: a job's scope comes from its type (POST) or the queue its id names (GET, DELETE); unknown ones are refused", () => {
  const submit = resolver('POST', '/v1/jobs');
  assert.equal(submit.resolve({ params: {}, body: { type: 'chat' } }), 'chat');
  assert.equal(submit.resolve({ params: {}, body: { type: 'embedding' } }), 'embeddings');
  for (const body of [{ type: 'document.ingest' }, { type: '__proto__' }, { type: 'toString' }, {}, undefined, { type: 7 }]) {
    assert.throws(() => submit.resolve({ params: {}, body }), refusal(400, 'invalid_request'), JSON.stringify(body));
  }
  for (const method of ['GET', 'DELETE']) {
    const byId = resolver(method, '/v1/jobs/:id');
    assert.equal(byId.resolve({ params: { id: 'chat.tiny~abc' }, body: undefined }), 'chat');
    assert.equal(byId.resolve({ params: { id: 'embedding.use-lite~abc' }, body: undefined }), 'embeddings');
    assert.equal(byId.resolve({ params: { id: 'documents.ingest~abc' }, body: undefined }), 'documents');
    assert.equal(byId.resolve({ params: { id: `${CHATBOT_QUEUE}~abc` }, body: undefined }), 'chat');
    for (const id of ['nope.x~abc', 'constructor.x~abc', '__proto__~abc', 'embedding.use-lite', '', '~abc']) {
      assert.throws(() => byId.resolve({ params: { id }, body: undefined }), refusal(404, 'job_not_found'), id);
    }
  }
  // The cases a resolver lists (the access matrix sends them) are what it answers.
  for (const r of routes) {
    if (r.access.kind !== 'tenant' || typeof r.access.scope !== 'object') continue;
    assert.ok(r.access.scope.cases.length > 0, `${r.method} ${r.path} lists its cases`);
    for (const c of r.access.scope.cases) assert.equal(r.access.scope.resolve({ params: c.params ?? {}, body: c.body }), c.scope, JSON.stringify(c));
  }
  // Every queue the service creates has a job type, hence a scope.
  for (const q of [...Object.values(DOCUMENT_QUEUES), CHATBOT_QUEUE, queueNameFor('embedding', 'BAAI/bge-small'), queueNameFor('chat', 'tiny-chat')]) {
    assert.ok(scopeOfJobId(`${q}~abc`), `queue ${q} has a scope`);
  }
});

test('canonical paths: malformed encodings, empty and dot segments, encoded unreserved characters and absolute targets are refused', () => {
  for (const ok of ['/', '/v1/embeddings', '/v1/embeddings/', '/admin/queues/', '/v1/jobs/embedding.use-lite~0b6f1c1e', '/v1/models/BAAI%2Fbge-small', '/v1/jobs/a%0d%0ab', '/v1/models?x=%20y', '/docs/..%2Fpackage.json', '/v1/a.b/..c']) {
    assert.equal(nonCanonical(ok), undefined, ok);
  }
  const cases: [string, string][] = [
    ['/v1/jobs/%zz', 'invalid_path_encoding'],
    ['/v1/jobs/embedding%E0%A4%A', 'invalid_path_encoding'],
    ['/v1/jobs/%FF', 'invalid_path_encoding'],
    ['/v1/jobs/50%', 'invalid_path_encoding'],
    ['/v1/models?x=%zz', 'invalid_path_encoding'],
    ['//v1/admin/keys', 'non_canonical_path'],
    ['/v1//admin/keys', 'non_canonical_path'],
    ['/v1/./admin/keys', 'non_canonical_path'],
    ['/v1/chat/../admin/keys', 'non_canonical_path'],
    ['/v1/admin/keys/..', 'non_canonical_path'],
    ['/v1/%2e%2E/admin/keys', 'non_canonical_path'],
    ['/v1/%61dmin/keys', 'non_canonical_path'],
    ['/v1/admin/key%73', 'non_canonical_path'],
    ['/v1/jobs/a%7Eb', 'non_canonical_path'],
    ['/v1/jobs/a%2Db', 'non_canonical_path'],
    ['http://127.0.0.1/v1/admin/keys', 'non_canonical_path'],
    ['*', 'non_canonical_path'],
  ];
  for (const [target, code] of cases) assert.equal(nonCanonical(target)?.code, code, target);
});

test('minting: a key grants only scopes it has and limits up to its own; 0 (unlimited) is for the admin key', () => {
  const who = (over: Partial<Identity>): Identity => ({ tenant: 'acme', keyId: 'k', admin: false, scopes: ['embeddings', 'admin'], limits: {}, tenantLimits: {}, via: 'managed_key', ...over });
  const defaults = { rpm: 600, tpm: 1_000_000 };
  const own = { rpm: 100, tpm: 5000 };
  const creator = who({});
  assert.deepEqual(grantableLimits(creator, own, defaults, { scopes: ['embeddings'], limits: { rpm: 50 } }), { rpm: 50, tpm: 5000 }, 'a missing limit is capped at the creator\'s');
  assert.deepEqual(grantableLimits(creator, own, defaults, { scopes: ['embeddings', 'admin'], limits: { rpm: 100, tpm: 5000 } }), { rpm: 100, tpm: 5000 });
  assert.deepEqual(grantableLimits(creator, { rpm: 0, tpm: 0 }, { rpm: 0, tpm: 0 }, { scopes: ['embeddings'] }), {}, 'an unlimited creator in an unlimited deployment');
  assert.deepEqual(grantableLimits(creator, { rpm: 900, tpm: 0 }, defaults, { scopes: ['embeddings'] }), {}, 'defaults within the allowance stay defaults');
  assert.throws(() => grantableLimits(creator, own, defaults, { scopes: ['chat'] }), refusal(403, 'scope_not_grantable'));
  assert.throws(() => grantableLimits(creator, own, defaults, { scopes: ['embeddings'], limits: { rpm: 0 } }), refusal(403, 'limit_not_grantable'));
  assert.throws(() => grantableLimits(creator, { rpm: 0, tpm: 0 }, defaults, { scopes: ['embeddings'], limits: { tpm: 0 } }), refusal(403, 'limit_not_grantable'));
  assert.throws(() => grantableLimits(creator, own, defaults, { scopes: ['embeddings'], limits: { rpm: 101 } }), refusal(403, 'limit_not_grantable'));
  assert.throws(() => grantableLimits(creator, own, defaults, { scopes: ['embeddings'], limits: { tpm: 5001 } }), refusal(403, 'limit_not_grantable'));
  const admin = who({ admin: true, scopes: ['chat', 'embeddings', 'documents', 'admin'] });
  assert.deepEqual(grantableLimits(admin, { rpm: 0, tpm: 0 }, defaults, { scopes: ['chat'], limits: { rpm: 0, tpm: 0 } }), { rpm: 0, tpm: 0 });

  checkRotation(creator, own, defaults, { id: 'a', scopes: ['embeddings'], limits: { rpm: 10, tpm: 10 } });
  assert.throws(() => checkRotation(creator, own, defaults, { id: 'b', scopes: ['chat'], limits: { rpm: 10, tpm: 10 } }), refusal(403, 'rotation_not_grantable'));
  assert.throws(() => checkRotation(creator, own, defaults, { id: 'c', scopes: ['embeddings'], limits: {} }), refusal(403, 'rotation_not_grantable'), 'defaults above the rotator\'s own');
  assert.throws(() => checkRotation(creator, own, defaults, { id: 'd', scopes: ['embeddings'], limits: { rpm: 0, tpm: 10 } }), refusal(403, 'rotation_not_grantable'));
  checkRotation(admin, { rpm: 0, tpm: 0 }, defaults, { id: 'e', scopes: ['chat'], limits: { rpm: 0 } });
});

test('ids: one pattern for tenant ids and collection names; metadata and filter keys refuse __proto__, constructor, prototype', () => {
  for (const id of ['acme', 'a', 'Acme-1_2.x', 'constructor', 'x'.repeat(64)]) assert.ok(isValidId(id), id);
  for (const id of ['__proto__', '_x', '.x', '..', '-x', 'a/b', 'a:b', 'a%b', 'a b', '', 'x'.repeat(65)]) assert.ok(!isValidId(id), id);
  assert.equal(createTenantSchema.safeParse({ id: '__proto__' }).success, false);
  for (const key of ['__proto__', 'constructor', 'prototype', 'a b', '']) {
    const raw = JSON.parse(`{"query":"q","filter":{${JSON.stringify(key)}:"x"}}`);
    assert.equal(searchRequestSchema.safeParse(raw).success, false, `filter key ${JSON.stringify(key)} is refused`);
    assert.equal(documentMetadataSchema.safeParse(JSON.parse(`{${JSON.stringify(key)}:"x"}`)).success, false, `metadata key ${JSON.stringify(key)} is refused`);
  }
  assert.deepEqual(searchRequestSchema.parse({ query: 'q', filter: { topic: 'x', 'a.b-c_d': 1 } }).filter, { topic: 'x', 'a.b-c_d': 1 });
  assert.equal(chatbotConfigSchema.safeParse({ tenants: { 'bad tenant': {} } }).success, false);
  const none = loadChatbotConfig(undefined);
  assert.equal(none.tenants.constructor, undefined, 'tenant lookups find no inherited properties');
  assert.equal(none.tenants.toString, undefined);
});

test('completion budget: more than the model ever gives is a 400 before any limit; max_completion_tokens is an alias that wins', () => {
  const chat = { id: 'tiny', task: 'chat', max_tokens_limit: 512, default_max_tokens: 64 };
  const registry = { models: [chat], get: (id: string) => (id === 'tiny' ? chat : undefined) } as unknown as ModelRegistry;
  const msgs = [{ role: 'user', content: 'hi' }];
  checkCompletionBudget({ model: 'tiny', messages: msgs, max_tokens: 512 }, registry);
  checkCompletionBudget({ model: 'unknown', messages: msgs, max_tokens: 1e9 }, registry);
  checkCompletionBudget({ model: 'tiny', input: 'x', max_tokens: 1e9 }, registry);
  assert.throws(() => checkCompletionBudget({ model: 'tiny', messages: msgs, max_tokens: 1e9 }, registry), (e) => refusal(400, 'max_tokens_too_large')(e) && (e as AppError).param === 'max_tokens');
  assert.throws(
    () => checkCompletionBudget({ model: 'tiny', messages: msgs, max_tokens: 10, max_completion_tokens: 513 }, registry),
    (e) => refusal(400, 'max_tokens_too_large')(e) && (e as AppError).param === 'max_completion_tokens',
  );
  assert.equal(estimateRequestTokens({ model: 'tiny', messages: msgs, max_tokens: 10, max_completion_tokens: 20 }, registry), 4 + 1 + 20);
  const job = createJobRequestSchema.parse({ type: 'chat', model: 'tiny', messages: msgs, max_completion_tokens: 20 });
  assert.equal(job.type === 'chat' && job.max_completion_tokens, 20, 'POST /v1/jobs accepts max_completion_tokens');
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
