import { Router, type Express, type RequestHandler } from 'express';
import { SCOPES } from '../auth/admin-schemas.js';
import { ROUTES, routeKey, type Method, type MountPath, type RoutePath, type RouteSpec } from './route-table.js';

interface Registration {
  method: Method;
  path: string;
  handlers: RequestHandler[];
}

/**
 * What a route module hands to createApp: its handlers, each for a path of the route table
 * (api/http/route-table.ts). Other paths do not compile; the guards come from the table when the
 * routes are mounted, so a route module cannot forget or weaken them.
 */
export class TableRoutes {
  readonly registrations: Registration[] = [];

  get(path: RoutePath<'GET'>, ...handlers: RequestHandler[]): this {
    return this.add('GET', path, handlers);
  }

  post(path: RoutePath<'POST'>, ...handlers: RequestHandler[]): this {
    return this.add('POST', path, handlers);
  }

  delete(path: RoutePath<'DELETE'>, ...handlers: RequestHandler[]): this {
    return this.add('DELETE', path, handlers);
  }

  /** A sub-application (Bull Board) answering every method under the path. */
  mount(path: MountPath, ...handlers: RequestHandler[]): this {
    return this.add('GET', path, handlers);
  }

  private add(method: Method, path: string, handlers: RequestHandler[]): this {
    this.registrations.push({ method, path, handlers });
    return this;
  }
}

export function tableRoutes(): TableRoutes {
  return new TableRoutes();
}

/**
 * Mounts every route of the table on the app behind the guards of its entry, on a router that
 * matches case-sensitively and strictly, like the app. Any mismatch between the table and the
 * registrations is a startup error: a path the table does not list (reachable only by casting
 * around the types), a route registered twice, a table entry without a handler or without a valid
 * access declaration.
 */
export function mountTableRoutes(app: Express, guards: (spec: RouteSpec) => RequestHandler[], sets: readonly TableRoutes[]): void {
  const handlers = new Map<string, RequestHandler[]>();
  for (const r of sets.flatMap((s) => s.registrations)) {
    const key = routeKey(r);
    if (!ROUTES.some((spec) => routeKey(spec) === key)) throw new Error(`route ${key} is not in the route table (api/http/route-table.ts)`);
    if (handlers.has(key)) throw new Error(`route ${key} is registered twice`);
    handlers.set(key, r.handlers);
  }
  const router = Router({ caseSensitive: true, strict: true });
  const mounts: [string, RequestHandler[]][] = [];
  for (const spec of ROUTES as readonly RouteSpec[]) {
    const key = routeKey(spec);
    const own = handlers.get(key);
    if (!own) throw new Error(`route ${key} of the route table has no handler`);
    checkAccess(spec);
    const chain = [...guards(spec), ...own];
    if (spec.mount) mounts.push([spec.path, chain]);
    else router[spec.method === 'GET' ? 'get' : spec.method === 'POST' ? 'post' : 'delete'](spec.path, ...chain);
  }
  app.use(router);
  // Sub-applications are mounted on the app itself, which gives them their mount path and settings.
  for (const [path, chain] of mounts) app.use(path, ...chain);
}

function checkAccess(spec: RouteSpec): void {
  const a = spec.access as Partial<{ kind: string; scope: unknown }> | undefined;
  const ok =
    a?.kind === 'public' ||
    a?.kind === 'admin-key' ||
    (a?.kind === 'tenant' &&
      (a.scope === 'any' || (SCOPES as readonly unknown[]).includes(a.scope) || typeof (a.scope as { resolve?: unknown } | undefined)?.resolve === 'function'));
  if (!ok) throw new Error(`route ${routeKey(spec)} declares no valid access (public, admin-key, or a scope)`);
  // Credentials of tenants are read by the /v1 chain only; elsewhere the route could never be used.
  if (a.kind === 'tenant' && !spec.path.startsWith('/v1/')) throw new Error(`route ${routeKey(spec)} needs a /v1 credential but is outside /v1`);
}
