import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { documentKeys } from '../../shared/documents/documents.js';
import { createLogger } from '../../shared/logger.js';
import { CrashMarks } from '../../workers/documents/crash-marks.js';
import { ParsePool, type ParseJob, type ParsePoolOptions } from '../../workers/documents/parse-pool.js';
import type { ParseLimits } from '../../workers/documents/parse-process.protocol.js';
import { longScannedPdf, pixelBombPng, textPng } from '../helpers/documents.js';
import { startPrivateRedis } from '../helpers/redis.js';

/**
 * The parse pool on its own, with real parse processes, real files and the crash marks in a real
 * Redis: what happens to the document that crashed a process, to the documents that shared it, to
 * a step that hangs, and to a step running when the worker shuts down.
 */
describe('parse pool: crashes, hangs and shutdown', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let client: Redis;
  let marks: CrashMarks;
  const keys = documentKeys(`t${process.pid}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-parse-pool-'));
  const pools: ParsePool[] = [];
  const limits: ParseLimits = { maxPages: 500, maxPagePoints: 14_400, maxImagePixels: 50_000_000, ocrMaxPixels: 4_000_000, ocrBudgetMs: 600_000 };

  before(async () => {
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    marks = new CrashMarks(client, keys);
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
    client?.disconnect();
    await redis?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const pool = (opts: Partial<ParsePoolOptions> = {}) => {
    const p = new ParsePool({
      processes: 1,
      ocrThreads: 1,
      maxHeapMb: 1024,
      recycleMb: 4096,
      stepTimeoutMs: 120_000,
      poisonCrashes: 2,
      marks,
      log: createLogger({ level: 'silent', name: 'test' }),
      ...opts,
    });
    pools.push(p);
    return p;
  };
  const job = (docId: string, kind: ParseJob['kind'], data: Buffer | string, tenant = 'acme', jobLimits = limits): ParseJob => {
    const file = path.join(dir, `${docId}.${kind}`);
    writeFileSync(file, data);
    return { docId, tenant, kind, path: file, workDir: dir, ocr: true, limits: jobLimits };
  };
  const mark = async (docId: string) => client.hget(keys.crashMarks(docId), 'parse');
  /** Waits until the document's mark has read `value` continuously for `steadyMs`. */
  const waitForMark = async (docId: string, value: string, steadyMs: number) => {
    const deadline = Date.now() + 120_000;
    let since: number | undefined;
    while (Date.now() < deadline) {
      if ((await mark(docId)) === value) {
        since ??= Date.now();
        if (Date.now() - since >= steadyMs) return;
      } else since = undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the mark of ${docId} never stayed at ${value}`);
  };

  test('the crashing document keeps its mark and fails as poison on its second crash; the document that shared its process is read again and succeeds', async () => {
    // The size checks off and a 192 MB heap: the OCR library's JS copies of 36 M pixels crash the process.
    const p = pool({ maxHeapMb: 192 });
    const loose = { ...limits, maxImagePixels: 400_000_000, ocrMaxPixels: 400_000_000 };
    const bomb = job('bomb', 'png', pixelBombPng(6000, 6000), 'acme', loose);
    const order: string[] = [];
    const first = p.parse(bomb).finally(() => order.push('bomb'));
    // Once the image is being read (its mark raised for a second, longer than its header check
    // takes), another tenant's document arrives and waits in the same process for its turn.
    await waitForMark('bomb', '1', 1000);
    const neighbour = p.parse(job('neighbour', 'text', 'A small text that shares the parse process with a crashing image.', 'globex')).finally(() => order.push('neighbour'));
    await assert.rejects(first, (e: any) => e.code === 'parse_crashed' && e.permanent === false && /SIGABRT/.test(e.message));
    assert.equal(await mark('bomb'), '1', 'the crash is recorded in Redis');
    const n = await neighbour;
    assert.match(n.pages[0]!.text, /shares the parse process/);
    assert.deepEqual(order, ['bomb', 'neighbour'], 'the neighbour was in the process when it died, and was read again');
    assert.equal(await mark('neighbour'), null, 'the neighbour has no mark');

    await assert.rejects(p.parse(bomb), (e: any) => e.code === 'poison_input' && e.permanent === true && /2 times/.test(e.message));
    assert.equal(await mark('bomb'), '2');
    // A third attempt (another worker, say) is refused before the step runs.
    await assert.rejects(p.parse(bomb), (e: any) => e.code === 'poison_input' && /2 times; it is not tried again/.test(e.message));
    const after = await p.parse(job('after', 'text', 'The pool has a fresh process.'));
    assert.equal(after.pages[0]!.text, 'The pool has a fresh process.');
  });

  test('a step past its timeout is killed with its process and counts as a crash', async () => {
    const p = pool({ stepTimeoutMs: 50, poisonCrashes: 1 });
    // Reading an image takes far longer than 50 ms (the OCR models alone).
    await assert.rejects(
      p.parse(job('slow', 'png', textPng(['A SLOW PAGE']))),
      (e: any) => e.code === 'poison_input' && /ran longer than 0.05 s \(DOCUMENTS_PARSE_STEP_TIMEOUT_SECONDS\)/.test(e.message),
    );
    assert.equal(await mark('slow'), '1');
  });

  test('shutting down kills the processes, fails their requests as retryable and leaves no mark for the running step', async () => {
    const p = pool();
    const progress: number[] = [];
    const running = p.parse(job('long-scan', 'pdf', await longScannedPdf(30, ['ZEBRA QUARTZ JUMPS WAX'])), { onProgress: (done) => progress.push(done) });
    const outcome = running.then(
      () => undefined,
      (e) => e,
    );
    // A scanned page is being read: a step is running.
    await waitForMark('long-scan', '1', 300);
    const pids = p.pids;
    await p.close();
    const err = await outcome;
    assert.equal(err?.code, 'parse_pool_closed');
    assert.equal(err?.permanent, false);
    assert.equal(await mark('long-scan'), '0', 'the step was stopped by the shutdown, not by the document');
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'the parse process is gone');
  });
});
