import type { DocumentKind } from '../../shared/documents/documents.js';

/**
 * Messages between a worker and its parse processes (workers/documents/parse-process.ts).
 *
 * Every risky step of a parse (opening a PDF, reading a batch of text layers, rendering and reading
 * one scanned page, reading one image) is announced with `step` and runs only after the worker
 * answers `step-go`: in between, the worker raises the document's crash mark in Redis. `step-done`
 * lowers it again. So when a parse process dies, the worker knows which document was running
 * (a process runs one step at a time), and a mark survives even the worker's own death.
 */
export interface ParseLimits {
  maxPages: number;
  /** Largest page side in PDF points (after UserUnit). */
  maxPagePoints: number;
  /** Largest image (PNG, JPEG, or an image inside a PDF) in decoded pixels. */
  maxImagePixels: number;
  /** Pixels of one OCR input: rendered pages and downscaled images stay within it. */
  ocrMaxPixels: number;
  /** OCR time (rendering and reading scanned pages) one document may use. */
  ocrBudgetMs: number;
}

export interface ParseRequest {
  id: number;
  /** Whose document: steps are granted round-robin across tenants. */
  tenant: string;
  kind: DocumentKind;
  /** The uploaded file. */
  path: string;
  /** Folder for scratch files (rendered pages, downscaled images). */
  workDir: string;
  ocr: boolean;
  limits: ParseLimits;
}

export interface ParsedPage {
  page: number;
  text: string;
  /** The text came from OCR (an image, or a PDF page without a text layer). */
  ocr: boolean;
}

export interface ParseStats {
  /** Pages with neither a text layer nor anything visible: skipped without OCR. */
  blank_pages: number;
  /** Pages (or images) that went through OCR. */
  ocr_pages: number;
  /** Time spent rendering and reading scanned pages, counted against DOCUMENTS_OCR_BUDGET_SECONDS. */
  ocr_ms: number;
}

export type ToParseProcess =
  | { type: 'parse'; request: ParseRequest }
  | { type: 'step-go'; id: number }
  /** The document already crashed parse processes too often: it fails without running the step. */
  | { type: 'step-refuse'; id: number; code: string; message: string; permanent: boolean }
  | { type: 'cancel'; id: number };

export type FromParseProcess =
  | { type: 'step'; id: number; what: string }
  | { type: 'step-done'; id: number }
  | { type: 'progress'; id: number; pages_done: number; pages_total: number }
  | { type: 'result'; id: number; pages: ParsedPage[]; stats: ParseStats; rss: number }
  | { type: 'error'; id: number; code: string; message: string; permanent: boolean; rss: number };
