import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { KEYS, authHeaders, waitFor } from './service.js';

/**
 * Test documents made on the spot: real PDFs (pdf-lib; a hand-written encrypted one), PNGs with text
 * drawn in a bitmap font (pngjs) that OCR can read, and uploads (multipart through fetch, or a
 * streamed body of any size that is never held in memory).
 */

/** 5x7 bitmap glyphs: each row is 5 pixels, '#' on. */
const GLYPHS: Record<string, string[]> = {
  A: ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  B: ['####.', '#...#', '#...#', '####.', '#...#', '#...#', '####.'],
  C: ['.###.', '#...#', '#....', '#....', '#....', '#...#', '.###.'],
  D: ['###..', '#..#.', '#...#', '#...#', '#...#', '#..#.', '###..'],
  E: ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
  F: ['#####', '#....', '#....', '####.', '#....', '#....', '#....'],
  G: ['.###.', '#...#', '#....', '#.###', '#...#', '#...#', '.####'],
  H: ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  I: ['.###.', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  J: ['..###', '...#.', '...#.', '...#.', '...#.', '#..#.', '.##..'],
  K: ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
  L: ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
  M: ['#...#', '##.##', '#.#.#', '#.#.#', '#...#', '#...#', '#...#'],
  N: ['#...#', '##..#', '##..#', '#.#.#', '#..##', '#..##', '#...#'],
  O: ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  P: ['####.', '#...#', '#...#', '####.', '#....', '#....', '#....'],
  Q: ['.###.', '#...#', '#...#', '#...#', '#.#.#', '#..#.', '.##.#'],
  R: ['####.', '#...#', '#...#', '####.', '#.#..', '#..#.', '#...#'],
  S: ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
  T: ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
  U: ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  V: ['#...#', '#...#', '#...#', '.#.#.', '.#.#.', '..#..', '..#..'],
  W: ['#...#', '#...#', '#...#', '#.#.#', '#.#.#', '#.#.#', '.#.#.'],
  X: ['#...#', '#...#', '.#.#.', '..#..', '.#.#.', '#...#', '#...#'],
  Y: ['#...#', '.#.#.', '.#.#.', '..#..', '..#..', '..#..', '..#..'],
  Z: ['#####', '....#', '...#.', '..#..', '.#...', '#....', '#####'],
  '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
  '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  '3': ['####.', '....#', '....#', '.###.', '....#', '....#', '####.'],
  '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  '6': ['.###.', '#....', '#....', '####.', '#...#', '#...#', '.###.'],
  '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  '9': ['.###.', '#...#', '#...#', '.####', '....#', '....#', '.###.'],
  ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
};

/** A PNG of black text lines on white, drawn with the bitmap font at `scale` pixels per dot. */
export function textPng(lines: string[], scale = 6): Buffer {
  const margin = 4 * scale;
  const advance = 7 * scale;
  const lineHeight = 11 * scale;
  const width = margin * 2 + Math.max(...lines.map((l) => l.length)) * advance;
  const height = margin * 2 + lines.length * lineHeight;
  const png = new PNG({ width, height });
  png.data.fill(255);
  lines.forEach((line, li) => {
    [...line.toUpperCase()].forEach((ch, ci) => {
      const glyph = GLYPHS[ch] ?? GLYPHS[' ']!;
      glyph.forEach((row, gy) => {
        [...row].forEach((dot, gx) => {
          if (dot !== '#') return;
          // Bold: each dot is drawn a third wider, so strokes look like a printed font's rather than a hairline's.
          for (let dy = 0; dy < scale; dy++) {
            for (let dx = 0; dx < scale + Math.ceil(scale / 3); dx++) {
              const x = margin + ci * advance + gx * scale + dx;
              const y = margin + li * lineHeight + gy * scale + dy;
              const i = (y * width + x) * 4;
              png.data[i] = png.data[i + 1] = png.data[i + 2] = 0;
            }
          }
        });
      });
    });
  });
  return PNG.sync.write(png);
}

/** A PDF with a text layer: one string per page. */
export async function textPdf(pages: string[]): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  for (const text of pages) {
    const page = doc.addPage([612, 792]);
    // The standard fonts speak WinAnsi only.
    const words = text.replace(/[^\x20-\x7e\u00a0-\u00ff]/g, ' ').split(/\s+/);
    let line = '';
    let y = 740;
    for (const w of words) {
      if (font.widthOfTextAtSize(`${line} ${w}`, 11) > 500) {
        page.drawText(line, { x: 50, y, size: 11, font });
        y -= 15;
        line = w;
      } else line = line ? `${line} ${w}` : w;
    }
    if (line) page.drawText(line, { x: 50, y, size: 11, font });
  }
  return Buffer.from(await doc.save());
}

