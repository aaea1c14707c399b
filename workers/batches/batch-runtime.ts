import type { Queue } from 'bullmq';
import type { BatchStore } from '../../shared/batches/batch-store.js';
import type { FileStore } from '../../shared/files/file-store.js';
import type { TenantLoad } from '../../shared/limits/tenant-load.js';
import type { Logger } from '../../shared/logger.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import type { WebhookSink } from '../../shared/webhooks/webhook-events.js';

/** What the batch handlers (`*.handler.ts` beside this file) share. */
export interface BatchDeps {
  batches: BatchStore;
  files: FileStore;
  registry: ModelRegistry;
  /** MAX_EMBEDDING_INPUTS: a line is refused where POST /v1/embeddings would refuse it. */
  maxInputs: number;
  /** The model queues lines run on, and the driver's queue (`batches.run`). */
  queues: ReadonlyMap<string, Queue>;
  /** Per-tenant fairness for lines, as for every other job (shared/limits/tenant-load.ts). */
  admission: Pick<TenantLoad, 'admit' | 'release'>;
  /** Stops a running line job (the workers' cancel channel). */
  cancelRunning(jobId: string): Promise<void>;
  pollMs: number;
  linesInFlight: number;
  retentionSeconds: number;
  log: Logger;
  /** Where a batch's end is announced (`batch.<status>` webhook events). */
  webhooks: WebhookSink;
  /** Lines answered by the batch handlers themselves (validation errors, expiry), for metrics. */
  onLines(tenant: string, endpoint: string, outcome: 'completed' | 'failed' | 'expired', n: number): void;
}
