import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as pdfjs from 'pdfjs-dist/legacy/build/pdf.mjs';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { checkImageHeader } from '../../api/documents/sniff.js';
import { FairGate } from '../../workers/documents/fair-gate.js';
import { isBlankRaster, paintsSomething, renderScale } from '../../workers/documents/page-checks.js';
import { TenantSlots } from '../../workers/documents/tenant-slots.js';
import { deepHeaderJpeg, pixelBombPng, textPng } from '../helpers/documents.js';

test('the gate serves tenants in turn, whatever the number of steps each has queued', async () => {
  const gate = new FairGate();
  const order: string[] = [];
  const first = await gate.acquire('a');
  // Tenant a queues ten steps before b and c queue one each.
  const waits = [
    ...Array.from({ length: 10 }, (_, i) => ({ tenant: 'a', label: `a${i}` })),
    { tenant: 'b', label: 'b0' },
    { tenant: 'c', label: 'c0' },
  ].map(({ tenant, label }) =>
    gate.acquire(tenant).then((release) => {
      order.push(label);
      release();
    }),
  );
  assert.deepEqual(gate.queued, ['a', 'b', 'c']);
  first();
  await Promise.all(waits);
  assert.deepEqual(order.slice(0, 4), ['a0', 'b0', 'c0', 'a1'], 'b and c each wait for one step of a, not ten');
  assert.deepEqual(order.slice(3), ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9'], "a's own steps stay in order");
});

test('a tenant holds at most its share of parse slots; releasing gives one back, once', () => {
  const slots = new TenantSlots(2);
  const a1 = slots.tryAcquire('a');
  const a2 = slots.tryAcquire('a');
  assert.ok(a1 && a2);
  assert.equal(slots.tryAcquire('a'), undefined, 'a third slot for a is refused');
  assert.ok(slots.tryAcquire('b'), 'b still gets one');
  a1();
  a1();
  assert.equal(slots.holding('a'), 1, 'a double release frees one slot only');
  assert.ok(slots.tryAcquire('a'));
});

test('pages render within the OCR pixel budget whatever their shape', () => {
  const budget = 4_000_000;
  for (const [w, h] of [
    [612, 792],
    [14_400, 14_400],
    [10, 14_400],
    [14_400, 10],
    [200, 200],
  ] as const) {
    const s = renderScale(w, h, budget);
    assert.ok(w * s * (h * s) <= budget * 1.0001, `${w} × ${h} pt renders to ${Math.round(w * s)} × ${Math.round(h * s)} px`);
    assert.ok(w * s <= 1600.0001, 'and at most 1600 px wide');
  }
  assert.equal(Math.round(612 * renderScale(612, 792, budget)), 1600, 'a letter page is rendered 1600 px wide as before');
});

test('a raster is blank when nearly uniform, and not when it carries a word', () => {
  const white = new Uint8ClampedArray(1600 * 2000 * 4).fill(255);
  assert.equal(isBlankRaster(white), true);
  const grey = new Uint8ClampedArray(400 * 400 * 4).fill(90);
  assert.equal(isBlankRaster(grey), true, 'any single colour is blank');
  // A speck of dust: 100 dark pixels on a 3.2 MP page.
  for (let i = 0; i < 100; i++) white.fill(0, (i * 1600 + 5) * 4, (i * 1600 + 6) * 4);
  assert.equal(isBlankRaster(white), true, 'a speck is blank');
  // A short word's worth of ink (1800 dark pixels): well over the threshold.
  const word = new Uint8ClampedArray(1600 * 2000 * 4).fill(255);
  for (let y = 900; y < 930; y++) for (let x = 700; x < 820; x += 2) word.fill(0, (y * 1600 + x) * 4, (y * 1600 + x + 1) * 4);
  assert.equal(isBlankRaster(word), false);
});

test('operator lists: an empty page paints nothing; text, shapes and images paint', async () => {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  doc.addPage([612, 792]);
  doc.addPage([612, 792]).drawText('hello', { x: 50, y: 700, size: 12, font });
  doc.addPage([612, 792]).drawRectangle({ x: 10, y: 10, width: 100, height: 100 });
  const img = await doc.embedPng(textPng(['HI']));
  doc.addPage([612, 792]).drawImage(img, { x: 10, y: 10, width: 100, height: 50 });
  const pdf = await pdfjs.getDocument({ data: await doc.save(), verbosity: 0 }).promise;
  const paints: boolean[] = [];
  for (let n = 1; n <= pdf.numPages; n++) {
    const ops = await (await pdf.getPage(n)).getOperatorList();
    paints.push(paintsSomething(pdfjs.OPS as Record<string, number>, ops.fnArray, ops.argsArray));
  }
  await pdf.destroy();
  assert.deepEqual(paints, [false, true, true, true]);
});

test('the API refuses images whose header declares too many pixels, and leaves what it cannot read to the worker', () => {
  const bomb = pixelBombPng(16000, 16000);
  assert.throws(
    () => checkImageHeader('png', bomb.subarray(0, 8192), 50_000_000),
    (e: any) => e.status === 422 && e.code === 'image_too_large' && e.param === 'file' && /16000 × 16000/.test(e.message),
  );
  assert.doesNotThrow(() => checkImageHeader('png', textPng(['OK']).subarray(0, 8192), 50_000_000));
  // The frame header is behind 20 KB of metadata: not in the sniffed bytes, so the worker decides.
  assert.doesNotThrow(() => checkImageHeader('jpeg', deepHeaderJpeg(16000, 16000).subarray(0, 8192), 50_000_000));
  assert.doesNotThrow(() => checkImageHeader('pdf', bomb, 1), 'only images are checked here');
});
