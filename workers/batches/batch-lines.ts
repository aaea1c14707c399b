import { failedLineOutcome } from '../../shared/batches/batch-lines.js';
import { lineTokens, nowSeconds, type BatchStore, type LineOutcome } from '../../shared/batches/batch-store.js';
import type { ResultDelivery } from '../jobs/job-runner.js';

const ENDPOINT_OF: Record<string, string> = { embedding: '/v1/embeddings', chat: '/v1/chat/completions' };

/**
 * How a worker records a batch line's outcome: once, in the batch (BatchStore.recordLine), counting
 * it (and its tokens) in the metrics only when this call was the one that recorded it.
 */
export function batchLineRecorder(
  batches: BatchStore,
  count: (labels: { tenant: string; endpoint: string; outcome: 'completed' | 'failed' }, tokens: { input: number; output: number }) => void,
): ResultDelivery['batchLine'] {
  return async (job, ref, outcome) => {
    const line: LineOutcome = outcome.ok ? { ok: true, result: outcome.result, job_id: job.id, at: nowSeconds() } : failedLineOutcome(job.type, job.id, outcome.error);
    const recorded = await batches.recordLine(ref.id, ref.line, line);
    if (recorded) count({ tenant: job.tenant, endpoint: ref.endpoint ?? ENDPOINT_OF[job.type] ?? job.type, outcome: outcome.ok ? 'completed' : 'failed' }, lineTokens(line));
  };
}
