/**
 * Cheap checks on a page before OCR, kept apart from the parse process so they can be tested alone.
 */

/** Rendered width of an ordinary page for OCR (a letter page: 1600 × 2070), before the pixel cap. */
const OCR_PAGE_WIDTH = 1600;

/**
 * The render scale of a page of `width` × `height` points: 1600 pixels wide as a rule, but never
 * more than `maxPixels` in all, whatever the page's shape (a 14400 × 14400 pt page, or a 10 × 14400
 * pt strip that 1600 pixels wide would make 2.3 million pixels tall).
 */
export function renderScale(width: number, height: number, maxPixels: number): number {
  return Math.min(OCR_PAGE_WIDTH / width, Math.sqrt(maxPixels / (width * height)));
}

/**
 * A rendered page is blank when fewer than this share of its pixels differ clearly from its
 * background: 1e-4 of a 1600 × 2070 raster is ~330 pixels, less than one printed word.
 */
const INK_SHARE = 1e-4;
const INK_CONTRAST = 48;

/** Nearly uniform pixels (RGBA): a white (or any single-colour) page, or one with a speck on it. */
export function isBlankRaster(rgba: Uint8ClampedArray | Uint8Array): boolean {
  const histogram = new Uint32Array(256);
  const pixels = rgba.length >> 2;
  for (let i = 0; i < rgba.length; i += 4) histogram[(rgba[i]! * 77 + rgba[i + 1]! * 150 + rgba[i + 2]! * 29) >> 8]!++;
  let background = 0;
  for (let v = 1; v < 256; v++) if (histogram[v]! > histogram[background]!) background = v;
  let ink = 0;
  for (let v = 0; v < 256; v++) if (Math.abs(v - background) > INK_CONTRAST) ink += histogram[v]!;
  return ink < pixels * INK_SHARE;
}

/**
 * Whether an operator list (pdf.js `OPS` codes) puts anything on the page: text, a path that is
 * filled or stroked, an image, a shading. A page without any is blank and is never rendered.
 */
export function paintsSomething(OPS: Record<string, number>, fnArray: readonly number[], argsArray: readonly unknown[]): boolean {
  const paint = paintOpsOf(OPS);
  return fnArray.some((fn, i) => {
    if (paint.has(fn)) return true;
    // pdf.js folds a path's painting operator into constructPath: only a bare clip paints nothing.
    if (fn === OPS.constructPath) return (argsArray[i] as unknown[] | null)?.[0] !== OPS.endPath;
    return false;
  });
}

const PAINT_OP_NAMES = /^(paint|show|nextLineShow|nextLineSetSpacingShow|fill|eoFill|stroke|closeStroke|closeFill|closeEOFill|fillStroke|eoFillStroke|shadingFill|rawFillPath)/;
let cached: { OPS: Record<string, number>; set: Set<number> } | undefined;
function paintOpsOf(OPS: Record<string, number>): Set<number> {
  if (cached?.OPS !== OPS) {
    // Form XObjects only bracket operators that are listed on their own.
    const names = Object.entries(OPS).filter(([name]) => PAINT_OP_NAMES.test(name) && !name.startsWith('paintFormXObject'));
    cached = { OPS, set: new Set(names.map(([, v]) => v)) };
  }
  return cached.set;
}
