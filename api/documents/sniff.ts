import { fileTypeFromBuffer } from 'file-type';
import { imageSize } from 'image-size';
import { imageTooLarge } from '../../shared/documents/document-limits.js';
import { AppError, errors } from '../../shared/errors/app-error.js';
import type { DocumentKind } from '../../shared/documents/documents.js';

/** Bytes of a file's start that the type is decided from. */
export const SNIFF_BYTES = 8192;

const SUPPORTED = 'PDF, plain text, Markdown, HTML, PNG or JPEG';

export function unsupported(message: string): AppError {
  return new AppError(415, 'invalid_request_error', 'unsupported_document_type', message, { param: 'file' });
}

/**
 * The type of an upload, from its first bytes (magic numbers), never from its name or declared
 * content type: a zip renamed .pdf is a zip, a text file renamed .png is text. Binary formats are
 * recognised by file-type; anything else must be UTF-8 text, which is HTML, Markdown or plain text
 * by its content.
 */
export async function sniffDocument(head: Buffer, bytes: number): Promise<{ kind: DocumentKind; mime: string }> {
  if (bytes === 0) throw errors.invalidRequest('The file is empty.', 'file', 'empty_file');
  const detected = await fileTypeFromBuffer(head);
  if (detected) {
    if (detected.mime === 'application/pdf') return { kind: 'pdf', mime: detected.mime };
    if (detected.mime === 'image/png') return { kind: 'png', mime: detected.mime };
    if (detected.mime === 'image/jpeg') return { kind: 'jpeg', mime: detected.mime };
    throw unsupported(`The file is ${detected.mime} (.${detected.ext}), judging by its content; supported are ${SUPPORTED}.`);
  }
  if (head.includes(0)) throw unsupported(`The file is binary data of an unknown type; supported are ${SUPPORTED}.`);
  let text: string;
  try {
    // stream: true tolerates a character cut in half at the end of the sniffed bytes.
    text = new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: head.length < bytes });
  } catch {
    throw unsupported(`The file is neither UTF-8 text nor a known binary format; supported are ${SUPPORTED}.`);
  }
  text = text.replace(/^\uFEFF/, '');
  if (/^\s*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])/i.test(text) || htmlTagCount(text) >= 3) return { kind: 'html', mime: 'text/html' };
  if (markdownSignals(text) >= 2 || /^#{1,6}\s+\S/.test(text)) return { kind: 'markdown', mime: 'text/markdown' };
  return { kind: 'text', mime: 'text/plain' };
}

/**
 * Refuses an image whose header declares more pixels than the workers accept, before it is stored
 * or queued: a 30 KB PNG can declare 16000 × 16000 pixels (a gigabyte once decoded). PNG's header is
 * always in the first bytes; a JPEG's frame header can sit behind large metadata segments past the
 * sniffed bytes, and then the worker checks it instead (from the file, before decoding).
 */
export function checkImageHeader(kind: DocumentKind, head: Buffer, maxPixels: number): void {
  if (kind !== 'png' && kind !== 'jpeg') return;
  let size: { width?: number; height?: number };
  try {
    size = imageSize(head);
  } catch {
    return;
  }
  if (!size.width || !size.height) return;
  const refused = imageTooLarge(size.width, size.height, maxPixels);
  if (refused) throw errors.unprocessable(refused, 'file', 'image_too_large');
}

function htmlTagCount(text: string): number {
  return (text.match(/<\/(p|div|span|a|h[1-6]|li|ul|ol|table|tr|td|section|article|body|html|script|style)>/gi) ?? []).length;
}

function markdownSignals(text: string): number {
  let n = 0;
  if (/^#{1,6}\s+\S/m.test(text)) n++;
  if (/^\s*(```|~~~)/m.test(text)) n++;
  if (/\[[^\]\n]+\]\([^)\s]+\)/.test(text)) n++;
  if (/^\s*[-*+]\s+\S/m.test(text)) n++;
  if (/(\*\*|__)[^*_\n]+\1/.test(text)) n++;
  if (/^\s*>\s+\S/m.test(text)) n++;
  return n;
}
