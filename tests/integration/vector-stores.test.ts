import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { textPdf } from '../helpers/documents.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, authHeaders, postJson, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const LIGHTHOUSE = 'The lighthouse keeper climbed the spiral stairs every evening to light the great lamp that warned ships away from the rocks.';
const BREAD = 'Sourdough bread needs a lively starter, a long cold fermentation and a very hot oven to form its crisp, blistered crust.';
const BEES = 'Honeybees communicate the direction and distance of flowers to their hive mates through an intricate waggle dance.';
const TREATY = 'The treaty was signed in the spring, ending a decade of border disputes between the two mountain kingdoms.';

/** OpenAI's vector stores through the official openai client, over the same collections as /v1/collections. */
describe('vector stores API', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let acme: OpenAI;
  let globex: OpenAI;
  const validStore = openAiValidator('VectorStoreObject');
  const validFile = openAiValidator('VectorStoreFileObject');
  const validResults = openAiValidator('VectorStoreSearchResultsPage');
  const validBatch = openAiValidator('VectorStoreFileBatchObject');
  const validContent = openAiValidator('VectorStoreFileContentResponse');
  const validStoreList = openAiValidator('ListVectorStoresResponse');
  const poll = { pollIntervalMs: 200 };

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: { DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-vs-')), INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-vs-index-')) },
    });
    acme = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
    globex = new OpenAI({ apiKey: KEYS.globex, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const raw = async (p: string, key = KEYS.acme) => (await fetch(`${svc.baseUrl}/v1${p}`, { headers: authHeaders(key) })).json();

  test('a PDF and a text file: ingest, search with attribute filters, content, attribute updates, delete; the collection sees the same data', async () => {
    const pdf = await acme.files.create({ file: await toFile(await textPdf([LIGHTHOUSE, BREAD]), 'guide.pdf'), purpose: 'assistants' });
    const txt = await acme.files.create({ file: await toFile(Buffer.from(`${BEES}\n\n${TREATY}\n`), 'notes.txt'), purpose: 'assistants' });

    const store = await acme.vectorStores.create({ name: 'handbook', metadata: { team: 'docs' }, expires_after: { anchor: 'last_active_at', days: 7 } });
    assert.deepEqual(validStore(store), []);
    assert.match(store.id, /^vs_[0-9a-f]{32}$/);
    assert.equal(store.name, 'handbook');
    assert.equal(store.file_counts.total, 0);
    assert.ok(store.last_active_at !== null);
    assert.equal(store.expires_at, store.last_active_at + 7 * 86_400);

    const pdfFile = await acme.vectorStores.files.createAndPoll(store.id, { file_id: pdf.id, attributes: { kind: 'guide', year: 2021 } }, poll);
    const txtFile = await acme.vectorStores.files.createAndPoll(
      store.id,
      { file_id: txt.id, attributes: { kind: 'notes', year: 2024 }, chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 20 } } },
      poll,
    );
    for (const f of [pdfFile, txtFile]) {
      assert.deepEqual(validFile(f), []);
      assert.equal(f.status, 'completed', JSON.stringify(f.last_error));
      assert.equal(f.vector_store_id, store.id);
    }
    assert.deepEqual(txtFile.chunking_strategy, { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 20 } });
    assert.deepEqual(pdfFile.attributes, { kind: 'guide', year: 2021 });

    const counted = await acme.vectorStores.retrieve(store.id);
    assert.deepEqual(validStore(counted), []);
    assert.deepEqual(counted.file_counts, { in_progress: 0, completed: 2, failed: 0, cancelled: 0, total: 2 });
    assert.equal(counted.status, 'completed');
    assert.equal(counted.usage_bytes, pdf.bytes + txt.bytes);
    assert.deepEqual(validStoreList(await raw('/vector_stores')), []);
    assert.ok((await acme.vectorStores.list()).data.some((s) => s.id === store.id));

    // Search: the PDF's page, the text file's paragraph, each found by meaning; filters narrow by attributes.
    const hits = await acme.vectorStores.search(store.id, { query: 'who lights the lamp for ships at night', max_num_results: 3 });
    assert.deepEqual(validResults(await postJson(svc.baseUrl, `/v1/vector_stores/${store.id}/search`, { query: 'lamp' }, authHeaders(KEYS.acme)).then((r) => r.json)), []);
    assert.equal(hits.data[0]!.file_id, pdf.id);
    assert.equal(hits.data[0]!.filename, 'guide.pdf');
    assert.match(hits.data[0]!.content[0]!.text, /lighthouse keeper/);
    assert.deepEqual(hits.data[0]!.attributes, { kind: 'guide', year: 2021 });

    const onlyNotes = await acme.vectorStores.search(store.id, { query: 'lighthouse lamp ships', filters: { type: 'eq', key: 'kind', value: 'notes' } });
    assert.ok(onlyNotes.data.length > 0 && onlyNotes.data.every((h) => h.file_id === txt.id));
    const compound = await acme.vectorStores.search(store.id, {
      query: ['bees dance', 'border treaty'],
      filters: { type: 'and', filters: [{ type: 'gte', key: 'year', value: 2022 }, { type: 'in', key: 'kind', value: ['notes', 'memo'] }] },
      ranking_options: { ranker: 'auto', score_threshold: 0 },
      rewrite_query: true,
    });
    // The SDK's page keeps only `data`: the echoed queries are read from the body itself.
    const echoed = await postJson(svc.baseUrl, `/v1/vector_stores/${store.id}/search`, { query: ['bees dance', 'border treaty'] }, authHeaders(KEYS.acme));
    assert.deepEqual(echoed.json.search_query, ['bees dance', 'border treaty']);
    // rewrite_query: what was searched is the rewritten question, and it still finds the guide.
    const rewritten = await postJson(svc.baseUrl, `/v1/vector_stores/${store.id}/search`, { query: 'Could you tell me who lights the lamp for the ships at night?', rewrite_query: true, max_num_results: 3 }, authHeaders(KEYS.acme));
    assert.equal(rewritten.status, 200, JSON.stringify(rewritten.json));
    assert.deepEqual(rewritten.json.search_query, ['lights lamp ships night']);
    assert.equal(rewritten.json.data[0].file_id, pdf.id);
    assert.ok(compound.data.length > 0 && compound.data.every((h) => h.file_id === txt.id));
    const none = await acme.vectorStores.search(store.id, { query: 'lighthouse', filters: { type: 'lt', key: 'year', value: 2000 } });
    assert.equal(none.data.length, 0);

    // The same data through the collections face: the store is the collection named by its id.
    const viaCollection = await postJson(svc.baseUrl, `/v1/collections/${store.id}/search`, { query: 'who lights the lamp for ships at night', top_k: 3 }, authHeaders(KEYS.acme));
    assert.equal(viaCollection.status, 200);
    assert.match(viaCollection.json.data[0].text, /lighthouse keeper/);
    const docs = await raw(`/collections/${store.id}/documents`);
    assert.equal(docs.data.length, 2);

    // Content: the parsed chunks' text.
    const content = await raw(`/vector_stores/${store.id}/files/${txt.id}/content`);
    assert.deepEqual(validContent(content), []);
    const text = content.data.map((c: { text: string }) => c.text).join(' ');
    assert.match(text, /Honeybees/);
    assert.match(text, /treaty/);
    const sdkContent = [];
    for await (const part of acme.vectorStores.files.content(pdf.id, { vector_store_id: store.id })) sdkContent.push(part);
    assert.ok(sdkContent.some((c) => /Sourdough/.test(c.text ?? '')));

    // Attribute updates reach the filters of the index.
    const updated = await acme.vectorStores.files.update(pdf.id, { vector_store_id: store.id, attributes: { kind: 'notes', year: 2030 } });
    assert.deepEqual(validFile(updated), []);
    assert.deepEqual(updated.attributes, { kind: 'notes', year: 2030 });
    const afterUpdate = await acme.vectorStores.search(store.id, { query: 'lighthouse lamp ships', filters: { type: 'eq', key: 'year', value: 2030 } });
    assert.ok(afterUpdate.data.length > 0 && afterUpdate.data.every((h) => h.file_id === pdf.id));

    // Listing with a status filter, then delete: the PDF's chunks are gone from search.
    const completed = await acme.vectorStores.files.list(store.id, { filter: 'completed' });
    assert.deepEqual(completed.data.map((f) => f.id).sort(), [pdf.id, txt.id].sort());
    const deleted = await acme.vectorStores.files.delete(pdf.id, { vector_store_id: store.id });
    assert.equal(deleted.deleted, true);
    const gone = await acme.vectorStores.search(store.id, { query: 'lighthouse keeper lamp sourdough bread', max_num_results: 10 });
    assert.ok(gone.data.every((h) => h.file_id !== pdf.id), 'no hit of the deleted file');
    assert.ok(!(await raw(`/collections/${store.id}/documents`)).data.some((d: { filename: string }) => d.filename === 'guide.pdf'));
    assert.equal((await acme.files.retrieve(pdf.id)).id, pdf.id, 'the Files API file stays');
    await assert.rejects(acme.vectorStores.files.retrieve(pdf.id, { vector_store_id: store.id }), (e: unknown) => e instanceof OpenAI.NotFoundError);

    // Tenant isolation: another tenant sees nothing of it, by either face.
    await assert.rejects(globex.vectorStores.retrieve(store.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(globex.vectorStores.search(store.id, { query: 'bees' }), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(globex.vectorStores.files.create(store.id, { file_id: txt.id }), (e: unknown) => e instanceof OpenAI.NotFoundError);
    assert.ok(!(await globex.vectorStores.list()).data.some((s) => s.id === store.id));
    const other = await globex.vectorStores.create({ name: 'theirs' });
    await assert.rejects(globex.vectorStores.files.create(other.id, { file_id: txt.id }), (e: unknown) => e instanceof OpenAI.NotFoundError, "acme's file is not globex's");
    assert.equal((await postJson(svc.baseUrl, `/v1/collections/${store.id}/search`, { query: 'bees' }, authHeaders(KEYS.globex))).status, 404);

    // Bad input: clear 400s in OpenAI's error shape.
    await assert.rejects(
      acme.vectorStores.files.create(store.id, { file_id: txt.id, chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 80 } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /half/.test(e.message),
    );
    await assert.rejects(acme.vectorStores.search(store.id, { query: 'x', max_num_results: 51 }), (e: unknown) => e instanceof OpenAI.BadRequestError);
    await assert.rejects(acme.vectorStores.create({ file_ids: ['file-doesnotexist'] }), (e: unknown) => e instanceof OpenAI.NotFoundError);

    const dropped = await acme.vectorStores.delete(store.id);
    assert.equal(dropped.deleted, true);
    assert.equal((await postJson(svc.baseUrl, `/v1/collections/${store.id}/search`, { query: 'bees' }, authHeaders(KEYS.acme))).status, 404);
  });

  test('file batches: createAndPoll, retrieve, list files; a bad file fails alone', async () => {
    const store = await acme.vectorStores.create({ name: 'batch' });
    const a = await acme.files.create({ file: await toFile(Buffer.from(BEES), 'bees.txt'), purpose: 'assistants' });
    const b = await acme.files.create({ file: await toFile(Buffer.from(TREATY), 'treaty.md'), purpose: 'assistants' });
    const zip = await acme.files.create({ file: await toFile(Buffer.from('PK\x03\x04not a document at all'), 'archive.zip'), purpose: 'assistants' });
    const batch = await acme.vectorStores.fileBatches.createAndPoll(store.id, { file_ids: [a.id, b.id], attributes: { source: 'batch' } }, poll);
    assert.deepEqual(validBatch(batch), []);
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 2, failed: 0, cancelled: 0, total: 2 });
    assert.deepEqual(await acme.vectorStores.fileBatches.retrieve(batch.id, { vector_store_id: store.id }), batch);
    const files = await acme.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: store.id });
    assert.deepEqual(files.data.map((f) => f.id).sort(), [a.id, b.id].sort());
    assert.ok(files.data.every((f) => f.attributes?.source === 'batch'));
    const hits = await acme.vectorStores.search(store.id, { query: 'waggle dance of honeybees', filters: { type: 'eq', key: 'source', value: 'batch' } });
    assert.equal(hits.data[0]!.file_id, a.id);

    // An unreadable file (a zip) is refused by the pipeline's type check, before anything is stored.
    const refused = await postJson(svc.baseUrl, `/v1/vector_stores/${store.id}/files`, { file_id: zip.id }, authHeaders(KEYS.acme));
    assert.equal(refused.status, 415, JSON.stringify(refused.json));
    assert.equal((await acme.vectorStores.retrieve(store.id)).file_counts.total, 2);

    // Cancel after the fact: nothing is in progress, so nothing changes but the batch's status.
    const cancelled = await acme.vectorStores.fileBatches.cancel(batch.id, { vector_store_id: store.id });
    assert.deepEqual(validBatch(cancelled), []);
    assert.equal(cancelled.file_counts.completed, 2);
  });
  test('qi vector-stores: create, files add --attr --wait, search with --max, --ranker and --filter, files list/delete, get, delete', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'qi-cli-vs-'));
    writeFileSync(path.join(dir, 'bees.txt'), `${BEES}\n`);
    writeFileSync(path.join(dir, 'treaty.txt'), `${TREATY}\n`);
    const env = { PATH: process.env.PATH, QI_URL: svc.baseUrl, QI_API_KEY: KEYS.acme };
    const qi = (...args: string[]) => promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/qi.mjs'), 'vector-stores', ...args], { cwd: dir, env });
    /** A refused command: exit code 1 and the message on stderr. */
    const refused = async (args: string[], stderr: RegExp) => {
      await assert.rejects(qi(...args), (e: { code?: number; stderr?: string }) => e.code === 1 && stderr.test(e.stderr ?? ''));
    };
    const lines = (out: string) => out.split('\n').filter(Boolean).map((l) => l.split('\t'));

    const created = JSON.parse((await qi('create', '--name', 'cli-store')).stdout) as { id: string; name: string };
    assert.deepEqual(validStore(created), []);
    assert.equal(created.name, 'cli-store');
    const store = created.id;
    assert.ok(lines((await qi('list')).stdout).some((l) => l[0] === store && l[1] === 'cli-store' && l[3] === '0/0 files'));

    const bees = lines((await qi('files', 'add', store, 'bees.txt', '--attr', 'topic=bees', '--attr', 'year=2024', '--wait')).stdout);
    assert.equal(bees.length, 1);
    assert.equal(bees[0]![1], 'completed');
    assert.deepEqual(JSON.parse(bees[0]![3]!), { topic: 'bees', year: 2024 });
    const treaty = lines((await qi('files', 'add', store, 'treaty.txt', '--attr', 'topic=history', '--attr', 'code="007"', '--wait')).stdout);
    assert.equal(treaty[0]![1], 'completed');
    // Typed as the API holds them: a number stays a number, a quoted value a string.
    const attached = await acme.vectorStores.files.list(store);
    assert.deepEqual(
      attached.data.map((f) => f.attributes).sort((a, b) => String(a?.topic).localeCompare(String(b?.topic))),
      [{ topic: 'bees', year: 2024 }, { topic: 'history', code: '007' }],
    );
    const beesFile = bees[0]![0]!;
    assert.equal((await acme.files.retrieve(beesFile)).filename, 'bees.txt');

    const one = lines((await qi('search', store, 'waggle dance of honeybees', '--max', '1')).stdout);
    assert.equal(one.length, 1);
    assert.equal(one[0]![1], 'bees.txt');
    assert.equal(one[0]![2], beesFile);
    assert.ok(Number(one[0]![0]) > 0);
    assert.match(one[0]![4]!, /waggle dance/);
    const filtered = lines((await qi('search', store, 'waggle dance of honeybees', '--filter', 'topic=history')).stdout);
    assert.ok(filtered.length >= 1);
    assert.ok(filtered.every((l) => l[1] === 'treaty.txt'), JSON.stringify(filtered));
    assert.deepEqual(lines((await qi('search', store, 'treaty', '--filter', 'year=2024', '--filter', 'topic=bees')).stdout).map((l) => l[1]), ['bees.txt']);
    assert.deepEqual(lines((await qi('search', store, 'treaty', '--filter', 'topic=bees', '--filter', 'topic=history')).stdout), []);
    const lexical = lines((await qi('search', store, 'waggle', '--ranker', 'lexical')).stdout);
    assert.deepEqual(lexical.map((l) => [l[0], l[1]]), [['1.000', 'bees.txt']]);

    // Bad input is refused with a message, and nothing is uploaded for a bad attribute.
    const filesBefore = (await acme.files.list()).data.length;
    await refused(['files', 'add', store, 'bees.txt', '--attr', 'nope'], /error: "nope" is not key=value/);
    assert.equal((await acme.files.list()).data.length, filesBefore);
    await refused(['search', store], /usage: qi vector-stores/);
    await refused(['search', store, 'x', '--max', '500'], /error 400/);
    await refused(['get', 'vs_00000000000000000000000000000000'], /error 404 \(vector_store_not_found\)/);
    await refused(['files', 'add', store, 'file-missing'], /error 404 \(file_not_found\)/);

    assert.equal(lines((await qi('files', 'list', store)).stdout).length, 2);
    await qi('files', 'delete', store, beesFile);
    assert.deepEqual((await acme.vectorStores.files.list(store)).data.map((f) => f.attributes?.topic), ['history']);
    const got = JSON.parse((await qi('get', store)).stdout) as { file_counts: { total: number } };
    assert.equal(got.file_counts.total, 1);
    await qi('delete', store);
    await assert.rejects(acme.vectorStores.retrieve(store), (e: unknown) => e instanceof OpenAI.NotFoundError);
  });
});
