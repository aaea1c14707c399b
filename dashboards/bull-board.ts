import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import express, { type Express } from 'express';

/**
 * Bull Board over every queue, mounted by the API behind the admin key. The bare mount path
 * (`/admin/queues`, the README's URL) is redirected to `/admin/queues/`: Bull Board's client
 * router takes `<base href>` (always with its trailing slash) as its basename and renders nothing
 * at a path outside it, and its relative asset URLs only resolve from inside that folder.
 */
export function createBullBoardRouter(queues: Iterable<Queue>, basePath: string): Express {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    queues: [...queues].map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Inference queues' } },
  });
  // A sub-application, not a router: everything below the mount is Bull Board's own business, and
  // the route listings (OpenAPI, the access matrix) see it as the one mount the route table declares.
  const router = express();
  router.get('/', (req, res, next) => {
    const q = req.originalUrl.indexOf('?');
    const pathname = q < 0 ? req.originalUrl : req.originalUrl.slice(0, q);
    if (pathname.endsWith('/')) return next();
    // The Location is built from the configured base path, never from the request's path.
    res.redirect(301, `${basePath.replace(/\/$/, '')}/${q < 0 ? '' : req.originalUrl.slice(q)}`);
  });
  router.use(serverAdapter.getRouter() as Express);
  return router;
}
