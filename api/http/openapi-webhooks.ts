import { z } from 'zod';
import { createWebhookSchema, rotateWebhookSecretSchema, webhookDeliveryView, webhookEndpointView } from '../../shared/webhooks/webhook-api.js';
import type { DescribeOperation } from './openapi-operation.js';

/** The webhook routes in the OpenAPI document (called from openapi.ts). */
export function webhookOperations(
  op: DescribeOperation,
  h: {
    json: (schema: z.ZodType, description: string) => object;
    errorsFor: (...statuses: number[]) => object;
  },
): void {
  const idParams = z.object({ id: z.string().meta({ param: { description: 'Webhook endpoint id (`we_…`)' } }) });
  const withSecret = webhookEndpointView
    .extend({ secret: z.string().meta({ description: '`whsec_<base64>`: shown in this answer only; verify requests with it (docs/WEBHOOKS.md)' }) })
    .meta({ id: 'WebhookEndpointWithSecret' });
  const signing =
    'Every request is a POST of a `WebhookEvent` JSON body signed as the Standard Webhooks specification says: headers `webhook-id` ' +
    '(the same on every retry), `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). ' +
    'Non-2xx answers, network errors and timeouts (WEBHOOK_TIMEOUT_MS) are retried for about a day (after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); redirects are not followed.';

  op('POST /v1/webhooks', {
    description: `${signing} The URL must resolve to public addresses (400 \`invalid_webhook_url\` otherwise, unless WEBHOOK_ALLOW_PRIVATE=1). 409 past WEBHOOK_MAX_ENDPOINTS.`,
    request: { body: { required: true, content: { 'application/json': { schema: createWebhookSchema } } } },
    responses: { 201: h.json(withSecret, 'The endpoint, with its secret (shown once)'), ...h.errorsFor(400, 401, 409, 500, 503) },
  });
  op('GET /v1/webhooks', {
    responses: { 200: h.json(z.object({ object: z.literal('list'), data: z.array(webhookEndpointView) }), 'Endpoints, oldest first'), ...h.errorsFor(401, 500, 503) },
  });
  op('GET /v1/webhooks/:id', {
    request: { params: idParams },
    responses: { 200: h.json(webhookEndpointView, 'The endpoint'), ...h.errorsFor(401, 404, 500, 503) },
  });
  op('DELETE /v1/webhooks/:id', {
    request: { params: idParams },
    responses: {
      200: h.json(z.object({ id: z.string(), object: z.literal('webhook_endpoint'), deleted: z.literal(true) }), 'Deleted'),
      ...h.errorsFor(401, 404, 500, 503),
    },
  });
  op('POST /v1/webhooks/:id/rotate_secret', {
    description:
      'A new secret, shown once. With `overlap_seconds`, the old secret keeps signing for that long too (requests carry both signatures), so receivers can switch without losing events; by default it stops at once.',
    request: { params: idParams, body: { required: false, content: { 'application/json': { schema: rotateWebhookSecretSchema } } } },
    responses: { 200: h.json(withSecret, 'The endpoint with its new secret (shown once)'), ...h.errorsFor(400, 401, 404, 500, 503) },
  });
  op('GET /v1/webhooks/:id/deliveries', {
    description: `Each event sent to the endpoint: attempts, last status code or error, state (\`pending\`, \`delivered\`, \`failed\`). The newest 1000 are kept. Request bodies look like \`WebhookEvent\`.`,
    request: {
      params: idParams,
      query: z.object({ limit: z.number().int().min(1).max(1000).optional().meta({ param: { description: 'At most this many (default 100)' } }) }),
    },
    responses: {
      200: h.json(z.object({ object: z.literal('list'), data: z.array(webhookDeliveryView)}), 'Deliveries, newest first'),
      ...h.errorsFor(400, 401, 404, 500, 503),
    },
  });
}
