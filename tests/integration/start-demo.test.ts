import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../scripts/lib/redis-server.js';
import { splitSentences } from '../../workers/chatbot/extractive-answer.js';
import { uploadDocument, waitDocumentReady } from '../helpers/documents.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { ROOT, authHeaders, postJson, spawnEntry, waitFor, type ProcessHandle } from '../helpers/service.js';

/**
 * `npm start` out of the box, as the README tells a new user: no API_KEYS and no CHATBOT_CONFIG.
 * The launcher generates a development key, serves the example bot for that tenant with its tools
 * answered by the demo tool service, and the bot answers knowledge questions extractively (the
 * default chat model is untrained) once a document is in the "handbook" collection.
 */
describe('npm start: the example chatbot out of the box', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let launcher: ProcessHandle;
  let baseUrl: string;
  let key: string;

  before(async () => {
    redis = await startPrivateRedis();
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    launcher = spawnEntry('scripts/start.ts', {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      DEMO_TOOLS_PORT: String(await freePort()),
      REDIS_URL: redis.url,
      QUEUE_PREFIX: `t${randomBytes(4).toString('hex')}`,
      DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-start-docs-')),
      INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-start-index-')),
      LOG_LEVEL: 'warn',
      RATE_LIMIT_RPM: '0',
      RATE_LIMIT_TPM: '0',
    });
    key = await waitFor('the generated development key', async () => /development key for tenant "dev": (\S+)/.exec(launcher.output())?.[1], 60_000, () => launcher.output().slice(-3000));
    await waitFor('readyz', async () => ((await fetch(`${baseUrl}/readyz`)).ok ? true : undefined), 120_000, () => launcher.output().slice(-3000));
  });

  after(async () => {
    await launcher?.stop();
    await redis?.cleanup();
  });

  const turn = (message: string, session = 's1') => postJson(baseUrl, '/v1/chatbot', { user_id: 'u1', session_id: session, message }, authHeaders(key));

  test('the launcher says what it serves, and the demo tools answer the weather and order intents', async () => {
    assert.match(launcher.output(), /serving the example chatbot .* for tenant\(s\) dev; .*DEMO tool service at http:\/\/127\.0\.0\.1:\d+/);
    const weather = await turn('What is the weather in Paris tomorrow?', 's-weather');
    assert.equal(weather.status, 200, weather.text);
    assert.equal(weather.json.intent, 'weather');
    assert.equal(weather.json.tool_calls[0]?.ok, true, JSON.stringify(weather.json.tool_calls));
    assert.match(weather.json.reply, /^Weather in Paris: .+ \(demo data\), \d+°C\.$/);
    const chinese = await turn('今天北京天气怎么样?', 's-zh');
    assert.match(chinese.json.reply, /^Weather in 北京: .+ \(demo data\)/);
    const order = await turn('What is the status of order 12345?', 's-order');
    assert.equal(order.json.intent, 'order_status');
    assert.match(order.json.reply, /^Order 12345: .+ \(demo data\)\.$/);
  });

  test('knowledge questions: "I don\'t know" before the handbook has documents, an extractive answer with citations after', async () => {
    const question = 'How do I add a new job type?';
    const before = await turn(question, 's-kb-1');
    assert.equal(before.status, 200, before.text);
    assert.match(before.json.reply, /I don't know/);

    const up = await uploadDocument(baseUrl, readFileSync(path.join(ROOT, 'docs/ARCHITECTURE.md')), { collection: 'handbook', filename: 'ARCHITECTURE.md', key });
    assert.equal(up.status, 202, JSON.stringify(up.json));
    await waitDocumentReady(baseUrl, up.json.id, key);

    const r = await turn(question, 's-kb-2');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.metadata.answer_mode, 'extractive', JSON.stringify(r.json));
    assert.ok(r.json.sources.length >= 1);
    assert.match(r.json.reply, /\[1\]/);
    // Every sentence of the reply is a sentence of a cited source (citations removed, whitespace tidied).
    const tidy = (s: string) => s.replace(/\s+/g, ' ').trim();
    const sourceText = r.json.sources.map((s: { text: string }) => tidy(s.text)).join('\n');
    for (const part of r.json.reply.split(/\s*\[\d+\]\s*/).filter(Boolean)) {
      for (const sentence of splitSentences(part)) assert.ok(sourceText.includes(tidy(sentence)), `"${sentence}" comes from the sources`);
    }
    for (const n of r.json.metadata.citations as number[]) assert.ok(n >= 1 && n <= r.json.sources.length);
    assert.match(r.json.reply, /job type|catalog/i, r.json.reply);
    assert.equal(r.json.metadata.model, undefined, 'the untrained chat model wrote nothing');
  });
});
