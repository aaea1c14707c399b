import type { DocumentKind } from '../../shared/documents/documents.js';

/** Messages between a worker's main thread and its parse thread (workers/documents/parse-thread.ts). */
export interface ParseRequest {
  id: number;
  kind: DocumentKind;
  /** The uploaded file. */
  path: string;
  /** Folder for scratch files (rendered pages). */
  workDir: string;
  maxPages: number;
  ocr: boolean;
}

export interface ParsedPage {
  page: number;
  text: string;
  /** The text came from OCR (an image, or a PDF page without a text layer). */
  ocr: boolean;
}

export type ParseReply =
  | { id: number; type: 'progress'; pages_done: number; pages_total: number }
  | { id: number; type: 'result'; pages: ParsedPage[] }
  | { id: number; type: 'error'; code: string; message: string; permanent: boolean };
