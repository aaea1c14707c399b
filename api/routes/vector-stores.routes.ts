import { tableRoutes, type TableRoutes } from '../http/table-router.js';
import type { VectorStoreService } from '../vector-stores/vector-store-service.js';

/** OpenAI's vector stores API (api/vector-stores): stores, their files, file batches and search. */
export function vectorStoresRoutes(deps: { vectorStores: VectorStoreService }): TableRoutes {
  const router = tableRoutes();
  const vs = deps.vectorStores;
  const p = (v: unknown) => v as string;

  router.post('/v1/vector_stores', async (req, res) => {
    res.json(await vs.create(req.principal!.tenant, req.body, String(req.id)));
  });
  router.get('/v1/vector_stores', async (req, res) => {
    res.json(await vs.list(req.principal!.tenant, req.query));
  });
  router.get('/v1/vector_stores/:vector_store_id', async (req, res) => {
    res.json(await vs.retrieve(req.principal!.tenant, p(req.params.vector_store_id)));
  });
  router.post('/v1/vector_stores/:vector_store_id', async (req, res) => {
    res.json(await vs.update(req.principal!.tenant, p(req.params.vector_store_id), req.body));
  });
  router.delete('/v1/vector_stores/:vector_store_id', async (req, res) => {
    res.json(await vs.remove(req.principal!.tenant, p(req.params.vector_store_id)));
  });
  router.post('/v1/vector_stores/:vector_store_id/search', async (req, res) => {
    res.json(await vs.search(req.principal!.tenant, p(req.params.vector_store_id), req.body, String(req.id)));
  });

  router.post('/v1/vector_stores/:vector_store_id/files', async (req, res) => {
    res.json(await vs.attachFile(req.principal!.tenant, p(req.params.vector_store_id), req.body, String(req.id)));
  });
  router.get('/v1/vector_stores/:vector_store_id/files', async (req, res) => {
    res.json(await vs.listFiles(req.principal!.tenant, p(req.params.vector_store_id), req.query));
  });
  router.get('/v1/vector_stores/:vector_store_id/files/:file_id', async (req, res) => {
    res.json(await vs.retrieveFile(req.principal!.tenant, p(req.params.vector_store_id), p(req.params.file_id)));
  });
  router.post('/v1/vector_stores/:vector_store_id/files/:file_id', async (req, res) => {
    res.json(await vs.updateFile(req.principal!.tenant, p(req.params.vector_store_id), p(req.params.file_id), req.body));
  });
  router.delete('/v1/vector_stores/:vector_store_id/files/:file_id', async (req, res) => {
    res.json(await vs.removeFile(req.principal!.tenant, p(req.params.vector_store_id), p(req.params.file_id)));
  });
  router.get('/v1/vector_stores/:vector_store_id/files/:file_id/content', async (req, res) => {
    res.json(await vs.fileContent(req.principal!.tenant, p(req.params.vector_store_id), p(req.params.file_id)));
  });

  router.post('/v1/vector_stores/:vector_store_id/file_batches', async (req, res) => {
    res.json(await vs.createBatch(req.principal!.tenant, p(req.params.vector_store_id), req.body, String(req.id)));
  });
  router.get('/v1/vector_stores/:vector_store_id/file_batches/:batch_id', async (req, res) => {
    res.json(await vs.retrieveBatch(req.principal!.tenant, p(req.params.vector_store_id), p(req.params.batch_id)));
  });
  router.post('/v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel', async (req, res) => {
    res.json(await vs.cancelBatch(req.principal!.tenant, p(req.params.vector_store_id), p(req.params.batch_id)));
  });
  router.get('/v1/vector_stores/:vector_store_id/file_batches/:batch_id/files', async (req, res) => {
    res.json(await vs.listFiles(req.principal!.tenant, p(req.params.vector_store_id), req.query, p(req.params.batch_id)));
  });
  return router;
}
