import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { jobCatalog, makeJobId } from '../jobs/job-catalog.js';
import type { JobEnvelope, JobPayload } from '../jobs/job-catalog.js';
import type { JobView } from '../jobs/job-views.js';
import { sha256Hex } from '../sha256.js';
import type { WebhookEventBody, WebhookEventType } from './webhook-api.js';
import type { WebhookStore } from './webhook-store.js';

/** The queue of webhook deliveries (the `webhook.deliver` job type's own). */
export const WEBHOOK_QUEUE = jobCatalog['webhook.deliver'].queue.name;

/** What a producer needs to announce events: the deliveries' queue, the endpoints, how long finished deliveries stay. */
export interface WebhookSink {
  queue: Pick<Queue, 'add'>;
  store: WebhookStore;
  retentionSeconds: number;
}

/**
 * The one way to announce an event (every producer calls it: job outcomes now, batches and
 * background responses as they land). It fans out to the tenant's endpoints subscribed to `type`,
 * and to `opts.url` (a one-off URL that a single job carried, already checked by whoever accepted
 * it): one `webhook.deliver` job per destination, which signs, sends, retries and logs
 * (workers/webhooks/deliver-webhook.handler.ts). `data` is the event's object as the API shows it
 * (see `webhookEventBody` in shared/webhooks/webhook-api.ts for each type's).
 *
 * Give a stable `eventId` when the same event may be announced more than once (by two API
 * replicas, or by a worker and the API): deliveries are BullMQ jobs whose ids derive from the event
 * id and the destination, so a repeat adds nothing. Returns the number of deliveries.
 */
export async function enqueueWebhookEvent(
  sink: WebhookSink,
  tenant: string,
  type: WebhookEventType,
  data: unknown,
  opts: { url?: string; eventId?: string } = {},
): Promise<number> {
  const eventId = opts.eventId ?? `msg_${randomUUID().replace(/-/g, '')}`;
  const body: WebhookEventBody = { type, timestamp: new Date().toISOString(), data };
  const text = JSON.stringify(body);
  const endpoints = await sink.store.subscribers(tenant, type);
  const all: ({ endpoint_id: string } | { url: string })[] = [...endpoints.map((e) => ({ endpoint_id: e.id })), ...(opts.url ? [{ url: opts.url }] : [])];
  const spec = jobCatalog['webhook.deliver'];
  const now = Math.floor(Date.now() / 1000);
  for (const destination of all) {
    const target = 'endpoint_id' in destination ? destination.endpoint_id : `url-${sha256Hex(destination.url).slice(0, 16)}`;
    const deliveryId = `whd_${sha256Hex(`${eventId}\n${target}`).slice(0, 24)}`;
    const payload: JobPayload<'webhook.deliver'> = { delivery_id: deliveryId, event_id: eventId, event_type: type, body: text, ...destination };
    const envelope: JobEnvelope<'webhook.deliver'> = { type: 'webhook.deliver', tenant, payload };
    await sink.queue.add('webhook.deliver', envelope, {
      ...spec.defaults,
      jobId: makeJobId(WEBHOOK_QUEUE, deliveryId),
      removeOnComplete: { age: sink.retentionSeconds },
      removeOnFail: { age: sink.retentionSeconds },
    });
    if ('endpoint_id' in destination) {
      await sink.store.logDelivery({
        id: deliveryId,
        object: 'webhook_delivery',
        endpoint_id: destination.endpoint_id,
        event_id: eventId,
        event_type: type,
        state: 'pending',
        attempts: 0,
        last_status_code: null,
        last_error: null,
        created_at: now,
        last_attempt_at: null,
        next_attempt_at: now,
        delivered_at: null,
      });
    }
  }
  return all.length;
}

/**
 * `job.completed` / `job.failed` for a job submitted through POST /v1/jobs (its envelope carries
 * `webhook_events`), with the job's public view as data. The event id derives from the job id, so
 * the worker and the API announcing the same outcome make one delivery per destination. Jobs
 * submitted otherwise announce nothing (returns 0).
 */
export async function announceJobOutcome(sink: WebhookSink, envelope: Pick<JobEnvelope, 'tenant' | 'webhook_events'>, view: JobView): Promise<number> {
  if (!envelope.webhook_events) return 0;
  const type = view.status === 'completed' ? 'job.completed' : 'job.failed';
  return enqueueWebhookEvent(sink, envelope.tenant, type, view, {
    eventId: `msg_${sha256Hex(`${view.id}\n${type}`).slice(0, 32)}`,
    ...(envelope.webhook_events.url ? { url: envelope.webhook_events.url } : {}),
  });
}
