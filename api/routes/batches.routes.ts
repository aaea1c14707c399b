import type { BatchService } from '../batches/batch-service.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/** OpenAI's Batch API: create, retrieve, cancel, list. */
export function batchesRoutes(deps: { batches: BatchService }): TableRoutes {
  const router = tableRoutes();
  router.post('/v1/batches', async (req, res) => {
    res.json(await deps.batches.create(req.principal!.tenant, req.body, String(req.id)));
  });
  router.get('/v1/batches', async (req, res) => {
    res.json(await deps.batches.list(req.principal!.tenant, req.query));
  });
  router.get('/v1/batches/:batch_id', async (req, res) => {
    res.json(await deps.batches.get(req.principal!.tenant, req.params.batch_id as string));
  });
  router.post('/v1/batches/:batch_id/cancel', async (req, res) => {
    res.json(await deps.batches.cancel(req.principal!.tenant, req.params.batch_id as string));
  });
  return router;
}
