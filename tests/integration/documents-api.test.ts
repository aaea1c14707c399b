import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import {
  encryptedPdf,
  manyPagePdf,
  scannedPdf,
  streamHugeUpload,
  textPdf,
  textPng,
  uploadDocument,
  zipFile,
} from '../helpers/documents.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const PARAGRAPHS = [
  'The lighthouse keeper climbed the spiral stairs every evening to light the great lamp that warned ships away from the rocks.',
  'Sourdough bread needs a lively starter, a long cold fermentation and a very hot oven to form its crisp, blistered crust.',
  'Honeybees communicate the direction and distance of flowers to their hive mates through an intricate waggle dance.',
  'The treaty was signed in the spring, ending a decade of border disputes between the two mountain kingdoms.',
  'Quantum computers use qubits that can hold superpositions of states, which lets some algorithms run exponentially faster.',
];

describe('documents and vector search', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let docsDir: string;
  let docsRoot: string;
  const sockets: Socket[] = [];

  before(async () => {
    redis = await startPrivateRedis();
    // Two levels down, so that '../../etc/passwd' from the upload folder still lands in this test's own folder.
    docsRoot = mkdtempSync(path.join(tmpdir(), 'qi-docs-'));
    docsDir = path.join(docsRoot, 'data', 'uploads');
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: {
        DOCUMENTS_DIR: docsDir,
        INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-index-')),
        DOCUMENTS_MAX_BYTES: String(4 * 1024 * 1024),
        DOCUMENTS_MAX_PAGES: '300',
        INDEX_SNAPSHOT_EVERY: '1',
      },
    });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  const getDoc = async (id: string, key = KEYS.acme) => {
    const r = await fetch(`${svc.baseUrl}/v1/documents/${id}`, { headers: authHeaders(key) });
    return { status: r.status, json: (await r.json()) as any };
  };
  const waitDoc = (id: string, statuses = ['ready', 'failed'], key = KEYS.acme) =>
    waitFor(
      `document ${id} to be ${statuses}`,
      async () => {
        const d = await getDoc(id, key);
        return statuses.includes(d.json.status) ? d.json : undefined;
      },
      120_000,
      () => svc.workers.map((w) => w.output().slice(-3000)).join('\n'),
    );
  const search = (collection: string, body: unknown, key = KEYS.acme) => postJson(svc.baseUrl, `/v1/collections/${collection}/search`, body, authHeaders(key));

  test('text, Markdown, HTML and PDF are ingested and searchable, with pages, offsets and metadata', async () => {
    const md = `# Bees\n\n${PARAGRAPHS[2]}\n\n- a list item about **pollen**\n- [a link](https://example.com) text\n`;
    const html = `<!doctype html><html><head><title>t</title><script>var secret = "xylophone-script-token";</script><style>p{}</style></head><body><p>${PARAGRAPHS[3]}</p><script>alert("xylophone-script-token")</script></body></html>`;
    const pdf = await textPdf([PARAGRAPHS[0]!, PARAGRAPHS[4]!]);
    const uploads = await Promise.all([
      uploadDocument(svc.baseUrl, PARAGRAPHS[1]!, { collection: 'library', filename: 'bread.txt', metadata: { topic: 'food', year: 2020 } }),
      uploadDocument(svc.baseUrl, md, { collection: 'library', filename: 'bees.md', metadata: { topic: 'nature' } }),
      uploadDocument(svc.baseUrl, html, { collection: 'library', filename: 'treaty.html', metadata: { topic: 'history' } }),
      uploadDocument(svc.baseUrl, pdf, { collection: 'library', filename: 'mixed.pdf', metadata: { topic: 'mixed' } }),
    ]);
    for (const u of uploads) {
      assert.equal(u.status, 202, JSON.stringify(u.json));
      assert.match(u.json.id, /^[0-9a-f-]{36}$/);
      assert.match(u.json.job_id, /^documents\.ingest~/);
    }
    assert.deepEqual(uploads.map((u) => u.json.type), ['text', 'markdown', 'html', 'pdf']);
    const docs = await Promise.all(uploads.map((u) => waitDoc(u.json.id)));
    for (const d of docs) assert.equal(d.status, 'ready', JSON.stringify(d));
    assert.equal(docs[3].progress.pages_total, 2);

    const r = await search('library', { query: 'how do bees tell each other where flowers are', top_k: 3 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.object, 'list');
    const top = r.json.data[0];
    assert.equal(top.document_id, uploads[1]!.json.id);
    assert.match(top.text, /waggle dance/);
    assert.deepEqual(top.metadata, { topic: 'nature' });
    assert.ok(top.score > 0.3 && top.score <= 1.0001, `score ${top.score}`);
    assert.equal(top.page, 1);
    assert.ok(top.char_end > top.char_start);

    const q = await search('library', { query: 'qubits and superposition', top_k: 1 });
    assert.equal(q.json.data[0].document_id, uploads[3]!.json.id);
    assert.equal(q.json.data[0].page, 2, 'the PDF hit is on its second page');

    // Scripts are dropped from HTML.
    const s = await search('library', { query: 'xylophone-script-token', top_k: 10 });
    for (const hit of s.json.data) assert.doesNotMatch(hit.text, /xylophone/);

    // Equality filters on metadata.
    const f = await search('library', { query: 'how do bees tell each other where flowers are', top_k: 5, filter: { topic: 'food' } });
    assert.ok(f.json.data.length >= 1);
    for (const hit of f.json.data) assert.equal(hit.metadata.topic, 'food');
    const none = await search('library', { query: 'bees', top_k: 5, filter: { topic: 'nothing-has-this' } });
    assert.deepEqual(none.json.data, []);

    const list = await fetch(`${svc.baseUrl}/v1/collections/library/documents`, { headers: authHeaders() }).then((x) => x.json() as any);
    assert.equal(list.data.length, 4);
    const cols = await fetch(`${svc.baseUrl}/v1/collections`, { headers: authHeaders() }).then((x) => x.json() as any);
    assert.ok(cols.data.some((c: any) => c.name === 'library' && c.documents === 4));
  });

  test('token-aware chunks: long pages are split within the 128-token window with overlap, each with its page and offsets', async () => {
    const long = Array.from({ length: 12 }, (_, i) => `${PARAGRAPHS[i % 5]} Section ${i} adds a sentence of its own about item ${i}.`).join(' ');
    const u = await uploadDocument(svc.baseUrl, await textPdf([long, 'A short second page about lighthouses.']), { collection: 'chunks', filename: 'long.pdf' });
    const d = await waitDoc(u.json.id);
    assert.equal(d.status, 'ready');
    assert.ok(d.chunks >= 4, `a long page makes several chunks (${d.chunks})`);
    const r = await search('chunks', { query: 'sourdough bread starter', top_k: 20 });
    const pages = new Set(r.json.data.map((h: any) => h.page));
    assert.ok(pages.has(1));
    const onPage1 = r.json.data.filter((h: any) => h.page === 1).sort((a: any, b: any) => a.char_start - b.char_start);
    for (const h of onPage1) assert.equal(h.char_end - h.char_start, h.text.length);
    // Consecutive chunks overlap.
    const overlaps = onPage1.slice(1).filter((h: any, i: number) => h.char_start < onPage1[i].char_end);
    assert.ok(overlaps.length >= 1, 'chunks overlap');
  });

  test('Socket.IO subscribers of the ingestion job get stage progress and completion', async () => {
    const s = connect(svc.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    const events: any[] = [];
    s.on('progress', (e) => events.push(e.progress));
    const completed = new Promise<any>((resolve) => s.on('completed', resolve));
    const pdf = await textPdf(Array.from({ length: 20 }, (_, i) => `${PARAGRAPHS[i % 5]} Page ${i + 1}.`));
    const u = await uploadDocument(svc.baseUrl, pdf, { collection: 'progress', filename: 'twenty.pdf' });
    const ack = (await s.timeout(5000).emitWithAck('subscribe', u.json.job_id)) as any;
    assert.equal(ack.ok, true);
    const done = await completed;
    assert.equal(done.result.document_id, u.json.id);
    assert.equal(done.result.pages, 20);
    const stages = new Set(events.map((e) => e.stage));
    for (const st of ['parse', 'embed', 'index']) assert.ok(stages.has(st) || events.length > 0, `saw stage ${st}: ${[...stages]}`);
    assert.ok(events.some((e) => e.pages_total === 20), JSON.stringify(events.slice(0, 5)));
    assert.ok(events.some((e) => e.chunks_total > 0 && e.chunks_done === e.chunks_total));
    const job = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(u.json.job_id)}`, { headers: authHeaders() }).then((x) => x.json() as any);
    assert.equal(job.status, 'completed');
  });

  test('uploads are idempotent by content per collection', async () => {
    const text = `${PARAGRAPHS[0]} Unique idempotency marker 7731.`;
    const a = await uploadDocument(svc.baseUrl, text, { collection: 'idem', filename: 'a.txt' });
    const b = await uploadDocument(svc.baseUrl, text, { collection: 'idem', filename: 'b.txt' });
    const c = await uploadDocument(svc.baseUrl, text, { collection: 'idem-other', filename: 'c.txt' });
    assert.equal(a.status, 202);
    assert.equal(b.status, 200);
    assert.equal(b.json.id, a.json.id);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal(c.status, 202);
    assert.notEqual(c.json.id, a.json.id);
    await waitDoc(a.json.id);
    await waitDoc(c.json.id);
  });

  test('DELETE /v1/documents/:id removes its chunks from search at once', async () => {
    const keep = await uploadDocument(svc.baseUrl, PARAGRAPHS[1]!, { collection: 'deletes', filename: 'keep.txt' });
    const gone = await uploadDocument(svc.baseUrl, PARAGRAPHS[2]!, { collection: 'deletes', filename: 'gone.txt' });
    await waitDoc(keep.json.id);
    await waitDoc(gone.json.id);
    const before = await search('deletes', { query: 'waggle dance of honeybees', top_k: 5 });
    assert.equal(before.json.data[0].document_id, gone.json.id);
    const del = await fetch(`${svc.baseUrl}/v1/documents/${gone.json.id}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(del.status, 200);
    const afterDel = await search('deletes', { query: 'waggle dance of honeybees', top_k: 5 });
    assert.ok(afterDel.json.data.every((h: any) => h.document_id !== gone.json.id));
    assert.equal(afterDel.json.data[0].document_id, keep.json.id);
    assert.equal((await getDoc(gone.json.id)).status, 404);
    // Uploading the same content again works (the old one is gone).
    const again = await uploadDocument(svc.baseUrl, PARAGRAPHS[2]!, { collection: 'deletes', filename: 'again.txt' });
    assert.equal(again.status, 202);
    assert.notEqual(again.json.id, gone.json.id);
    await waitDoc(again.json.id);
  });

  test('tenants never see each other’s collections, documents or hits', async () => {
    const mine = await uploadDocument(svc.baseUrl, PARAGRAPHS[3]!, { collection: 'shared-name', filename: 'acme.txt' });
    const theirs = await uploadDocument(svc.baseUrl, PARAGRAPHS[4]!, { collection: 'shared-name', filename: 'globex.txt', key: KEYS.globex });
    await waitDoc(mine.json.id);
    await waitDoc(theirs.json.id, ['ready'], KEYS.globex);
    assert.equal((await getDoc(mine.json.id, KEYS.globex)).status, 404);
    assert.equal((await fetch(`${svc.baseUrl}/v1/documents/${mine.json.id}`, { method: 'DELETE', headers: authHeaders(KEYS.globex) })).status, 404);
    const g = await search('shared-name', { query: 'treaty border disputes mountain kingdoms', top_k: 10 }, KEYS.globex);
    assert.equal(g.status, 200);
    assert.ok(g.json.data.length >= 1);
    assert.ok(g.json.data.every((h: any) => h.document_id === theirs.json.id), 'globex sees only its own document');
    assert.equal((await search('library', { query: 'bees', top_k: 3 }, KEYS.globex)).status, 404);
    const cols = await fetch(`${svc.baseUrl}/v1/collections`, { headers: authHeaders(KEYS.globex) }).then((x) => x.json() as any);
    assert.deepEqual(cols.data.map((c: any) => c.name), ['shared-name']);
    // Another tenant's ingestion job is a 404 too.
    const job = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(mine.json.job_id)}`, { headers: authHeaders(KEYS.globex) });
    assert.equal(job.status, 404);
  });

  test('images are read by OCR (PaddleOCR ONNX models), and scanned PDF pages are rendered and read', async () => {
    const png = textPng(['ZEBRA QUARTZ JUMPS WAX', 'GRAPEFRUIT KIWI MELON'], 3);
    const u = await uploadDocument(svc.baseUrl, png, { collection: 'ocr', filename: 'scan.png' });
    assert.equal(u.status, 202);
    assert.equal(u.json.type, 'png');
    const scan = await scannedPdf([['ZEBRA QUARTZ JUMPS WAX', 'GRAPEFRUIT KIWI MELON']]);
    const p = await uploadDocument(svc.baseUrl, scan, { collection: 'ocr', filename: 'scan.pdf' });
    assert.equal(p.status, 202);
    const d = await waitDoc(u.json.id);
    assert.equal(d.status, 'ready', JSON.stringify(d.error));
    const dp = await waitDoc(p.json.id);
    assert.equal(dp.status, 'ready', JSON.stringify(dp.error));
    const r = await search('ocr', { query: 'zebra quartz grapefruit melon', top_k: 5 });
    assert.equal(r.json.data.length, 2);
    for (const hit of r.json.data) {
      const words = ['ZEBRA', 'QUARTZ', 'GRAPEFRUIT', 'MELON', 'WAX'].filter((w) => hit.text.toUpperCase().includes(w));
      assert.ok(words.length >= 2, `OCR read enough words: ${hit.text}`);
    }
  });

  test('bad input gets a clear 4xx or a failed job with a readable reason; nothing is written outside the upload folder; others keep ingesting', async () => {
    const good = await uploadDocument(svc.baseUrl, `${PARAGRAPHS[0]} Bad-input neighbour.`, { collection: 'bad', filename: 'good.txt' });
    assert.equal(good.status, 202);

    const empty = await uploadDocument(svc.baseUrl, Buffer.alloc(0), { collection: 'bad', filename: 'empty.txt' });
    assert.equal(empty.status, 400);
    assert.equal(empty.json.error.code, 'empty_file');

    const zip = await uploadDocument(svc.baseUrl, zipFile(), { collection: 'bad', filename: 'report.pdf', contentType: 'application/pdf' });
    assert.equal(zip.status, 415);
    assert.match(zip.json.error.message, /zip/);

    const binary = await uploadDocument(svc.baseUrl, Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x00, 0x10]), { collection: 'bad', filename: 'x.txt' });
    assert.equal(binary.status, 415);

    const noCollection = await uploadDocument(svc.baseUrl, 'hello', { filename: 'x.txt' });
    assert.equal(noCollection.status, 400);
    const badMeta = await uploadDocument(svc.baseUrl, 'hello there', { collection: 'bad', metadata: '{not json' });
    assert.equal(badMeta.status, 400);
    assert.equal(badMeta.json.error.param, 'metadata');

    // A path in the file name is only a display name.
    const traversal = await uploadDocument(svc.baseUrl, `${PARAGRAPHS[4]} Traversal attempt.`, { collection: 'bad', filename: '../../etc/passwd' });
    assert.equal(traversal.status, 202);
    assert.equal(traversal.json.filename, 'passwd');

    // A text file named .png is text.
    const fakePng = await uploadDocument(svc.baseUrl, `${PARAGRAPHS[3]} Really text.`, { collection: 'bad', filename: 'photo.png', contentType: 'image/png' });
    assert.equal(fakePng.status, 202);
    assert.equal(fakePng.json.type, 'text');

    const encrypted = await uploadDocument(svc.baseUrl, encryptedPdf(), { collection: 'bad', filename: 'secret.pdf' });
    assert.equal(encrypted.status, 202);
    const pdf = await textPdf([PARAGRAPHS[0]!, PARAGRAPHS[1]!, PARAGRAPHS[2]!]);
    const truncated = await uploadDocument(svc.baseUrl, pdf.subarray(0, Math.floor(pdf.length * 0.3)), { collection: 'bad', filename: 'cut.pdf' });
    assert.equal(truncated.status, 202);
    const corrupt = await uploadDocument(svc.baseUrl, Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(2000, 0x7a)]), { collection: 'bad', filename: 'junk.pdf' });
    assert.equal(corrupt.status, 202);
    const huge = await uploadDocument(svc.baseUrl, await manyPagePdf(2000), { collection: 'bad', filename: 'pages.pdf' });
    assert.equal(huge.status, 202);

    const e = await waitDoc(encrypted.json.id);
    assert.equal(e.status, 'failed');
    assert.equal(e.error.code, 'encrypted_pdf');
    assert.match(e.error.message, /encrypted/i);
    const h = await waitDoc(huge.json.id);
    assert.equal(h.status, 'failed');
    assert.equal(h.error.code, 'too_many_pages');
    assert.match(h.error.message, /2000 pages/);
    const c = await waitDoc(corrupt.json.id);
    assert.equal(c.status, 'failed');
    assert.match(c.error.code, /corrupt_pdf|no_text/);
    const t = await waitDoc(truncated.json.id);
    if (t.status === 'failed') assert.match(t.error.message, /corrupt|truncated|no text/i);
    // The failed ingestion job says why too.
    const job = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(encrypted.json.job_id)}`, { headers: authHeaders() }).then((x) => x.json() as any);
    assert.equal(job.status, 'failed');
    assert.match(job.error.message, /encrypted/i);

    assert.equal((await waitDoc(good.json.id)).status, 'ready');
    assert.equal((await waitDoc(traversal.json.id)).status, 'ready');
    assert.equal((await waitDoc(fakePng.json.id)).status, 'ready');

    // Nothing outside DOCUMENTS_DIR: the upload folder holds only incoming/ and docs/<uuid>/.
    assert.equal(path.resolve(docsDir, '../../etc/passwd'), path.join(docsRoot, 'etc', 'passwd'));
    assert.ok(!existsSync(path.join(docsRoot, 'etc')), 'nothing was written beside the upload folder');
    for (const name of readdirSync(docsDir)) assert.ok(['incoming', 'docs'].includes(name), name);
    for (const name of readdirSync(path.join(docsDir, 'docs'))) assert.match(name, /^[0-9a-f-]{36}$/);
    assert.deepEqual(readdirSync(path.join(docsDir, 'incoming')).filter((n) => n.endsWith('.part')), [], 'no partial uploads left behind');
  });

  test('a 1 GB upload is refused with 413 while streaming, without buffering', async () => {
    const before = await fetch(`http://127.0.0.1:${svc.port}/healthz`);
    assert.equal(before.status, 200);
    const started = Date.now();
    const r = await streamHugeUpload(svc.baseUrl, 1024 * 1024 * 1024);
    assert.equal(r.status, 413, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'payload_too_large');
    assert.ok(r.sentBytes < 256 * 1024 * 1024, `the client stopped early (${r.sentBytes} bytes sent)`);
    assert.ok(Date.now() - started < 30_000);
    await waitFor('the partial upload to be removed', async () => (readdirSync(path.join(docsDir, 'incoming')).some((n) => n.endsWith('.part')) ? undefined : true), 10_000);
    assert.equal((await fetch(`${svc.baseUrl}/healthz`)).status, 200);
  });

  test('search validates its body; unknown collections are 404', async () => {
    assert.equal((await search('library', { top_k: 3 })).status, 400);
    assert.equal((await search('library', { query: 'x', top_k: 0 })).status, 400);
    assert.equal((await search('no-such-collection', { query: 'x' })).status, 404);
    assert.equal((await getDoc('00000000-0000-0000-0000-000000000000')).status, 404);
  });

  test('a killed worker loses no acknowledged chunk: a new worker reloads the snapshot, replays the log and answers the same', async () => {
    const before = await search('library', { query: 'lighthouse keeper lamp', top_k: 10 });
    assert.ok(before.json.data.length >= 4);
    const old = svc.workers[0]!;
    old.child.kill('SIGKILL');
    await new Promise((r) => old.child.once('exit', r));
    svc.workers.splice(0, 1);
    await svc.startWorker();
    const afterRestart = await search('library', { query: 'lighthouse keeper lamp', top_k: 10 });
    assert.equal(afterRestart.status, 200, afterRestart.text);
    assert.deepEqual(
      afterRestart.json.data.map((h: any) => [h.document_id, h.chunk]),
      before.json.data.map((h: any) => [h.document_id, h.chunk]),
    );
    assert.match(svc.workers.at(-1)!.output(), /"fromSnapshot":true/);
  });

  test('DELETE /v1/collections/:name drops the collection, its documents and its index', async () => {
    const u = await uploadDocument(svc.baseUrl, PARAGRAPHS[0]!, { collection: 'to-drop', filename: 'x.txt' });
    await waitDoc(u.json.id);
    const del = await fetch(`${svc.baseUrl}/v1/collections/to-drop`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(del.status, 200);
    assert.equal((await search('to-drop', { query: 'lighthouse' })).status, 404);
    assert.equal((await getDoc(u.json.id)).status, 404);
    const again = await uploadDocument(svc.baseUrl, PARAGRAPHS[0]!, { collection: 'to-drop', filename: 'x.txt' });
    assert.equal(again.status, 202, 'a new collection of the same name starts empty');
    await waitDoc(again.json.id);
    const r = await search('to-drop', { query: 'lighthouse', top_k: 10 });
    assert.equal(r.json.data.length, 1);
  });
});
