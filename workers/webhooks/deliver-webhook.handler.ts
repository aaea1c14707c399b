import { UnrecoverableError } from 'bullmq';
import { jobCatalog } from '../../shared/jobs/job-catalog.js';
import { sha256Hex } from '../../shared/sha256.js';
import { WebhookAddressError } from '../../shared/webhooks/address-guard.js';
import { webhookHeaders } from '../../shared/webhooks/webhook-signing.js';
import { WebhookStore, type CircuitSettings } from '../../shared/webhooks/webhook-store.js';
import { DeferJob, type JobHandler } from '../jobs/job-handler.js';
import { sendWebhook, type SendResult } from './webhook-sender.js';

export interface DeliverWebhookDeps {
  store: WebhookStore;
  allowPrivate: boolean;
  timeoutMs: number;
  circuit: Omit<CircuitSettings, 'probeMs'>;
  /** The retry delay after a failed attempt (the catalog's schedule, scaled), for the log's `next_attempt_at`. */
  retryDelayMs: (attemptsMade: number) => number;
}

const MAX_ATTEMPTS = jobCatalog['webhook.deliver'].defaults.attempts;

/**
 * One attempt to deliver one signed event. Non-2xx answers, network errors and timeouts throw,
 * so BullMQ retries on the catalog's schedule; a destination refused by the address guard fails at
 * once (a retry would be refused the same way). An endpoint whose circuit is open is not called:
 * the delivery is postponed until the circuit may close, without spending an attempt. Each attempt
 * is written to the endpoint's delivery log. The `webhook-id` is the event's id on every attempt;
 * the timestamp and signature are those of the attempt.
 */
export function createDeliverWebhookHandler(deps: DeliverWebhookDeps): JobHandler<'webhook.deliver'> {
  const circuit: CircuitSettings = { ...deps.circuit, probeMs: deps.timeoutMs + 5000 };
  return async (payload, ctx) => {
    const endpoint = payload.endpoint_id ? await deps.store.get(ctx.tenant, payload.endpoint_id) : undefined;
    if (payload.endpoint_id && !endpoint) {
      ctx.log.info({ endpoint: payload.endpoint_id }, 'webhook endpoint deleted: delivery dropped');
      return { outcome: 'skipped', status_code: null, attempts: ctx.attempt - 1 };
    }
    const url = endpoint?.url ?? payload.url!;
    // The breaker is per destination: an endpoint, or the one-off URL of a job.
    const destination = endpoint?.id ?? `url-${sha256Hex(url).slice(0, 16)}`;
    const log = (patch: Parameters<WebhookStore['updateDelivery']>[2]) =>
      endpoint ? deps.store.updateDelivery(endpoint.id, payload.delivery_id, patch) : Promise.resolve();

    const gate = await deps.store.circuitGate(destination, circuit);
    if (!gate.pass) {
      // Spread the postponed deliveries over a second, so a circuit that closes is not hit by all at once.
      const waitMs = gate.waitMs + Math.floor(Math.random() * 1000);
      await log({ next_attempt_at: Math.ceil((Date.now() + waitMs) / 1000) });
      throw new DeferJob(waitMs, 'the circuit of this webhook destination is open');
    }

    const nowSeconds = Math.floor(Date.now() / 1000);
    // A one-off URL has no secret: it is signed with nothing but still identified and timestamped.
    const signed = endpoint ? webhookHeaders(WebhookStore.activeSecrets(endpoint), payload.event_id, nowSeconds, payload.body) : undefined;
    const headers: Record<string, string> = { ...(signed ?? { 'webhook-id': payload.event_id, 'webhook-timestamp': String(nowSeconds) }) };
    const final = ctx.attempt >= MAX_ATTEMPTS;
    let res: SendResult;
    try {
      res = await sendWebhook(url, payload.body, headers, { allowPrivate: deps.allowPrivate, timeoutMs: deps.timeoutMs, signal: ctx.signal });
    } catch (err) {
      if (err instanceof WebhookAddressError) {
        await log({ state: 'failed', attempts: ctx.attempt, last_status_code: null, last_error: err.message, last_attempt_at: nowSeconds, next_attempt_at: null });
        throw new UnrecoverableError(err.message);
      }
      // A network error or a timeout: no answer at all.
      await deps.store.circuitRecord(destination, false, circuit);
      await log({ ...attemptFailed(ctx.attempt, final, nowSeconds), last_status_code: null, last_error: (err as Error).message });
      throw err;
    }
    const ok = res.status >= 200 && res.status < 300;
    await deps.store.circuitRecord(destination, ok, circuit);
    if (!ok) {
      const reason = `HTTP ${res.status}${res.snippet ? `: ${res.snippet.slice(0, 200)}` : ''}`;
      await log({ ...attemptFailed(ctx.attempt, final, nowSeconds), last_status_code: res.status, last_error: reason });
      throw new Error(`the webhook destination answered ${reason}`);
    }
    await log({ state: 'delivered', attempts: ctx.attempt, last_status_code: res.status, last_error: null, last_attempt_at: nowSeconds, next_attempt_at: null, delivered_at: Math.floor(Date.now() / 1000) });
    return { outcome: 'delivered', status_code: res.status, attempts: ctx.attempt };
  };

  function attemptFailed(attempt: number, final: boolean, nowSeconds: number) {
    return {
      state: final ? ('failed' as const) : ('pending' as const),
      attempts: attempt,
      last_attempt_at: nowSeconds,
      next_attempt_at: final ? null : Math.ceil((Date.now() + deps.retryDelayMs(attempt)) / 1000),
    };
  }
}
