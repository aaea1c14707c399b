import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { bigPagePdf, blankPdf, deepHeaderJpeg, longScannedPdf, pixelBombPng, textPng, uploadDocument } from '../helpers/documents.js';
import { isRunning, rssKb } from '../helpers/ops.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Poison inputs and parsing fairness (docs/RELIABILITY.md, "Poison inputs and parsing fairness"),
 * against the real API and worker processes: pixel bombs, huge pages and blank documents are
 * refused before anything is decoded; a document that really crashes its parse process is failed
 * as poison after DOCUMENTS_POISON_CRASHES crashes, counted across workers; the worker process
 * survives all of it, keeps serving, and its memory comes back; and a small document of one tenant
 * is ready while another tenant's long scan is still being read.
 */

/** Process ids of a process's children (/proc, Linux). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The worker's parse processes among its children. */
function parseProcesses(pid: number): number[] {
  return childPids(pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('parse-process');
    } catch {
      return false;
    }
  });
}

/** Resident memory of a process and all its descendants, in MiB. */
function treeRssMb(pid: number): number {
  let kb = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      kb += rssKb(p);
    } catch {
      continue; // exited meanwhile
    }
    stack.push(...childPids(p));
  }
  return kb / 1024;
}

const PARAGRAPH = 'The lighthouse keeper climbed the spiral stairs every evening to light the great lamp that warned ships away from the rocks.';

function documentsClient(svc: () => ServiceHandle) {
  const get = async (id: string, key = KEYS.acme) => (await fetch(`${svc().baseUrl}/v1/documents/${id}`, { headers: authHeaders(key) })).json() as Promise<any>;
  const settle = (id: string, key = KEYS.acme, timeoutMs = 180_000) =>
    waitFor(
      `document ${id} to finish`,
      async () => {
        const d = await get(id, key);
        return d.status === 'ready' || d.status === 'failed' ? d : undefined;
      },
      timeoutMs,
      () => svc().workers.map((w) => w.output().slice(-3000)).join('\n'),
    );
  return { get, settle };
}

