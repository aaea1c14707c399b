import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { uploadDocument, waitDocumentReady } from '../helpers/documents.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/** Real local HTTP services for the bot's tools: one that works, one that answers garbage, one that hangs. */
function startToolServers() {
  const weatherCalls: URL[] = [];
  const listen = async (handler: Parameters<typeof createServer>[1]) => {
    const s = createServer(handler);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return { server: s, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
  };
  return Promise.all([
    listen((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      weatherCalls.push(url);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ summary: `sunny in ${url.searchParams.get('city')}`, temp_c: url.searchParams.get('day') === 'tomorrow' ? 24 : 21 }));
    }),
    listen((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('<html>definitely not json')),
    listen(() => {
      /* never answers */
    }),
  ]).then(([weather, garbage, hanging]) => ({ weather, garbage, hanging, weatherCalls }));
}

describe('chatbot: intents, dialogue state, tools, knowledge, streaming', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let tools: Awaited<ReturnType<typeof startToolServers>>;
  let servers: Server[] = [];
  let inspect: Redis;

  before(async () => {
    tools = await startToolServers();
    servers = [tools.weather.server, tools.garbage.server, tools.hanging.server];
    const chatDir = mkdtempSync(path.join(tmpdir(), 'qi-bot-chat-'));
    await makeTinyDecoder(chatDir, { maxPositions: 1024 });
    const botFile = path.join(mkdtempSync(path.join(tmpdir(), 'qi-bot-')), 'chatbot.json');
    writeFileSync(
      botFile,
      JSON.stringify({
        tenants: {
          acme: {
            embedding_model: 'use-lite',
            chat_model: 'tiny-chat',
            intent_threshold: 0.45,
            knowledge_threshold: 0.3,
            history_turns: 2,
            max_tokens: 16,
            intents: [
              {
                name: 'weather',
                examples: ["What's the weather in Paris?", 'Will it rain in London tomorrow?', 'How hot is it in Berlin today?', 'Is it sunny in Rome?', '今天北京天气怎么样?', '明天上海会下雨吗?', '广州天气如何?'],
                slots: { city: '(?:in|for) ([A-Z][a-zA-Z]+)|(北京|上海|广州|深圳)', day: '(today|tomorrow|今天|明天)' },
                tool: 'weather',
                reply: 'Weather in {city}: {result.summary}, {result.temp_c}°C.',
              },
              {
                name: 'order_status',
                examples: ['Where is my order?', 'Track my package please', 'What is the status of order 12345?', '我的订单到哪里了?', '查一下我的订单状态'],
                slots: { order_id: '(\\d{4,})' },
                tool: 'orders',
                reply: 'Order {order_id}: {result.status}',
              },
              { name: 'stock', examples: ['What is the stock price of ACME?', 'How much is a share of Globex?'], slots: { symbol: '(ACME|Globex)' }, tool: 'stocks' },
              { name: 'greeting', examples: ['hello', 'hi there', 'good morning'], reply: 'Hello! How can I help you today?' },
              { name: 'manual', examples: ['What does the manual say about resetting the device?', 'How do I reset the device?'], knowledge: true },
            ],
            tools: [
              { name: 'weather', url: `${tools.weather.url}/weather?city={city}&day={day}`, required_slots: ['city'], timeout_ms: 2000 },
              { name: 'orders', url: `${tools.garbage.url}/orders/{order_id}`, required_slots: ['order_id'], timeout_ms: 2000, retries: 0 },
              { name: 'stocks', url: `${tools.hanging.url}/quote/{symbol}`, required_slots: ['symbol'], timeout_ms: 300, retries: 0, breaker_failures: 2, breaker_reset_ms: 60_000 },
            ],
          },
        },
      }),
    );
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel(), { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: chatDir, threads: 1 }]),
      env: { CHATBOT_CONFIG: botFile },
    });
    inspect = new Redis(redis.url);
  });

  after(async () => {
    inspect?.disconnect();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await svc?.stop();
    await redis?.cleanup();
  });

  const turn = (body: Record<string, unknown>, key = KEYS.acme) => postJson(svc.baseUrl, '/v1/chatbot', { user_id: 'u1', ...body }, authHeaders(key));

  test('an English weather question: intent by embedding, tool called, templated reply', async () => {
    const r = await turn({ message: 'What is the weather like in Paris today?', session_id: 's-weather' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.intent, 'weather');
    assert.ok(r.json.confidence >= 0.45);
    assert.equal(r.json.metadata.classified_by, 'embedding');
    assert.equal(r.json.tool_calls[0].ok, true);
    assert.equal(r.json.reply, 'Weather in Paris: sunny in Paris, 21°C.');
    assert.equal(r.json.session_id, 's-weather');
    assert.ok(r.headers.get('x-job-id')?.startsWith('chatbot.default~'));
  });

  test('a follow-up ("and tomorrow?") reuses the intent and the city from the dialogue state', async () => {
    const r = await turn({ message: 'and tomorrow?', session_id: 's-weather' });
    assert.equal(r.json.intent, 'weather');
    assert.equal(r.json.metadata.follow_up, true);
    assert.equal(r.json.reply, 'Weather in Paris: sunny in Paris, 24°C.');
    const last = tools.weatherCalls.at(-1)!;
    assert.equal(last.searchParams.get('city'), 'Paris');
    assert.equal(last.searchParams.get('day'), 'tomorrow');
  });

  test('Chinese messages are classified too (character n-grams) and fill their slots', async () => {
    const w = await turn({ message: '今天北京天气怎么样?', session_id: 's-zh' });
    assert.equal(w.json.intent, 'weather');
    assert.equal(w.json.metadata.classified_by, 'char-ngrams');
    assert.match(w.json.reply, /Weather in 北京/);
    const o = await turn({ message: '我的订单到哪里了?', session_id: 's-zh-2' });
    assert.equal(o.json.intent, 'order_status');
    assert.equal(o.json.reply, 'Which order_id do you mean?', 'asks for the missing slot instead of calling the tool');
    assert.equal(o.json.tool_calls.length, 0);
  });

  test('a tool that answers garbage: the reply degrades and says so', async () => {
    const r = await turn({ message: 'What is the status of order 98765?', session_id: 's-order' });
    assert.equal(r.json.intent, 'order_status');
    assert.equal(r.json.tool_calls[0].ok, false);
    assert.match(r.json.tool_calls[0].error, /not a JSON object/);
    assert.equal(r.json.metadata.degraded, true);
    assert.match(r.json.reply, /could not reach the orders service/);
  });

  test('a tool that hangs: it times out in bounded time, and after repeated failures the circuit opens', async () => {
    const started = Date.now();
    const a = await turn({ message: 'What is the stock price of ACME?', session_id: 's-stock' });
    assert.equal(a.json.intent, 'stock');
    assert.match(a.json.tool_calls[0].error, /timed out after 300 ms/);
    assert.ok(Date.now() - started < 5000);
    await turn({ message: 'What is the stock price of ACME?', session_id: 's-stock' });
    const c = await turn({ message: 'What is the stock price of ACME?', session_id: 's-stock' });
    assert.match(c.json.tool_calls[0].error, /circuit open/);
    // At once: without waiting out the tool's 300 ms timeout, as a call to the hanging tool would.
    assert.ok(c.json.tool_calls[0].ms < 300, `an open circuit fails at once (${c.json.tool_calls[0].ms} ms)`);
  });

  test('a knowledge question with no knowledge base answers "I don\'t know" instead of inventing', async () => {
    const r = await turn({ message: 'How do I reset the device?', session_id: 's-kb' });
    assert.equal(r.json.intent, 'manual');
    assert.deepEqual(r.json.sources, []);
    assert.match(r.json.reply, /I don't know/);
  });

  const documentReady = (id: string) => waitDocumentReady(svc.baseUrl, id);

  test('a knowledge question over an uploaded document: the best chunk comes back as a source, with page and score', async () => {
    const doc = await uploadDocument(svc.baseUrl, 'Device manual.\n\nTo reset the device, hold the power button for ten seconds until the light blinks twice.\n\nThe battery lasts about two days.', {
      collection: 'manual',
      filename: 'manual.txt',
    });
    assert.equal(doc.status, 202, JSON.stringify(doc.json));
    await documentReady(doc.json.id);
    const r = await turn({ message: 'How do I reset the device?', session_id: 's-kb-2', collection: 'manual' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.intent, 'manual');
    assert.ok(r.json.sources.length >= 1, JSON.stringify(r.json));
    assert.match(r.json.sources[0].text, /hold the power button/);
    assert.equal(r.json.sources[0].document_id, doc.json.id);
    assert.equal(r.json.sources[0].page, 1);
    assert.ok(r.json.sources[0].score >= 0.3);
    assert.equal(r.json.metadata.model, 'tiny-chat', 'the answer is generated from the retrieved chunks');
  });

  test('the worker counts chatbot and document-pipeline jobs in its job metrics, as it counts model jobs', async () => {
    const r = await turn({ message: 'What is the weather like in Paris today?', session_id: 's-metrics' });
    assert.equal(r.status, 200, r.text);
    const doc = await uploadDocument(svc.baseUrl, 'Counted document.\n\nEvery stage of its ingestion is a job of its own.', { collection: 'counted', filename: 'counted.txt' });
    assert.equal(doc.status, 202, JSON.stringify(doc.json));
    await documentReady(doc.json.id);
    // A sample of `name` whose labels include every one of `labels`, in whatever order the exposition lists them.
    const sample = (text: string, name: string, labels: Record<string, string>) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)))[0];
    const queues = ['chatbot.default', 'documents.ingest', 'documents.parse', 'documents.chunk', 'documents.embed', 'documents.index'];
    // BullMQ reports a job completed just after its outcome went out, so the count may lag the answer.
    const text = await waitFor('every queue counted a completed job', async () => {
      const t = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
      return queues.every((queue) => (sample(t, 'worker_jobs_finished_total', { queue, outcome: 'completed' }) ?? 0) >= 1) ? t : undefined;
    }, 30_000);
    assert.ok((sample(text, 'request_run_seconds_count', { queue: 'chatbot.default', model: 'chatbot' }) ?? 0) >= 1);
    assert.ok((sample(text, 'request_queue_time_seconds_count', { queue: 'documents.parse', model: 'use-lite' }) ?? 0) >= 1);
  });

  test('small talk below every threshold goes to the chat model', async () => {
    const r = await turn({ message: 'Tell me something about volcanoes and their eruptions', session_id: 's-free' });
    assert.equal(r.json.intent, 'fallback');
    assert.equal(r.json.metadata.model, 'tiny-chat');
    assert.ok(r.json.metadata.usage.completion_tokens > 0);
  });

  test('stream: true sends the reply as server-sent tokens, then the result', async () => {
    const res = await fetch(`${svc.baseUrl}/v1/chatbot`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ user_id: 'u1', message: 'hello', stream: true }) });
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const parsed = events.slice(0, -1).map((e) => JSON.parse(e));
    const text = parsed.filter((e) => e.type === 'token').map((e) => e.text).join('');
    const result = parsed.find((e) => e.type === 'result');
    assert.equal(result.intent, 'greeting');
    assert.equal(text, result.reply);
    assert.equal(text, 'Hello! How can I help you today?');
  });

  test('dialogue state is bounded and expires', async () => {
    for (let i = 0; i < 4; i++) await turn({ message: 'hello', session_id: 's-bound' });
    const key = `${svc.prefix}:dialogue:acme:u1:s-bound`;
    const state = JSON.parse((await inspect.get(key))!);
    assert.equal(state.history.length, 4, 'history_turns 2 → 4 messages');
    assert.ok((await inspect.ttl(key)) > 0);
    assert.equal(state.last_intent, 'greeting');
  });

  test('bad input and other tenants: 400s and 404', async () => {
    assert.equal((await turn({ message: '' })).status, 400);
    assert.equal((await postJson(svc.baseUrl, '/v1/chatbot', { message: 'hi' })).status, 400);
    assert.equal((await turn({ message: 'hi', extra: 1 })).status, 400);
    const other = await turn({ message: 'hello' }, KEYS.globex);
    assert.equal(other.status, 404);
    assert.equal(other.json.error.code, 'chatbot_not_configured');
  });
});
