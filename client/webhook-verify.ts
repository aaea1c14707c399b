/**
 * Verifying webhooks this service sends (docs/WEBHOOKS.md): `verifyWebhook(secret, headers, rawBody)`
 * returns the event (`{type, timestamp, data}`) or throws WebhookVerificationError. It follows the
 * Standard Webhooks specification, so the `standardwebhooks` package (and Svix's libraries) verify
 * the same requests. Node only (it uses node:crypto); not part of the browser bundle.
 */
export { verifyWebhook, WebhookVerificationError, type HeaderSource } from '../shared/webhooks/webhook-signing.js';
export type { WebhookEventBody as WebhookEvent, WebhookEventType } from '../shared/webhooks/webhook-api.js';
