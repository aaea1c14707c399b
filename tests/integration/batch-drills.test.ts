import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import OpenAI, { toFile } from 'openai';
import { freePort, startRedisServer, type RedisServerHandle } from '../../scripts/lib/redis-server.js';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { FILE_CONTENT, FileStore } from '../../shared/files/file-store.js';
import { queueNameFor } from '../../shared/models/model-registry.js';
import { BlobStore } from '../../shared/storage/blob-store.js';
import { exitOf } from '../helpers/ops.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * The Batch API at size and under failure, with the official openai client only: 2,000 mixed lines
 * (embeddings, chat, broken ones) through to their output and error files, with the batch's usage
 * and the per-tenant metrics; a worker SIGKILLed and Redis crashed and restarted during running
 * batches. Whatever happens, every line of a batch is answered exactly once across its output and
 * error files, and the batch reaches `completed`.
 */

type Endpoint = '/v1/embeddings' | '/v1/chat/completions';
type OutLine = { id: string; custom_id: string | null; response: { status_code: number; request_id: string | null; body: any } | null; error: { code: string; message: string } | null };
/** One line of an input file and what each kind of batch must answer to it. */
interface Spec {
  text: string;
  custom_id: string | null;
  expect(endpoint: Endpoint): { ok: true } | { ok: false; code: string; status: number | null };
}

const validBatch = openAiValidator('Batch');
const validEmbedding = openAiValidator('CreateEmbeddingResponse');
const validCompletion = openAiValidator('CreateChatCompletionResponse');
const validError = openAiValidator('ErrorResponse');
const validResponse = openAiValidator('Response');

const line = (custom_id: string, url: string, body: unknown) => JSON.stringify({ custom_id, method: 'POST', url, body });
const urlMismatch = { ok: false as const, code: 'invalid_url', status: null };

/** An embedding line: one or two texts, or `texts` of them (more model work per line, for the drills). */
function embeddingLine(i: number, texts?: number): Spec {
  const input = texts
    ? Array.from({ length: texts }, (_, t) => `item ${i}.${t}: shipping delays, supplier costs and the quarterly plan`)
    : i % 3 === 0
      ? [`item ${i}: the quarterly figures`, `item ${i}: and the plan`]
      : `item ${i}: shipping delays and supplier costs`;
  return { custom_id: `emb-${i}`, text: line(`emb-${i}`, '/v1/embeddings', { model: 'use-lite', input }), expect: (e) => (e === '/v1/embeddings' ? { ok: true } : urlMismatch) };
}

function chatLine(i: number, maxTokens = 3): Spec {
  const body = { model: 'tiny-chat', messages: [{ role: 'user', content: `question ${i}?` }], max_tokens: maxTokens, seed: i };
  return { custom_id: `chat-${i}`, text: line(`chat-${i}`, '/v1/chat/completions', body), expect: (e) => (e === '/v1/chat/completions' ? { ok: true } : urlMismatch) };
}

/** Six kinds of broken line, `i` picking the kind. */
function brokenLine(i: number): Spec {
  const id = `broken-${i}`;
  switch (i % 6) {
    case 0: // Not JSON: no custom_id can be read from it.
      return { custom_id: null, text: `{"custom_id": "${id}", "method": "POST", "url": `, expect: () => ({ ok: false, code: 'invalid_json', status: null }) };
    case 1:
      return {
        custom_id: id,
        text: line(id, '/v1/embeddings', { model: 'no-such-model', input: 'x' }),
        expect: (e) => (e === '/v1/embeddings' ? { ok: false, code: 'model_not_found', status: 404 } : urlMismatch),
      };
    case 2:
      return {
        custom_id: id,
        text: line(id, '/v1/chat/completions', { model: 'no-such-chat', messages: [{ role: 'user', content: 'x' }] }),
        expect: (e) => (e === '/v1/chat/completions' ? { ok: false, code: 'model_not_found', status: 404 } : urlMismatch),
      };
    case 3: // A body the endpoint refuses: no input.
      return { custom_id: id, text: line(id, '/v1/embeddings', { model: 'use-lite', input: [] }), expect: (e) => (e === '/v1/embeddings' ? { ok: false, code: 'invalid_request', status: 400 } : urlMismatch) };
    case 4: // A body the endpoint refuses: more tokens than the model allows.
      return {
        custom_id: id,
        text: line(id, '/v1/chat/completions', { model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], max_tokens: 100_000 }),
        expect: (e) => (e === '/v1/chat/completions' ? { ok: false, code: 'max_tokens_too_large', status: 400 } : urlMismatch),
      };
    default:
      return { custom_id: id, text: line(id, '/v1/completions', { model: 'tiny-chat', prompt: 'x' }), expect: () => urlMismatch };
  }
}

