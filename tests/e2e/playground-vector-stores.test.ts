import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, authHeaders, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * The playground's Vector stores panel in a real browser (Debian's Chromium through playwright-core,
 * as tests/e2e/playground.test.ts): create a store, upload real text files with attributes, wait
 * for their ingestion, search with each ranker and an attribute filter, remove a file and delete
 * the store. What the page shows is checked against what the API holds after each step.
 */
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results', 'playground');
const LIGHTHOUSE = 'The lighthouse keeper climbs one hundred and twelve steps every evening to light the lamp.';
const BREAD = 'Sourdough bread needs a lively starter, a long cold fermentation and a very hot oven to form its crust.';

interface ApiStore {
  id: string;
  name: string;
  usage_bytes: number;
  file_counts: { completed: number; total: number };
}

describe('playground vector stores panel in headless Chromium', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)` }, () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let browser: Browser;
  let page: Page;
  let store: ApiStore;
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const api = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${svc.baseUrl}${route}`, { method, headers: authHeaders(KEYS.acme), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as any };
  };
  /** The cells of the results table, row by row. */
  const results = () => page.$$eval('#vs-results tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  const search = async (query: string, opts: { ranker?: string; filter?: string } = {}) => {
    // Cleared first, so that the wait below sees this search's answer and not the previous one.
    await page.evaluate(() => {
      document.querySelector('#vs-results')!.replaceChildren();
      document.querySelector('#vs-status')!.textContent = '';
    });
    await page.fill('#vs-query', query);
    await page.selectOption('#vs-ranker', opts.ranker ?? 'hybrid');
    await page.fill('#vs-filter', opts.filter ?? '');
    await page.click('#vs-search');
    await page.waitForFunction(() => /result|error/.test(document.querySelector('#vs-status')?.textContent ?? ''));
    return results();
  };
  const upload = async (name: string, text: string, attributes: string) => {
    await page.setInputFiles('#vs-file', { name, mimeType: 'text/plain', buffer: Buffer.from(text) });
    await page.fill('#vs-attributes', attributes);
    await page.click('#vs-upload');
    await page.waitForFunction(
      (n) => new RegExp(`^${n.replace('.', '\\.')}: (completed|failed|cancelled)`).test(document.querySelector('#vs-status')?.textContent ?? ''),
      name,
      { timeout: 90_000 },
    );
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: { DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-pg-vs-')), INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-pg-vs-index-')) },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(svc.baseUrl);
    await page.fill('#api-key', KEYS.acme);
    await page.dispatchEvent('#api-key', 'change');
    await page.waitForFunction(() => document.querySelector('#connection')?.textContent?.startsWith('connected'));
  });

  after(async () => {
    await browser?.close();
    await svc?.stop();
    await redis?.cleanup();
  });

  test('create a store: it is listed and opened, and the API has it', async () => {
    await page.fill('#vs-name', 'e2e handbook');
    await page.click('#vs-create');
    await page.waitForFunction(() => [...document.querySelectorAll('#vs-list tr td:first-child')].some((td) => td.textContent === 'e2e handbook'));
    const listed = (await api('GET', '/v1/vector_stores')).body.data as ApiStore[];
    store = listed.find((s) => s.name === 'e2e handbook')!;
    assert.ok(store, JSON.stringify(listed));
    assert.equal(await page.textContent('#vs-current'), `e2e handbook (${store.id})`);
    assert.equal(await page.getAttribute(`#vs-list tr[data-id="${store.id}"]`, 'class'), 'selected');
    const row = await page.$$eval(`#vs-list tr[data-id="${store.id}"] td`, (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(row.slice(0, 5), ['e2e handbook', store.id, '0 / 0', '0', 'completed']);
  });

  test('upload two text files with attributes: each is ingested to completed, and the counts and bytes follow', async () => {
    await upload('lighthouse.txt', LIGHTHOUSE, 'kind=notes, year=2024');
    await upload('bread.txt', BREAD, 'kind=guide, year=2021');
    const rows = await page.$$eval('#vs-files tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    const byName = new Map(rows.map((r) => [r[0], r]));
    assert.equal(byName.get('lighthouse.txt')?.[2], 'completed', JSON.stringify(rows));
    assert.equal(byName.get('lighthouse.txt')?.[4], 'kind=notes, year=2024');
    assert.equal(byName.get('bread.txt')?.[2], 'completed');
    // The API holds the attributes typed: the year is a number, so a numeric filter can match it.
    const files = (await api('GET', `/v1/vector_stores/${store.id}/files`)).body.data as { id: string; status: string; attributes: Record<string, unknown> }[];
    assert.deepEqual(files.map((f) => f.attributes).sort((a, b) => Number(a.year) - Number(b.year)), [{ kind: 'guide', year: 2021 }, { kind: 'notes', year: 2024 }]);
    assert.deepEqual(files.map((f) => f.status), ['completed', 'completed']);
    const bytes = Buffer.byteLength(LIGHTHOUSE) + Buffer.byteLength(BREAD);
    await page.waitForFunction((id) => document.querySelector(`#vs-list tr[data-id="${id}"] td:nth-child(3)`)?.textContent === '2 / 2', store.id);
    assert.equal(await page.textContent(`#vs-list tr[data-id="${store.id}"] td:nth-child(4)`), String(bytes));
    assert.equal((await api('GET', `/v1/vector_stores/${store.id}`)).body.usage_bytes, bytes);
    await shot('vs-1-files-ready');
  });

  test('search: the hit from the file that says it, with its score, attributes and the matched words marked', async () => {
    const query = 'How many steps does the keeper climb?';
    const rows = await search(query);
    assert.ok(rows.length >= 1, 'no results');
    const [score, filename, attributes, content] = rows[0]!;
    assert.equal(filename, 'lighthouse.txt');
    assert.equal(attributes, 'kind=notes, year=2024');
    assert.equal(content, LIGHTHOUSE);
    // The score shown is the API's for the same search.
    const apiHits = (await api('POST', `/v1/vector_stores/${store.id}/search`, { query, max_num_results: 5, ranking_options: { ranker: 'hybrid' } })).body.data as { filename: string; score: number }[];
    assert.equal(apiHits[0]!.filename, 'lighthouse.txt');
    assert.equal(score, apiHits[0]!.score.toFixed(3));
    assert.ok(Number(score) > 0);
    const marked = await page.$$eval('#vs-results tr:first-child mark', (ms) => ms.map((m) => m.textContent));
    assert.deepEqual(marked, ['The', 'keeper', 'climb', 'steps', 'the']);
    await shot('vs-2-search');
    // Lexical ranking scores relative to its best hit: the file with the exact word scores 1.
    const lexical = await search('twelve', { ranker: 'lexical' });
    assert.deepEqual(lexical.map((r) => [r[0], r[1]]), [['1.000', 'lighthouse.txt']]);
    // max_num_results bounds the list.
    await page.fill('#vs-max', '1');
    assert.equal((await search('bread and lamps')).length, 1);
    await page.fill('#vs-max', '5');
  });

  test('an attribute filter keeps only the files it matches; a malformed one is refused readably', async () => {
    const guide = await search('How many steps does the keeper climb?', { filter: 'kind=guide' });
    assert.ok(guide.length >= 1);
    assert.deepEqual([...new Set(guide.map((r) => r[1]))], ['bread.txt']);
    const year = await search('oven', { filter: 'year=2024' });
    assert.deepEqual([...new Set(year.map((r) => r[1]))], ['lighthouse.txt']);
    assert.deepEqual(await search('oven', { filter: 'kind=none' }), []);
    assert.equal(await page.textContent('#vs-status'), '0 results');
    await search('oven', { filter: 'kind' });
    assert.equal(await page.textContent('#vs-status'), 'error: "kind" is not key=value');
  });

  test('a bad attribute pair uploads nothing', async () => {
    const before = (await api('GET', '/v1/files')).body.data.length as number;
    await page.evaluate(() => (document.querySelector('#vs-status')!.textContent = ''));
    await page.setInputFiles('#vs-file', { name: 'x.txt', mimeType: 'text/plain', buffer: Buffer.from('x') });
    await page.fill('#vs-attributes', '=oops');
    await page.click('#vs-upload');
    await page.waitForFunction(() => document.querySelector('#vs-status')?.textContent?.startsWith('error'));
    assert.equal(await page.textContent('#vs-status'), 'error: "=oops" is not key=value');
    assert.equal((await api('GET', '/v1/files')).body.data.length, before);
    assert.equal((await api('GET', `/v1/vector_stores/${store.id}/files`)).body.data.length, 2);
  });

  test('remove a file: its row goes, its chunks leave search, the API no longer lists it', async () => {
    await page.click('#vs-files tr:has(td:text-is("lighthouse.txt")) button:text("Remove")');
    await page.waitForFunction(() => ![...document.querySelectorAll('#vs-files td:first-child')].some((td) => td.textContent === 'lighthouse.txt'));
    const left = (await api('GET', `/v1/vector_stores/${store.id}/files`)).body.data as { id: string }[];
    assert.equal(left.length, 1);
    const hits = await search('lighthouse keeper steps');
    assert.ok(hits.length >= 1);
    assert.ok(hits.every((r) => r[1] === 'bread.txt'), JSON.stringify(hits));
    await page.waitForFunction((id) => document.querySelector(`#vs-list tr[data-id="${id}"] td:nth-child(3)`)?.textContent === '1 / 1', store.id);
  });

  test('delete the store: confirmed in a dialog, gone from the page and from the API', async () => {
    page.once('dialog', (d) => void d.accept());
    await page.click(`#vs-list tr[data-id="${store.id}"] button:text("Delete")`);
    await page.waitForFunction((id) => !document.querySelector(`#vs-list tr[data-id="${id}"]`), store.id);
    assert.equal(await page.textContent('#vs-current'), 'none selected');
    assert.equal(await page.$$eval('#vs-files tr', (trs) => trs.length), 0);
    assert.equal((await api('GET', `/v1/vector_stores/${store.id}`)).status, 404);
    assert.ok(!((await api('GET', '/v1/vector_stores')).body.data as ApiStore[]).some((s) => s.id === store.id));
    await shot('vs-3-deleted');
  });
});
