import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { io as connect } from 'socket.io-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort } from '../../scripts/lib/redis-server.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const ORIGIN = 'https://app.example';

describe('transport: HTTPS, secure headers, CORS', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let api: ChildProcess;
  let output = '';
  let base: string;
  let ca: Buffer;
  let agent: Agent;
  let plain: ServiceHandle;

  before(async () => {
    // A self-signed certificate for 127.0.0.1, made here with the openssl CLI.
    const dir = mkdtempSync(path.join(tmpdir(), 'qi-tls-'));
    const made = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    assert.equal(made.status, 0, made.stderr?.toString());
    ca = readFileSync(path.join(dir, 'cert.pem'));
    agent = new Agent({ connect: { ca } });

    redis = await startPrivateRedis();
    const models = writeModelsConfig([useLiteModel()]);
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    api = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'api/main.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: String(port),
        REDIS_URL: redis.url,
        QUEUE_PREFIX: 'tls',
        API_KEYS: `acme:${KEYS.acme}`,
        ADMIN_API_KEY: KEYS.admin,
        MODELS_CONFIG: models,
        TLS_CERT_FILE: path.join(dir, 'cert.pem'),
        TLS_KEY_FILE: path.join(dir, 'key.pem'),
        CORS_ORIGINS: ORIGIN,
      },
    });
    api.stdout!.on('data', (d) => (output += d));
    api.stderr!.on('data', (d) => (output += d));
    await waitFor('https api', async () => ((await undiciFetch(`${base}/healthz`, { dispatcher: agent })).ok ? true : undefined), 60_000, () => output.slice(-2000));
    // The same service over plain HTTP without CORS_ORIGINS.
    plain = await startService({ redisUrl: redis.url, modelsConfig: models, workers: 0, waitReady: false });
  });

  after(async () => {
    api?.kill('SIGTERM');
    await new Promise((r) => (api?.exitCode !== null ? r(null) : api.once('exit', r)));
    await plain?.stop();
    await agent?.close();
    await redis?.cleanup();
  });

  const get = (route: string, headers: Record<string, string> = {}, method = 'GET') => undiciFetch(`${base}${route}`, { dispatcher: agent, headers, method });

  test('with TLS_CERT_FILE and TLS_KEY_FILE the API serves HTTPS (and HSTS); keys work over it; plain HTTP is not served', async () => {
    const r = await get('/v1/models', { authorization: `Bearer ${KEYS.acme}` });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('strict-transport-security') ?? '', /max-age=31536000/);
    await assert.rejects(fetch(base.replace('https:', 'http:') + '/healthz'));
    await assert.rejects(fetch(`${base}/healthz`), 'an unknown certificate is refused by a default client');
    // Socket.IO shares the TLS port.
    const s = connect(base, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false, ca: ca.toString() } as never);
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
    } finally {
      s.disconnect();
    }
  });

  test('secure headers on every answer; /docs keeps its own CSP and still loads', async () => {
    for (const r of [await get('/healthz'), await get('/v1/models'), await (await fetch(`${plain.baseUrl}/healthz`))]) {
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'.*frame-ancestors 'none'/);
      assert.equal(r.headers.get('x-frame-options'), 'SAMEORIGIN');
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(r.headers.get('x-powered-by'), null);
    }
    assert.equal((await fetch(`${plain.baseUrl}/healthz`)).headers.get('strict-transport-security'), null, 'no HSTS over plain HTTP');
    const docs = await get('/docs');
    assert.equal(docs.status, 200);
    const csp = docs.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.equal(csp.split('content-security-policy').length, 1);
    assert.equal((await get('/docs/swagger-ui-bundle.js')).status, 200);
    assert.equal((await get('/openapi.json')).status, 200);
  });

  test('CORS: only the configured origins; none at all without CORS_ORIGINS', async () => {
    const preflight = { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' };
    const ok = await get('/v1/embeddings', preflight, 'OPTIONS');
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /authorization/);
    const simple = await get('/v1/models', { origin: ORIGIN, authorization: `Bearer ${KEYS.acme}` });
    assert.equal(simple.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(simple.headers.get('access-control-expose-headers') ?? '', /x-ratelimit-remaining-requests/);
    const other = await get('/v1/embeddings', { ...preflight, origin: 'https://evil.example' }, 'OPTIONS');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const off = await fetch(`${plain.baseUrl}/v1/embeddings`, { method: 'OPTIONS', headers: preflight });
    assert.equal(off.headers.get('access-control-allow-origin'), null);
    assert.equal((await fetch(`${plain.baseUrl}/v1/models`, { headers: { origin: ORIGIN, authorization: `Bearer ${KEYS.acme}` } })).headers.get('access-control-allow-origin'), null);
  });
});
