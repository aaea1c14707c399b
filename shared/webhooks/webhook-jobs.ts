import { z } from 'zod';
import type { JobsOptions } from 'bullmq';
import type { JobSpec } from '../jobs/job-spec.js';
import { WEBHOOK_EVENT_TYPES } from './webhook-api.js';

/**
 * One delivery of one event to one destination: a registered endpoint (signed with its secrets,
 * logged in its delivery log, behind its circuit breaker) or the URL a single job carried.
 * `body` is the exact text that is signed and sent, the same on every attempt.
 */
export const webhookDeliveryPayloadSchema = z
  .object({
    delivery_id: z.string().min(1),
    event_id: z.string().min(1).max(128),
    event_type: z.enum(WEBHOOK_EVENT_TYPES),
    body: z.string(),
    endpoint_id: z.string().min(1).optional(),
    url: z.string().min(1).optional(),
  })
  .strict()
  .refine((p) => (p.endpoint_id === undefined) !== (p.url === undefined), 'a delivery goes to an endpoint_id or a url, not both');

export const webhookDeliveryResultSchema = z.object({
  outcome: z.enum(['delivered', 'skipped']),
  status_code: z.number().int().nullable(),
  attempts: z.number().int(),
});

/**
 * Standard Webhooks' retry schedule (the one Svix uses): after the first attempt, 5 s, 5 min,
 * 30 min, 2 h, 5 h, 10 h and 10 h, about 28 hours in all. RETRY_SCHEDULE_SCALE shrinks it for tests.
 */
const WEBHOOK_RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000] as const;

export const webhookJobCatalog = {
  'webhook.deliver': {
    payload: webhookDeliveryPayloadSchema,
    result: webhookDeliveryResultSchema,
    defaults: {
      attempts: WEBHOOK_RETRY_SCHEDULE_MS.length + 1,
      // 'schedule': the delays of `retrySchedule` below (workers/jobs/job-runner.ts gives BullMQ the strategy).
      backoff: { type: 'schedule' },
    } satisfies JobsOptions,
    retrySchedule: WEBHOOK_RETRY_SCHEDULE_MS,
    // Producers add deliveries themselves (shared/webhooks/webhook-events.ts), unbounded: an event
    // that happened is never refused for a full queue.
    queue: { name: 'webhooks' },
    // Read through /v1/webhooks/.../deliveries, never as jobs of /v1/jobs.
    scope: null,
    streams: false,
    stall: 'attempts',
    // Deliveries mostly wait on the network (up to WEBHOOK_TIMEOUT_MS each).
    concurrency: 32,
    domain: 'webhooks',
  },
} as const satisfies Record<string, JobSpec>;
