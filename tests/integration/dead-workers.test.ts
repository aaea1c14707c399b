import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Socket } from 'socket.io-client';
import { parseEntry, tokenStreamKey, type StreamEntry } from '../../shared/streams/token-stream.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { exitOf, socketClient, startFakeUpstream } from '../helpers/ops.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { authHeaders, postJson, startService, waitFor, writeModelsConfig, type ProcessHandle, type ServiceHandle } from '../helpers/service.js';

/**
 * Dead workers and streams (docs/RELIABILITY.md, "Dead workers and streams"), with real API and
 * worker processes, a real Redis, and SIGKILL: SSE streams are never silent (keep-alive
 * comments); a chat job whose worker dies before its first token is run again by another worker
 * and its client gets the answer; one whose worker dies after streaming text, or that has no
 * other worker to go to, ends within seconds as `worker_lost` (503 / SSE error event / Socket.IO
 * `failed`), and is never generated twice. Lock, stalled-check and heartbeat settings are the
 * defaults, so the times printed are the ones a deployment gets.
 *
 * The chat models are a fake OpenAI-compatible upstream on loopback (tests/helpers/ops.ts):
 * `slow-chat` streams a token every 200 ms; `gated-chat` is held before its first token while the
 * test says so, which makes a job that is running and has produced nothing yet.
 */
const messages = [{ role: 'user', content: 'hi' }];
/** Well before BullMQ's default stall path (30 s lock + 30 s check, the old ~62 s) and generous for a loaded CI machine. */
const LEARN_BOUND_MS = 30_000;

interface SseItem {
  at: number;
  comment?: string;
  data?: any;
  done?: boolean;
}

/** Reads an SSE response item by item (comments included), with arrival times; `onItem` may act (kill a worker) mid-stream. */
async function readSseTimed(res: Response, onItem: (item: SseItem, items: SseItem[]) => void = () => {}): Promise<SseItem[]> {
  const items: SseItem[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(part, { stream: true });
    let i: number;
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const at = Date.now();
      const item: SseItem = block.startsWith(':') ? { at, comment: block.slice(1).trim() } : block === 'data: [DONE]' ? { at, done: true } : { at, data: JSON.parse(block.slice(6)) };
      items.push(item);
      onItem(item, items);
    }
  }
  return items;
}

