import assert from 'node:assert/strict';
import { Tensor, type PreTrainedModel } from '@huggingface/transformers';
import { logSoftmax } from './log-softmax.js';

/**
 * transformers.js as the independent reference for our decoder runtime: its own forward pass and
 * its own greedy generate() on the same model folder, for one unpadded sequence at a time.
 */

const inputs = (ids: readonly number[]) => ({
  input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
  attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
});

/** Log-softmax rows of its logits, one per position of `ids` (widened from float16 where the graph gives them so). */
export async function referenceLogprobRows(model: PreTrainedModel, ids: readonly number[]): Promise<Float64Array[]> {
  const { logits } = (await model(inputs(ids))) as { logits: Tensor };
  const [, length, vocab] = logits.dims as [number, number, number];
  assert.equal(length, ids.length);
  const data = logits.to('float32').data as Float32Array;
  return ids.map((_, i) => logSoftmax(data.subarray(i * vocab, (i + 1) * vocab)));
}

/** The rows that predict each token of `continuation` after `promptIds`. */
export async function referenceContinuationLogprobs(model: PreTrainedModel, promptIds: readonly number[], continuation: readonly number[]): Promise<Float64Array[]> {
  const rows = await referenceLogprobRows(model, [...promptIds, ...continuation]);
  return rows.slice(promptIds.length - 1, promptIds.length - 1 + continuation.length);
}

/** Its greedy generate() with the generation_config's sampling defaults switched off: the new tokens only. */
export async function referenceGreedy(model: PreTrainedModel, promptIds: readonly number[], maxNewTokens: number, repetitionPenalty = 1): Promise<number[]> {
  const output = (await model.generate({
    ...inputs(promptIds),
    max_new_tokens: maxNewTokens,
    do_sample: false,
    repetition_penalty: repetitionPenalty,
  } as Parameters<PreTrainedModel['generate']>[0])) as Tensor;
  return Array.from(output.data as BigInt64Array, Number).slice(promptIds.length);
}
