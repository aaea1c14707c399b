/** Log-softmax of one row of logits, in float64: the reference comparisons are at 1e-4 and finer. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const z = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - z);
}
