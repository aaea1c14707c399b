import { batchView, TERMINAL_BATCH_STATUSES, type BatchError, type BatchRecord, type BatchStatus, type TerminalBatchStatus } from '../../shared/batches/batch-store.js';
import { sha256Hex } from '../../shared/sha256.js';
import { enqueueWebhookEvent } from '../../shared/webhooks/webhook-events.js';
import { writeBatchOutputs } from './batch-output.js';
import type { BatchDeps } from './batch-runtime.js';

/**
 * Every terminal transition of a batch goes through here: completed, expired and cancelled batches
 * get their output and error files written first (with what they have), a failed one its `errors`;
 * then the status moves, once (a second caller, or a retry, finds it moved and changes nothing), and
 * the working set in Redis is dropped, and the end is announced to the tenant's webhooks
 * (`batch.<status>`). Whatever must happen when a batch ends belongs here.
 */
export async function finishBatch(
  deps: Pick<BatchDeps, 'batches' | 'files' | 'log' | 'webhooks'>,
  b: BatchRecord,
  status: TerminalBatchStatus,
  opts: { errors?: BatchError[] } = {},
): Promise<BatchRecord> {
  if (TERMINAL_BATCH_STATUSES.has(b.status)) {
    await announceBatchEnd(deps, b);
    return b;
  }
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
  const ended = (await deps.batches.get(b.id)) ?? b;
  await announceBatchEnd(deps, ended);
  return ended;
}

/**
 * `batch.completed` / `batch.failed` / `batch.expired` / `batch.cancelled` with the batch object as
 * data, for a batch that has ended. Called by every run that finds the batch ended, not only by the
 * one that moved it, so a crash between the move and the announcement loses nothing; the event id
 * derives from the batch id and its status, so the repeats make no second delivery.
 */
export async function announceBatchEnd(deps: Pick<BatchDeps, 'webhooks' | 'log'>, b: BatchRecord): Promise<void> {
  if (!TERMINAL_BATCH_STATUSES.has(b.status)) return;
  const type = `batch.${b.status as TerminalBatchStatus}` as const;
  const n = await enqueueWebhookEvent(deps.webhooks, b.tenant, type, batchView(b), { eventId: `msg_${sha256Hex(`${b.id}\n${type}`).slice(0, 32)}` });
  if (n > 0) deps.log.debug({ batchId: b.id, type, deliveries: n }, 'batch end announced');
}
