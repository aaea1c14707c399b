import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { Redis } from 'ioredis';
import { io as connect, type Socket } from 'socket.io-client';
import { deriveSigningKey, signRequest } from '../../shared/api/sign-request.js';
import path from 'node:path';
import { rawHttpClient } from '../helpers/raw-http.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const JWT_SECRET = 'test-jwt-secret-0123456789abcdef-0123456789';
const ISSUER = 'queue-inference-test';
const AUDIENCE = 'qi-tests';
const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('security: keys, scopes, JWTs, signed requests, tenant isolation, headers, bodies, logs', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let jwks: Server;
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
  let ec: { privateKey: CryptoKey; publicKey: CryptoKey };
  let rogue: { privateKey: CryptoKey; publicKey: CryptoKey };
  /** Every secret the service was given or handed out: none may appear in its logs. */
  const secrets: string[] = [KEYS.acme, KEYS.globex, KEYS.admin, JWT_SECRET];
  const sockets: Socket[] = [];

  before(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    ec = await generateKeyPair('ES256', { extractable: true });
    rogue = await generateKeyPair('RS256', { extractable: true });
    const keys: JWK[] = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ];
    // The identity provider: a local HTTP server serving the JWKS this test generated.
    jwks = createServer((req, res) => {
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));

    redis = await startPrivateRedis();
    const config = writeModelsConfig([
      useLiteModel(),
      // Tenant-specific: only acme sees it, and it is acme's default embedding model.
      useLiteModel({ id: 'acme-embed', tenants: ['acme'], default_for: ['acme'] }),
    ]);
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: config,
      env: {
        JWT_SECRET,
        JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`,
        JWT_ISSUER: ISSUER,
        JWT_AUDIENCE: AUDIENCE,
        JWT_TTL_SECONDS: '300',
        MAX_BODY_BYTES: String(64 * 1024),
        RATE_LIMIT_RPM: '600',
        RATE_LIMIT_TPM: '1000000',
        LOG_LEVEL: 'debug',
      },
    });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await redis?.cleanup();
    await new Promise((r) => jwks?.close(r));
  });

  const call = async (method: string, route: string, opts: { key?: string; headers?: Record<string, string>; body?: unknown } = {}) => {
    const headers: Record<string, string> = { ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers };
    const r = await fetch(`${svc.baseUrl}${route}`, { method, headers, body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) });
    const text = await r.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, headers: r.headers, text };
  };
  const admin = (method: string, route: string, body?: unknown) => call(method, route, { key: KEYS.admin, body });
  const embedWith = (key: string, model = 'use-lite') => call('POST', '/v1/embeddings', { key, body: { model, input: 'security check' } });
  const expectError = (r: { status: number; json: any; text: string }, status: number, code?: string) => {
    assert.equal(r.status, status, r.text);
    assert.equal(typeof r.json?.error?.message, 'string', r.text);
    if (code) assert.equal(r.json.error.code, code, r.text);
  };
  const newKey = async (body: Record<string, unknown>) => {
    const r = await admin('POST', '/v1/admin/keys', body);
    assert.equal(r.status, 201, r.text);
    secrets.push(r.json.key, deriveSigningKey(r.json.key));
    return r.json as { key: string; id: string; scopes: string[] };
  };
  const socket = async (token: string) => {
    const s = connect(svc.baseUrl, { auth: { token }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', (e) => reject(e));
    });
    return s;
  };
  const hs256 = (claims: Record<string, unknown>, opts: { exp?: string | number; nbf?: string | number; iss?: string; aud?: string; secret?: string } = {}) => {
    const jwt = new SignJWT({ tenant: 'acme', scope: 'embeddings chat', ...claims })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(opts.iss ?? ISSUER)
      .setAudience(opts.aud ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? '2m');
    if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
    return jwt.sign(new TextEncoder().encode(opts.secret ?? JWT_SECRET));
  };

  test('missing, malformed and wrong credentials are 401; the answers never echo them', async () => {
    expectError(await call('GET', '/v1/models'), 401, 'missing_api_key');
    for (const authorization of ['Bearer', 'Token abc', 'Basic !!!not-base64', 'Bearer ' + 'x'.repeat(9000), 'Bearer acme-key-0123456789abcdeX', 'Bearer qik_000000000000_' + 'A'.repeat(43)]) {
      const r = await call('GET', '/v1/models', { headers: { authorization } });
      expectError(r, 401);
      assert.ok(!r.text.includes('acme-key-0123456789abcdeX'), 'the presented key is not echoed');
    }
    expectError(await call('GET', '/v1/models', { headers: { 'x-api-key': 'nope-nope-nope' } }), 401, 'invalid_api_key');
    // A real key with one character changed.
    expectError(await embedWith(KEYS.acme.slice(0, -1) + 'X'), 401, 'invalid_api_key');
  });

  test('admin API: only the admin key manages tenants; keys are shown once and stored only as hashes', async () => {
    expectError(await call('POST', '/v1/admin/tenants', { key: KEYS.acme, body: { id: 'initech' } }), 403, 'admin_required');
    expectError(await call('POST', '/v1/admin/tenants', { body: { id: 'initech' } }), 401);
    const t = await admin('POST', '/v1/admin/tenants', { id: 'initech', name: 'Initech', limits: { rpm: 100 } });
    assert.equal(t.status, 201, t.text);
    assert.equal(t.json.id, 'initech');
    expectError(await admin('POST', '/v1/admin/tenants', { id: 'initech' }), 409, 'tenant_exists');
    expectError(await admin('POST', '/v1/admin/tenants', { id: 'admin' }), 400, 'tenant_id_reserved');
    expectError(await admin('POST', '/v1/admin/tenants', { id: 'bad id!' }), 400);
    const k = await newKey({ tenant: 'initech', scopes: ['embeddings'], name: 'ci' });
    assert.match(k.key, /^qik_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    assert.equal((await embedWith(k.key)).status, 200);
    const list = await admin('GET', '/v1/admin/keys?tenant=initech');
    assert.equal(list.status, 200);
    const listed = list.json.data.find((x: any) => x.id === k.id);
    assert.ok(listed, 'the key is listed');
    assert.equal(listed.key, undefined, 'never the secret again');
    assert.ok(!list.text.includes(k.key));
    assert.equal(listed.redacted, `qik_${k.id}_…${k.key.slice(-4)}`);
    // Redis holds no plaintext key.
    const r = new Redis(svc.redisUrl);
    try {
      const keys = await r.keys(`${svc.prefix}:auth:*`);
      const values = await Promise.all(keys.map(async (name) => ((await r.type(name)) === 'string' ? await r.get(name) : (await r.smembers(name)).join(','))));
      assert.ok(values.length > 0);
      for (const v of values) assert.ok(!v?.includes(k.key.slice(17)), 'no stored value contains the key secret');
      assert.ok(values.some((v) => v?.includes('"hash"')), 'the record stores a hash');
    } finally {
      r.disconnect();
    }
  });

  test('scopes: a key may only do what its scopes allow (403 insufficient_scope)', async () => {
    const k = await newKey({ tenant: 'acme', scopes: ['embeddings'] });
    assert.equal((await embedWith(k.key)).status, 200);
    expectError(await call('POST', '/v1/chat/completions', { key: k.key, body: { model: 'x', messages: [{ role: 'user', content: 'hi' }] } }), 403, 'insufficient_scope');
    expectError(await call('POST', '/v1/jobs', { key: k.key, body: { type: 'chat', model: 'x', messages: [{ role: 'user', content: 'hi' }] } }), 403, 'insufficient_scope');
    expectError(await call('GET', '/v1/admin/keys', { key: k.key }), 403, 'insufficient_scope');
    expectError(await call('POST', '/v1/admin/keys', { key: k.key, body: { tenant: 'acme', scopes: ['admin'] } }), 403, 'insufficient_scope');
    const chatOnly = await newKey({ tenant: 'acme', scopes: ['chat'] });
    expectError(await embedWith(chatOnly.key), 403, 'insufficient_scope');
    const job = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['scope job'] });
    expectError(await call('GET', `/v1/jobs/${encodeURIComponent(job.json.id)}`, { key: chatOnly.key }), 403, 'insufficient_scope');
    // Socket.IO is no side door: following a job's events needs the scope GET /v1/jobs/:id needs.
    const refused = await (await socket(chatOnly.key)).timeout(5000).emitWithAck('subscribe', job.json.id);
    assert.equal(refused.ok, false);
    assert.equal(refused.ok === false && refused.error.code, 'insufficient_scope');
    const allowed = await (await socket(k.key)).timeout(5000).emitWithAck('subscribe', job.json.id);
    assert.equal(allowed.ok, true, JSON.stringify(allowed));
  });

  test("tenant admins manage only their own tenant's keys; other tenants' keys look missing", async () => {
    const globexKey = await newKey({ tenant: 'globex', scopes: ['embeddings'] });
    // acme's bootstrap key has every scope, admin included: a tenant admin for acme.
    const mine = await call('POST', '/v1/admin/keys', { key: KEYS.acme, body: { tenant: 'acme', scopes: ['embeddings'] } });
    assert.equal(mine.status, 201, mine.text);
    secrets.push(mine.json.key);
    expectError(await call('POST', '/v1/admin/keys', { key: KEYS.acme, body: { tenant: 'globex', scopes: ['embeddings'] } }), 404, 'tenant_not_found');
    expectError(await call('DELETE', `/v1/admin/keys/${globexKey.id}`, { key: KEYS.acme }), 404, 'key_not_found');
    expectError(await call('POST', `/v1/admin/keys/${globexKey.id}/rotate`, { key: KEYS.acme }), 404, 'key_not_found');
    const listed = await call('GET', '/v1/admin/keys', { key: KEYS.acme });
    assert.equal(listed.status, 200);
    assert.ok(listed.json.data.length > 0 && listed.json.data.every((x: any) => x.tenant === 'acme'), 'only acme keys');
    assert.deepEqual((await call('GET', '/v1/admin/keys?tenant=globex', { key: KEYS.acme })).json.data, []);
    const tenants = await call('GET', '/v1/admin/tenants', { key: KEYS.acme });
    assert.deepEqual(tenants.json.data.map((t: any) => t.id), ['acme']);
    expectError(await call('DELETE', '/v1/admin/tenants/globex', { key: KEYS.acme }), 403, 'admin_required');
    assert.equal((await embedWith(globexKey.key)).status, 200, 'the globex key still works');
  });

  test('minting: keys and tokens carry no more scopes or limits than their creator; only the admin key grants unlimited', async () => {
    // The bootstrap key has every scope, admin included, and the deployment's limits (600 rpm, 1M tpm).
    for (const limits of [{ rpm: 0, tpm: 0 }, { rpm: 0 }, { tpm: 0 }]) {
      expectError(await call('POST', '/v1/admin/keys', { key: KEYS.acme, body: { tenant: 'acme', scopes: ['embeddings'], limits } }), 403, 'limit_not_grantable');
    }
    const over = await call('POST', '/v1/admin/keys', { key: KEYS.acme, body: { tenant: 'acme', scopes: ['embeddings'], limits: { rpm: 601 } } });
    expectError(over, 403, 'limit_not_grantable');
    assert.match(over.json.error.message, /600/, 'the message says what may be granted');
    const within = await call('POST', '/v1/admin/keys', { key: KEYS.acme, body: { tenant: 'acme', scopes: ['embeddings'], limits: { rpm: 600, tpm: 1000 } } });
    assert.equal(within.status, 201, within.text);
    secrets.push(within.json.key);

    // A tenant admin with a limit of its own and two scopes.
    const tenantAdmin = await newKey({ tenant: 'acme', scopes: ['embeddings', 'admin'], limits: { rpm: 50, tpm: 20_000 } });
    for (const scopes of [['chat'], ['embeddings', 'documents'], ['chat', 'embeddings', 'documents', 'admin']]) {
      expectError(await call('POST', '/v1/admin/keys', { key: tenantAdmin.key, body: { tenant: 'acme', scopes } }), 403, 'scope_not_grantable');
    }
    expectError(await call('POST', '/v1/admin/keys', { key: tenantAdmin.key, body: { tenant: 'acme', scopes: ['embeddings'], limits: { rpm: 51 } } }), 403, 'limit_not_grantable');
    const child = await call('POST', '/v1/admin/keys', { key: tenantAdmin.key, body: { tenant: 'acme', scopes: ['embeddings'] } });
    assert.equal(child.status, 201, child.text);
    secrets.push(child.json.key);
    assert.deepEqual(child.json.limits, { rpm: 50, tpm: 20_000 }, 'a key created without limits gets its creator\'s, not the larger defaults');
    assert.equal((await embedWith(child.json.key)).status, 200);

    // Its reduced-scope token (admin only) can mint only admin-scoped keys, within the same limits.
    const token = await call('POST', '/v1/auth/token', { key: tenantAdmin.key, body: { scopes: ['admin'] } });
    assert.equal(token.status, 200, token.text);
    secrets.push(token.json.access_token);
    expectError(await call('POST', '/v1/admin/keys', { key: token.json.access_token, body: { tenant: 'acme', scopes: ['embeddings'] } }), 403, 'scope_not_grantable');
    expectError(await call('POST', '/v1/admin/keys', { key: token.json.access_token, body: { tenant: 'acme', scopes: ['admin'], limits: { tpm: 0 } } }), 403, 'limit_not_grantable');
    expectError(await call('POST', '/v1/auth/token', { key: tenantAdmin.key, body: { scopes: ['chat'] } }), 403, 'insufficient_scope');

    // Rotation hands over a key with the old one's powers: not to a caller with less.
    const strong = await newKey({ tenant: 'acme', scopes: ['chat', 'embeddings'] });
    const rotated = await call('POST', `/v1/admin/keys/${strong.id}/rotate`, { key: tenantAdmin.key });
    expectError(rotated, 403, 'rotation_not_grantable');
    assert.equal(rotated.json.key, undefined);
    assert.equal((await embedWith(strong.key)).status, 200, 'the key was not rotated');
    const own = await call('POST', `/v1/admin/keys/${child.json.id}/rotate`, { key: tenantAdmin.key });
    assert.equal(own.status, 201, own.text);
    secrets.push(own.json.key);

    // The admin key may grant anything, unlimited included.
    const unlimited = await newKey({ tenant: 'acme', scopes: ['chat', 'embeddings', 'documents', 'admin'], limits: { rpm: 0, tpm: 0 } });
    assert.equal((await embedWith(unlimited.key)).status, 200);
  });

  test('revoked keys, rotated keys and revoked tenants are refused at once', async () => {
    const k = await newKey({ tenant: 'acme', scopes: ['embeddings'] });
    assert.equal((await embedWith(k.key)).status, 200);
    assert.equal((await admin('DELETE', `/v1/admin/keys/${k.id}`)).json.revoked_at > 0, true);
    expectError(await embedWith(k.key), 401, 'invalid_api_key');

    const r1 = await newKey({ tenant: 'acme', scopes: ['embeddings'] });
    const rotated = await admin('POST', `/v1/admin/keys/${r1.id}/rotate`);
    assert.equal(rotated.status, 201, rotated.text);
    secrets.push(rotated.json.key);
    assert.deepEqual(rotated.json.scopes, ['embeddings']);
    expectError(await embedWith(r1.key), 401);
    assert.equal((await embedWith(rotated.json.key)).status, 200);
    const r2 = await newKey({ tenant: 'acme', scopes: ['embeddings'] });
    const graced = await admin('POST', `/v1/admin/keys/${r2.id}/rotate`, { grace_seconds: 60 });
    secrets.push(graced.json.key);
    assert.equal((await embedWith(r2.key)).status, 200, 'the old key works during its grace period');
    assert.ok(graced.json.previous.expires_at > Date.now() / 1000);

    await admin('POST', '/v1/admin/tenants', { id: 'hooli' });
    const h = await newKey({ tenant: 'hooli', scopes: ['embeddings'] });
    const hToken = await call('POST', '/v1/auth/token', { key: h.key });
    assert.equal(hToken.status, 200);
    secrets.push(hToken.json.access_token);
    assert.equal((await embedWith(h.key)).status, 200);
    assert.equal((await admin('DELETE', '/v1/admin/tenants/hooli')).status, 200);
    expectError(await embedWith(h.key), 401);
    expectError(await embedWith(hToken.json.access_token), 401);
    expectError(await admin('POST', '/v1/admin/keys', { tenant: 'hooli', scopes: ['embeddings'] }), 404, 'tenant_not_found');
  });

  test("cross-tenant: another tenant's job is 404 over REST and refused over Socket.IO, with keys and with JWTs", async () => {
    const job = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['acme private'] });
    assert.equal(job.status, 202);
    const id = encodeURIComponent(job.json.id);
    expectError(await call('GET', `/v1/jobs/${id}`, { key: KEYS.globex }), 404, 'job_not_found');
    expectError(await call('DELETE', `/v1/jobs/${id}`, { key: KEYS.globex }), 404, 'job_not_found');
    const globexToken = (await call('POST', '/v1/auth/token', { key: KEYS.globex })).json.access_token as string;
    secrets.push(globexToken);
    expectError(await call('GET', `/v1/jobs/${id}`, { key: globexToken }), 404, 'job_not_found');
    for (const token of [KEYS.globex, globexToken]) {
      const s = await socket(token);
      const ack = await s.timeout(5000).emitWithAck('subscribe', job.json.id);
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, 'job_not_found');
    }
    // The owner, over a JWT handshake, may.
    const acmeToken = (await call('POST', '/v1/auth/token', { key: KEYS.acme })).json.access_token as string;
    secrets.push(acmeToken);
    const mine = await socket(acmeToken);
    assert.equal((await mine.timeout(5000).emitWithAck('subscribe', job.json.id)).ok, true);
    await assert.rejects(socket('qik_000000000000_' + 'B'.repeat(43)), /invalid API key/);
    await assert.rejects(socket(acmeToken.slice(0, -2) + 'xx'), /invalid API key/);
  });

  test('JWT: POST /v1/auth/token mints a short-lived token that works, narrows scopes and dies with its key', async () => {
    const k = await newKey({ tenant: 'acme', scopes: ['embeddings', 'chat'] });
    const t = await call('POST', '/v1/auth/token', { key: k.key, body: { scopes: ['embeddings'], expires_in: 120 } });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.token_type, 'Bearer');
    assert.equal(t.json.expires_in, 120);
    assert.equal(t.json.scope, 'embeddings');
    const token = t.json.access_token as string;
    secrets.push(token);
    assert.equal((await embedWith(token)).status, 200);
    expectError(await call('POST', '/v1/chat/completions', { key: token, body: { model: 'x', messages: [{ role: 'user', content: 'hi' }] } }), 403, 'insufficient_scope');
    expectError(await call('POST', '/v1/auth/token', { key: k.key, body: { scopes: ['admin'] } }), 403, 'insufficient_scope');
    expectError(await call('POST', '/v1/auth/token', { key: token }), 403, 'token_not_exchangeable');
    expectError(await call('POST', '/v1/auth/token', { key: KEYS.admin }), 403);
    await admin('DELETE', `/v1/admin/keys/${k.id}`);
    expectError(await embedWith(token), 401, 'key_revoked');
  });

  test('JWT: RS256 and ES256 tokens of the configured JWKS are accepted', async () => {
    for (const [alg, key, kid] of [['RS256', rsa.privateKey, 'rsa-1'], ['ES256', ec.privateKey, 'ec-1']] as const) {
      const token = await new SignJWT({ tenant: 'globex', scope: 'embeddings' }).setProtectedHeader({ alg, kid }).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('2m').sign(key);
      secrets.push(token);
      const r = await embedWith(token);
      assert.equal(r.status, 200, `${alg}: ${r.text}`);
    }
  });

  test('JWT forgeries are 401: alg none, HS/RS confusion, unknown key, tampered payload, expired, not yet valid, wrong audience or issuer', async () => {
    const payload = { tenant: 'acme', scope: 'embeddings chat admin', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 };
    const forged: Record<string, string> = {
      'alg none': `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`,
      'alg NONE with a signature': `${b64url({ alg: 'NONE' })}.${b64url(payload)}.c2ln`,
      // The classic confusion: HS256 keyed with the identity provider's public RSA key.
      'HS256 keyed with the RSA public key': await hs256({}, { secret: await exportSPKI(rsa.publicKey) }),
      'HS256 keyed with the wrong secret': await hs256({}, { secret: 'another-secret-0123456789abcdef-0123456789' }),
      'RS256 by a key not in the JWKS': await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(rogue.privateKey),
      'RS256 header on an EC key': await (async () => {
        const t = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).sign(ec.privateKey);
        const [, p, sig] = t.split('.');
        return `${b64url({ alg: 'RS256', kid: 'ec-1' })}.${p}.${sig}`;
      })(),
      'HS512 (not accepted)': await new SignJWT(payload).setProtectedHeader({ alg: 'HS512' }).sign(new TextEncoder().encode(JWT_SECRET)),
      expired: await hs256({}, { exp: Math.floor(Date.now() / 1000) - 120 }),
      'not yet valid': await hs256({}, { nbf: Math.floor(Date.now() / 1000) + 600, exp: '20m' }),
      'wrong audience': await hs256({}, { aud: 'someone-else' }),
      'wrong issuer': await hs256({}, { iss: 'https://evil.example' }),
      'no tenant': await hs256({ tenant: undefined }),
      'tenant with odd characters': await hs256({ tenant: 'acme\r\nx-injected: 1' }),
      garbage: 'eyJhbGciOiJIUzI1NiJ9.not-json.sig',
    };
    // Tampered payload: a real token whose tenant was swapped after signing.
    const real = await hs256({});
    const [h, , s] = real.split('.');
    forged['tampered payload'] = `${h}.${b64url({ ...payload, tenant: 'globex' })}.${s}`;
    assert.equal((await embedWith(real)).status, 200, 'the untampered token works');
    for (const [name, token] of Object.entries(forged)) {
      const r = await embedWith(token);
      assert.equal(r.status, 401, `${name}: ${r.text}`);
      assert.equal(r.json.error.type, 'authentication_error', name);
      if (name === 'expired') assert.equal(r.json.error.code, 'token_expired');
      assert.ok(!r.headers.get('x-injected'), name);
    }
  });

  test('signed requests: required for such keys; replays, tampering and stale timestamps are rejected', async () => {
    const k = await newKey({ tenant: 'acme', scopes: ['embeddings'], require_signature: true });
    expectError(await embedWith(k.key), 401, 'signature_required');
    const body = JSON.stringify({ model: 'use-lite', input: ['signed text'] });
    const send = (headers: Record<string, string>, b = body, path = '/v1/embeddings') => call('POST', path, { body: b, headers: { 'content-type': 'application/json', ...headers } });

    const signed = signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body });
    const ok = await send(signed);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.data.length, 1);
    expectError(await send(signed), 401, 'nonce_reused');
    expectError(await send(signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body }), body.replace('signed text', 'other text')), 401, 'invalid_signature');
    expectError(await send(signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body }), body, '/v1/embeddings?x=1'), 401, 'invalid_signature');
    expectError(await send(signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body, timestamp: Math.floor(Date.now() / 1000) - 3600 })), 401, 'signature_expired');
    expectError(await send(signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body, timestamp: Math.floor(Date.now() / 1000) + 3600 })), 401, 'signature_expired');
    const wrongKey = k.key.slice(0, -1) + (k.key.endsWith('A') ? 'B' : 'A');
    expectError(await send(signRequest({ apiKey: wrongKey, method: 'POST', path: '/v1/embeddings', body })), 401, 'invalid_signature');
    const good = signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body });
    expectError(await send({ ...good, 'x-qi-signature': good['x-qi-signature']!.replace(/^./, (c) => (c === '0' ? '1' : '0')) }), 401, 'invalid_signature');
    expectError(await send({ ...good, 'x-qi-nonce': 'short' }), 401, 'invalid_signature');
    expectError(await send({ ...good, authorization: `Bearer ${KEYS.acme}` }), 401, 'ambiguous_credentials');
    // GETs are signed over an empty body.
    const get = await call('GET', '/v1/models', { headers: signRequest({ apiKey: k.key, method: 'GET', path: '/v1/models' }) });
    assert.equal(get.status, 200, get.text);
    // A signed request can mint a token, the way such a key gets to use Socket.IO.
    const tokenBody = JSON.stringify({ scopes: ['embeddings'] });
    const minted = await send(signRequest({ apiKey: k.key, method: 'POST', path: '/v1/auth/token', body: tokenBody }), tokenBody, '/v1/auth/token');
    assert.equal(minted.status, 200, minted.text);
    secrets.push(minted.json.access_token);
    await admin('DELETE', `/v1/admin/keys/${k.id}`);
    expectError(await send(signRequest({ apiKey: k.key, method: 'POST', path: '/v1/embeddings', body })), 401, 'invalid_signature');
  });

  test('tenant-specific models: hidden from and 404 for other tenants; "default" is the tenant\'s default model', async () => {
    const acmeModels = (await call('GET', '/v1/models', { key: KEYS.acme })).json.data.map((m: any) => m.id);
    const globexModels = (await call('GET', '/v1/models', { key: KEYS.globex })).json.data.map((m: any) => m.id);
    assert.ok(acmeModels.includes('acme-embed'));
    assert.ok(!globexModels.includes('acme-embed'));
    assert.equal((await call('GET', '/v1/models/acme-embed', { key: KEYS.acme })).status, 200);
    const hidden = await call('GET', '/v1/models/acme-embed', { key: KEYS.globex });
    const missing = await call('GET', '/v1/models/no-such-model', { key: KEYS.globex });
    expectError(hidden, 404, 'model_not_found');
    assert.equal(hidden.json.error.message.replace('acme-embed', 'X'), missing.json.error.message.replace('no-such-model', 'X'), 'indistinguishable from a missing model');
    expectError(await embedWith(KEYS.globex, 'acme-embed'), 404, 'model_not_found');
    expectError(await call('POST', '/v1/jobs', { key: KEYS.globex, body: { type: 'embedding', model: 'acme-embed', input: 'x' } }), 404, 'model_not_found');
    assert.equal((await embedWith(KEYS.acme, 'acme-embed')).status, 200);
    const viaDefault = await embedWith(KEYS.acme, 'default');
    assert.equal(viaDefault.status, 200, viaDefault.text);
    assert.equal(viaDefault.json.model, 'acme-embed');
    expectError(await embedWith(KEYS.globex, 'default'), 404, 'model_not_found');
  });

  test('header injection: CR/LF and NUL in headers are refused by the parser; nothing is reflected', async () => {
    const raw = (head: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(svc.port, '127.0.0.1', () => s.end(head));
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
    const bareLf = await raw(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\r\nX-Request-Id: a\nSet-Cookie: pwned=1\r\nConnection: close\r\n\r\n`);
    assert.match(bareLf, /^HTTP\/1\.1 400/);
    const nul = await raw(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.acme}\0\r\nConnection: close\r\n\r\n`);
    assert.match(nul, /^HTTP\/1\.1 400/);
    // Encoded CR/LF in a header the service echoes is not echoed.
    const r = await call('GET', '/v1/models', { key: KEYS.acme, headers: { 'x-request-id': 'abc%0d%0aSet-Cookie:%20pwned=1' } });
    assert.equal(r.status, 200);
    assert.notEqual(r.headers.get('x-request-id'), 'abc%0d%0aSet-Cookie:%20pwned=1');
    assert.equal(r.headers.get('set-cookie'), null);
    // A job id with CR/LF encoded in the path comes back escaped, never as a header break.
    const weird = await call('GET', '/v1/jobs/embedding.use-lite~%0d%0aSet-Cookie:%20pwned', { key: KEYS.acme });
    expectError(weird, 404);
    assert.equal(weird.headers.get('set-cookie'), null);
  });

  test('oversized headers are 431, oversized bodies 413, and an anonymous big body is refused before it is read', async () => {
    const big = await call('GET', '/v1/models', { key: KEYS.acme, headers: { 'x-padding': 'a'.repeat(40_000) } });
    assert.equal(big.status, 431);
    const body = JSON.stringify({ model: 'use-lite', input: ['x'.repeat(100 * 1024)] });
    expectError(await call('POST', '/v1/embeddings', { key: KEYS.acme, body }), 413, 'payload_too_large');
    expectError(await call('POST', '/v1/embeddings', { body }), 401, 'missing_api_key');
    expectError(await call('POST', '/v1/embeddings', { key: KEYS.acme, body: '{"model": "use-lite", "input": [' }), 400, 'invalid_json');
  });

  test('Bull Board and /metrics stay admin-only, for tenant keys and tokens alike', async () => {
    const token = (await call('POST', '/v1/auth/token', { key: KEYS.acme })).json.access_token as string;
    secrets.push(token);
    for (const route of ['/metrics', '/admin/queues', '/admin/queues/', '/admin/queues/api/queues']) {
      expectError(await call('GET', route), 401);
      expectError(await call('GET', route, { key: KEYS.acme }), 403);
      expectError(await call('GET', route, { key: token }), 401);
      assert.equal((await call('GET', route, { key: KEYS.admin })).status, 200);
    }
  });

  test('no secret appears in the API or worker logs', async () => {
    await waitFor('logs flushed', async () => (svc.api.output().length > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const logs = svc.api.output() + svc.workers.map((w) => w.output()).join('');
    assert.ok(logs.includes('"tenant":"acme"'), 'requests were logged with their tenant');
    assert.ok(logs.includes('[redacted]'), 'credentials were redacted');
    for (const secret of secrets) {
      assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 6)}…) appears in the logs`);
      // Nor its secret half alone, for managed keys.
      if (secret.startsWith('qik_')) assert.ok(!logs.includes(secret.slice(17)), 'a key secret appears in the logs');
    }
    assert.ok(!logs.includes(JWT_SECRET));
  });
});