describe('poison inputs are refused before decoding, and parsing is shared fairly between tenants', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  const docs = documentsClient(() => svc);

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: {
        DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-docs-')),
        INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-index-')),
        // Small enough that the 120-page scans below run out of it, so the test ends on its own; large
        // enough that a slow, loaded machine still reads several pages of A's first scan before B is
        // ready (at 20 s a CI run once spent it on the first scanned page).
        DOCUMENTS_OCR_BUDGET_SECONDS: '60',
        // Two parse slots, one per tenant: tenant A's second scan must wait, not take B's slot.
        DOCUMENTS_PARSE_CONCURRENCY: '2',
        DOCUMENTS_PARSE_TENANT_SLOTS: '1',
      },
    });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  test('a pixel bomb (a 50 KB PNG declaring 16000 × 16000 pixels) is refused at upload with 422 image_too_large', async () => {
    const bomb = pixelBombPng(16000, 16000);
    assert.ok(bomb.length < 100_000, `the bomb is small on disk (${bomb.length} bytes)`);
    const r = await uploadDocument(svc.baseUrl, bomb, { collection: 'poison', filename: 'bomb.png' });
    assert.equal(r.status, 422, JSON.stringify(r.json));
    assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(r.json.error.code, 'image_too_large');
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.param, 'file');
    assert.match(r.json.error.message, /16000 × 16000 pixels .*DOCUMENTS_MAX_IMAGE_PIXELS/);
  });

  test('oversized images the API cannot see, huge pages and blank documents fail with their code; the worker and its parse process live on, memory comes back', async () => {
    const worker = svc.workers[0]!;
    const pid = worker.child.pid!;
    // Warm up: the parse process starts and loads its OCR models, so the baseline includes them.
    const warm = await uploadDocument(svc.baseUrl, textPng(['WARM UP THE OCR MODELS']), { collection: 'poison', filename: 'warm.png' });
    assert.equal((await docs.settle(warm.json.id)).status, 'ready');
    const parsers = parseProcesses(pid);
    assert.equal(parsers.length, 1, 'one parse process');
    const baseline = { worker: rssKb(pid) / 1024, tree: treeRssMb(pid) };

    const uploaded = Date.now();
    const jpeg = await uploadDocument(svc.baseUrl, deepHeaderJpeg(16000, 16000), { collection: 'poison', filename: 'deep.jpg' });
    assert.equal(jpeg.status, 202, 'its frame header is past the bytes the API reads');
    const page = await uploadDocument(svc.baseUrl, await bigPagePdf(20000, 20000), { collection: 'poison', filename: 'page.pdf' });
    const blank = await uploadDocument(svc.baseUrl, await blankPdf(120), { collection: 'poison', filename: 'blank.pdf' });
    const good = await uploadDocument(svc.baseUrl, `${PARAGRAPH} Poison neighbour.`, { collection: 'poison', filename: 'good.txt' });
    for (const u of [page, blank, good]) assert.equal(u.status, 202, JSON.stringify(u.json));

    const j = await docs.settle(jpeg.json.id);
    assert.equal(j.status, 'failed');
    assert.equal(j.error.code, 'image_too_large');
    assert.match(j.error.message, /16000 × 16000/);
    const p = await docs.settle(page.json.id);
    assert.equal(p.status, 'failed');
    assert.equal(p.error.code, 'page_too_large');
    assert.match(p.error.message, /Page 1 is 20000 × 20000 pt/);
    const b = await docs.settle(blank.json.id);
    const blankSeconds = (Date.now() - uploaded) / 1000;
    assert.equal(b.status, 'failed');
    assert.equal(b.error.code, 'no_text');
    assert.match(b.error.message, /120 of its 120 pages are blank/, 'blank pages were recognised (and not OCR’d)');
    assert.equal((await docs.settle(good.json.id)).status, 'ready');
    // The failed ingestion job carries the code too.
    const job = await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(page.json.job_id)}`, { headers: authHeaders() }).then((x) => x.json() as any);
    assert.equal(job.status, 'failed');
    assert.match(job.error.message, /DOCUMENTS_MAX_PAGE_POINTS/);

    assert.ok(isRunning(worker), 'the worker is alive');
    assert.equal(worker.child.pid, pid);
    assert.deepEqual(parseProcesses(pid), parsers, 'refusals crash nothing: the same parse process');
    const afterRss = { worker: rssKb(pid) / 1024, tree: treeRssMb(pid) };
    console.log(
      `POISON refusals: 120 blank pages failed no_text ${blankSeconds.toFixed(1)} s after upload; worker RSS ${baseline.worker.toFixed(0)} -> ${afterRss.worker.toFixed(0)} MB, with parse process ${baseline.tree.toFixed(0)} -> ${afterRss.tree.toFixed(0)} MB`,
    );
    assert.ok(afterRss.worker < baseline.worker + 300, `worker RSS ${afterRss.worker} MB vs baseline ${baseline.worker} MB`);
    assert.ok(afterRss.tree < baseline.tree + 300, `worker + parse process RSS ${afterRss.tree} MB vs baseline ${baseline.tree} MB`);
  });

  test('a small text of tenant B is ready while tenant A’s two 120-page scans are still unfinished; A’s second waits for A’s first, not B', async () => {
    const lines = ['ZEBRA QUARTZ JUMPS WAX', 'GRAPEFRUIT KIWI MELON'];
    const a1 = await uploadDocument(svc.baseUrl, await longScannedPdf(120, lines), { collection: 'scans', filename: 'scan-1.pdf' });
    const a2 = await uploadDocument(svc.baseUrl, await longScannedPdf(120, [...lines, 'SECOND']), { collection: 'scans', filename: 'scan-2.pdf' });
    for (const u of [a1, a2]) assert.equal(u.status, 202, JSON.stringify(u.json));
    const aStarted = Date.now();
    // B uploads right behind A, once A's scanned pages are being read.
    await waitFor('A to be reading scanned pages', async () => {
      const d = await docs.get(a1.json.id);
      if (d.status === 'failed') throw new Error(JSON.stringify(d.error));
      return d.stage === 'parse' && d.progress.pages_total === 120 ? true : undefined;
    }, 180_000);
    const bStarted = Date.now();
    const b = await uploadDocument(svc.baseUrl, `${PARAGRAPH} Tenant B's small document.`, { collection: 'notes', filename: 'small.txt', key: KEYS.globex });
    assert.equal(b.status, 202, JSON.stringify(b.json));
    const bDone = await docs.settle(b.json.id, KEYS.globex);
    const bSeconds = (Date.now() - bStarted) / 1000;
    assert.equal(bDone.status, 'ready', JSON.stringify(bDone.error));
    const [a1Then, a2Then] = await Promise.all([docs.get(a1.json.id), docs.get(a2.json.id)]);
    assert.equal(a1Then.status, 'processing', `A's first scan is still being parsed when B is ready: ${JSON.stringify(a1Then)}`);
    assert.equal(a1Then.stage, 'parse');
    assert.ok(a1Then.progress.pages_done < 120, `A has pages left (${a1Then.progress.pages_done} of 120 done)`);
    // A holds its one slot with its first scan: its second is deferred (still queued), so the other slot was B's.
    assert.equal(a2Then.status, 'queued', `A's second scan waits for A's first: ${JSON.stringify(a2Then)}`);

    const [a1Done, a2Done] = await Promise.all([docs.settle(a1.json.id, KEYS.acme, 300_000), docs.settle(a2.json.id, KEYS.acme, 300_000)]);
    for (const d of [a1Done, a2Done]) {
      assert.equal(d.status, 'failed');
      assert.equal(d.error.code, 'ocr_time_limit');
      assert.match(d.error.message, /DOCUMENTS_OCR_BUDGET_SECONDS/);
    }
    console.log(
      `FAIRNESS B ready ${bSeconds.toFixed(1)} s after upload (A's first scan at page ${a1Then.progress.pages_done} of 120, its second still queued); ` +
        `A's scans failed ocr_time_limit ${((a1Done.updated_at - aStarted / 1000)).toFixed(0)} s and ${((a2Done.updated_at - aStarted / 1000)).toFixed(0)} s after upload: ${a1Done.error.message}`,
    );
  });
});

