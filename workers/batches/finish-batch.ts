import { TERMINAL_BATCH_STATUSES, type BatchError, type BatchRecord, type BatchStatus, type TerminalBatchStatus } from '../../shared/batches/batch-store.js';
import { writeBatchOutputs } from './batch-output.js';
import type { BatchDeps } from './batch-runtime.js';

/**
 * Every terminal transition of a batch goes through here: completed, expired and cancelled batches
 * get their output and error files written first (with what they have), a failed one its `errors`;
 * then the status moves, once (a second caller, or a retry, finds it moved and changes nothing), and
 * the working set in Redis is dropped. Whatever must happen when a batch ends (webhooks) belongs here.
 */
export async function finishBatch(
  deps: Pick<BatchDeps, 'batches' | 'files' | 'log'>,
  b: BatchRecord,
  status: TerminalBatchStatus,
  opts: { errors?: BatchError[] } = {},
): Promise<BatchRecord> {
  if (TERMINAL_BATCH_STATUSES.has(b.status)) return b;
  const fields: Record<string, string> = {};
  if (status === 'failed') {
    fields.errors = JSON.stringify(opts.errors ?? []);
  } else {
    const files = await writeBatchOutputs(deps, b);
    if (files.output_file_id) fields.output_file_id = files.output_file_id;
    if (files.error_file_id) fields.error_file_id = files.error_file_id;
  }
  const from = (['validating', 'in_progress', 'finalizing', 'cancelling'] as BatchStatus[]);
  // Files first, status last: a batch reads as finished only once its files are there.
  if (Object.keys(fields).length) await deps.batches.update(b.id, fields);
  const moved = await deps.batches.transition(b.id, status, from);
  if (moved) {
    await deps.batches.dropWorkingSet(b.id);
    deps.log.info({ batchId: b.id, tenant: b.tenant, status }, 'batch finished');
  }
  return (await deps.batches.get(b.id)) ?? b;
}
