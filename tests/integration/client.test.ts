import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { InferenceClient, InferenceError } from '../../client/inference-client.js';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

async function qi(args: string[], env: NodeJS.ProcessEnv) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/qi.mjs'), ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('the typed client and the qi CLI against the running service', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: InferenceClient;

  before(async () => {
    const chatDir = mkdtempSync(path.join(tmpdir(), 'qi-client-chat-'));
    await makeTinyDecoder(chatDir, { maxPositions: 512 });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel(), { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: chatDir, threads: 1 }]),
    });
    client = new InferenceClient({ baseUrl: svc.baseUrl, apiKey: KEYS.acme });
  });
  after(async () => {
    client?.close();
    await svc?.stop();
    await redis?.cleanup();
  });

  test('models, embeddings and chat (whole and streamed) through the client', async () => {
    assert.deepEqual((await client.models()).map((m) => m.id).sort(), ['tiny-chat', 'use-lite']);
    const [a, b] = await client.embed('use-lite', ['hello there', 'general kenobi']);
    assert.equal(a!.length, 512);
    assert.equal(b!.length, 512);
    const whole = await client.chat('tiny-chat', [{ role: 'user', content: 'hi' }], { max_tokens: 12, seed: 4 });
    assert.equal(whole.usage.completion_tokens, 12);
    let streamed = '';
    for await (const t of client.chatStream('tiny-chat', [{ role: 'user', content: 'hi' }], { max_tokens: 12, seed: 4 })) streamed += t;
    assert.equal(streamed, whole.content);
  });

  test('jobs: submit, follow live tokens to the result, and errors as InferenceError', async () => {
    const job = await client.submitJob({ type: 'chat', model: 'tiny-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20, seed: 2 });
    const tokens: string[] = [];
    const result = (await client.follow(job.id, { onToken: (e) => tokens.push(e.text) })) as { message: { content: string } };
    assert.equal(tokens.join(''), result.message.content);
    assert.equal((await client.getJob(job.id)).status, 'completed');
    await assert.rejects(client.chat('nope', [{ role: 'user', content: 'x' }]), (e: unknown) => e instanceof InferenceError && e.status === 404 && e.code === 'model_not_found');
    await assert.rejects(client.follow('chat.tiny-chat~00000000-0000-0000-0000-000000000000'), (e: unknown) => e instanceof InferenceError && e.code === 'job_not_found');
  });

  test('documents through the client and the CLI: upload with progress, ingestion to ready, search', async () => {
    const text = 'Bees pollinate many of the crops we eat.\n\nThe museum is closed on Mondays and open late on Fridays.';
    let sent = 0;
    const doc = await client.uploadDocument(new Blob([text]), { filename: 'notes.txt', collection: 'client-docs', onProgress: (n) => (sent = n) });
    assert.equal(sent, Buffer.byteLength(text));
    const stages: string[] = [];
    await client.follow(doc.job_id, { onProgress: (p) => stages.push((p as { stage: string }).stage) });
    assert.equal((await client.getDocument(doc.id)).status, 'ready');
    assert.ok(stages.length > 0);
    const hits = await client.search('client-docs', 'When is the museum open?', { top_k: 2 });
    assert.match(hits[0]!.text, /museum/);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'qi-cli-doc-')), 'facts.txt');
    writeFileSync(file, 'Water boils at one hundred degrees Celsius at sea level.');
    const env = { QI_URL: svc.baseUrl, QI_API_KEY: KEYS.acme };
    const up = await qi(['upload', file, '--collection', 'cli-docs'], env);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /\tready\t1 chunks/);
    assert.match(up.stderr, /upload\s+\[#+\] 100%/);
    const found = await qi(['search', 'At what temperature does water boil?', '--collection', 'cli-docs'], env);
    assert.equal(found.code, 0, found.stderr);
    assert.match(found.stdout, /Water boils/);
    // The lexical ranking alone: its best hit scores 1.
    const lexical = await qi(['search', 'Celsius', '--collection', 'cli-docs', '--ranker', 'lexical'], env);
    assert.equal(lexical.code, 0, lexical.stderr);
    assert.match(lexical.stdout, /^1\.000\t.*Water boils/);
    const badRanker = await qi(['search', 'Celsius', '--collection', 'cli-docs', '--ranker', 'magic'], env);
    assert.equal(badRanker.code, 1);
    const missing = await qi(['upload', file], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--collection/);
  });

  test('qi CLI: chat streams to stdout, embed prints dimensions, a bad key exits 1 with the reason', async () => {
    const env = { QI_URL: svc.baseUrl, QI_API_KEY: KEYS.acme };
    const chat = await qi(['chat', 'hello', '--max-tokens', '8', '--seed', '3'], env);
    assert.equal(chat.code, 0, chat.stderr);
    const expected = await client.chat('tiny-chat', [{ role: 'user', content: 'hello' }], { max_tokens: 8, seed: 3 });
    assert.equal(chat.stdout, `${expected.content}\n`);
    const embed = await qi(['embed', 'one', 'two'], env);
    assert.equal(embed.code, 0, embed.stderr);
    assert.match(embed.stdout, /^0\t512 dims\t\[/m);
    assert.match(embed.stdout, /^1\t512 dims/m);
    const bad = await qi(['models'], { ...env, QI_API_KEY: 'wrong-key-123456789' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error 401 \(invalid_api_key\)/);
    const noKey = await qi(['models'], { QI_URL: svc.baseUrl });
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /QI_API_KEY/);
    assert.equal((await qi(['frobnicate'], env)).code, 2);
  });
});
