import type { Request } from 'express';
import { z } from 'zod';
import { errors } from '../../shared/errors/app-error.js';
import { parseWebhookUrl, resolveDestination, WebhookAddressError, type DestinationPolicy } from '../../shared/webhooks/address-guard.js';
import { createWebhookSchema, rotateWebhookSecretSchema } from '../../shared/webhooks/webhook-api.js';
import type { WebhookStore } from '../../shared/webhooks/webhook-store.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

export interface WebhookDeps {
  store: WebhookStore;
  policy: DestinationPolicy;
  maxEndpoints: number;
}

/**
 * A webhook URL a tenant gives (an endpoint's, or one job's): refused with a 400 that says why when
 * it is not http(s), does not resolve, or resolves to an address the service may not call. Workers
 * check it again at every delivery. Returns the URL as parsed.
 */
export function webhookUrlChecker(policy: DestinationPolicy) {
  return async (raw: string, param: string): Promise<string> => {
    try {
      const url = parseWebhookUrl(raw);
      await resolveDestination(url, policy);
      return url.toString();
    } catch (err) {
      if (err instanceof WebhookAddressError) throw errors.invalidRequest(`${err.message}.`, param, 'invalid_webhook_url');
      throw err;
    }
  };
}

const deliveriesQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

/**
 * The tenant's webhook endpoints (docs/WEBHOOKS.md). Secrets are shown once, when an endpoint is
 * created or its secret rotated; another tenant's endpoint is answered as missing.
 */
export function webhooksRoutes(deps: { webhooks: () => WebhookDeps }): TableRoutes {
  const router = tableRoutes();
  const tenant = (req: Request) => req.principal!.tenant;
  const owned = async (req: Request) => {
    const id = String(req.params.id);
    const record = await deps.webhooks().store.get(tenant(req), id);
    if (!record) throw errors.notFound(`No webhook endpoint '${id}'.`, 'webhook_not_found', 'id');
    return record;
  };

  router.post('/v1/webhooks', async (req, res) => {
    const { store, policy, maxEndpoints } = deps.webhooks();
    const body = createWebhookSchema.parse(req.body);
    const url = await webhookUrlChecker(policy)(body.url, 'url');
    if ((await store.count(tenant(req))) >= maxEndpoints) {
      throw errors.conflict(`This tenant already has ${maxEndpoints} webhook endpoints (WEBHOOK_MAX_ENDPOINTS); delete one first.`, 'too_many_webhooks');
    }
    const { record, secret } = await store.create(tenant(req), { ...body, url });
    req.log.info({ tenant: record.tenant, webhook: record.id, events: record.events }, 'webhook endpoint created');
    res.status(201).setHeader('cache-control', 'no-store');
    res.json({ ...(await store.view(record)), secret });
  });

  router.get('/v1/webhooks', async (req, res) => {
    const { store } = deps.webhooks();
    const all = await store.list(tenant(req));
    res.json({ object: 'list', data: await Promise.all(all.map((r) => store.view(r))) });
  });

  router.get('/v1/webhooks/:id', async (req, res) => {
    res.json(await deps.webhooks().store.view(await owned(req)));
  });

  router.delete('/v1/webhooks/:id', async (req, res) => {
    const record = await owned(req);
    await deps.webhooks().store.delete(tenant(req), record.id);
    req.log.info({ tenant: record.tenant, webhook: record.id }, 'webhook endpoint deleted');
    res.json({ id: record.id, object: 'webhook_endpoint', deleted: true });
  });

  router.post('/v1/webhooks/:id/rotate_secret', async (req, res) => {
    const body = rotateWebhookSecretSchema.parse(req.body ?? {});
    const record = await owned(req);
    const { store } = deps.webhooks();
    const rotated = await store.rotateSecret(tenant(req), record.id, body.overlap_seconds);
    if (!rotated) throw errors.notFound(`No webhook endpoint '${record.id}'.`, 'webhook_not_found', 'id');
    req.log.info({ tenant: record.tenant, webhook: record.id, overlapSeconds: body.overlap_seconds }, 'webhook secret rotated');
    res.setHeader('cache-control', 'no-store');
    res.json({ ...(await store.view(rotated.record)), secret: rotated.secret });
  });

  router.get('/v1/webhooks/:id/deliveries', async (req, res) => {
    const record = await owned(req);
    const { limit } = deliveriesQuery.parse(req.query);
    res.json({ object: 'list', data: await deps.webhooks().store.deliveries(record.id, limit) });
  });

  return router;
}
