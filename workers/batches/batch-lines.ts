import { failedLineOutcome } from '../../shared/batches/batch-lines.js';
import { nowSeconds, type BatchStore } from '../../shared/batches/batch-store.js';
import type { ResultDelivery } from '../jobs/job-runner.js';

const ENDPOINT_OF: Record<string, string> = { embedding: '/v1/embeddings', chat: '/v1/chat/completions' };

/**
 * How a worker records a batch line's outcome: once, in the batch (BatchStore.recordLine), counting
 * it in `batch_lines_finished_total` only when this call was the one that recorded it.
 */
export function batchLineRecorder(
  batches: BatchStore,
  count: (labels: { tenant: string; endpoint: string; outcome: 'completed' | 'failed' }) => void,
): ResultDelivery['batchLine'] {
  return async (job, ref, outcome) => {
    const recorded = await batches.recordLine(
      ref.id,
      ref.line,
      outcome.ok ? { ok: true, result: outcome.result, job_id: job.id, at: nowSeconds() } : failedLineOutcome(job.type, job.id, outcome.error),
    );
    if (recorded) count({ tenant: job.tenant, endpoint: ENDPOINT_OF[job.type] ?? job.type, outcome: outcome.ok ? 'completed' : 'failed' });
  };
}
