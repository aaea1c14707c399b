import { z } from 'zod';
import { SUBMITTABLE_JOB_TYPES, jobCatalog, type JobRequest, type JobRequestInput, type SubmittableJobType } from './job-catalog.js';

/**
 * POST /v1/jobs, derived from the job catalog: one variant per type whose entry has `submit`,
 * chosen by `type`, each its type's public request plus what every job request has. The route
 * (api/routes/jobs.routes.ts), the OpenAPI document and the typed client all take it from here, so
 * a new submittable type appears in all three with its catalog entry.
 */

/** Seconds a job may wait in the queue; still queued after that, it fails as `expired` instead of running late. */
export const jobTimeoutSchema = z.number().positive().max(7 * 86_400).optional();

/**
 * A URL that gets this one job's `job.completed` / `job.failed` webhook event (unsigned: it has no
 * endpoint secret; the tenant's registered endpoints get it signed). Checked like an endpoint's URL.
 */
export const jobWebhookSchema = z
  .string()
  .min(1)
  .max(2048)
  .optional()
  .meta({ description: "http(s) URL told of this job's outcome (`job.completed` / `job.failed`, Standard Webhooks headers, unsigned)" });

/** Fields every job request has besides its type's own. */
interface CommonJobFields {
  type: SubmittableJobType;
  /** Replaces the type's default `deadlines.maxQueuedSeconds` for this job. */
  timeout?: number;
  webhook?: string;
}

export type CreateJobRequest = { [K in SubmittableJobType]: { type: K } & Omit<CommonJobFields, 'type'> & JobRequest<K> }[SubmittableJobType];
/** What a client may send to POST /v1/jobs (before defaults and normalisation). */
export type CreateJobRequestInput = { [K in SubmittableJobType]: { type: K } & Omit<CommonJobFields, 'type'> & JobRequestInput<K> }[SubmittableJobType];
/** One type's variant of a validated request. */
export type CreateJobRequestOf<K extends SubmittableJobType> = Extract<CreateJobRequest, { type: K }>;

/** The component name of a type's variant in the OpenAPI document (`chat` → `CreateChatJobRequest`). */
export function jobRequestComponentId(type: SubmittableJobType): string {
  const words = type.split(/[^a-zA-Z0-9]+/).map((w) => w.charAt(0).toUpperCase() + w.slice(1));
  return `Create${words.join('')}JobRequest`;
}

function variant(type: SubmittableJobType): z.ZodObject {
  return jobCatalog[type].submit.request.extend({ type: z.literal(type), timeout: jobTimeoutSchema, webhook: jobWebhookSchema }).meta({ id: jobRequestComponentId(type) });
}

const variants = SUBMITTABLE_JOB_TYPES.map(variant);
if (variants.length === 0) throw new Error('the job catalog has no type with `submit`: POST /v1/jobs would accept nothing');

/** POST /v1/jobs: one variant per submittable job type, chosen by `type`. */
export const createJobRequestSchema = z.discriminatedUnion('type', variants as [z.ZodObject, ...z.ZodObject[]]) as unknown as z.ZodType<CreateJobRequest, CreateJobRequestInput>;
