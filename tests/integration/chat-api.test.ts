import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { io as connect, type Socket } from 'socket.io-client';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { freePort } from '../../scripts/lib/redis-server.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const messages = [
  { role: 'system' as const, content: 'You are a test model.' },
  { role: 'user' as const, content: 'Say something.' },
];

describe('chat: OpenAI endpoint, SSE, token streams, cancellation, routing, upstream and fallback', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let upstreamRedis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let upstream: ServiceHandle;
  let hanging: Server;
  let client: OpenAI;
  const sockets: Socket[] = [];
  const validCompletion = openAiValidator('CreateChatCompletionResponse');
  const validChunk = openAiValidator('CreateChatCompletionStreamResponse');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-chat-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    const tiny = (id: string, extra: Record<string, unknown> = {}) => ({
      id, task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 200, default_max_tokens: 32, ...extra,
    });

    // A second instance of this very service plays the OpenAI-compatible upstream.
    upstreamRedis = await startPrivateRedis();
    upstream = await startService({ redisUrl: upstreamRedis.url, modelsConfig: writeModelsConfig([tiny('tiny-chat')]) });

    // An upstream that accepts connections and never answers.
    hanging = createServer(() => {});
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', () => r()));
    const closedPort = await freePort();

    redis = await startPrivateRedis();
    const config = writeModelsConfig([
      tiny('tiny-chat'),
      tiny('tiny-chat-2'),
      tiny('tiny-serial', { concurrency: 1 }),
      { id: 'via-upstream', task: 'chat', format: 'openai-upstream', base_url: `${upstream.baseUrl}/v1`, api_key_env: 'UPSTREAM_API_KEY', upstream_model: 'tiny-chat', timeout_ms: 10_000 },
      { id: 'broken-upstream', task: 'chat', format: 'openai-upstream', base_url: `http://127.0.0.1:${closedPort}/v1`, timeout_ms: 2000, fallback: 'tiny-chat' },
      { id: 'hanging-upstream', task: 'chat', format: 'openai-upstream', base_url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/v1`, timeout_ms: 500, fallback: 'tiny-chat' },
    ]);
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: config,
      env: { UPSTREAM_API_KEY: KEYS.acme, WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000' },
    });
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await upstream?.stop();
    hanging?.close();
    await redis?.cleanup();
    await upstreamRedis?.cleanup();
  });

  const socket = async () => {
    const s = connect(svc.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    return s;
  };
  const submitChat = async (body: Record<string, unknown>) => {
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, ...body });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return r.json.id as string;
  };
  const getJob = async (id: string) => (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as any;

  test('non-streaming completion through the official client, valid against OpenAI\'s schema; same seed, same text', async () => {
    const a = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 16, seed: 7 });
    assert.deepEqual(validCompletion(a), []);
    assert.equal(a.model, 'tiny-chat');
    assert.equal(a.choices[0]!.finish_reason, 'length');
    assert.equal(a.usage!.completion_tokens, 16);
    assert.ok(a.usage!.prompt_tokens > 5);
    assert.ok((a.choices[0]!.message.content ?? '').length > 0);
    const b = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 16, seed: 7 });
    assert.equal(b.choices[0]!.message.content, a.choices[0]!.message.content);
    const c = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 16, seed: 8 });
    assert.notEqual(c.choices[0]!.message.content, a.choices[0]!.message.content);
  });

  test('streaming with the official client: chunks match the schema, end with usage and [DONE], and equal the whole answer', async () => {
    const whole = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 24, seed: 11 });
    const stream = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 24, seed: 11, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, whole.choices[0]!.message.content);
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 24);
    assert.ok(chunks > 5, `tokens arrived as separate chunks (${chunks})`);
    const raw = await fetch(`${svc.baseUrl}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'tiny-chat', messages, max_tokens: 4, stream: true }) });
    assert.match(raw.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.match(await raw.text(), /data: \[DONE\]\n\n$/);
  });

  test('stop strings end generation with finish_reason stop and never appear in the text', async () => {
    const probe = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 40, temperature: 0 });
    const text = probe.choices[0]!.message.content ?? '';
    const stop = text.slice(10, 13);
    assert.ok(stop.trim().length > 0, 'the probe produced text to stop on');
    const r = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 40, temperature: 0, stop: [stop] });
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    const out = r.choices[0]!.message.content ?? '';
    assert.ok(!out.includes(stop));
    assert.ok(text.startsWith(out));
  });

  test('native chat job: Socket.IO gets every token in order, then completed with the full message', async () => {
    const s = await socket();
    const tokens: { index: number; text: string }[] = [];
    s.on('token', (e) => tokens.push(e));
    const done = new Promise<any>((resolve) => s.once('completed', resolve));
    const id = await submitChat({ max_tokens: 48, seed: 3 });
    assert.match(id, /^chat\.tiny-chat~/);
    assert.equal((await s.timeout(5000).emitWithAck('subscribe', id)).ok, true);
    const end = await done;
    assert.deepEqual(tokens.map((t) => t.index), Array.from({ length: tokens.length }, (_, i) => i));
    // Tokens whose text is not final yet (half a character) carry no event of their own.
    assert.ok(tokens.length > 0 && tokens.length <= end.result.usage.completion_tokens);
    assert.equal(tokens.map((t) => t.text).join(''), end.result.message.content);
    assert.equal(end.result.finish_reason, 'length');
    assert.ok(end.result.timings.ttft_ms >= 0);
    const view = await getJob(id);
    assert.equal(view.status, 'completed');
    assert.equal(view.result.message.content, end.result.message.content);
  });

  test('resumable streams: a client that reconnects with its last index gets each missing token exactly once', async () => {
    const id = await submitChat({ max_tokens: 150, seed: 5 });
    const first = await socket();
    const seen: { index: number; text: string }[] = [];
    await new Promise<void>((resolve) => {
      first.on('token', (e) => {
        seen.push(e);
        if (seen.length === 5) {
          first.disconnect();
          resolve();
        }
      });
      // We disconnect after five tokens, possibly before the ack: its rejection is expected.
      first.emitWithAck('subscribe', id).catch(() => {});
    });
    const second = await socket();
    const done = new Promise<any>((resolve) => second.once('completed', resolve));
    second.on('token', (e) => seen.push(e));
    await second.timeout(5000).emitWithAck('subscribe', { id, from: 5 });
    const end = await done;
    const indices = seen.map((t) => t.index);
    assert.deepEqual(indices, Array.from({ length: indices.length }, (_, i) => i), 'no gap, no duplicate');
    assert.ok(indices.length > 5);
    assert.equal(seen.map((t) => t.text).join(''), end.result.message.content);
    // After the end, a late subscriber gets the whole sequence.
    const late = await socket();
    const lateTokens: number[] = [];
    late.on('token', (e) => lateTokens.push(e.index));
    const lateEnd = new Promise<any>((resolve) => late.once('completed', resolve));
    await late.emitWithAck('subscribe', { id, from: 0 });
    await lateEnd;
    assert.deepEqual(lateTokens, indices);
  });

  test('an API replica that dies mid-stream loses nothing: the client resumes on another replica, each token once', async () => {
    const replicaA = await svc.startApi();
    const replicaB = await svc.startApi();
    const id = await submitChat({ model: 'tiny-serial', max_tokens: 200, seed: 9 });
    const onA = connect(replicaA.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false });
    sockets.push(onA);
    const seen: number[] = [];
    const texts: string[] = [];
    await new Promise<void>((resolve) => {
      onA.on('token', (e) => {
        seen.push(e.index);
        texts.push(e.text);
        if (seen.length === 3) {
          replicaA.child.kill('SIGKILL');
          resolve();
        }
      });
      onA.on('connect', () => onA.emitWithAck('subscribe', id).catch(() => {}));
    });
    await new Promise<void>((resolve) => onA.once('disconnect', () => resolve()));
    const onB = connect(replicaB.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false });
    sockets.push(onB);
    const done = new Promise<any>((resolve) => onB.once('completed', resolve));
    onB.on('token', (e) => {
      seen.push(e.index);
      texts.push(e.text);
    });
    await new Promise<void>((resolve) => onB.once('connect', () => resolve()));
    await onB.timeout(5000).emitWithAck('subscribe', { id, from: (seen.at(-1) ?? -1) + 1 });
    const end = await done;
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => i), 'every index once, in order');
    assert.equal(texts.join(''), end.result.message.content);
  });

  test('DELETE stops generation within a step: the job ends cancelled and subscribers hear it', async () => {
    const s = await socket();
    const id = await submitChat({ max_tokens: 200, seed: 1 });
    let tokens = 0;
    s.on('token', () => tokens++);
    const failed = new Promise<any>((resolve) => s.once('failed', resolve));
    await s.emitWithAck('subscribe', id);
    await waitFor('some tokens', async () => (tokens >= 3 ? true : undefined), 20_000);
    const c = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(((await c.json()) as any).status, 'cancelled');
    const e = await failed;
    assert.equal(e.status, 'cancelled');
    assert.ok(tokens < 200);
  });

  test('an SSE client that closes its connection cancels its job', async () => {
    const ac = new AbortController();
    const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'tiny-chat', messages, max_tokens: 200, stream: true }),
      signal: ac.signal,
    });
    const jobId = res.headers.get('x-job-id')!;
    assert.ok(jobId);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    const view = await waitFor('job cancelled', async () => {
      const j = await getJob(jobId);
      return j.status === 'cancelled' ? j : undefined;
    }, 10_000);
    assert.equal(view.status, 'cancelled');
  });

  test('routing: each chat model has its own queue', async () => {
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat-2', messages, max_tokens: 4 });
    assert.match(r.json.id, /^chat\.tiny-chat-2~/);
    const done = await waitFor('done', async () => {
      const j = await getJob(r.json.id);
      return j.status === 'completed' ? j : undefined;
    });
    assert.equal(done.result.model, 'tiny-chat-2');
  });

  test('priorities: an interactive request overtakes queued batch jobs on a busy model', async () => {
    const batch: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-serial', messages, max_tokens: 60, priority: 10 });
      batch.push(r.json.id);
    }
    const urgent = await client.chat.completions.create({ model: 'tiny-serial', messages, max_tokens: 4 });
    assert.equal(urgent.choices[0]!.finish_reason, 'length');
    const states = await Promise.all(batch.map(async (id) => (await getJob(id)).status));
    assert.ok(states.filter((s) => s === 'queued').length >= 3, `batch jobs still waiting when the urgent one finished: ${states}`);
    for (const id of batch) await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers: authHeaders() });
  });

  test('an OpenAI-compatible upstream (a second instance of this service) streams through the same token events', async () => {
    const local = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 12, seed: 21 });
    const viaUpstream = await client.chat.completions.create({ model: 'via-upstream', messages, max_tokens: 12, seed: 21 });
    assert.equal(viaUpstream.model, 'via-upstream');
    assert.equal(viaUpstream.choices[0]!.message.content, local.choices[0]!.message.content);
    const stream = await client.chat.completions.create({ model: 'via-upstream', messages, max_tokens: 12, seed: 21, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, local.choices[0]!.message.content);
  });

  test('fallback: a failing or hanging upstream hands the request to its fallback model, and the answer says so', async () => {
    const broken = await client.chat.completions.create({ model: 'broken-upstream', messages, max_tokens: 6 });
    assert.equal(broken.model, 'tiny-chat');
    assert.equal(broken.choices[0]!.finish_reason, 'length');
    const started = Date.now();
    const hung = await client.chat.completions.create({ model: 'hanging-upstream', messages, max_tokens: 6 });
    assert.equal(hung.model, 'tiny-chat');
    assert.ok(Date.now() - started < 8000);
  });

  const bad: [string, Record<string, unknown>, number, RegExp][] = [
    ['unknown model', { model: 'gpt-17', messages }, 404, /gpt-17/],
    ['empty messages', { model: 'tiny-chat', messages: [] }, 400, /at least one message/],
    ['a bad role', { model: 'tiny-chat', messages: [{ role: 'wizard', content: 'hi' }] }, 400, /role/],
    ['no user message', { model: 'tiny-chat', messages: [{ role: 'system', content: 'hi' }] }, 400, /role 'user'/],
    ['max_tokens above the limit', { model: 'tiny-chat', messages, max_tokens: 5000 }, 400, /at most 200/],
    ['n above 8', { model: 'tiny-chat', messages, n: 9 }, 400, /'n'/],
    ['a prompt longer than the context', { model: 'tiny-chat', messages: [{ role: 'user', content: 'word '.repeat(400) }], max_tokens: 8 }, 400, /context/],
    ['unknown fields', { model: 'tiny-chat', messages, tools: [] }, 400, /tools|Unrecognized/i],
    ['a non-text content part', { model: 'tiny-chat', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400, /content/],
    ['temperature out of range', { model: 'tiny-chat', messages, temperature: 9 }, 400, /temperature/],
  ];
  for (const [name, body, status, message] of bad) {
    test(`bad chat request: ${name} → ${status}`, async () => {
      for (const stream of [false, true]) {
        const r = await postJson(svc.baseUrl, '/v1/chat/completions', { ...body, stream });
        assert.equal(r.status, status, `${stream ? 'stream' : 'plain'}: ${r.text.slice(0, 300)}`);
        assert.deepEqual(validError(r.json), []);
        assert.match(r.json.error.message, message);
      }
    });
  }

  test('a worker killed mid-generation: the job fails cleanly (not stuck active) and subscribers learn it', async () => {
    const victim = svc.workers[0]!;
    const s = await socket();
    const id = await submitChat({ model: 'tiny-serial', max_tokens: 200 });
    let tokens = 0;
    s.on('token', () => tokens++);
    const failed = new Promise<any>((resolve) => s.once('failed', resolve));
    await s.emitWithAck('subscribe', id);
    await waitFor('tokens flowing', async () => (tokens >= 2 ? true : undefined), 20_000);
    assert.equal((await getJob(id)).status, 'active');
    victim.child.kill('SIGKILL');
    // The API sees the job's heartbeat lapse and ends its stream (worker_lost); the replacement
    // worker's stalled-job check then takes the job up and fails it without generating again.
    const replacement = await svc.startWorker();
    const e = await Promise.race([failed, new Promise((_, rej) => setTimeout(() => rej(new Error('no failed event')), 20_000))]);
    assert.equal((e as any).status, 'failed');
    assert.equal((e as any).error.code, 'worker_lost');
    const view = await waitFor('job failed', async () => {
      const j = await getJob(id);
      return j.status === 'failed' ? j : undefined;
    }, 30_000);
    assert.equal(view.error.code, 'worker_lost');
    // And the service goes on serving.
    const after = await client.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 3 });
    assert.equal(after.choices[0]!.finish_reason, 'length');
    assert.equal(replacement.child.exitCode, null);
  });
});
