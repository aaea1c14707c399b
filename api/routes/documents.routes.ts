import type { Request } from 'express';
import { searchRequestSchema } from '../../shared/documents/document-api.js';
import { errors } from '../../shared/errors/app-error.js';
import type { DocumentService } from '../documents/document-service.js';
import { isMultipart, receiveCheckedUpload } from '../documents/upload.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * The requests whose body an upload route (documents, files) streams to disk itself. A signed one is hashed on its
 * way there and verified before the upload is committed (api/auth/signed-body.ts); any other signed
 * body is read and hashed before the routes run. Deliberately broad (any case, a trailing slash):
 * a request that matches here but reaches no upload route is answered without being trusted.
 */
export function streamsRequestBody(req: Request): boolean {
  return req.method === 'POST' && /^\/v1\/(documents|files)\/?$/i.test(req.originalUrl.split('?')[0] ?? '') && isMultipart(req);
}

/** Documents (upload, status, delete), collections (list, delete, documents) and vector search. */
export function documentsRoutes(deps: { documents: () => { service: DocumentService; maxBytes: number } | undefined }): TableRoutes {
  const router = tableRoutes();
  const service = () => {
    const d = deps.documents();
    if (!d) throw errors.unavailable('Documents are not configured on this API instance.', 'documents_unavailable');
    return d;
  };

  router.post('/v1/documents', async (req, res) => {
    const upload = await receiveCheckedUpload(req, res, { incomingDir: service().service.incomingDir, maxBytes: service().maxBytes });
    const { view, created } = await service().service.ingest(req.principal!.tenant, upload, String(req.id));
    if (!created) res.setHeader('Idempotent-Replayed', 'true');
    res.status(created ? 202 : 200).location(`/v1/documents/${view.id}`).json(view);
  });

  router.get('/v1/documents/:id', async (req, res) => {
    res.json(await service().service.get(req.principal!.tenant, req.params.id as string));
  });

  router.delete('/v1/documents/:id', async (req, res) => {
    res.json(await service().service.remove(req.principal!.tenant, req.params.id as string));
  });

  router.get('/v1/collections', async (req, res) => {
    res.json({ object: 'list', data: await service().service.collections(req.principal!.tenant) });
  });

  router.delete('/v1/collections/:name', async (req, res) => {
    res.json(await service().service.dropCollection(req.principal!.tenant, req.params.name as string));
  });

  router.get('/v1/collections/:name/documents', async (req, res) => {
    res.json({ object: 'list', data: await service().service.list(req.principal!.tenant, req.params.name as string) });
  });

  router.post('/v1/collections/:name/search', async (req, res) => {
    const body = searchRequestSchema.parse(req.body ?? {});
    res.json(await service().service.search(req.principal!.tenant, req.params.name as string, body, String(req.id)));
  });

  return router;
}
