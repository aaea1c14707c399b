import { z } from 'zod';

/**
 * Webhooks as clients see them: the event types, the request bodies of /v1/webhooks, and the
 * shapes of endpoints, deliveries and events. The routes validate with these and
 * api/http/openapi-webhooks.ts documents them.
 */
export const WEBHOOK_EVENT_TYPES = [
  'batch.completed',
  'batch.failed',
  'batch.expired',
  'batch.cancelled',
  'response.completed',
  'response.failed',
  'response.cancelled',
  'response.incomplete',
  'job.completed',
  'job.failed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Syntax only; where the URL may point is checked by shared/webhooks/address-guard.ts (DNS included). */
export const webhookUrlSchema = z.string().min(1, 'is required').max(2048).meta({ description: 'http(s) URL that receives the events (public addresses only, unless the operator set WEBHOOK_ALLOW_PRIVATE=1)' });

export const createWebhookSchema = z
  .object({
    url: webhookUrlSchema,
    events: z
      .array(z.enum(WEBHOOK_EVENT_TYPES))
      .min(1, 'must name at least one event type')
      .transform((events) => [...new Set(events)]),
    description: z.string().max(500).optional(),
  })
  .strict()
  .meta({ id: 'CreateWebhookRequest' });

export const rotateWebhookSecretSchema = z
  .object({
    overlap_seconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(0)
      .meta({ description: 'How long the old secret keeps signing too (each request then carries two signatures); 0 stops it now' }),
  })
  .strict()
  .meta({ id: 'RotateWebhookSecretRequest' });

export const webhookEndpointView = z
  .object({
    id: z.string(),
    object: z.literal('webhook_endpoint'),
    url: z.string(),
    events: z.array(z.enum(WEBHOOK_EVENT_TYPES)),
    description: z.string().nullable(),
    created_at: z.number().int(),
    secret_rotated_at: z.number().int().nullable(),
    circuit: z
      .object({
        state: z.enum(['closed', 'open', 'half_open']),
        consecutive_failures: z.number().int(),
        open_until: z.number().int().nullable().meta({ description: 'Unix seconds; deliveries wait until then (they are postponed, never dropped)' }),
      })
      .meta({ description: 'The circuit breaker of this endpoint: open after WEBHOOK_CIRCUIT_FAILURES failed attempts in a row' }),
  })
  .meta({ id: 'WebhookEndpoint' });
export type WebhookEndpointView = z.infer<typeof webhookEndpointView>;

export const WEBHOOK_DELIVERY_STATES = ['pending', 'delivered', 'failed'] as const;
export const webhookDeliveryView = z
  .object({
    id: z.string(),
    object: z.literal('webhook_delivery'),
    endpoint_id: z.string(),
    event_id: z.string().meta({ description: 'The `webhook-id` header: the same on every attempt' }),
    event_type: z.enum(WEBHOOK_EVENT_TYPES),
    state: z.enum(WEBHOOK_DELIVERY_STATES),
    attempts: z.number().int().min(0),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.number().int(),
    last_attempt_at: z.number().int().nullable(),
    next_attempt_at: z.number().int().nullable().meta({ description: 'Unix seconds of the next attempt while pending (a retry, or the end of an open circuit)' }),
    delivered_at: z.number().int().nullable(),
  })
  .meta({ id: 'WebhookDelivery' });
export type WebhookDeliveryView = z.infer<typeof webhookDeliveryView>;

/**
 * The body of every webhook request (Standard Webhooks' recommended shape). `data` by event type:
 * - `job.completed`, `job.failed`: the job exactly as GET /v1/jobs/{id} answers (`status`
 *   `completed`, `failed` or `cancelled`, with `result` or `error`), for jobs submitted through
 *   POST /v1/jobs;
 * - `batch.*`: the batch object as GET /v1/batches/{id} answers;
 * - `response.completed`, `response.failed`, `response.cancelled`, `response.incomplete`: the response
 *   object of a background response once it has ended.
 */
export const webhookEventBody = z
  .object({
    type: z.enum(WEBHOOK_EVENT_TYPES),
    timestamp: z.string().meta({ description: 'ISO 8601 time of the event (the `webhook-timestamp` header is the time of the attempt)' }),
    data: z.unknown(),
  })
  .meta({ id: 'WebhookEvent' });
export type WebhookEventBody = z.infer<typeof webhookEventBody>;
