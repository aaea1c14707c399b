import { failedLineOutcome } from '../../shared/batches/batch-lines.js';
import { lineTokens, nowSeconds, type BatchLineRef, type BatchStore, type LineOutcome } from '../../shared/batches/batch-store.js';
import type { JobResult } from '../../shared/jobs/job-catalog.js';
import type { ResultDelivery } from '../jobs/job-runner.js';

const ENDPOINT_OF: Record<string, string> = { embedding: '/v1/embeddings', chat: '/v1/chat/completions' };

/**
 * How a worker records a batch line's outcome: once, in the batch (BatchStore.recordEach), counting
 * it (its lines and their tokens) in the metrics only when this call was the one that recorded it.
 * A packed embedding job (`ref.pack`) records each of its lines with its own share of the result,
 * all in one round trip. Then `recorded` is told (the batch's driver may want to queue more lines).
 */
export function batchLineRecorder(
  batches: BatchStore,
  count: (labels: { tenant: string; endpoint: string; outcome: 'completed' | 'failed' }, lines: number, tokens: { input: number; output: number }) => void,
  recorded: (batchId: string) => Promise<void> = async () => {},
): ResultDelivery['batchLine'] {
  return async (job, ref, outcome) => {
    const entries: [number, LineOutcome][] = outcomesOf(job, ref, outcome);
    const fresh = await batches.recordEach(ref.id, entries);
    const news = entries.filter((_, i) => fresh[i]);
    if (news.length > 0) {
      const tokens = { input: 0, output: 0 };
      for (const [, line] of news) {
        const t = lineTokens(line);
        tokens.input += t.input;
        tokens.output += t.output;
      }
      count({ tenant: job.tenant, endpoint: ref.endpoint ?? ENDPOINT_OF[job.type] ?? job.type, outcome: outcome.ok ? 'completed' : 'failed' }, news.length, tokens);
    }
    // Only a hint to the driver, which polls anyway: its failure must not fail the line.
    await recorded(ref.id).catch(() => {});
  };
}

function outcomesOf(job: { type: string; id: string }, ref: BatchLineRef, outcome: Parameters<ResultDelivery['batchLine']>[2]): [number, LineOutcome][] {
  const at = nowSeconds();
  if (!outcome.ok) {
    const failed = failedLineOutcome(job.type, job.id, outcome.error);
    return (ref.pack ?? [{ line: ref.line }]).map((p) => [p.line, failed]);
  }
  if (!ref.pack) return [[ref.line, { ok: true, result: outcome.result, job_id: job.id, at }]];
  // Each line gets what POST /v1/embeddings would have answered for its own inputs.
  const whole = outcome.result as JobResult<'embedding'>;
  let offset = 0;
  return ref.pack.map(({ line, inputs }) => {
    const tokens = whole.input_tokens.slice(offset, offset + inputs);
    const result: JobResult<'embedding'> = {
      ...whole,
      embeddings_b64: whole.embeddings_b64.slice(offset, offset + inputs),
      input_tokens: tokens,
      prompt_tokens: tokens.reduce((a, b) => a + b, 0),
    };
    offset += inputs;
    return [line, { ok: true, result, job_id: job.id, at }];
  });
}
