/**
 * npm run bench:ingest: a 100-page PDF of real text (README prose, bench/corpus.ts), end to end
 * through the service (upload → parse → chunk → embed → index, the flow as a client sees it) against
 * what the same work costs done directly in one process (pdf-parse + the same chunker + raw
 * onnxruntime-node embedding, length-sorted batches of 64; no queue, no index). Pages/s for both and
 * their ratio; writes bench/results/ingest-<time>.json.  Env: BENCH_PAGES (100), BENCH_RUNS (3).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PDFParse } from 'pdf-parse';
import { textPdf, uploadDocument } from '../tests/helpers/documents.js';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { authHeaders, ROOT, startService, USE_LITE_DIR, useLiteModel, waitFor, writeModelsConfig } from '../tests/helpers/service.js';
import { Chunker } from '../workers/documents/chunker.js';
import { tidy } from '../workers/documents/text-extract.js';
import { createUseLiteSession } from '../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../workers/embeddings/use-lite/use-lite.tokenizer.js';
import { loadSentences } from './corpus.js';

const PAGES = Number(process.env.BENCH_PAGES ?? 100);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const log = (s: string) => console.log(s);
const sentences = loadSentences(1e9);

async function makePdf(run: number): Promise<Buffer> {
  const pages = Array.from({ length: PAGES }, (_, p) =>
    Array.from({ length: 10 }, (_, i) => sentences[(run * 997 + p * 10 + i) % sentences.length]).join(' ') + ` (run ${run}, page ${p + 1})`,
  );
  return textPdf(pages);
}

async function direct(pdf: Buffer) {
  const tokenizer = await UseLiteTokenizer.load(USE_LITE_DIR);
  const session = await createUseLiteSession(USE_LITE_DIR, { intraOpThreads: 2, executionProviders: ['cpu'] });
  await session.embed(tokenizer.tokenize(['warm up']));
  const t0 = performance.now();
  const parser = new PDFParse({ data: new Uint8Array(pdf) });
  const text = await parser.getText({ pageJoiner: '' });
  await parser.destroy();
  const t1 = performance.now();
  const chunks = new Chunker(tokenizer, { overlap: 24 }).chunk(text.pages.map((p) => ({ page: p.num, text: tidy(p.text) })));
  const rows = tokenizer.tokenize(chunks.map((c) => c.text)).map((r, i) => ({ r, i })).sort((a, b) => a.r.length - b.r.length);
  const t2 = performance.now();
  for (let i = 0; i < rows.length; i += 64) await session.embed(rows.slice(i, i + 64).map((x) => x.r));
  const t3 = performance.now();
  await session.release();
  return { chunks: chunks.length, parse_ms: t1 - t0, chunk_ms: t2 - t1, embed_ms: t3 - t2, total_ms: t3 - t0 };
}

async function main() {
  log(`${PAGES}-page PDF, ${RUNS} runs, ${os.cpus().length} cores`);
  const pdfs = await Promise.all(Array.from({ length: RUNS }, (_, r) => makePdf(r)));
  const baseline = [];
  for (const pdf of pdfs) baseline.push(await direct(pdf));
  const bestDirect = baseline.reduce((a, b) => (b.total_ms < a.total_ms ? b : a));
  log(`direct (parse + chunk + raw embedding): best ${bestDirect.total_ms.toFixed(0)} ms = ${((PAGES / bestDirect.total_ms) * 1000).toFixed(1)} pages/s ` +
    `(parse ${bestDirect.parse_ms.toFixed(0)} ms, chunk ${bestDirect.chunk_ms.toFixed(0)} ms, embed ${bestDirect.embed_ms.toFixed(0)} ms, ${bestDirect.chunks} chunks)`);

  const redis = await startPrivateRedis();
  const svc = await startService({
    redisUrl: redis.url,
    modelsConfig: writeModelsConfig([useLiteModel()]),
    env: {
      LOG_LEVEL: 'warn',
      DOCUMENTS_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-docs-')),
      INDEX_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-index-')),
      RATE_LIMIT_RPM: '0',
      RATE_LIMIT_TPM: '0',
    },
  });
  const pipeline: { total_ms: number; chunks: number }[] = [];
  try {
    // Warm-up document (first parse loads pdf.js into the parse thread).
    const warm = await uploadDocument(svc.baseUrl, await textPdf(['warm up page']), { collection: 'warm', filename: 'w.pdf' });
    await waitReady(svc.baseUrl, warm.json.id);
    for (const [r, pdf] of pdfs.entries()) {
      const t0 = performance.now();
      const u = await uploadDocument(svc.baseUrl, pdf, { collection: `ingest-${r}`, filename: `run-${r}.pdf` });
      if (u.status !== 202) throw new Error(`upload: ${u.status} ${JSON.stringify(u.json)}`);
      const d = await waitReady(svc.baseUrl, u.json.id);
      pipeline.push({ total_ms: performance.now() - t0, chunks: d.chunks });
    }
  } finally {
    await svc.stop();
    await redis.cleanup();
  }
  const bestPipe = pipeline.reduce((a, b) => (b.total_ms < a.total_ms ? b : a));
  const pagesPerSecond = (PAGES / bestPipe.total_ms) * 1000;
  const directPagesPerSecond = (PAGES / bestDirect.total_ms) * 1000;
  log(`end to end through the service: best ${bestPipe.total_ms.toFixed(0)} ms = ${pagesPerSecond.toFixed(1)} pages/s (${bestPipe.chunks} chunks); runs: ${pipeline.map((p) => p.total_ms.toFixed(0)).join(', ')} ms`);
  log(`ratio pipeline / direct = ${(pagesPerSecond / directPagesPerSecond).toFixed(2)}`);
  const outDir = path.join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `ingest-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ pages: PAGES, direct: baseline, pipeline, pages_per_second: { direct: directPagesPerSecond, pipeline: pagesPerSecond } }, null, 2));
  log(`wrote ${path.relative(ROOT, file)}`);
}

async function waitReady(baseUrl: string, id: string): Promise<any> {
  return waitFor(`document ${id}`, async () => {
    const r = (await (await fetch(`${baseUrl}/v1/documents/${id}`, { headers: authHeaders() })).json()) as any;
    if (r.status === 'failed') throw new Error(JSON.stringify(r.error));
    return r.status === 'ready' ? r : undefined;
  }, 600_000);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
