import { createInterface } from 'node:readline';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import { validateBatchLine } from '../../shared/batches/batch-lines.js';
import type { BatchError, LineOutcome } from '../../shared/batches/batch-store.js';
import { FILE_CONTENT } from '../../shared/files/file-store.js';
import { jobCatalog, makeJobId, type JobEnvelope } from '../../shared/jobs/job-catalog.js';
import type { JobHandler } from '../jobs/job-handler.js';
import type { BatchDeps } from './batch-runtime.js';
import { announceBatchEnd, finishBatch } from './finish-batch.js';

/** Lines stored per Redis round trip. */
const CHUNK = 500;
/** Duplicate custom_ids listed in a failed batch's `errors` (the rest are counted in the last one). */
const MAX_LISTED_ERRORS = 100;

/**
 * Reads the batch's input file line by line and checks each line as its endpoint would: valid ones
 * are stored by index for the driver to queue, invalid ones are answered at once (the error file).
 * Duplicate custom_ids fail the batch here, as OpenAI does. Idempotent: lines are stored by index and
 * answered once, so a retry after a crash redoes the same work. Then it starts the batch's driver.
 */
export function createValidateBatchHandler(deps: BatchDeps): JobHandler<'batch.validate'> {
  return async ({ batch_id }, ctx) => {
    const b = await deps.batches.get(batch_id);
    if (!b) throw new UnrecoverableError(`batch ${batch_id} does not exist`);
    if (b.status !== 'validating') {
      // Cancelled before validation began: the driver ends it (it is the one that ends cancelled batches).
      if (b.status === 'cancelling') await startDriver(deps, b.tenant, batch_id);
      // Failed here by an earlier run that may have died before announcing it.
      else await announceBatchEnd(deps, b);
      return { batch_id, status: b.status, lines: b.total };
    }
    const file = await deps.files.get(b.tenant, b.input_file_id);
    if (!file || file.purpose !== 'batch') {
      const done = await finishBatch(deps, b, 'failed', {
        errors: [{ code: 'invalid_input_file', message: `The input file '${b.input_file_id}' no longer exists (or is not a batch file).`, param: 'input_file_id', line: null }],
      });
      return { batch_id, status: done.status, lines: 0 };
    }

    const seen = new Map<string, number>();
    const duplicates: BatchError[] = [];
    let duplicateCount = 0;
    let index = 0;
    let lines: [string, string][] = [];
    let refused: [number, LineOutcome][] = [];
    let refusedCount = 0;
    const flush = async () => {
      if (lines.length) await deps.batches.redis.hset(deps.batches.linesKey(batch_id), Object.fromEntries(lines));
      refusedCount += await deps.batches.recordLines(batch_id, refused);
      lines = [];
      refused = [];
      await yieldToLoop();
    };
    const input = createInterface({ input: deps.files.blobs.read('files', file.id, FILE_CONTENT), crlfDelay: Infinity });
    for await (const text of input) {
      if (text.trim() === '') continue;
      const v = validateBatchLine(text, b.endpoint, deps);
      const customId = v.ok ? v.line.custom_id : v.outcome.custom_id;
      if (customId) {
        const first = seen.get(customId);
        if (first !== undefined) {
          duplicateCount++;
          if (duplicates.length < MAX_LISTED_ERRORS) {
            duplicates.push({ code: 'duplicate_custom_id', message: `The custom_id '${customId}' of line ${index + 1} is already used by line ${first + 1}; each must be unique.`, param: 'custom_id', line: index + 1 });
          }
        } else seen.set(customId, index);
      }
      if (v.ok) lines.push([String(index), JSON.stringify(v.line)]);
      else refused.push([index, v.outcome]);
      index++;
      if (lines.length + refused.length >= CHUNK) await flush();
    }
    await flush();

    if (duplicateCount > 0) {
      if (duplicateCount > duplicates.length) {
        duplicates.push({ code: 'duplicate_custom_id', message: `${duplicateCount - duplicates.length} more lines repeat a custom_id.`, param: 'custom_id', line: null });
      }
      const done = await finishBatch(deps, b, 'failed', { errors: duplicates });
      return { batch_id, status: done.status, lines: index };
    }
    if (refusedCount) deps.onLines(b.tenant, b.endpoint, 'failed', refusedCount);
    await deps.batches.update(batch_id, { total: index });
    // A batch cancelled while it was validating stays `cancelling`: its driver ends it.
    await deps.batches.transition(batch_id, 'in_progress', ['validating']);
    await startDriver(deps, b.tenant, batch_id);
    ctx.log.info({ batchId: batch_id, lines: index, refused: refusedCount }, 'batch validated');
    return { batch_id, status: 'in_progress', lines: index };
  };
}

/** The batch's one driver job (its id is the batch's, so a retried validation cannot start two). */
export async function startDriver(deps: Pick<BatchDeps, 'queues' | 'retentionSeconds'>, tenant: string, batchId: string): Promise<void> {
  const queueName = jobCatalog['batch.run'].queue.name;
  const queue = deps.queues.get(queueName);
  if (!queue) throw new Error(`no queue ${queueName}`);
  const envelope: JobEnvelope<'batch.run'> = { type: 'batch.run', tenant, payload: { batch_id: batchId } };
  await queue.add('batch.run', envelope, {
    ...jobCatalog['batch.run'].defaults,
    jobId: makeJobId(queueName, batchId),
    removeOnComplete: { age: deps.retentionSeconds },
    removeOnFail: { age: deps.retentionSeconds },
  });
}
