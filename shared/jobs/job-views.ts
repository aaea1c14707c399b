import type { Job } from 'bullmq';
import { CANCELLED_REASON_PREFIX, decodeVector, failureCode, type JobEnvelope, type JobResult, type JobStatus, type JobType } from './job-catalog.js';

/**
 * How a stored job result looks to clients (GET /v1/jobs/:id and the Socket.IO `completed`
 * event): for embeddings, the OpenAI list shape with float vectors.
 */
export function publicResult<K extends JobType>(type: K, result: JobResult<K>): unknown {
  // Only embeddings have a stored form (base64 vectors) that differs from what clients get.
  return type === 'embedding' ? embeddingList(result as JobResult<'embedding'>, 'float') : result;
}

export function embeddingList(result: JobResult<'embedding'>, encoding: 'float' | 'base64') {
  return {
    object: 'list' as const,
    data: result.embeddings_b64.map((b64, index) => ({
      object: 'embedding' as const,
      index,
      embedding: encoding === 'base64' ? b64 : Array.from(decodeVector(b64)),
    })),
    model: result.model,
    usage: { prompt_tokens: result.prompt_tokens, total_tokens: result.prompt_tokens },
  };
}

/** A job as GET /v1/jobs/:id shows it, and as the typed client receives it. */
export interface JobView {
  id: string;
  object: 'job';
  type: JobType;
  model: string;
  status: JobStatus;
  progress: unknown;
  attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  timings: { queued_ms: number | null; run_ms: number | null };
  result?: unknown;
  error?: { message: string; code: string };
}

/**
 * The public view of a BullMQ job in a known BullMQ state: what GET /v1/jobs/:id answers, and
 * the data of the `job.completed` / `job.failed` webhook events a worker announces.
 */
export function jobView(job: Job, state: string): JobView {
  const envelope = job.data as JobEnvelope;
  const status = jobStatusOf(state, job.failedReason);
  const view: JobView = {
    id: job.id!,
    object: 'job',
    type: envelope.type,
    model: (envelope.payload as { model: string }).model,
    status,
    progress: job.progress ?? null,
    attempts: job.attemptsMade,
    created_at: Math.floor(job.timestamp / 1000),
    started_at: job.processedOn ? Math.floor(job.processedOn / 1000) : null,
    finished_at: job.finishedOn ? Math.floor(job.finishedOn / 1000) : null,
    timings: {
      queued_ms: job.processedOn ? job.processedOn - job.timestamp : null,
      run_ms: job.processedOn && job.finishedOn ? job.finishedOn - job.processedOn : null,
    },
  };
  if (status === 'completed' && job.returnvalue) view.result = publicResult(envelope.type, job.returnvalue as never);
  if (status === 'failed' || status === 'cancelled') {
    view.error = { message: job.failedReason, code: status === 'cancelled' ? 'cancelled' : failureCode(job.failedReason) };
  }
  return view;
}

/** The public status of a BullMQ state (a failure whose reason says so is a cancellation). */
export function jobStatusOf(state: string, failedReason: string | undefined): JobStatus {
  switch (state) {
    case 'active':
      return 'active';
    case 'completed':
      return 'completed';
    case 'failed':
      return failedReason?.startsWith(CANCELLED_REASON_PREFIX) ? 'cancelled' : 'failed';
    default:
      return 'queued';
  }
}

/** Messages on an API instance's reply channel, for requests that wait synchronously. */
export type ReplyMessage =
  | { id: string; ok: true; result: unknown }
  | { id: string; ok: false; error: { message: string; code: string } };

export const replyChannel = (prefix: string, instanceId: string) => `${prefix}:reply:${instanceId}`;
export const cancelChannel = (prefix: string) => `${prefix}:cancel`;
/** Hash of live workers: field = worker id, value = JSON with `at` (ms) refreshed every 2 s. */
export const workersKey = (prefix: string) => `${prefix}:workers`;
export const WORKER_HEARTBEAT_TTL_MS = 6000;
