import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { writeDemoChatbotConfig } from '../../scripts/lib/demo-chatbot.js';
import { startDemoToolService, type DemoToolService } from '../../scripts/lib/demo-tool-service.js';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * The playground in a real browser: Debian's Chromium driven by playwright-core (never a
 * downloaded browser), against the running service. Each step leaves a screenshot in
 * test-results/playground/.
 */
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results', 'playground');

describe('web playground in headless Chromium', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)` }, () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let browser: Browser;
  let page: Page;
  let demoTools: DemoToolService;
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const chatDir = mkdtempSync(path.join(tmpdir(), 'qi-pg-chat-'));
    await makeTinyDecoder(chatDir, { maxPositions: 512 });
    redis = await startPrivateRedis();
    // The example bot, as npm start serves it: demo tools, knowledge from the "handbook" collection,
    // extractive answers because the chat model is marked untrained.
    demoTools = await startDemoToolService({ port: 0 });
    const botConfig = writeDemoChatbotConfig({
      example: path.join(ROOT, 'config/chatbot.example.json'),
      tenants: ['acme'],
      toolsUrl: demoTools.url,
      file: path.join(mkdtempSync(path.join(tmpdir(), 'qi-pg-bot-')), 'chatbot.json'),
    });
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel(), { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: chatDir, threads: 1, untrained: true }]),
      env: { CHATBOT_CONFIG: botConfig },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    await svc?.stop();
    await demoTools?.close();
    await redis?.cleanup();
  });

  test('paste a key: the page connects and lists the models', async () => {
    await page.goto(svc.baseUrl);
    await page.fill('#api-key', KEYS.acme);
    await page.dispatchEvent('#api-key', 'change');
    await page.waitForFunction(() => document.querySelector('#connection')?.textContent?.startsWith('connected'));
    assert.deepEqual(await page.$$eval('#chat-model option', (os) => os.map((o) => (o as HTMLOptionElement).value)), ['tiny-chat']);
    assert.deepEqual(await page.$$eval('#embed-model option', (os) => os.map((o) => (o as HTMLOptionElement).value)), ['use-lite']);
    await shot('1-connected');
  });

  test('send a chat: tokens stream into the page over Socket.IO, then usage and timings', async () => {
    await page.fill('#chat-max-tokens', '48');
    await page.click('#chat-send');
    // Tokens arrive before the job ends: catch the output while it is still growing.
    await page.waitForFunction(() => (document.querySelector('#chat-output')?.textContent ?? '').length > 0);
    const partialMeta = await page.textContent('#chat-meta');
    await shot('2-streaming');
    await page.waitForFunction(() => document.querySelector('#chat-meta')?.textContent?.startsWith('done'));
    const meta = (await page.textContent('#chat-meta')) ?? '';
    assert.match(meta, /done \((length|stop)\): \d+ prompt \+ \d+ completion tokens/);
    assert.ok((await page.textContent('#chat-output'))!.length > 0);
    assert.ok(partialMeta !== null);
    await shot('3-chat-done');
  });

  test('embeddings: the paraphrase pair scores above the unrelated one', async () => {
    await page.click('#embed-send');
    await page.waitForFunction(() => document.querySelector('#embed-output')?.textContent?.includes('cosine'));
    const text = (await page.textContent('#embed-output')) ?? '';
    assert.match(text, /3 vectors of 512 dimensions/);
    const row1 = text.split('\n').find((l) => l.startsWith('1:'))!.split(/\s+/).slice(1).map(Number);
    assert.ok(row1[1]! > row1[2]! + 0.3, `paraphrase ${row1[1]} vs unrelated ${row1[2]}`);
    await shot('4-embeddings');
  });

  test('upload a document: progress, then ready; search it and see the hit with its source', async () => {
    const text = 'The lighthouse keeper climbs one hundred and twelve steps every evening to light the lamp.\n\nTea is best brewed with water just below boiling.';
    await page.fill('#doc-collection', 'e2e-docs');
    await page.setInputFiles('#doc-file', { name: 'handbook.txt', mimeType: 'text/plain', buffer: Buffer.from(text) });
    await page.click('#doc-upload');
    await page.waitForFunction(() => /handbook\.txt: (ready|failed)/.test(document.querySelector('#doc-progress')?.textContent ?? ''), undefined, { timeout: 60_000 });
    assert.match((await page.textContent('#doc-progress')) ?? '', /handbook\.txt: ready, \d+ chunks/);
    await shot('5-document-ready');
    await page.fill('#search-query', 'How many steps does the keeper climb?');
    await page.click('#search-send');
    await page.waitForFunction(() => document.querySelectorAll('#search-hits tr').length > 0);
    const first = await page.$$eval('#search-hits tr:first-child td', (tds) => tds.map((td) => td.textContent ?? ''));
    assert.match(first[3]!, /lighthouse keeper climbs/);
    assert.equal(first[2], '1');
    await shot('6-search');
    // The lexical ranking finds the exact number; its best hit scores 1.
    await page.selectOption('#search-ranker', 'lexical');
    await page.fill('#search-query', 'twelve');
    await page.click('#search-send');
    await page.waitForFunction(() => document.querySelector('#search-hits tr:first-child td')?.textContent === '1.000');
    assert.match((await page.$$eval('#search-hits tr:first-child td', (tds) => tds.map((td) => td.textContent ?? '')))[3]!, /one hundred and twelve steps/);
  });

  test('the chatbot panel: a tool answer from the demo service, then a knowledge answer with citations', async () => {
    await page.fill('#bot-input', 'What is the weather in Paris?');
    await page.click('#bot-send');
    await page.waitForFunction(() => /Weather in Paris: .+\(demo data\)/.test(document.querySelector('#bot-log')?.textContent ?? ''));
    await page.fill('#doc-collection', 'handbook');
    const manual = 'Device manual.\n\nTo reset the router, hold the reset button for ten seconds until the lights blink twice.\n\nThe warranty lasts two years.';
    await page.setInputFiles('#doc-file', { name: 'router.txt', mimeType: 'text/plain', buffer: Buffer.from(manual) });
    await page.click('#doc-upload');
    await page.waitForFunction(() => /router\.txt: (ready|failed)/.test(document.querySelector('#doc-progress')?.textContent ?? ''), undefined, { timeout: 60_000 });
    await page.fill('#bot-input', 'How do I reset the router?');
    await page.click('#bot-send');
    await page.waitForFunction(() => (document.querySelector('#bot-log')?.textContent ?? '').includes('sources: [1]'), undefined, { timeout: 30_000 });
    const log = (await page.textContent('#bot-log')) ?? '';
    assert.match(log, /hold the reset button for ten seconds until the lights blink twice\. \[1\]/);
    await shot('7-chatbot');
  });

  test('recent jobs list the chat job as completed', async () => {
    await page.click('#jobs-refresh');
    await page.waitForFunction(() => document.querySelectorAll('#jobs-list tr').length > 0);
    const cells = await page.$$eval('#jobs-list tr td', (tds) => tds.map((td) => td.textContent));
    assert.ok(cells.includes('chat') && cells.includes('completed'), cells.join(' | '));
    await shot('8-jobs');
  });
});
