import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import type { Request, Response } from 'express';
import { AppError, errors } from '../../shared/errors/app-error.js';
import { SNIFF_BYTES } from './sniff.js';

export interface ReceivedUpload {
  /** The file as written, inside the upload folder, under a server-made name. */
  tmpPath: string;
  bytes: number;
  sha256: string;
  /** Its first bytes, for type detection. */
  head: Buffer;
  /** The client's file name, for display only (never used as a path). */
  filename: string;
  fields: Record<string, string>;
}

/**
 * Checks the file's bytes as they stream past (the Files API counts JSONL lines with one): `feed`
 * sees every chunk in order, `end` the end of the file with every field of the form; an error
 * returned by either refuses the upload at once, before the rest is read.
 */
export interface UploadInspector {
  feed(chunk: Buffer): AppError | undefined;
  end(fields: Record<string, string>): AppError | undefined;
}

export interface UploadOptions {
  incomingDir: string;
  maxBytes: number;
  /** The setting that sets `maxBytes`, named in the 413 message. */
  maxBytesSetting?: string;
  /** What the route takes, for the 415 message. */
  expects?: string;
  /** Made when the file part starts, with the fields sent before it (a field sent after the file is only seen by `end`). */
  inspect?: (fieldsSoFar: Record<string, string>) => UploadInspector;
  /** Where the body is read from instead of the request: a signed request's hashing stream. */
  body?: Readable;
}

/** Whether the request is a multipart form (the only kind of body the upload route reads). */
export function isMultipart(req: Pick<Request, 'headers'>): boolean {
  return /^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '');
}

/** Multipart overhead allowed on top of the file in Content-Length before a request is refused unread. */
const ENVELOPE_BYTES = 256 * 1024;

/**
 * Streams a multipart upload's `file` part to disk (busboy: the body is never held in memory),
 * hashing it and keeping its first bytes on the way, and collects the text fields. The size limit
 * is enforced while streaming: the part is cut off at `maxBytes`, the partial file removed, and the
 * request answered 413 (Content-Length alone already refuses what is announced as too large).
 * The file name the client sent is kept as a display name only; the file is written under a
 * random name in `incomingDir`, so no name can point anywhere else.
 */
export function receiveUpload(req: Request, opts: UploadOptions): Promise<ReceivedUpload> {
  if (!isMultipart(req)) {
    return Promise.reject(
      new AppError(415, 'invalid_request_error', 'unsupported_media_type', opts.expects ?? 'POST /v1/documents takes multipart/form-data with a `file` part and a `collection` field.'),
    );
  }
  const announced = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(announced) && announced > opts.maxBytes + ENVELOPE_BYTES) {
    return Promise.reject(tooLarge(opts));
  }
  // Something before the route read the body already: waiting for it would never end.
  if (!opts.body && req.readableEnded) return Promise.reject(errors.internal('The upload body was consumed before the upload route read it.'));

  return mkdir(opts.incomingDir, { recursive: true }).then(() => receive(req, opts));
}