async function upload(client: OpenAI, specs: readonly Spec[]) {
  return client.files.create({ file: await toFile(Buffer.from(specs.map((s) => s.text).join('\n') + '\n'), 'batch.jsonl'), purpose: 'batch' });
}

async function contentLines(client: OpenAI, fileId: string | null | undefined): Promise<OutLine[]> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as OutLine);
}

/**
 * Polls a batch until `done`; answers that fail while the service is degraded (Redis down) are
 * retried. Every object read is checked against OpenAI's schema, and the counts and usage it shows
 * may only grow.
 */
async function follow(client: OpenAI, id: string, done: (b: OpenAI.Batches.Batch) => boolean, timeoutMs: number, seen: OpenAI.Batches.Batch[] = []) {
  let last: OpenAI.Batches.Batch | undefined;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.batches.retrieve(id).catch((err: { status?: number }) => {
      // 503 while Redis is down; no status at all while the connection is refused.
      if (err.status === 503 || err.status === undefined) return undefined;
      throw err;
    });
    if (b) {
      assert.deepEqual(validBatch(b), [], `the batch object matches OpenAI's schema: ${JSON.stringify(b)}`);
      if (last) {
        assert.ok(b.request_counts!.completed >= last.request_counts!.completed && b.request_counts!.failed >= last.request_counts!.failed, 'counts only grow');
        assert.ok(b.usage!.total_tokens >= last.usage!.total_tokens, 'usage only grows');
      }
      last = b;
      seen.push(b);
      if (done(b)) return b;
      if (['failed', 'expired', 'cancelled'].includes(b.status)) throw new Error(`batch ${id} ended ${b.status}: ${JSON.stringify(b)}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out following batch ${id}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every line of `specs` answered exactly once across the two files, as `endpoint` must answer it. */
async function checkAnswers(client: OpenAI, b: OpenAI.Batches.Batch, specs: readonly Spec[], opts: { tolerate?: (s: Spec, l: OutLine) => boolean } = {}) {
  const output = await contentLines(client, b.output_file_id);
  const errorsOut = await contentLines(client, b.error_file_id);
  const all = [...output, ...errorsOut];
  assert.equal(all.length, specs.length, 'one answer per line');
  assert.equal(new Set(all.map((l) => l.id)).size, all.length, 'each batch_req id once');
  const byCustomId = new Map<string, OutLine[]>();
  for (const l of all) if (l.custom_id !== null) byCustomId.set(l.custom_id, [...(byCustomId.get(l.custom_id) ?? []), l]);
  const named = specs.filter((s) => s.custom_id !== null);
  assert.equal(byCustomId.size, named.length, 'every custom_id answered');
  assert.deepEqual([...byCustomId].filter(([, ls]) => ls.length > 1).map(([id]) => id), [], 'no custom_id answered twice');
  assert.equal(all.filter((l) => l.custom_id === null).length, specs.length - named.length, 'the lines without a readable custom_id, once each');
  for (const l of output) {
    assert.equal(l.error, null);
    assert.equal(l.response?.status_code, 200);
  }
  for (const l of errorsOut) assert.ok(l.error?.code && l.error.message, `an error line says why: ${JSON.stringify(l)}`);
  const endpoint = b.endpoint as Endpoint;
  const inOutput = new Set(output.map((l) => l.custom_id));
  let tolerated = 0;
  for (const s of named) {
    const got = byCustomId.get(s.custom_id!)![0]!;
    const want = s.expect(endpoint);
    if (want.ok) {
      if (!inOutput.has(s.custom_id) && opts.tolerate?.(s, got)) {
        tolerated++;
        continue;
      }
      assert.ok(inOutput.has(s.custom_id), `${s.custom_id} answered in the output file: ${JSON.stringify(got)}`);
      const body = got.response!.body;
      if (endpoint === '/v1/embeddings') {
        assert.deepEqual(validEmbedding(body), [], JSON.stringify(got));
        assert.equal(body.data[0].embedding.length, 512);
      } else {
        assert.deepEqual(validCompletion(body), [], JSON.stringify(got));
        assert.equal(body.object, 'chat.completion');
      }
    } else {
      assert.ok(!inOutput.has(s.custom_id), `${s.custom_id} is an error line`);
      assert.equal(got.error!.code, want.code, `${s.custom_id}: ${JSON.stringify(got)}`);
      if (want.status === null) assert.equal(got.response, null, `${s.custom_id} was not a request of this batch`);
      else {
        assert.equal(got.response!.status_code, want.status, JSON.stringify(got));
        assert.deepEqual(validError(got.response!.body), [], JSON.stringify(got));
      }
    }
  }
  return { output, errorsOut, tolerated };
}

/** The files a batch wrote: one output and one error file at most, whatever crashed during finalization. */
async function checkNoStrayOutputs(client: OpenAI, b: OpenAI.Batches.Batch) {
  const mine: string[] = [];
  for await (const f of client.files.list({ purpose: 'batch_output' })) if (f.filename.startsWith(`${b.id}_`)) mine.push(f.id);
  assert.deepEqual(mine.sort(), [b.output_file_id, b.error_file_id].filter((x): x is string => !!x).sort(), 'exactly the files the batch names');
}

/** The sum of a Prometheus counter's series whose labels include `match`. */
function counterSum(metrics: string, name: string, match: Record<string, string>): number {
  let sum = 0;
  for (const row of metrics.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} ([0-9.e+-]+)$/.exec(row);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** The tokens an output file's bodies say they used. */
function bodyTokens(output: readonly OutLine[]): { input: number; output: number } {
  let input = 0;
  let out = 0;
  for (const l of output) {
    const u = l.response!.body.usage;
    input += u.prompt_tokens;
    out += u.completion_tokens ?? 0;
  }
  return { input, output: out };
}

async function tinyChatModel(maxPositions = 256) {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-batch-drill-chat-'));
  await makeTinyDecoder(dir, { maxPositions });
  return { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: dir, threads: 1, concurrency: 8, max_tokens_limit: 64, default_max_tokens: 8 };
}

describe('Batch API: 2,000 mixed lines with the openai SDK', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let acme: OpenAI;
  let dataDir: string;

  before(async () => {
    redis = await startPrivateRedis();
    dataDir = mkdtempSync(path.join(tmpdir(), 'qi-batch-drills-'));
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel(), await tinyChatModel()]),
      env: { DOCUMENTS_DIR: dataDir, BATCH_POLL_MS: '200', BATCH_LINES_IN_FLIGHT: '128', FILES_SWEEP_INTERVAL_MS: '300', LOG_LEVEL: 'warn' },
    });
    acme = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  test('one file of 2,000 lines run as an embeddings batch and as a chat batch: every custom_id once, the right answer, usage and metrics', { timeout: 600_000 }, async () => {
    // 1,740 embedding lines, 200 chat lines and 60 broken ones, interleaved.
    const specs: Spec[] = [];
    let emb = 0;
    let chat = 0;
    let broken = 0;
    for (let i = 0; i < 2000; i++) {
      if (i % 100 < 3) specs.push(brokenLine(broken++));
      else if (i % 20 === 7 || i % 20 === 13) specs.push(chatLine(chat++));
      else specs.push(embeddingLine(emb++));
    }
    assert.equal(specs.length, 2000);
    assert.deepEqual([emb, chat, broken], [1740, 200, 60]);
    const metricsBefore = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();

    const file = await upload(acme, specs);
    assert.equal(file.purpose, 'batch');
    // One input file may feed several batches; each answers every line for its own endpoint.
    const [embBatch, chatBatch] = await Promise.all(
      (['/v1/embeddings', '/v1/chat/completions'] as const).map((endpoint) => acme.batches.create({ input_file_id: file.id, endpoint, completion_window: '24h', metadata: { drill: 'mixed-2000' } })),
    );
    const seenEmb: OpenAI.Batches.Batch[] = [];
    const [embDone, chatDone] = await Promise.all([
      follow(acme, embBatch!.id, (b) => b.status === 'completed', 480_000, seenEmb),
      follow(acme, chatBatch!.id, (b) => b.status === 'completed', 480_000),
    ]);

    const embOk = specs.filter((s) => s.expect('/v1/embeddings').ok).length;
    const chatOk = specs.filter((s) => s.expect('/v1/chat/completions').ok).length;
    assert.equal(embOk, emb);
    assert.equal(chatOk, chat);
    for (const [done, ok] of [[embDone, embOk], [chatDone, chatOk]] as const) {
      assert.deepEqual(done.request_counts, { total: 2000, completed: ok, failed: 2000 - ok });
      assert.deepEqual(done.metadata, { drill: 'mixed-2000' });
    }
    const embAnswers = await checkAnswers(acme, embDone, specs);
    const chatAnswers = await checkAnswers(acme, chatDone, specs);
    assert.equal(embAnswers.output.length, emb);
    assert.equal(chatAnswers.output.length, chat);

    // Usage: what the output bodies say, summed once per line; filled while the lines run.
    const embTokens = bodyTokens(embAnswers.output);
    const chatTokens = bodyTokens(chatAnswers.output);
    assert.ok(embTokens.input > emb, 'every embedding line used tokens');
    assert.ok(chatTokens.output >= chat, 'every chat line generated a token at least');
    for (const [done, t] of [[embDone, embTokens], [chatDone, chatTokens]] as const) {
      assert.deepEqual(done.usage, { input_tokens: t.input, input_tokens_details: { cached_tokens: 0 }, output_tokens: t.output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: t.input + t.output });
    }
    for (const b of seenEmb) {
      // An embedding batch's completed lines all used tokens, so usage moves exactly when they do.
      assert.equal(b.usage!.input_tokens > 0, b.request_counts!.completed > 0, `usage follows the finished lines: ${JSON.stringify(b)}`);
    }

    // The worker's /metrics: lines and tokens by tenant, each line once.
    const metrics = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
    const delta = (name: string, match: Record<string, string>) => counterSum(metrics, name, match) - counterSum(metricsBefore, name, match);
    assert.equal(delta('batch_lines_finished_total', { tenant: 'acme' }), 4000, 'both batches, every line once');
    assert.equal(delta('batch_lines_finished_total', { tenant: 'acme', endpoint: '/v1/embeddings', outcome: 'completed' }), emb);
    assert.equal(delta('batch_lines_finished_total', { tenant: 'acme', endpoint: '/v1/chat/completions', outcome: 'completed' }), chat);
    assert.equal(delta('batch_tokens_total', { tenant: 'acme', kind: 'input' }), embTokens.input + chatTokens.input);
    assert.equal(delta('batch_tokens_total', { tenant: 'acme', kind: 'output' }), chatTokens.output);
    assert.equal(delta('batch_tokens_total', { tenant: 'acme', endpoint: '/v1/embeddings', kind: 'input' }), embTokens.input);
    assert.equal(counterSum(metrics, 'batch_tokens_total', { tenant: 'globex' }), 0, "another tenant's series do not move");
    console.log(`BATCH mixed-2000 ${JSON.stringify({ embeddings: { ok: emb, usage: embDone.usage, seconds: embDone.completed_at! - embDone.created_at }, chat: { ok: chat, usage: chatDone.usage, seconds: chatDone.completed_at! - chatDone.created_at } })}`);
  });

  test('a /v1/responses batch: each output body is the Response object POST /v1/responses answers; background and stream lines are per-line 400s', { timeout: 300_000 }, async () => {
    const ask = (custom_id: string, body: Record<string, unknown>) => ({ custom_id, method: 'POST', url: '/v1/responses', body: { model: 'tiny-chat', max_output_tokens: 4, ...body } });
    const good = [
      ...Array.from({ length: 16 }, (_, i) => ask(`resp-${i}`, { input: `Say something about ${i}.`, seed: i })),
      ask('items', { instructions: 'Answer briefly.', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hello there.' }] }], seed: 3, metadata: { kind: 'items' } }),
      ask('json', {
        input: 'Status?',
        text: { format: { type: 'json_schema', name: 'status', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false }, strict: true } },
        max_output_tokens: 60,
      }),
    ];
    const bad = [
      ask('background', { input: 'x', background: true }),
      ask('stream', { input: 'x', stream: true }),
      ask('previous', { input: 'x', previous_response_id: 'resp_0123' }),
      ask('file-search', { input: 'x', tools: [{ type: 'file_search', vector_store_ids: ['vs_0123'] }] }),
      ask('no-model', { input: 'x', model: 'no-such-chat' }),
      ask('too-long', { input: 'x', max_output_tokens: 100_000 }),
      { custom_id: 'chat-url', method: 'POST', url: '/v1/chat/completions', body: { model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }] } },
    ];
    const metricsBefore = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
    const file = await acme.files.create({ file: await toFile(Buffer.from([...good, ...bad].map((l) => JSON.stringify(l)).join('\n')), 'responses.jsonl'), purpose: 'batch' });
    const created = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h' });
    assert.equal(created.endpoint, '/v1/responses');
    const done = await follow(acme, created.id, (b) => b.status === 'completed', 240_000);
    assert.deepEqual(done.request_counts, { total: good.length + bad.length, completed: good.length, failed: bad.length });
    const output = await contentLines(acme, done.output_file_id);
    const errorsOut = await contentLines(acme, done.error_file_id);
    assert.deepEqual(output.map((l) => l.custom_id).sort(), good.map((g) => g.custom_id).sort(), 'every good line once, in the output');
    assert.deepEqual(errorsOut.map((l) => l.custom_id).sort(), bad.map((g) => g.custom_id).sort(), 'every refused line once, in the error file');

    // The same request online, for the shape to compare with (store: false, as batch lines are not stored).
    const online = await acme.responses.create({ model: 'tiny-chat', input: 'Say something about 5.', max_output_tokens: 4, store: false, seed: 5 } as never);
    assert.deepEqual(validResponse(online), []);
    const onlineBody = JSON.parse(JSON.stringify(online)) as Record<string, unknown>;
    // The SDK adds `output_text` to what it read; the server's body has no such field.
    delete onlineBody.output_text;
    const ids = new Set<string>();
    for (const l of output) {
      const body = l.response!.body;
      assert.equal(l.response!.status_code, 200);
      assert.deepEqual(validResponse(body), [], `${l.custom_id}: ${JSON.stringify(body)}`);
      assert.equal(body.object, 'response');
      assert.match(body.id, /^resp_[0-9a-f]{32}$/);
      ids.add(body.id);
      assert.ok(['completed', 'incomplete'].includes(body.status), JSON.stringify(body));
      assert.equal(body.background, false);
      assert.equal(body.store, false);
      assert.equal(body.output[0].type, 'message');
      assert.equal(body.output[0].content[0].type, 'output_text');
      assert.equal(body.usage.total_tokens, body.usage.input_tokens + body.usage.output_tokens);
    }
    assert.equal(ids.size, output.length, 'one response id per line');
    const byId = new Map([...output, ...errorsOut].map((l) => [l.custom_id, l]));
    const same = byId.get('resp-5')!.response!.body;
    // Same model, prompt, seed and options: the object POST /v1/responses answered, but for its own id, times and item ids.
    const comparable = (r: any) => ({ ...r, id: null, created_at: null, completed_at: null, output: r.output.map((i: any) => ({ ...i, id: null })) });
    assert.deepEqual(comparable(same), comparable(onlineBody));
    assert.equal(byId.get('items')!.response!.body.instructions, 'Answer briefly.');
    assert.deepEqual(byId.get('items')!.response!.body.metadata, { kind: 'items' });
    const text = (r: any) => r.output.flatMap((i: any) => (i.type === 'message' ? i.content.map((c: any) => c.text) : [])).join('');
    assert.equal(typeof JSON.parse(text(byId.get('json')!.response!.body)).ok, 'boolean');
    for (const [id, code, status] of [
      ['background', 'unsupported_parameter', 400],
      ['stream', 'unsupported_parameter', 400],
      ['previous', 'unsupported_parameter', 400],
      ['file-search', 'unsupported_parameter', 400],
      ['no-model', 'model_not_found', 404],
      ['too-long', 'max_tokens_too_large', 400],
    ] as const) {
      const l = byId.get(id)!;
      assert.equal(l.error!.code, code, JSON.stringify(l));
      assert.equal(l.response!.status_code, status, JSON.stringify(l));
      assert.deepEqual(validError(l.response!.body), []);
    }
    assert.equal(byId.get('chat-url')!.error!.code, 'invalid_url');

    // Usage and metrics: the responses' own usage, once per line, under the batch's endpoint.
    const input = output.reduce((n, l) => n + l.response!.body.usage.input_tokens, 0);
    const generated = output.reduce((n, l) => n + l.response!.body.usage.output_tokens, 0);
    assert.equal(done.usage!.input_tokens, input);
    assert.equal(done.usage!.output_tokens, generated);
    const metrics = await (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
    const delta = (name: string, match: Record<string, string>) => counterSum(metrics, name, match) - counterSum(metricsBefore, name, match);
    assert.equal(delta('batch_lines_finished_total', { tenant: 'acme', endpoint: '/v1/responses', outcome: 'completed' }), good.length);
    assert.equal(delta('batch_lines_finished_total', { tenant: 'acme', endpoint: '/v1/responses', outcome: 'failed' }), bad.length);
    assert.equal(delta('batch_tokens_total', { tenant: 'acme', endpoint: '/v1/responses', kind: 'output' }), generated);
    assert.equal(delta('batch_lines_finished_total', { tenant: 'acme', endpoint: '/v1/chat/completions' }), 0, 'responses lines are not counted as chat completions');
  });

  test('files past their expires_after disappear from list, retrieve and content, and the workers sweep their bytes', { timeout: 120_000 }, async () => {
    const inspect = new Redis(redis.url);
    try {
      // The store the service uses, on the same Redis and data root: the test moves expiry times into the past with it (an hour is OpenAI's least).
      const store = new FileStore(inspect, svc.prefix, new BlobStore(dataDir));
      const upload = async (name: string, purpose: 'batch' | 'user_data', expires: boolean) =>
        acme.files.create({
          file: await toFile(Buffer.from(purpose === 'batch' ? `${embeddingLine(1).text}\n` : `notes ${name}`), name),
          purpose,
          ...(expires ? { expires_after: { anchor: 'created_at' as const, seconds: 3600 } } : {}),
        });
      const [read, unread, kept] = await Promise.all([upload('read.txt', 'user_data', true), upload('unread.jsonl', 'batch', true), upload('kept.txt', 'user_data', false)]);
      assert.equal(read.expires_at, read.created_at + 3600);
      assert.equal(kept.expires_at ?? null, null);
      const blob = (id: string) => store.blobs.path('files', id, FILE_CONTENT);
      for (const f of [read, unread, kept]) assert.ok(existsSync(blob(f.id)), `${f.id} has its bytes`);
      const past = Math.floor(Date.now() / 1000) - 1;
      const expire = (f: OpenAI.Files.FileObject) =>
        store.create({ id: f.id, tenant: 'acme', filename: f.filename, purpose: f.purpose as 'batch', bytes: f.bytes, created_at: f.created_at, expires_at: past, lines: f.purpose === 'batch' ? 1 : null });

      // A file nobody reads again: the sweep removes its record and bytes by itself.
      await expire(unread);
      await waitFor('the expired file swept', async () => (!existsSync(blob(unread.id)) && (await inspect.exists(`${svc.prefix}:file:${unread.id}`)) === 0 ? true : undefined), 60_000);

      // A file read after it expired: gone from every read, as if deleted.
      await expire(read);
      await assert.rejects(acme.files.retrieve(read.id), (e: any) => e.status === 404 && e.code === 'file_not_found');
      await assert.rejects(acme.files.content(read.id), (e: any) => e.status === 404);
      const listed: string[] = [];
      for await (const f of acme.files.list()) listed.push(f.id);
      assert.ok(!listed.includes(read.id) && !listed.includes(unread.id), 'expired files are not listed');
      assert.ok(listed.includes(kept.id));
      await assert.rejects(acme.batches.create({ input_file_id: unread.id, endpoint: '/v1/embeddings', completion_window: '24h' }), (e: any) => e.status === 404);
      await waitFor('its bytes removed', async () => (!existsSync(blob(read.id)) ? true : undefined), 60_000);

      // A file without expiry, and one that has not expired yet, stay.
      assert.equal((await acme.files.retrieve(kept.id)).id, kept.id);
      assert.ok(existsSync(blob(kept.id)));
    } finally {
      inspect.disconnect();
    }
  });
});

describe('Batch API drills: a worker SIGKILLed, Redis crashed and restarted, during running batches', () => {
  let dir: string;
  let port: number;
  let redis: RedisServerHandle;
  let svc: ServiceHandle;
  let acme: OpenAI;
  // Append-only with an fsync on every write, as the Redis drill configures it: what Redis acknowledged survives its crash.
  const startRedis = () => startRedisServer({ port, dir, appendOnly: true, extraArgs: ['--appendfsync', 'always'] });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'qi-batch-drill-redis-'));
    port = await freePort();
    redis = await startRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel({ concurrency: 16 }), await tinyChatModel()]),
      workers: 2,
      // A dead worker's jobs are found stalled about 3 s after it died.
      env: {
        DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-batch-drills-')),
        BATCH_POLL_MS: '200',
        BATCH_LINES_IN_FLIGHT: '64',
        WORKER_LOCK_DURATION_MS: '2000',
        WORKER_STALLED_INTERVAL_MS: '1000',
        LOG_LEVEL: 'warn',
      },
    });
    acme = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const live = () => svc.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);

  test('a worker SIGKILLed twice while an embeddings batch and a chat batch run: both complete, every line answered once', { timeout: 600_000 }, async () => {
    // Enough work that the batch is still running at the second kill: embedding lines are packed up
    // to 64 texts per job, and the surviving worker goes on while the killed one restarts, so on an
    // idle machine a few thousand one-text lines are done before the second look.
    const EMBEDDING_LINES = 3000;
    const embSpecs = [...Array.from({ length: EMBEDDING_LINES }, (_, i) => embeddingLine(i, 4)), ...Array.from({ length: 12 }, (_, i) => brokenLine(i))];
    const chatSpecs = Array.from({ length: 80 }, (_, i) => chatLine(i, 16));
    // Lines BullMQ found stalled (their worker died holding them): proof that the kills hit lines in flight.
    const stalled = new Set<string>();
    const events = [queueNameFor('embedding', 'use-lite'), queueNameFor('chat', 'tiny-chat')].map((q) => new QueueEvents(q, { connection: { host: '127.0.0.1', port }, prefix: svc.prefix }));
    for (const e of events) {
      e.on('stalled', ({ jobId }) => stalled.add(jobId));
      await e.waitUntilReady();
    }
    try {
      const [embBatch, chatBatch] = await Promise.all([
        upload(acme, embSpecs).then((f) => acme.batches.create({ input_file_id: f.id, endpoint: '/v1/embeddings', completion_window: '24h' })),
        upload(acme, chatSpecs).then((f) => acme.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' })),
      ]);
      let kills = 0;
      for (const atLeast of [60, 250]) {
        // Kill while lines are in flight: some finished, most not.
        const b = await follow(acme, embBatch!.id, (x) => x.status !== 'validating' && x.request_counts!.completed >= atLeast, 240_000);
        assert.equal(b.status, 'in_progress', 'the kill lands while the batch runs');
        const victim = live().at(-1)!;
        const exited = exitOf(victim);
        victim.child.kill('SIGKILL');
        await exited;
        kills++;
        await svc.startWorker();
      }
      const [embDone, chatDone] = await Promise.all([
        follow(acme, embBatch!.id, (x) => x.status === 'completed', 300_000),
        follow(acme, chatBatch!.id, (x) => x.status === 'completed', 300_000),
      ]);
      const emb = await checkAnswers(acme, embDone, embSpecs);
      // A chat line whose worker died after it had streamed tokens fails as worker_lost (by design,
      // as for any chat job); it is still answered, once, in the error file.
      const chat = await checkAnswers(acme, chatDone, chatSpecs, { tolerate: (_, l) => l.error?.code === 'worker_lost' });
      assert.equal(emb.output.length, EMBEDDING_LINES, 'every embedding line survived the kills');
      assert.equal(embDone.request_counts!.completed, EMBEDDING_LINES);
      assert.equal(chatDone.request_counts!.completed + chatDone.request_counts!.failed, 80);
      assert.equal(chat.output.length + chat.tolerated, 80);
      // Usage counts each answered line once, however often its job ran.
      assert.equal(embDone.usage!.input_tokens, bodyTokens(emb.output).input);
      assert.equal(chatDone.usage!.output_tokens, bodyTokens(chat.output).output);
      await checkNoStrayOutputs(acme, embDone);
      await checkNoStrayOutputs(acme, chatDone);
      assert.ok([...stalled].some((id) => id.includes(embBatch!.id) || id.includes(chatBatch!.id)), 'the kills hit lines in flight');
      console.log(`DRILL batch-worker-kill ${JSON.stringify({ kills, lines_stalled: stalled.size, embeddings: embDone.request_counts, chat: chatDone.request_counts, chat_worker_lost: chat.tolerated, seconds: embDone.completed_at! - embDone.created_at })}`);
    } finally {
      await Promise.all(events.map((e) => e.close()));
    }
  });

  test('Redis crashed (SIGKILL) and restarted with its data while a batch runs: it completes, every line answered once', { timeout: 600_000 }, async () => {
    // As above: enough lines to still be running when Redis goes down.
    const EMBEDDING_LINES = 2000;
    const specs = [...Array.from({ length: EMBEDDING_LINES }, (_, i) => embeddingLine(i, 2)), ...Array.from({ length: 6 }, (_, i) => brokenLine(i))];
    const file = await upload(acme, specs);
    const created = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    const before = await follow(acme, created.id, (x) => x.status !== 'validating' && x.request_counts!.completed >= 60, 240_000);
    assert.equal(before.status, 'in_progress', 'Redis goes down while the batch runs');
    const exited = exitOf({ child: redis.process } as never);
    redis.process.kill('SIGKILL');
    await exited;
    const downAt = Date.now();
    // Down for a few seconds: the API answers 503 meanwhile (follow() retries those).
    await waitFor('Redis down for 4 s', async () => (Date.now() - downAt >= 4000 ? true : undefined), 10_000);
    const during = await acme.batches.retrieve(created.id).then(() => 200, (e: { status?: number }) => e.status);
    assert.equal(during, 503, 'the API says Redis is unavailable');
    redis = await startRedis();
    const done = await follow(acme, created.id, (x) => x.status === 'completed', 300_000);
    const answers = await checkAnswers(acme, done, specs);
    assert.equal(answers.output.length, EMBEDDING_LINES);
    assert.equal(done.usage!.input_tokens, bodyTokens(answers.output).input);
    await checkNoStrayOutputs(acme, done);
    console.log(`DRILL batch-redis-restart ${JSON.stringify({ completed_before_crash: before.request_counts!.completed, counts: done.request_counts, seconds_after_restart: Math.round((Date.now() - downAt) / 1000) })}`);
  });
});
