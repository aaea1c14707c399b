import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/** The Files API through the official openai client: upload, list, retrieve, content, delete, limits, isolation. */
describe('Files API', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let acme: OpenAI;
  let globex: OpenAI;
  let dataDir: string;
  const validFile = openAiValidator('OpenAIFile');
  const validList = openAiValidator('ListFilesResponse');
  const validDeleted = openAiValidator('DeleteFileResponse');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    redis = await startPrivateRedis();
    dataDir = mkdtempSync(path.join(tmpdir(), 'qi-files-'));
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      workers: 0,
      env: { DOCUMENTS_DIR: dataDir, FILES_MAX_BYTES: String(64 * 1024), BATCH_MAX_LINES: '100' },
    });
    acme = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
    globex = new OpenAI({ apiKey: KEYS.globex, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const jsonl = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/embeddings', body: { model: 'use-lite', input: `text ${i}` } })).join('\n') + '\n';

  test('upload, retrieve, list, content and delete round-trip with OpenAI-shaped objects', async () => {
    const text = jsonl(5);
    const file = await acme.files.create({ file: await toFile(Buffer.from(text), 'requests.jsonl'), purpose: 'batch' });
    assert.deepEqual(validFile(file), []);
    assert.match(file.id, /^file-[0-9a-f]{32}$/);
    assert.equal(file.bytes, Buffer.byteLength(text));
    assert.equal(file.filename, 'requests.jsonl');
    assert.equal(file.purpose, 'batch');
    assert.equal(file.status, 'processed');

    const got = await acme.files.retrieve(file.id);
    assert.deepEqual(got, file);
    const content = await (await acme.files.content(file.id)).text();
    assert.equal(content, text);

    const other = await acme.files.create({ file: await toFile(Buffer.from('notes'), 'notes.txt'), purpose: 'user_data' });
    const page = await acme.files.list();
    const raw = await (await fetch(`${svc.baseUrl}/v1/files`, { headers: { authorization: `Bearer ${KEYS.acme}` } })).json();
    assert.deepEqual(validList(raw), []);
    const ids = page.data.map((f) => f.id);
    assert.ok(ids.indexOf(other.id) < ids.indexOf(file.id), 'newest first');
    const batchOnly = await acme.files.list({ purpose: 'batch' });
    assert.ok(batchOnly.data.every((f) => f.purpose === 'batch') && batchOnly.data.some((f) => f.id === file.id));
    const firstOnly = await acme.files.list({ limit: 1, order: 'asc' });
    assert.equal(firstOnly.data.length, 1);
    assert.equal(firstOnly.hasNextPage(), true);

    const deleted = await acme.files.delete(file.id);
    assert.deepEqual(validDeleted(deleted), []);
    assert.deepEqual(deleted, { id: file.id, object: 'file', deleted: true });
    await assert.rejects(acme.files.retrieve(file.id), (e: any) => e.status === 404 && validError(e.error ? { error: e.error } : {}).length === 0);
    await assert.rejects(acme.files.content(file.id), (e: any) => e.status === 404);
    assert.deepEqual(readdirSync(path.join(dataDir, 'files')).filter((d) => d === file.id), [], 'its bytes are gone too');
  });

  test("another tenant's file is a 404, exactly like a missing one", async () => {
    const file = await acme.files.create({ file: await toFile(Buffer.from(jsonl(2)), 'a.jsonl'), purpose: 'batch' });
    for (const call of [() => globex.files.retrieve(file.id), () => globex.files.content(file.id), () => globex.files.delete(file.id)]) {
      await assert.rejects(call(), (e: any) => e.status === 404 && e.code === 'file_not_found');
    }
    assert.ok(!(await globex.files.list()).data.some((f) => f.id === file.id));
    assert.equal((await acme.files.retrieve(file.id)).id, file.id, 'still there for its owner');
  });

  test('limits are checked while streaming: size, batch line count, JSONL-ness; purpose is required and checked', async () => {
    await assert.rejects(acme.files.create({ file: await toFile(Buffer.alloc(80 * 1024, 'a'), 'big.txt'), purpose: 'user_data' }), (e: any) => e.status === 413);
    await assert.rejects(acme.files.create({ file: await toFile(Buffer.from(jsonl(101)), 'many.jsonl'), purpose: 'batch' }), (e: any) => e.status === 400 && e.code === 'too_many_lines');
    await assert.rejects(acme.files.create({ file: await toFile(Buffer.from('not json\nnor this\n'), 'x.jsonl'), purpose: 'batch' }), (e: any) => e.status === 400 && e.code === 'invalid_jsonl');
    await assert.rejects(acme.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'fine-tune' as never }), (e: any) => e.status === 400 && e.param === 'purpose');
    // A few malformed lines among good ones are accepted: the batch reports them per line.
    const mixed = await acme.files.create({ file: await toFile(Buffer.from(`${jsonl(3)}{broken\n`), 'mixed.jsonl'), purpose: 'batch' });
    assert.equal(mixed.purpose, 'batch');
    // Nothing refused is left behind in the data root (a refused upload's partial file is removed
    // once its write stream has closed, which may be just after the error answer).
    await waitFor('incoming/ emptied', async () => (readdirSync(path.join(dataDir, 'incoming')).length === 0 ? true : undefined), 5000, () => readdirSync(path.join(dataDir, 'incoming')).join(', '));
  });

  test('expires_after sets expires_at, and is validated', async () => {
    const file = await acme.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'user_data', expires_after: { anchor: 'created_at', seconds: 3600 } });
    assert.equal(file.expires_at, file.created_at + 3600);
    await assert.rejects(
      acme.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'user_data', expires_after: { anchor: 'created_at', seconds: 5 } }),
      (e: any) => e.status === 400 && e.param === 'expires_after[seconds]',
    );
  });
});