/** A PDF whose pages are only images (no text layer): a scan. */
export async function scannedPdf(pagesOfLines: string[][]): Promise<Buffer> {
  const doc = await PDFDocument.create();
  for (const lines of pagesOfLines) {
    const img = await doc.embedPng(textPng(lines, 4));
    const page = doc.addPage([612, 792]);
    const w = Math.min(560, img.width);
    const h = (img.height * w) / img.width;
    page.drawImage(img, { x: 26, y: 792 - 40 - h, width: w, height: h });
  }
  return Buffer.from(await doc.save());
}

/** A PDF of `n` nearly empty pages, cheap to make even for thousands of pages. */
export async function manyPagePdf(n: number): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  for (let i = 0; i < n; i++) doc.addPage([200, 200]).drawText(`p${i + 1}`, { x: 20, y: 100, size: 10, font });
  return Buffer.from(await doc.save());
}

/**
 * An encrypted PDF (standard security handler, RC4, revision 2) whose user password is not empty,
 * written by hand: readers must ask for a password before they can read anything.
 */
export function encryptedPdf(): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>',
    `<< /Length 16 >>\nstream\n${'\u0001'.repeat(16)}\nendstream`,
    `<< /Filter /Standard /V 1 /R 2 /O <${'a5'.repeat(32)}> /U <${'5c'.repeat(32)}> /P -44 >>`,
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(Buffer.byteLength(body, 'latin1'));
    body += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(body, 'latin1');
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) body += `${String(off).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Encrypt 5 0 R /ID [<${'01'.repeat(16)}> <${'01'.repeat(16)}>] >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

/** A minimal zip archive (one stored file), to be uploaded under a .pdf name. */
export function zipFile(): Buffer {
  const name = Buffer.from('hello.txt');
  const data = Buffer.from('hello from inside a zip');
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(10, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(name.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(10, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(name.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(46 + name.length, 12);
  end.writeUInt32LE(30 + name.length + data.length, 16);
  return Buffer.concat([local, name, data, central, name, end]);
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

export interface UploadAnswer {
  status: number;
  json: any;
  headers: Headers;
}

export async function uploadDocument(
  baseUrl: string,
  file: Buffer | string,
  opts: { collection?: string; filename?: string; metadata?: unknown; key?: string; contentType?: string } = {},
): Promise<UploadAnswer> {
  const form = new FormData();
  if (opts.collection !== undefined) form.set('collection', opts.collection);
  if (opts.metadata !== undefined) form.set('metadata', typeof opts.metadata === 'string' ? opts.metadata : JSON.stringify(opts.metadata));
  form.set('file', new Blob([new Uint8Array(typeof file === 'string' ? Buffer.from(file) : file)], { type: opts.contentType ?? 'application/octet-stream' }), opts.filename ?? 'upload.bin');
  const res = await fetch(`${baseUrl}/v1/documents`, { method: 'POST', headers: { authorization: `Bearer ${opts.key ?? KEYS.acme}` }, body: form });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json, headers: res.headers };
}

/**
 * A multipart upload of `totalBytes` generated on the fly (never in memory as a whole), sent without
 * Content-Length (chunked), so only the streaming limit can stop it.
 */
export async function streamHugeUpload(baseUrl: string, totalBytes: number, collection = 'huge'): Promise<{ status: number; json: any; sentBytes: number }> {
  const boundary = `----qi${Date.now()}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="collection"\r\n\r\n${collection}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\nContent-Type: text/plain\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const block = Buffer.alloc(1024 * 1024, 'a');
  let sent = 0;
  let sentHead = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sentHead) {
        sentHead = true;
        controller.enqueue(head);
        return;
      }
      if (sent >= totalBytes) {
        controller.enqueue(tail);
        controller.close();
        return;
      }
      const n = Math.min(block.length, totalBytes - sent);
      sent += n;
      controller.enqueue(n === block.length ? block : block.subarray(0, n));
    },
  });
  try {
    const res = await fetch(`${baseUrl}/v1/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    return { status: res.status, json: JSON.parse(text), sentBytes: sent };
  } catch (err) {
    return { status: -1, json: { error: String((err as Error).cause ?? err) }, sentBytes: sent };
  }
}

/**
 * A real, decodable PNG of `width` × `height` pixels that is tiny on disk: 1-bit greyscale, all
 * white but for a black band, which deflate shrinks ~1000:1. A decoder that trusts it allocates
 * width × height × 4 bytes (16000 × 16000: 1 GB) before it reads a pixel.
 */
export function pixelBombPng(width: number, height: number): Buffer {
  const rowBytes = Math.ceil(width / 8);
  const raw = Buffer.alloc((rowBytes + 1) * height, 0xff);
  for (let y = 0; y < height; y++) {
    raw[y * (rowBytes + 1)] = 0; // filter type: none
    if (y >= height / 2 - 8 && y < height / 2 + 8) raw.fill(0, y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A JPEG header declaring `width` × `height` pixels behind a 20 KB metadata segment, so the frame
 * header lies past the bytes the API sniffs: only the worker, reading the file, can refuse it.
 */
export function deepHeaderJpeg(width: number, height: number): Buffer {
  const app = Buffer.alloc(20_000, 0x20);
  const appHeader = Buffer.from([0xff, 0xe2, 0, 0]);
  appHeader.writeUInt16BE(app.length + 2, 2);
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, 0, 0, 0, 0, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
  sof.writeUInt16BE(height, 5);
  sof.writeUInt16BE(width, 7);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), appHeader, app, sof, Buffer.from([0xff, 0xd9])]);
}

/** A PDF whose one page is `width` × `height` points, with a line of text on it. */
export async function bigPagePdf(width: number, height: number): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  doc.addPage([width, height]).drawText('A very large page.', { x: 50, y: height - 100, size: 24, font });
  return Buffer.from(await doc.save());
}

/** A PDF of `n` pages with nothing on them (no text layer, nothing drawn). */
export async function blankPdf(n: number): Promise<Buffer> {
  const doc = await PDFDocument.create();
  for (let i = 0; i < n; i++) doc.addPage([612, 792]);
  return Buffer.from(await doc.save());
}

/** A scan of `n` pages: the same image of text on every page (embedded once, so the file stays small). */
export async function longScannedPdf(n: number, lines: string[]): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const img = await doc.embedPng(textPng(lines, 4));
  for (let i = 0; i < n; i++) {
    const page = doc.addPage([612, 792]);
    const w = Math.min(560, img.width);
    const h = (img.height * w) / img.width;
    page.drawImage(img, { x: 26, y: 792 - 40 - h, width: w, height: h });
  }
  return Buffer.from(await doc.save());
}

/** Waits until a document is ready; a document that failed ends the wait at once with its reason. */
export async function waitDocumentReady(baseUrl: string, id: string, key = KEYS.acme, timeoutMs = 120_000): Promise<any> {
  let failed: unknown;
  const doc = await waitFor(
    `document ${id} ready`,
    async () => {
      const d = (await (await fetch(`${baseUrl}/v1/documents/${id}`, { headers: authHeaders(key) })).json()) as any;
      if (d.status === 'failed') failed = d.error;
      return d.status === 'ready' || d.status === 'failed' ? d : undefined;
    },
    timeoutMs,
  );
  if (failed) throw new Error(`document ${id} failed: ${JSON.stringify(failed)}`);
  return doc;
}
