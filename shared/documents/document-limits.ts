/**
 * Size limits checked before anything is decoded, worded once for the API (upload-time refusal)
 * and the workers (a failed job), so a client reads the same reason either way.
 */
export function imageTooLarge(width: number, height: number, maxPixels: number): string | undefined {
  if (width * height <= maxPixels) return undefined;
  return `The image is ${width} × ${height} pixels (${((width * height) / 1e6).toFixed(1)} megapixels); at most ${maxPixels} pixels are accepted (DOCUMENTS_MAX_IMAGE_PIXELS).`;
}
