import type { Express } from 'express';
import pino from 'pino';
import { createApp, type AppDeps } from '../../api/app.js';
import { ApiKeyAuthenticator } from '../../api/auth/api-key.auth.js';
import { ApiMetrics } from '../../api/metrics/api-metrics.js';

/** The API's app built with empty dependencies: enough to list its routes (nothing runs until a request comes). */
export function routeListingApp(): Express {
  const log = pino({ level: 'silent' });
  return createApp({
    log,
    auth: new ApiKeyAuthenticator([], undefined),
    queues: new Map(),
    registry: { models: [], get: () => undefined },
    metrics: new ApiMetrics({ queues: new Map(), log }),
  } as unknown as AppDeps);
}

/** One route of an Express 5 app: its method and its path pattern (string, or RegExp for regex routes). */
export interface ExpressRoute {
  method: string;
  path: string | RegExp;
  /** Path of the router it is mounted under ('' at the root). */
  mount: string;
  /** A whole Express sub-app mounted at `path`. */
  subApp?: boolean;
}

interface Layer {
  route?: { path: string | RegExp; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: string | RegExp | (string | RegExp)[];
  name?: string;
}

/**
 * Walks an Express 5 app's router stack (routers mounted with app.use included) and lists every
 * route. Relies on the router package's Layer fields (route, handle.stack, rawPath).
 */
export function listExpressRoutes(app: Express): ExpressRoute[] {
  const routes: ExpressRoute[] = [];
  const walk = (stack: Layer[], mount: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (!on || method === '_all') continue;
          const p = layer.route.path;
          routes.push({ method: method.toUpperCase(), path: typeof p === 'string' ? `${mount}${p}` : p, mount });
        }
      } else {
        const raw = Array.isArray(layer.rawPath) ? layer.rawPath[0] : layer.rawPath;
        const sub = typeof raw === 'string' && raw !== '/' ? `${mount}${raw}` : mount;
        // A mounted sub-app (Bull Board's) hides its routes in a closure: it counts as one GET route at its mount path.
        if (layer.name === 'mounted_app') routes.push({ method: 'GET', path: sub, mount: sub, subApp: true });
        else if (layer.handle?.stack) walk(layer.handle.stack, sub);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return routes;
}
