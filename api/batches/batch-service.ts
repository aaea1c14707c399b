import { z } from 'zod';
import { BATCH_ENDPOINTS, batchView, newBatchId, nowSeconds, TERMINAL_BATCH_STATUSES, type BatchRecord, type BatchStore } from '../../shared/batches/batch-store.js';
import { errors } from '../../shared/errors/app-error.js';
import type { FileStore } from '../../shared/files/file-store.js';
import { fixedQueueTarget } from '../../shared/jobs/job-catalog.js';
import type { JobService } from '../jobs/job-service.js';

export const createBatchRequestSchema = z
  .object({
    input_file_id: z.string().min(1),
    endpoint: z.enum(BATCH_ENDPOINTS),
    completion_window: z.literal('24h'),
    // OpenAI's metadata: up to 16 pairs, keys up to 64 characters, values up to 512.
    metadata: z.record(z.string().max(64), z.string().max(512)).refine((m) => Object.keys(m).length <= 16, 'at most 16 keys').nullable().optional(),
  })
  .strict();

export const listBatchesQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20), after: z.string().optional() }).strict();

/**
 * The Batch API for the routes: creating a batch checks its input file and queues its validation
 * (`batch.validate`, workers/batches); reading is the record in Redis with live request counts;
 * cancelling marks it `cancelling`, and its driver (`batch.run`) does the rest.
 */
export class BatchService {
  constructor(
    private readonly deps: {
      batches: BatchStore;
      files: FileStore;
      jobs: JobService;
      /** BATCH_COMPLETION_WINDOW_S: what "24h" means here. */
      windowSeconds: number;
    },
  ) {}

  async create(tenant: string, body: unknown, requestId?: string) {
    const req = createBatchRequestSchema.parse(body);
    const file = await this.deps.files.get(tenant, req.input_file_id);
    if (!file) throw errors.notFound(`No file with id '${req.input_file_id}'.`, 'file_not_found', 'input_file_id');
    if (file.purpose !== 'batch') throw errors.invalidRequest(`The input file must have purpose 'batch' (it has '${file.purpose}').`, 'input_file_id', 'invalid_input_file');
    const now = nowSeconds();
    const record: BatchRecord = {
      id: newBatchId(),
      tenant,
      endpoint: req.endpoint,
      input_file_id: file.id,
      completion_window: req.completion_window,
      status: 'validating',
      metadata: req.metadata ?? null,
      errors: null,
      output_file_id: null,
      error_file_id: null,
      created_at: now,
      in_progress_at: null,
      expires_at: now + this.deps.windowSeconds,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      total: 0,
      completed: 0,
      failed: 0,
      dispatched: 0,
      input_tokens: 0,
      output_tokens: 0,
    };
    await this.deps.batches.create(record);
    try {
      await this.deps.jobs.submit('batch.validate', tenant, fixedQueueTarget('batch.validate'), { batch_id: record.id }, { requestId });
    } catch (err) {
      await this.deps.batches.transition(record.id, 'failed', ['validating'], { errors: JSON.stringify([{ code: 'enqueue_failed', message: 'The batch could not be queued.', param: null, line: null }]) });
      throw err;
    }
    return batchView(record);
  }

  async get(tenant: string, id: string) {
    return batchView(await this.find(tenant, id));
  }

  async list(tenant: string, query: unknown) {
    const q = listBatchesQuerySchema.parse(query);
    const { data, hasMore } = await this.deps.batches.list(tenant, q);
    const views = data.map(batchView);
    return { object: 'list' as const, data: views, first_id: views[0]?.id ?? null, last_id: views.at(-1)?.id ?? null, has_more: hasMore };
  }

  /** Queued lines are removed and running ones stopped by the batch's driver, which ends it `cancelled` with what finished. */
  async cancel(tenant: string, id: string) {
    const b = await this.find(tenant, id);
    if (b.status === 'cancelling' || b.status === 'cancelled') return batchView(b);
    if (TERMINAL_BATCH_STATUSES.has(b.status) || b.status === 'finalizing') {
      throw errors.conflict(`Batch '${id}' has already ${b.status === 'finalizing' ? 'finished its lines' : `ended (${b.status})`}; it cannot be cancelled.`, 'batch_finished');
    }
    await this.deps.batches.transition(id, 'cancelling', ['validating', 'in_progress']);
    return batchView(await this.find(tenant, id));
  }

  private async find(tenant: string, id: string): Promise<BatchRecord> {
    const b = await this.deps.batches.getOwned(tenant, id);
    // Another tenant's batch is reported exactly like one that does not exist.
    if (!b) throw errors.notFound(`No batch with id '${id}'.`, 'batch_not_found', 'batch_id');
    return b;
  }
}