describe('dead workers and streams: keep-alives, retry before the first token, worker_lost after it', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let upstream: Awaited<ReturnType<typeof startFakeUpstream>>;
  let svc: ServiceHandle;
  let inspect: Redis;
  const sockets: Socket[] = [];
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    redis = await startPrivateRedis();
    upstream = await startFakeUpstream();
    const config = writeModelsConfig([
      { id: 'slow-chat', task: 'chat', format: 'openai-upstream', base_url: upstream.baseUrl, upstream_model: 'slow-200', timeout_ms: 60_000 },
      { id: 'gated-chat', task: 'chat', format: 'openai-upstream', base_url: upstream.baseUrl, upstream_model: 'gate-20', timeout_ms: 60_000 },
    ]);
    // A chatbot whose embedding model no worker here serves: its jobs stay queued, which is what the keep-alive test needs.
    const botFile = path.join(mkdtempSync(path.join(tmpdir(), 'qi-dead-bot-')), 'chatbot.json');
    writeFileSync(botFile, JSON.stringify({ tenants: { acme: { embedding_model: 'use-lite', chat_model: 'slow-chat', intents: [{ name: 'greeting', examples: ['hello'], reply: 'Hello!' }] } } }));
    // No worker yet: each test starts the workers it needs, so it knows which one holds its jobs.
    svc = await startService({ redisUrl: redis.url, modelsConfig: config, workers: 0, waitReady: false, env: { SSE_KEEPALIVE_MS: '200', CHATBOT_CONFIG: botFile } });
    inspect = new Redis(redis.url);
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    inspect?.disconnect();
    await upstream?.close();
    await svc?.stop();
    await redis?.cleanup();
  });

  const getJob = async (id: string) => (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as any;
  const waitStatus = (id: string, status: string, timeoutMs = 45_000) =>
    waitFor(`job ${id} ${status}`, async () => {
      const j = await getJob(id);
      return j.status === status ? j : undefined;
    }, timeoutMs, () => svc.workers.map((w) => w.output().slice(-1500)).join('\n---\n'));
  const streamEntries = async (jobId: string): Promise<StreamEntry[]> =>
    (await inspect.xrange(tokenStreamKey(svc.prefix, jobId), '-', '+')).map(([, f]) => parseEntry(f[1]!)!);
  /** A stream holds each token index once, in order, then exactly one end entry, and nothing after it. */
  const assertStreamWhole = (entries: StreamEntry[]) => {
    const tokens = entries.filter((e) => e.kind === 'token');
    assert.deepEqual(tokens.map((t) => t.i), tokens.map((_, i) => i), 'each token index once, in order');
    assert.equal(entries.filter((e) => e.kind === 'end').length, 1, 'one end entry');
    assert.equal(entries.at(-1)?.kind, 'end', 'nothing after the end');
  };
  const kill = async (w: ProcessHandle) => {
    const exited = exitOf(w);
    w.child.kill('SIGKILL');
    await exited;
  };

  test('SSE streams get keep-alive comments while their job waits (chat completions and the chatbot)', { timeout: 30_000 }, async () => {
    for (const [route, body] of [
      ['/v1/chat/completions', { model: 'gated-chat', messages, max_tokens: 4, stream: true }],
      ['/v1/chatbot', { user_id: 'u1', message: 'hello', stream: true }],
    ] as const) {
      // No worker consumes these queues: the job stays queued, and only keep-alives can flow.
      const ac = new AbortController();
      const res = await fetch(`${svc.baseUrl}${route}`, { method: 'POST', headers: authHeaders(), body: JSON.stringify(body), signal: ac.signal });
      assert.equal(res.status, 200, route);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      const comments: SseItem[] = [];
      await readSseTimed(res, (item) => {
        if (item.comment !== undefined) comments.push(item);
        assert.equal(item.data, undefined, 'nothing but comments while the job is queued');
        if (comments.length === 3) ac.abort();
      }).catch((err) => {
        if ((err as Error).name !== 'AbortError') throw err;
      });
      assert.equal(comments.length, 3, route);
      assert.ok(comments.every((c) => c.comment === 'keep-alive'));
      const jobId = res.headers.get('x-job-id');
      // The client went away: its queued job is cancelled, not left behind.
      if (jobId) await waitStatus(jobId, 'cancelled', 10_000);
    }
  });

  test('a streamed chat whose worker is SIGKILLed after 5 chunks ends with an error event `worker_lost` within seconds; the job is never generated twice', { timeout: 90_000 }, async () => {
    const worker = await svc.startWorker();
    const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'slow-chat', messages, max_tokens: 150, stream: true }),
    });
    assert.equal(res.status, 200);
    const jobId = res.headers.get('x-job-id')!;
    assert.ok(jobId);
    let killedAt = 0;
    const items = await readSseTimed(res, (item, all) => {
      const content = all.filter((i) => i.data?.choices?.[0]?.delta?.content);
      if (!killedAt && content.length === 5) {
        killedAt = Date.now();
        worker.child.kill('SIGKILL');
      }
    });
    assert.ok(killedAt > 0, 'five chunks arrived before the kill');
    const errorItem = items.find((i) => i.data?.error);
    assert.ok(errorItem, `an error event arrived: ${JSON.stringify(items.slice(-3))}`);
    const learnMs = errorItem.at - killedAt;
    console.log(`DEAD-WORKER sse_stream_learned_ms=${learnMs}`);
    assert.deepEqual(validError(errorItem.data), [], 'OpenAI\'s error shape');
    assert.equal(errorItem.data.error.code, 'worker_lost');
    assert.equal(errorItem.data.error.type, 'service_unavailable');
    assert.match(errorItem.data.error.message, /after streaming \d+ tokens/);
    assert.ok(learnMs < LEARN_BOUND_MS, `learned of the dead worker after ${learnMs} ms`);
    assert.equal(items.at(-1)?.done, true, 'the stream ends after the error event');
    assert.ok(items.slice(items.indexOf(errorItem) + 1).every((i) => i.done), 'nothing but [DONE] after the error');
    // The silence between the last token and the error was filled with keep-alives.
    assert.ok(items.some((i) => i.comment === 'keep-alive' && i.at > killedAt), 'keep-alives while the worker was dead');
    const chunks = items.filter((i) => i.data?.choices?.[0]?.delta?.content).length;
    assert.ok(chunks >= 5 && chunks < 150);

    // A new worker finds the dead worker's job stalled, takes it again, and fails it without generating.
    const replacement = await svc.startWorker();
    const view = await waitStatus(jobId, 'failed');
    assert.equal(view.error.code, 'worker_lost');
    const entries = await streamEntries(jobId);
    assertStreamWhole(entries);
    assert.equal(entries.filter((e) => e.kind === 'token').length, chunks, 'the stream holds exactly what the client got');
    await replacement.stop();
  });

  test('Socket.IO: a subscriber of a chat job whose worker dies mid-stream gets `failed` with worker_lost', { timeout: 90_000 }, async () => {
    const worker = await svc.startWorker();
    const s = await socketClient(svc.baseUrl);
    sockets.push(s);
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'slow-chat', messages, max_tokens: 150 });
    assert.equal(r.status, 202, r.text);
    const id = r.json.id as string;
    let tokens = 0;
    let killedAt = 0;
    s.on('token', (e: { id: string }) => {
      if (e.id !== id) return;
      tokens++;
      if (tokens === 3 && !killedAt) {
        killedAt = Date.now();
        worker.child.kill('SIGKILL');
      }
    });
    const failed = new Promise<any>((resolve) => s.on('failed', (e: { id: string }) => e.id === id && resolve(e)));
    const completed = new Promise<any>((resolve) => s.on('completed', (e: { id: string }) => e.id === id && resolve(e)));
    assert.equal((await s.timeout(5000).emitWithAck('subscribe', id)).ok, true);
    const e = await Promise.race([failed, completed, new Promise((_, rej) => setTimeout(() => rej(new Error('no outcome event')), 60_000))]);
    const learnMs = Date.now() - killedAt;
    console.log(`DEAD-WORKER socketio_learned_ms=${learnMs}`);
    assert.ok(killedAt > 0);
    assert.equal(e.status, 'failed');
    assert.equal(e.error.code, 'worker_lost');
    assert.ok(learnMs < LEARN_BOUND_MS, `learned of the dead worker after ${learnMs} ms`);
    // Once a worker runs again the job's record agrees with what the subscriber heard.
    const replacement = await svc.startWorker();
    const view = await waitStatus(id, 'failed');
    assert.equal(view.error.code, 'worker_lost');
    assertStreamWhole(await streamEntries(id));
    await replacement.stop();
  });

  test('non-streamed chats whose only worker dies before their first token get 503 worker_lost within seconds, and are not run later', { timeout: 90_000 }, async () => {
    upstream.hold(true);
    try {
      const worker = await svc.startWorker();
      // Seven, as in the finding that this answers (seven concurrent chats got 500 after 62 s).
      const answers = Array.from({ length: 7 }, () => postJson(svc.baseUrl, '/v1/chat/completions', { model: 'gated-chat', messages, max_tokens: 8 }));
      // All seven are running, and held before their first token.
      await waitFor('seven generations held', async () => (upstream.held() === 7 ? true : undefined), 30_000, () => worker.output().slice(-2000));
      const killedAt = Date.now();
      await kill(worker);
      const results = await Promise.all(answers);
      const learnMs = Date.now() - killedAt;
      console.log(`DEAD-WORKER sync_no_other_worker_learned_ms=${learnMs}`);
      assert.ok(learnMs < LEARN_BOUND_MS, `learned of the dead worker after ${learnMs} ms`);
      for (const r of results) {
        assert.equal(r.status, 503, r.text);
        assert.deepEqual(validError(r.json), [], 'OpenAI\'s error shape');
        assert.equal(r.json.error.code, 'worker_lost');
        assert.equal(r.json.error.type, 'service_unavailable');
        assert.equal(r.json.error.param, null);
        assert.match(r.json.error.message, /before it produced any text, and no other worker serves its queue/);
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
      }
      // A worker that starts later takes the jobs up as stalled and fails them: their clients were told already.
      upstream.hold(false);
      const replacement = await svc.startWorker();
      for (const r of results) {
        const id = r.headers.get('x-job-id')!;
        const view = await waitStatus(id, 'failed');
        assert.equal(view.error.code, 'worker_lost');
        assert.deepEqual(await streamEntries(id).then((e) => e.map((x) => x.kind)), ['end'], 'no token was ever generated');
      }
      await replacement.stop();
    } finally {
      upstream.hold(false);
    }
  });

  test('non-streamed chats whose worker dies before their first token are run again by another worker and answered', { timeout: 120_000 }, async () => {
    upstream.hold(true);
    try {
      const first = await svc.startWorker();
      const answers = Array.from({ length: 7 }, (_, i) => postJson(svc.baseUrl, '/v1/chat/completions', { model: 'gated-chat', messages, max_tokens: 8 + i }));
      await waitFor('seven generations held', async () => (upstream.held() === 7 ? true : undefined), 30_000, () => first.output().slice(-2000));
      const second = await svc.startWorker();
      const killedAt = Date.now();
      await kill(first);
      upstream.hold(false);
      const results = await Promise.all(answers);
      const answeredMs = Date.now() - killedAt;
      console.log(`DEAD-WORKER sync_retried_answered_ms=${answeredMs}`);
      for (const [i, r] of results.entries()) {
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.choices[0].finish_reason, 'length');
        assert.equal(r.json.usage.completion_tokens, 8 + i);
        const id = r.headers.get('x-job-id')!;
        // The retried run wrote the stream from scratch: no token twice, and it is the answer the client got.
        const entries = await streamEntries(id);
        assertStreamWhole(entries);
        assert.equal(entries.filter((e) => e.kind === 'token').map((e) => (e as { text: string }).text).join(''), r.json.choices[0].message.content);
        await waitStatus(id, 'completed', 10_000);
      }
      await second.stop();
    } finally {
      upstream.hold(false);
    }
  });

  test('a worker shutting down hands a chat job that has streamed nothing back to the queue, and another worker answers it', { timeout: 90_000 }, async () => {
    upstream.hold(true);
    try {
      // A short grace period: the held job outlasts it, so the worker must hand it back or fail it.
      const leaving = await svc.startWorker({ SHUTDOWN_GRACE_MS: '2000' });
      const answer = postJson(svc.baseUrl, '/v1/chat/completions', { model: 'gated-chat', messages, max_tokens: 6 });
      await waitFor('generation held', async () => (upstream.held() === 1 ? true : undefined), 30_000, () => leaving.output().slice(-2000));
      const staying = await svc.startWorker();
      const exited = exitOf(leaving);
      leaving.child.kill('SIGTERM');
      assert.equal((await exited).code, 143);
      assert.match(leaving.output(), /job handed back to the queue/);
      upstream.hold(false);
      const r = await answer;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.completion_tokens, 6);
      assertStreamWhole(await streamEntries(r.headers.get('x-job-id')!));
      await staying.stop();
    } finally {
      upstream.hold(false);
    }
  });
});