function receive(req: Request, opts: UploadOptions): Promise<ReceivedUpload> {
  const source = opts.body ?? req;
  return new Promise<ReceivedUpload>((resolve, reject) => {
    let settled = false;
    let tmpPath: string | undefined;
    let written: Promise<void> | undefined;
    let sink: WriteStream | undefined;
    /** The temporary file's stream has closed: its file exists now, if it ever will. */
    let closed: Promise<void> | undefined;
    let part: NodeJS.ReadableStream & { destroy(): void } | undefined;
    let bytes = 0;
    let inspect: UploadInspector | undefined;
    const hash = createHash('sha256');
    const headParts: Buffer[] = [];
    let headBytes = 0;
    let filename = '';
    const fields: Record<string, string> = {};

    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: { fileSize: opts.maxBytes, files: 1, fields: 16, fieldSize: 64 * 1024, parts: 20, headerPairs: 50 },
      });
    } catch (err) {
      return reject(errors.invalidRequest(`Malformed multipart request: ${(err as Error).message}`, null, 'invalid_multipart'));
    }

    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      source.unpipe(bb);
      bb.removeAllListeners('close');
      part?.destroy();
      // Destroyed here rather than left to the pipeline, which may never settle once busboy is
      // unpiped; the file is removed once its stream has closed: a write stream destroyed before its
      // file was open still opens (creates) it afterwards.
      sink?.destroy();
      if (tmpPath) {
        const p = tmpPath;
        void (closed ?? Promise.resolve()).then(() => unlink(p).catch(() => {}));
      }
      reject(err);
    };

    bb.on('file', (name, stream, info) => {
      if (name !== 'file' || tmpPath) {
        stream.resume();
        return;
      }
      filename = displayName(info.filename);
      part = stream;
      tmpPath = path.join(opts.incomingDir, `${randomUUID()}.part`);
      const inspector = opts.inspect?.({ ...fields });
      inspect = inspector;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        if (headBytes < SNIFF_BYTES) {
          headParts.push(chunk.subarray(0, SNIFF_BYTES - headBytes));
          headBytes += Math.min(chunk.length, SNIFF_BYTES - headBytes);
        }
        const refused = inspector?.feed(chunk);
        if (refused) fail(refused);
      });
      stream.on('limit', () => fail(tooLarge(opts)));
      // The write stream is attached in the same tick as the 'data' listener, so both see every byte.
      sink = createWriteStream(tmpPath, { flags: 'wx', mode: 0o600 });
      // Not events.once: it settles on 'error', which a destroyed stream emits before it has closed.
      const opened = sink;
      closed = new Promise<void>((done) => opened.once('close', () => done()));
      written = pipeline(stream, sink);
      written.catch((err) => fail(errors.internal('Could not store the upload.', err)));
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(errors.invalidRequest(`The field '${name}' is too long.`, name));
      fields[name] = value;
    });
    bb.on('filesLimit', () => fail(errors.invalidRequest('Send one file per request.', 'file', 'too_many_files')));
    bb.on('fieldsLimit', () => fail(errors.invalidRequest('Too many fields.', null)));
    bb.on('partsLimit', () => fail(errors.invalidRequest('Too many parts.', null)));
    bb.on('error', (err) => fail(errors.invalidRequest(`Malformed multipart request: ${(err as Error).message}`, null, 'invalid_multipart')));
    bb.on('close', () => {
      void (async () => {
        try {
          await written;
        } catch {
          return; // already failed
        }
        if (settled) return;
        if (!tmpPath) return fail(errors.invalidRequest('The request has no `file` part.', 'file', 'missing_file'));
        const refused = inspect?.end(fields);
        if (refused) return fail(refused);
        settled = true;
        resolve({ tmpPath, bytes, sha256: hash.digest('hex'), head: Buffer.concat(headParts), filename, fields });
      })();
    });
    req.on('aborted', () => fail(errors.invalidRequest('The upload was aborted.', null, 'upload_aborted')));
    req.on('error', (err) => fail(errors.invalidRequest(`The upload failed: ${err.message}`, null, 'upload_failed')));
    if (source !== req) source.on('error', (err) => fail(errors.invalidRequest(`The upload failed: ${err.message}`, null, 'upload_failed')));
    source.pipe(bb);
  });
}

function tooLarge(opts: UploadOptions): AppError {
  return errors.payloadTooLarge(`The file exceeds the ${opts.maxBytes} byte upload limit (${opts.maxBytesSetting ?? 'DOCUMENTS_MAX_BYTES'}).`);
}

/** The last path segment of a client file name, without control characters: for display only. */
export function displayName(name: string | undefined): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 255);
  return clean === '.' || clean === '..' ? '' : clean;
}

/**
 * An upload route's reading of its body: `receiveUpload` from the request, or from its signed
 * body's hashing stream. A refused upload discards the signed body, and one refused for its size
 * (`closesConnection`) is answered at once without reading the rest. A signed upload is verified
 * before the caller stores, deduplicates or enqueues anything, and its file is removed if it fails.
 */
export async function receiveCheckedUpload(
  req: Request,
  res: Response,
  opts: Omit<UploadOptions, 'body'>,
  closesConnection: (err: AppError) => boolean = (err) => err.status === 413,
): Promise<ReceivedUpload> {
  const signed = req.signedBody;
  let upload: ReceivedUpload;
  try {
    upload = await receiveUpload(req, { ...opts, ...(signed ? { body: signed.stream } : {}) });
  } catch (err) {
    signed?.discard();
    if (err instanceof AppError && closesConnection(err)) closeAfterAnswer(req, res);
    throw err;
  }
  if (signed) {
    try {
      await signed.verify();
    } catch (err) {
      await unlink(upload.tmpPath).catch(() => {});
      throw err;
    }
  }
  return upload;
}

/**
 * An upload refused for its size is answered at once, without reading the rest of the body: the
 * connection is closed after the answer. The little that is still in flight is read and dropped for
 * a moment first, so the client gets to read the answer instead of a reset.
 */
function closeAfterAnswer(req: Request, res: Response): void {
  res.setHeader('Connection', 'close');
  res.once('finish', () => {
    req.resume();
    setTimeout(() => req.socket.destroy(), 1000).unref();
  });
}
