import { AppError, errors } from '../../shared/errors/app-error.js';
import type { UploadInspector } from '../documents/upload.js';

/** A single JSONL line longer than this is refused: no request body the endpoints take comes near it. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Counts a batch input file's lines as it streams and checks that it is JSONL: each non-empty line
 * one JSON value. Past `maxLines` the upload is refused at once (OpenAI's 50,000); a file none of
 * whose lines is JSON is refused at its end. Single malformed lines are only counted: batch
 * validation reports them per line in the error file, as OpenAI does, without failing the batch.
 * Other purposes are not JSONL, so they are only checked when `purpose=batch` is known: sent before
 * the file, or, for a form that sends it after, at the end.
 */
export class JsonlInspector implements UploadInspector {
  lines = 0;
  invalidLines = 0;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private tooLong = false;

  constructor(
    private readonly maxLines: number,
    private readonly purposeSoFar: string | undefined,
  ) {}

  feed(chunk: Buffer): AppError | undefined {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      this.line(chunk.subarray(start, nl));
      start = nl + 1;
      if (this.lines > this.maxLines && this.purposeSoFar === 'batch') return this.tooManyLines();
    }
    if (start < chunk.length) {
      this.partialBytes += chunk.length - start;
      if (this.partialBytes > MAX_LINE_BYTES) this.tooLong = true;
      else this.partial.push(chunk.subarray(start));
    }
    if (this.tooLong && this.purposeSoFar === 'batch') return this.lineTooLong();
    return undefined;
  }

  end(fields: Record<string, string>): AppError | undefined {
    if (this.partialBytes > 0) this.line(Buffer.alloc(0));
    if (fields.purpose !== 'batch') return undefined;
    if (this.tooLong) return this.lineTooLong();
    if (this.lines > this.maxLines) return this.tooManyLines();
    if (this.lines === 0) return errors.invalidRequest('A batch input file must be JSONL with at least one request line; this one is empty.', 'file', 'invalid_jsonl');
    if (this.invalidLines === this.lines) {
      return errors.invalidRequest(`A batch input file must be JSONL (one JSON request per line); none of its ${this.lines} lines is JSON.`, 'file', 'invalid_jsonl');
    }
    return undefined;
  }

  private line(tail: Buffer): void {
    const bytes = this.partialBytes + tail.length;
    const text = (this.partial.length ? Buffer.concat([...this.partial, tail]) : tail).toString('utf8').trim();
    this.partial = [];
    this.partialBytes = 0;
    if (bytes === 0 || text === '') return;
    this.lines++;
    if (this.tooLong) return;
    try {
      JSON.parse(text);
    } catch {
      this.invalidLines++;
    }
  }

  private tooManyLines(): AppError {
    return errors.invalidRequest(`A batch input file may have at most ${this.maxLines} lines (BATCH_MAX_LINES); this one has more.`, 'file', 'too_many_lines');
  }

  private lineTooLong(): AppError {
    return errors.invalidRequest(`A line of the batch input file is longer than ${MAX_LINE_BYTES} bytes.`, 'file', 'line_too_long');
  }
}