describe('client errors: bad input is a 400 with a reason, never a 500 or a 429 that no retry can fix', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: ReturnType<typeof rawHttpClient>;
  const TPM = 100_000;

  before(async () => {
    redis = await startPrivateRedis();
    // No worker: every request here is answered by the API alone.
    const config = writeModelsConfig([
      useLiteModel(),
      { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: path.join(ROOT, 'models', 'tiny-chat'), max_tokens_limit: 512, default_max_tokens: 32 },
    ]);
    svc = await startService({ redisUrl: redis.url, modelsConfig: config, workers: 0, waitReady: false, env: { RATE_LIMIT_RPM: '600', RATE_LIMIT_TPM: String(TPM) } });
    client = rawHttpClient(svc.baseUrl);
  });

  after(async () => {
    client?.close();
    await svc?.stop();
    await redis?.cleanup();
  });

  const send = (method: string, target: string, key = KEYS.acme, body?: unknown) =>
    client.request(method, target, {
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  const expectError = (r: { status: number; json: any; text: string }, status: number, code: string) => {
    assert.equal(r.status, status, r.text);
    assert.equal(r.json?.error?.code, code, r.text);
    assert.equal(typeof r.json.error.message, 'string');
    assert.ok(r.json.error.message.length > 20, `a readable reason: ${r.json.error.message}`);
  };
  const newKey = async (body: Record<string, unknown>) => {
    const r = await send('POST', '/v1/admin/keys', KEYS.admin, body);
    assert.equal(r.status, 201, r.text);
    return r.json as { key: string; id: string };
  };

  test('malformed percent-encoding in a path or query is 400, anywhere, before any route', async () => {
    for (const [method, target] of [
      ['GET', '/v1/jobs/%zz'],
      ['DELETE', '/v1/jobs/%zz'],
      ['GET', '/v1/jobs/embedding%E0%A4%A'],
      ['GET', '/v1/models/%FF'],
      ['GET', '/v1/models?x=%zz'],
      ['GET', '/docs/%'],
      ['GET', '/no/such/route%zz'],
    ]) {
      expectError(await send(method!, target!), 400, 'invalid_path_encoding');
      expectError(await send(method!, target!, 'not-a-key-0123456789'), 400, 'invalid_path_encoding');
    }
  });

  test('ids follow one pattern; tenants named like Object properties are safe; /v1/chatbot answers 404 for them, not 500', async () => {
    for (const id of ['__proto__', '_x', '.hidden', 'a/b', 'a:b', 'x'.repeat(65)]) {
      expectError(await send('POST', '/v1/admin/tenants', KEYS.admin, { id }), 400, 'invalid_request');
    }
    for (const id of ['constructor', 'toString', 'hasOwnProperty']) {
      const t = await send('POST', '/v1/admin/tenants', KEYS.admin, { id });
      assert.equal(t.status, 201, t.text);
      const k = await newKey({ tenant: id, scopes: ['chat', 'documents'] });
      expectError(await send('POST', '/v1/chatbot', k.key, { user_id: 'u1', message: 'hello' }), 404, 'chatbot_not_configured');
      const listed = await send('GET', `/v1/admin/keys?tenant=${id}`, KEYS.admin);
      assert.equal(listed.status, 200, listed.text);
      assert.deepEqual(listed.json.data.map((x: any) => x.tenant), [id]);
      const collections = await send('GET', '/v1/collections', k.key);
      assert.equal(collections.status, 200, collections.text);
    }
    expectError(await send('POST', '/v1/admin/keys', KEYS.admin, { tenant: '__proto__', scopes: ['chat'] }), 400, 'invalid_request');
  });

  test('search filters: __proto__, constructor, prototype and malformed keys are refused, not dropped', async () => {
    for (const key of ['__proto__', 'constructor', 'prototype', 'a b', '']) {
      const body = `{"query":"anything","filter":{${JSON.stringify(key)}:{"x":1}}}`;
      const r = await send('POST', '/v1/collections/library/search', KEYS.acme, body);
      expectError(r, 400, 'invalid_request');
      assert.match(r.json.error.param ?? '', /^filter/, r.text);
    }
    const polluted = await send('POST', '/v1/collections/library/search', KEYS.acme, '{"query":"anything","filter":{"__proto__":"x"}}');
    assert.match(polluted.json.error.message, /__proto__/);
    // A well-formed filter gets as far as the (missing) collection.
    expectError(await send('POST', '/v1/collections/library/search', KEYS.acme, { query: 'anything', filter: { topic: 'x' } }), 404, 'collection_not_found');
  });

  test('max_tokens beyond the model is 400 whatever the caller\'s limits; a request larger than its tokens-per-minute is 400 request_too_large; neither says Retry-After', async () => {
    const messages = [{ role: 'user', content: 'hello' }];
    const unlimited = (await newKey({ tenant: 'acme', scopes: ['chat', 'embeddings'], limits: { rpm: 0, tpm: 0 } })).key;
    for (const key of [KEYS.acme, unlimited]) {
      for (const [target, body, param] of [
        ['/v1/chat/completions', { model: 'tiny-chat', messages, max_tokens: 1e9 }, 'max_tokens'],
        ['/v1/chat/completions', { model: 'tiny-chat', messages, max_completion_tokens: 1e9 }, 'max_completion_tokens'],
        ['/v1/chat/completions', { model: 'tiny-chat', messages, max_tokens: 513 }, 'max_tokens'],
        ['/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, max_tokens: 1e9 }, 'max_tokens'],
        ['/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, max_completion_tokens: 1e9 }, 'max_completion_tokens'],
      ] as const) {
        const r = await send('POST', target, key, body);
        expectError(r, 400, 'max_tokens_too_large');
        assert.equal(r.json.error.param, param);
        assert.equal(r.headers['retry-after'], undefined);
      }
    }
    // Within the model, but more than the key may spend in a minute.
    const small = (await newKey({ tenant: 'acme', scopes: ['chat', 'embeddings'], limits: { tpm: 400 } })).key;
    for (const [target, body] of [
      ['/v1/chat/completions', { model: 'tiny-chat', messages, max_tokens: 500 }],
      ['/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, max_completion_tokens: 500 }],
      ['/v1/embeddings', { model: 'use-lite', input: 'z'.repeat(4000) }],
      ['/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['z'.repeat(2000), 'z'.repeat(2000)] }],
    ] as const) {
      const r = await send('POST', target, small, body);
      expectError(r, 400, 'request_too_large');
      assert.equal(r.headers['retry-after'], undefined);
      assert.match(r.json.error.message, /400 tokens per minute/);
    }
    // What a retry can fix is still a 429: the allowance is spent, not too small.
    const job = await send('POST', '/v1/jobs', small, { type: 'embedding', model: 'use-lite', input: ['y'.repeat(1200)] });
    assert.equal(job.status, 202, job.text);
    const spent = await send('POST', '/v1/jobs', small, { type: 'embedding', model: 'use-lite', input: ['y'.repeat(1200)] });
    expectError(spent, 429, 'rate_limit_exceeded');
    assert.ok(Number(spent.headers['retry-after']) >= 1);
  });

  test('POST /v1/jobs takes max_completion_tokens as the chat completion budget', async () => {
    const messages = [{ role: 'user', content: 'hello' }];
    const r = await send('POST', '/v1/jobs', KEYS.acme, { type: 'chat', model: 'tiny-chat', messages, max_completion_tokens: 7, max_tokens: 99 });
    assert.equal(r.status, 202, r.text);
    const redisClient = new Redis(svc.redisUrl);
    try {
      const data = JSON.parse((await redisClient.hget(`${svc.prefix}:chat.tiny-chat:${r.json.id}`, 'data')) ?? '{}');
      assert.equal(data.payload?.max_tokens, 7, JSON.stringify(data));
    } finally {
      redisClient.disconnect();
    }
  });
});
