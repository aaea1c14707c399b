import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { Webhook } from 'standardwebhooks';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { KEYS, ROOT, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

type Line = { custom_id: string; method: string; url: string; body: unknown };
type OutLine = { id: string; custom_id: string | null; response: { status_code: number; request_id: string | null; body: any } | null; error: { code: string; message: string } | null };

/**
 * The Batch API with the official openai client only: a file of mixed lines (some broken) through
 * to its output and error files, duplicate custom_ids, cancel midway, expiry, tenant isolation.
 */
describe('Batch API', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let acme: OpenAI;
  let globex: OpenAI;
  let rx: Awaited<ReturnType<typeof startReceiver>>;
  const validBatch = openAiValidator('Batch');
  const validList = openAiValidator('ListBatchesResponse');
  const validEmbedding = openAiValidator('CreateEmbeddingResponse');
  const validCompletion = openAiValidator('CreateChatCompletionResponse');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    redis = await startPrivateRedis();
    rx = await startReceiver();
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-chat-'));
    // Room for a tools prompt (the template lists the tools) and a call.
    await makeTinyDecoder(modelDir, { maxPositions: 1024 });
    const config = writeModelsConfig([
      useLiteModel(),
      { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 400, default_max_tokens: 32 },
    ]);
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: config,
      // The webhook receiver is on 127.0.0.1.
      env: { DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-batch-')), BATCH_POLL_MS: '100', BATCH_LINES_IN_FLIGHT: '64', WEBHOOK_ALLOW_PRIVATE: '1' },
    });
    acme = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
    globex = new OpenAI({ apiKey: KEYS.globex, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await rx?.close();
    await redis?.cleanup();
  });

  const upload = async (client: OpenAI, lines: (Line | string)[]) =>
    client.files.create({ file: await toFile(Buffer.from(lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n'), 'batch.jsonl'), purpose: 'batch' });
  const embed = (i: number): Line => ({ custom_id: `emb-${i}`, method: 'POST', url: '/v1/embeddings', body: { model: 'use-lite', input: [`text number ${i}`, `second text ${i}`] } });
  const chat = (i: number, maxTokens = 4): Line => ({
    custom_id: `chat-${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'tiny-chat', messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: maxTokens, seed: i },
  });
  const until = async (client: OpenAI, id: string, done: (b: OpenAI.Batches.Batch) => boolean, timeoutMs = 120_000) => {
    let last: OpenAI.Batches.Batch | undefined;
    return waitFor(
      `batch ${id}`,
      async () => {
        last = await client.batches.retrieve(id);
        assert.deepEqual(validBatch(last), [], 'every batch object matches OpenAI\'s schema');
        assert.ok(last.request_counts!.completed + last.request_counts!.failed <= last.request_counts!.total || last.status === 'validating');
        return done(last) ? last : undefined;
      },
      timeoutMs,
      () => JSON.stringify(last),
    );
  };
  const contentLines = async (client: OpenAI, fileId: string | null | undefined): Promise<OutLine[]> => {
    if (!fileId) return [];
    const text = await (await client.files.content(fileId)).text();
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as OutLine);
  };

  test('a mixed file of embeddings and chat lines, some broken: every custom_id answered exactly once, in OpenAI\'s line format', async () => {
    const good: Line[] = [];
    for (let i = 0; i < 150; i++) good.push(embed(i));
    for (let i = 0; i < 40; i++) good.push(chat(i));
    const bad: (Line | string)[] = [
      '{"custom_id": "broken-json", "method": "POST", ',
      { custom_id: 'wrong-model', method: 'POST', url: '/v1/embeddings', body: { model: 'no-such-model', input: 'x' } },
      { custom_id: 'chat-model-for-embeddings', method: 'POST', url: '/v1/embeddings', body: { model: 'tiny-chat', input: 'x' } },
      { custom_id: 'invalid-body', method: 'POST', url: '/v1/embeddings', body: { model: 'use-lite', input: [] } },
      { custom_id: 'wrong-url', method: 'POST', url: '/v1/chat/completions', body: { model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }] } },
      { method: 'POST', url: '/v1/embeddings', body: { model: 'use-lite', input: 'no custom id' } } as unknown as Line,
    ];
    // Mixed endpoints are allowed in one file only as far as the batch's endpoint goes: chat lines
    // in an embeddings batch are per-line errors (url mismatch), like wrong-url above.
    const lines = [...good.slice(0, 75), ...bad, ...good.slice(75)];
    const file = await upload(acme, lines);
    const created = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h', metadata: { run: 'mixed' } });
    assert.deepEqual(validBatch(created), []);
    assert.equal(created.status, 'validating');
    assert.match(created.id, /^batch_[0-9a-f]{32}$/);
    const seen = new Set<string>();
    const done = await until(acme, created.id, (b) => {
      seen.add(b.status);
      return b.status === 'completed';
    });
    assert.ok(seen.has('completed'));
    assert.equal(done.request_counts!.total, lines.length);
    assert.equal(done.request_counts!.completed, 150, 'the embedding lines');
    assert.equal(done.request_counts!.failed, lines.length - 150, 'chat lines (url mismatch) and broken lines');
    assert.deepEqual(done.metadata, { run: 'mixed' });
    assert.ok(done.in_progress_at && done.completed_at && done.finalizing_at);

    const output = await contentLines(acme, done.output_file_id);
    const errorsOut = await contentLines(acme, done.error_file_id);
    assert.equal(output.length, 150);
    assert.equal(errorsOut.length, lines.length - 150);
    const ids = [...output, ...errorsOut].map((l) => l.custom_id);
    const named = ids.filter((id) => id !== null);
    assert.equal(new Set(named).size, named.length, 'no line twice');
    assert.equal(ids.length - named.length, 2, 'the broken-JSON line and the line without a custom_id');
    for (const l of good.filter((g) => g.url === '/v1/embeddings')) assert.ok(ids.includes(l.custom_id), `${l.custom_id} answered`);
    for (const o of output) {
      assert.match(o.id, /^batch_req_[0-9a-f]{32}$/);
      assert.equal(o.error, null);
      assert.equal(o.response!.status_code, 200);
      assert.deepEqual(validEmbedding(o.response!.body), []);
      assert.equal(o.response!.body.data.length, 2);
      assert.equal(o.response!.body.data[0].embedding.length, 512);
    }
    const byId = new Map(errorsOut.map((e) => [e.custom_id, e]));
    const broken = errorsOut.find((e) => e.error?.code === 'invalid_json');
    assert.ok(broken && broken.custom_id === null && broken.response === null);
    assert.equal(byId.get('wrong-model')!.response!.status_code, 404);
    assert.equal(byId.get('wrong-model')!.error!.code, 'model_not_found');
    assert.equal(byId.get('chat-model-for-embeddings')!.error!.code, 'wrong_model_task');
    assert.equal(byId.get('invalid-body')!.response!.status_code, 400);
    assert.deepEqual(validError(byId.get('invalid-body')!.response!.body), []);
    assert.equal(byId.get('wrong-url')!.error!.code, 'invalid_url');
    assert.ok(errorsOut.some((e) => e.error?.code === 'missing_custom_id'));
    assert.equal(byId.get('chat-3')!.error!.code, 'invalid_url');

    // The same answer as the online endpoint for the same request.
    const online = await acme.embeddings.create({ model: 'use-lite', input: ['text number 7', 'second text 7'], encoding_format: 'float' });
    const line7 = output.find((o) => o.custom_id === 'emb-7')!;
    assert.ok(Math.abs(line7.response!.body.data[1].embedding[5] - online.data[1]!.embedding[5]!) < 1e-5);

    const page = await (await fetch(`${svc.baseUrl}/v1/batches?limit=5`, { headers: { authorization: `Bearer ${KEYS.acme}` } })).json();
    assert.deepEqual(validList(page), []);
    assert.ok(page.data.some((b: { id: string }) => b.id === created.id));
  });

  test('embedding lines run packed: far fewer jobs and model runs than lines, each line answered with its own vectors and usage', async () => {
    const scrape = async () => (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
    const sum = (text: string, name: string, labelPart: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name) && l.includes(labelPart))
        .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    const counts = async () => {
      const text = await scrape();
      return { jobs: sum(text, 'worker_jobs_finished_total{', 'use-lite'), runs: sum(text, 'embedding_batch_size_count{', 'use-lite') };
    };
    const n = 200;
    // Texts of different lengths, so a line given another line's share of the result would show.
    const text = (i: number) => `line ${i}: ${'word '.repeat(1 + (i % 9))}end`;
    const lines: Line[] = Array.from({ length: n }, (_, i) => ({ custom_id: `packed-${i}`, method: 'POST', url: '/v1/embeddings', body: { model: 'use-lite', input: text(i), encoding_format: 'float' } }));
    const before = await counts();
    const created = await acme.batches.create({ input_file_id: (await upload(acme, lines)).id, endpoint: '/v1/embeddings', completion_window: '24h' });
    const done = await until(acme, created.id, (b) => b.status === 'completed');
    const after = await counts();
    assert.equal(done.request_counts!.completed, n);
    const jobs = after.jobs - before.jobs;
    const runs = after.runs - before.runs;
    assert.ok(jobs >= 1 && jobs <= n / 8, `${n} lines ran as ${jobs} embedding jobs`);
    assert.ok(runs >= 1 && runs < n, `${n} lines took ${runs} model runs`);

    const output = await contentLines(acme, done.output_file_id);
    assert.equal(output.length, n);
    const byId = new Map(output.map((o) => [o.custom_id, o]));
    for (const i of [0, 1, 7, 64, 65, 199]) {
      const line = byId.get(`packed-${i}`)!;
      assert.deepEqual(validEmbedding(line.response!.body), []);
      assert.equal(line.response!.body.data.length, 1);
      const online = await acme.embeddings.create({ model: 'use-lite', input: text(i), encoding_format: 'float' });
      assert.equal(line.response!.body.usage.prompt_tokens, online.usage.prompt_tokens, `line ${i}: its own usage`);
      const a = line.response!.body.data[0].embedding as number[];
      const cos = a.reduce((s, x, k) => s + x * online.data[0]!.embedding[k]!, 0);
      assert.ok(cos > 0.9999, `line ${i}: its own vector (cosine ${cos} with the online answer)`);
    }
  });

  test('a chat batch: the output bodies are chat completions as the endpoint answers them', async () => {
    const lines = Array.from({ length: 12 }, (_, i) => chat(i, 3));
    lines.push({ custom_id: 'too-many-tokens', method: 'POST', url: '/v1/chat/completions', body: { model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], max_tokens: 100_000 } });
    const file = await upload(acme, lines);
    const b = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await until(acme, b.id, (x) => x.status === 'completed');
    const output = await contentLines(acme, done.output_file_id);
    assert.equal(output.length, 12);
    for (const o of output) assert.deepEqual(validCompletion(o.response!.body), [], JSON.stringify(o));
    const errorsOut = await contentLines(acme, done.error_file_id);
    assert.deepEqual(errorsOut.map((e) => [e.custom_id, e.error!.code, e.response!.status_code]), [['too-many-tokens', 'max_tokens_too_large', 400]]);
  });

  test('chat lines take what the endpoint takes (n, logprobs, tools, response_format) and answer in its shape', async () => {
    const ask = (custom_id: string, extra: Record<string, unknown>): Line => ({
      custom_id,
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'tiny-chat', messages: [{ role: 'user', content: 'Ping the server.' }], seed: 7, ...extra },
    });
    const ping = { type: 'function', function: { name: 'ping', description: 'Checks the server', parameters: { type: 'object', properties: {}, additionalProperties: false } } };
    const okSchema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false };
    const lines = [
      ask('n', { n: 3, max_tokens: 4 }),
      ask('logprobs', { logprobs: true, top_logprobs: 2, max_tokens: 4 }),
      ask('tool', { tools: [ping], tool_choice: { type: 'function', function: { name: 'ping' } }, parallel_tool_calls: false, max_tokens: 300 }),
      ask('json', { response_format: { type: 'json_schema', json_schema: { name: 'status', schema: okSchema, strict: true } }, max_tokens: 300 }),
      // Refused exactly as the endpoint refuses them.
      ask('n-with-tools', { n: 2, tools: [ping], max_tokens: 4 }),
      ask('top-without-logprobs', { top_logprobs: 2, max_tokens: 4 }),
    ];
    const file = await upload(acme, lines);
    const b = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await until(acme, b.id, (x) => x.status === 'completed');
    const byId = new Map([...(await contentLines(acme, done.output_file_id)), ...(await contentLines(acme, done.error_file_id))].map((l) => [l.custom_id, l]));
    for (const id of ['n', 'logprobs', 'tool', 'json']) {
      const l = byId.get(id);
      assert.equal(l?.response?.status_code, 200, JSON.stringify(l));
      assert.deepEqual(validCompletion(l!.response!.body), [], JSON.stringify(l));
    }
    const body = (id: string) => byId.get(id)!.response!.body;
    assert.deepEqual(body('n').choices.map((c: { index: number }) => c.index), [0, 1, 2]);
    const lp = body('logprobs').choices[0].logprobs;
    assert.ok(lp.content.length > 0 && lp.content.every((t: { top_logprobs: unknown[] }) => t.top_logprobs.length === 2), JSON.stringify(lp));
    assert.equal(body('n').choices[0].logprobs, null, 'no logprobs unless asked');
    const toolMessage = body('tool').choices[0].message;
    assert.equal(toolMessage.content, null, 'a reply that is only a tool call has content null');
    assert.equal(toolMessage.tool_calls.length, 1);
    assert.equal(toolMessage.tool_calls[0].function.name, 'ping');
    assert.deepEqual(JSON.parse(toolMessage.tool_calls[0].function.arguments), {});
    assert.equal(body('tool').choices[0].finish_reason, 'tool_calls');
    assert.equal(typeof JSON.parse(body('json').choices[0].message.content).ok, 'boolean');
    assert.equal(byId.get('n-with-tools')!.response!.status_code, 400);
    assert.equal(byId.get('n-with-tools')!.error!.code, 'unsupported_parameter');
    assert.equal(byId.get('top-without-logprobs')!.response!.status_code, 400);
  });

  test('a batch that ends is announced once to the webhooks subscribed to its end (batch.completed, batch.failed), signed', async () => {
    const register = async (route: string, events: string[]) => {
      const r = await postJson(svc.baseUrl, '/v1/webhooks', { url: `${rx.base}${route}`, events }, authHeaders(KEYS.acme));
      assert.equal(r.status, 201, r.text);
      return r.json as { id: string; secret: string };
    };
    const ends = await register('/batch-ends', ['batch.completed', 'batch.failed']);
    const jobsOnly = await register('/jobs-only', ['job.completed']);
    const eventsFor = (route: string, batchId: string) => rx.at(route).filter((r) => (JSON.parse(r.body) as { data: { id: string } }).data.id === batchId);

    const good = await acme.batches.create({ input_file_id: (await upload(acme, [embed(1), embed(2)])).id, endpoint: '/v1/embeddings', completion_window: '24h' });
    const dup = await acme.batches.create({ input_file_id: (await upload(acme, [embed(1), embed(1)])).id, endpoint: '/v1/embeddings', completion_window: '24h' });
    const completed = await until(acme, good.id, (x) => x.status === 'completed');
    const failed = await until(acme, dup.id, (x) => x.status === 'failed');
    const [got] = await waitFor('batch.completed delivery', async () => (eventsFor('/batch-ends', good.id).length ? eventsFor('/batch-ends', good.id) : undefined), 30_000);
    const event = new Webhook(ends.secret).verify(got!.body, got!.headers as Record<string, string>) as any;
    assert.equal(event.type, 'batch.completed');
    assert.deepEqual(event.data, JSON.parse(JSON.stringify(completed)), 'the data is the batch object as GET /v1/batches/{id} shows it');
    assert.deepEqual(validBatch(event.data), []);
    const [gotFailed] = await waitFor('batch.failed delivery', async () => (eventsFor('/batch-ends', dup.id).length ? eventsFor('/batch-ends', dup.id) : undefined), 30_000);
    const failedEvent = new Webhook(ends.secret).verify(gotFailed!.body, gotFailed!.headers as Record<string, string>) as any;
    assert.equal(failedEvent.type, 'batch.failed');
    assert.equal(failedEvent.data.errors.data[0].code, 'duplicate_custom_id');
    assert.equal(failedEvent.data.failed_at, failed.failed_at);
    // The drivers have ended; a late second announcement would have arrived by now.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(eventsFor('/batch-ends', good.id).length, 1, 'one delivery per batch end');
    assert.equal(eventsFor('/batch-ends', dup.id).length, 1);
    assert.equal(rx.at('/jobs-only').length, 0, 'an endpoint not subscribed to batch events gets none');
    for (const ep of [ends, jobsOnly]) await fetch(`${svc.baseUrl}/v1/webhooks/${ep.id}`, { method: 'DELETE', headers: authHeaders(KEYS.acme) });
  });

  test('a duplicate custom_id fails the batch at validation, with errors', async () => {
    const file = await upload(acme, [embed(1), embed(2), embed(1)]);
    const b = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    const done = await until(acme, b.id, (x) => x.status === 'failed');
    assert.ok(done.failed_at);
    assert.equal(done.errors!.data![0]!.code, 'duplicate_custom_id');
    assert.equal(done.errors!.data![0]!.line, 3);
    assert.equal(done.output_file_id ?? null, null);
  });

  test('cancel midway: queued lines are dropped, finished ones kept in the output', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => chat(i, 24));
    const file = await upload(acme, lines);
    const b = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await until(acme, b.id, (x) => x.status === 'in_progress' && x.request_counts!.completed >= 5);
    const cancelling = await acme.batches.cancel(b.id);
    assert.ok(cancelling.status === 'cancelling' || cancelling.status === 'cancelled');
    const done = await until(acme, b.id, (x) => x.status === 'cancelled');
    assert.ok(done.cancelled_at && done.cancelling_at);
    const output = await contentLines(acme, done.output_file_id);
    assert.ok(output.length >= 5 && output.length < 300, `partial output: ${output.length}`);
    assert.equal(output.length, done.request_counts!.completed);
    assert.equal(new Set(output.map((o) => o.custom_id)).size, output.length);
    await assert.rejects(acme.batches.cancel(b.id).then((x) => (x.status === 'cancelled' ? Promise.reject(Object.assign(new Error(), { status: 409 })) : x)), (e: any) => e.status === 409);
  });

  test('qi batch create --follow runs a file to its end and prints the output; qi files lists it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'qi-cli-batch-'));
    const input = path.join(dir, 'in.jsonl');
    writeFileSync(input, [embed(1), embed(2), { ...embed(3), body: { model: 'nope', input: 'x' } }].map((l) => JSON.stringify(l)).join('\n'));
    const env = { PATH: process.env.PATH, QI_URL: svc.baseUrl, QI_API_KEY: KEYS.acme };
    const run = (args: string[]) => promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/qi.mjs'), ...args], { cwd: ROOT, env });
    const out = path.join(dir, 'out.jsonl');
    const { stderr } = await run(['batch', 'create', input, '--endpoint', '/v1/embeddings', '--follow', '--output', out]);
    assert.match(stderr, /completed: 2 completed, 1 failed/);
    assert.match(stderr, /model_not_found/);
    const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as OutLine);
    assert.deepEqual(lines.map((l) => l.custom_id).sort(), ['emb-1', 'emb-2']);
    const listed = await run(['files', 'list', '--purpose', 'batch_output']);
    assert.match(listed.stdout, /file-[0-9a-f]+\tbatch_output/);
  });

  test("another tenant's batch is a 404, and it cannot use another tenant's file", async () => {
    const file = await upload(acme, [embed(1)]);
    const b = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    await assert.rejects(globex.batches.retrieve(b.id), (e: any) => e.status === 404 && e.code === 'batch_not_found');
    await assert.rejects(globex.batches.cancel(b.id), (e: any) => e.status === 404);
    await assert.rejects(globex.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }), (e: any) => e.status === 404 && e.code === 'file_not_found');
    assert.ok(!(await globex.batches.list()).data.some((x) => x.id === b.id));
    await assert.rejects(acme.batches.create({ input_file_id: file.id, endpoint: '/v1/completions' as never, completion_window: '24h' }), (e: any) => e.status === 400);
  });
});

describe('Batch API: expiry', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let acme: OpenAI;

  before(async () => {
    redis = await startPrivateRedis();
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-chat-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([{ id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 2, max_tokens_limit: 200, default_max_tokens: 32 }]),
      env: { DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-batch-')), BATCH_POLL_MS: '100', BATCH_COMPLETION_WINDOW_S: '3', BATCH_LINES_IN_FLIGHT: '4' },
    });
    acme = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  test('lines unfinished at the end of the window are written as batch_expired, and the batch ends expired', async () => {
    const lines = Array.from({ length: 200 }, (_, i) => ({ custom_id: `c-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'tiny-chat', messages: [{ role: 'user', content: `hi ${i}` }], max_tokens: 64 } }));
    const file = await acme.files.create({ file: await toFile(Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n')), 'b.jsonl'), purpose: 'batch' });
    const b = await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitFor('expired', async () => {
      const x = await acme.batches.retrieve(b.id);
      return x.status === 'expired' ? x : undefined;
    }, 60_000);
    assert.deepEqual(openAiValidator('Batch')(done), []);
    assert.ok(done.expired_at);
    const out = done.output_file_id ? (await (await acme.files.content(done.output_file_id)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    const err = (await (await acme.files.content(done.error_file_id!)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(out.length + err.length, 200, 'every line once');
    assert.equal(new Set([...out, ...err].map((l) => l.custom_id)).size, 200);
    assert.ok(err.filter((e) => e.error.code === 'batch_expired').length > 0);
    assert.equal(done.request_counts!.completed + done.request_counts!.failed, 200);
  });
});
