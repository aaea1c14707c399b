import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { DOCUMENT_QUEUES } from '../../shared/documents/documents.js';
import { queueNameFor } from '../../shared/models/model-registry.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Bull Board in a real browser (Debian's Chromium through playwright-core, never a downloaded
 * one): the README's URL `/admin/queues`, the same with a trailing slash and a deep link must all
 * render the queues, behind the admin key's HTTP Basic challenge, while the rest of the app keeps
 * its strict CSP. Screenshots go to test-results/bull-board/.
 */
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results', 'bull-board');
const MODEL_QUEUE = queueNameFor('embedding', 'use-lite');
const QUEUES = [MODEL_QUEUE, ...Object.values(DOCUMENT_QUEUES)];

describe('Bull Board in headless Chromium', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)` }, () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let browser: Browser;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    redis = await startPrivateRedis();
    // No worker: Bull Board only reads the queues the API declares.
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel()]), workers: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await svc?.stop();
    await redis?.cleanup();
  });

  /** A browser context that may only talk to the service (Bull Board's page links Google Fonts). */
  const context = async (credentials?: { username: string; password: string }): Promise<BrowserContext> => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...(credentials ? { httpCredentials: credentials } : {}) });
    await ctx.route('**/*', (route) => (route.request().url().startsWith(svc.baseUrl) ? route.continue() : route.abort()));
    return ctx;
  };

  /** Opens `route` as the admin, waits until every queue's name is on the page, and reports what failed on the way. */
  const openAsAdmin = async (route: string, shot: string) => {
    const ctx = await context({ username: 'admin', password: KEYS.admin });
    try {
      const page = await ctx.newPage();
      const failed: string[] = [];
      page.on('response', (r) => {
        if (r.status() >= 400 && r.url().startsWith(svc.baseUrl)) failed.push(`${r.status()} ${r.url()}`);
      });
      const blocked: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy/i.test(m.text()) && !/fonts\.googleapis\.com/.test(m.text())) blocked.push(m.text());
      });
      const first = await page.goto(`${svc.baseUrl}${route}`);
      assert.equal(first?.status(), 200, `${route}: ${first?.status()}`);
      await page
        .waitForFunction((names) => names.every((n) => document.body.innerText.includes(n)), QUEUES, { timeout: 60_000 })
        .catch(async (err: Error) => {
          throw new Error(`${route}: the queues never appeared (${err.message}); page text: ${(await page.innerText('body')).slice(0, 300)}; failed: ${failed.join(', ')}`);
        });
      await page.screenshot({ path: path.join(SHOTS, `${shot}.png`), fullPage: true });
      return { url: page.url(), failed, blocked, text: await page.innerText('body') };
    } finally {
      await ctx.close();
    }
  };

  test('without the admin key: 401 with a Basic challenge at both URLs, in fetch and in the browser', async () => {
    for (const route of ['/admin/queues', '/admin/queues/']) {
      const r = await fetch(`${svc.baseUrl}${route}`, { redirect: 'manual' });
      assert.equal(r.status, 401, route);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm="admin"/, route);
      const body = (await r.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'missing_api_key');
      // A browser with nothing to answer the challenge with: Chromium sees the 401 and gives up.
      const ctx = await context();
      try {
        const page = await ctx.newPage();
        const statuses: number[] = [];
        page.on('response', (res) => statuses.push(res.status()));
        const outcome = await page.goto(`${svc.baseUrl}${route}`).then(
          (res) => `status ${res?.status()}`,
          (err: Error) => err.message,
        );
        assert.match(outcome, /status 401|ERR_INVALID_AUTH_CREDENTIALS/, route);
        assert.ok(!statuses.includes(200), `${route}: nothing was served (${statuses.join(', ')})`);
      } finally {
        await ctx.close();
      }
    }
    // A tenant's key is not the admin key.
    const tenant = await fetch(`${svc.baseUrl}/admin/queues/`, { headers: { authorization: `Basic ${Buffer.from(`acme:${KEYS.acme}`).toString('base64')}` } });
    assert.equal(tenant.status, 403);
  });

  test('/admin/queues (the README URL) loads: redirected to /admin/queues/, every queue listed', async () => {
    const r = await fetch(`${svc.baseUrl}/admin/queues?status=failed`, { redirect: 'manual', headers: { authorization: `Bearer ${KEYS.admin}` } });
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), '/admin/queues/?status=failed');
    const seen = await openAsAdmin('/admin/queues', 'no-slash');
    assert.equal(new URL(seen.url).pathname, '/admin/queues/');
    assert.deepEqual(seen.failed, [], 'no request of the page failed');
    assert.deepEqual(seen.blocked, [], 'the CSP blocked nothing Bull Board needs');
  });

  test('/admin/queues/ loads and lists every queue', async () => {
    const seen = await openAsAdmin('/admin/queues/', 'slash');
    assert.equal(new URL(seen.url).pathname, '/admin/queues/');
    assert.deepEqual(seen.failed, []);
    assert.deepEqual(seen.blocked, []);
  });

  test("a deep link to one queue loads too (its scripts resolve against Bull Board's <base>)", async () => {
    const seen = await openAsAdmin(`/admin/queues/queue/${encodeURIComponent(MODEL_QUEUE)}`, 'deep-link');
    assert.equal(new URL(seen.url).pathname, `/admin/queues/queue/${encodeURIComponent(MODEL_QUEUE)}`);
    assert.deepEqual(seen.failed, []);
    assert.deepEqual(seen.blocked, []);
  });

  test("only Bull Board's mount allows a <base> of this origin; every other page keeps base-uri 'none'", async () => {
    const admin = { authorization: `Bearer ${KEYS.admin}` };
    const board = await fetch(`${svc.baseUrl}/admin/queues/`, { headers: admin });
    assert.equal(board.status, 200);
    const boardCsp = board.headers.get('content-security-policy') ?? '';
    assert.match(boardCsp, /(^|;)base-uri 'self'(;|$)/);
    assert.match(boardCsp, /(^|;)script-src 'self'(;|$)/);
    assert.match(boardCsp, /(^|;)object-src 'none'(;|$)/);
    assert.match(boardCsp, /(^|;)frame-ancestors 'none'(;|$)/);
    await board.arrayBuffer();
    const pages: [string, Record<string, string>][] = [
      ['/', {}],
      ['/healthz', {}],
      ['/v1/models', { authorization: `Bearer ${KEYS.acme}` }],
      ['/metrics', admin],
      ['/no-such-page', {}],
      // Refused requests to the board itself still carry the strict policy.
      ['/admin/queues/', {}],
    ];
    for (const [route, headers] of pages) {
      const r = await fetch(`${svc.baseUrl}${route}`, { headers });
      await r.arrayBuffer();
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /(^|;)base-uri 'none'(;|$)/, `${route}: ${csp}`);
      assert.match(csp, /(^|;)script-src 'self'(;|$)/, route);
    }
  });
});
