import { Router } from 'express';
import { requireAdmin, type ApiKeyAuthenticator } from '../auth/api-key.auth.js';
import type { ApiMetrics } from '../metrics/api-metrics.js';

/**
 * GET /metrics in Prometheus's text format, behind the admin key (Prometheus sends it as a bearer
 * token): the figures name queues, models and routes, which is not for every tenant to read.
 */
export function metricsRoutes(deps: { metrics: ApiMetrics; auth: ApiKeyAuthenticator }): Router {
  const router = Router();
  router.get('/metrics', requireAdmin(deps.auth), async (_req, res) => {
    const { contentType, body } = await deps.metrics.render();
    res.setHeader('content-type', contentType);
    res.setHeader('cache-control', 'no-store');
    res.send(body);
  });
  return router;
}
