import type { ApiMetrics } from '../metrics/api-metrics.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * GET /metrics in Prometheus's text format, behind the admin key (Prometheus sends it as a bearer
 * token; the route table requires it): the figures name queues, models and routes, which is not
 * for every tenant to read.
 */
export function metricsRoutes(deps: { metrics: ApiMetrics }): TableRoutes {
  const router = tableRoutes();
  router.get('/metrics', async (_req, res) => {
    const { contentType, body } = await deps.metrics.render();
    res.setHeader('content-type', contentType);
    res.setHeader('cache-control', 'no-store');
    res.send(body);
  });
  return router;
}