describe('a document that crashes its parse process is failed as poison, counted across workers', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let client: Redis;
  let svc: ServiceHandle;
  const docs = documentsClient(() => svc);
  // The size checks are turned off so that a 6000 × 6000 image reaches the OCR library, whose JS
  // copies of it exhaust a 192 MB heap: a real crash of the parse process, every time.
  const env = {
    DOCUMENTS_MAX_IMAGE_PIXELS: '400000000',
    DOCUMENTS_OCR_MAX_PIXELS: '400000000',
    DOCUMENTS_PARSE_MAX_HEAP_MB: '192',
    DOCUMENTS_POISON_CRASHES: '2',
    WORKER_LOCK_DURATION_MS: '2000',
    WORKER_STALLED_INTERVAL_MS: '1000',
  };

  before(async () => {
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: { ...env, DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-docs-')), INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-index-')) },
    });
  });

  after(async () => {
    client?.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  const crashesIn = (output: string) => output.split('\n').filter((l) => l.includes('"msg":"parse process died"')).length;

  test('two crashes, then poison_input; the worker keeps its PID, serves another tenant meanwhile, and its memory comes back', async () => {
    const worker = svc.workers[0]!;
    const pid = worker.child.pid!;
    const warm = await uploadDocument(svc.baseUrl, `${PARAGRAPH} Warm-up.`, { collection: 'crash', filename: 'warm.txt' });
    assert.equal((await docs.settle(warm.json.id)).status, 'ready');
    const baseline = rssKb(pid) / 1024;

    const started = Date.now();
    const bomb = await uploadDocument(svc.baseUrl, pixelBombPng(6000, 6000), { collection: 'crash', filename: 'crash.png' });
    assert.equal(bomb.status, 202, JSON.stringify(bomb.json));
    const other = await uploadDocument(svc.baseUrl, `${PARAGRAPH} Tenant B during the crashes.`, { collection: 'crash', filename: 'b.txt', key: KEYS.globex });
    assert.equal((await docs.settle(other.json.id, KEYS.globex)).status, 'ready', 'another tenant is served while the poison document crashes');

    const d = await docs.settle(bomb.json.id);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(d.status, 'failed');
    assert.equal(d.error.code, 'poison_input');
    assert.match(d.error.message, /crashed or hung its parse process 2 times/);
    assert.equal(crashesIn(worker.output()), 2, 'exactly DOCUMENTS_POISON_CRASHES crashes, then no more attempts');

    assert.ok(isRunning(worker), 'the worker is alive');
    assert.equal(worker.child.pid, pid);
    const after = await uploadDocument(svc.baseUrl, `${PARAGRAPH} After the poison.`, { collection: 'crash', filename: 'after.txt' });
    assert.equal((await docs.settle(after.json.id)).status, 'ready', 'the worker still parses');
    const afterRss = rssKb(pid) / 1024;
    console.log(`POISON crash: poison_input after ${seconds.toFixed(1)} s (2 crashes); worker RSS ${baseline.toFixed(0)} -> ${afterRss.toFixed(0)} MB, same PID`);
    assert.ok(afterRss < baseline + 300, `worker RSS ${afterRss} MB vs baseline ${baseline} MB`);
  });

  test('a worker killed in the middle of a step leaves its crash mark; the next worker counts it', async () => {
    const first = svc.workers[0]!;
    const bomb = await uploadDocument(svc.baseUrl, pixelBombPng(6016, 6000), { collection: 'crash', filename: 'crash-2.png' });
    assert.equal(bomb.status, 202, JSON.stringify(bomb.json));
    const markKey = `${svc.prefix}:docs:d:${bomb.json.id}:crashes`;
    // The mark is raised before the step starts: kill the whole worker while it is.
    await waitFor('the crash mark to be raised', async () => ((await client.hget(markKey, 'parse')) === '1' ? true : undefined), 120_000);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const second = await svc.startWorker();

    const d = await docs.settle(bomb.json.id);
    assert.equal(d.status, 'failed');
    assert.equal(d.error.code, 'poison_input');
    assert.match(d.error.message, /2 times/);
    assert.equal(crashesIn(second.output()), 1, 'the new worker crashed once: the other crash was the dead worker’s, read from Redis');
    assert.ok(isRunning(second));
  });
});
