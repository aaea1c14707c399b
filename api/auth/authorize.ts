import type { RequestHandler } from 'express';
import { errors } from '../../shared/errors/app-error.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import type { Access, RouteSpec } from '../http/route-table.js';
import type { RateLimits } from '../limits/rate-limits.js';
import { requireAdmin, type ApiKeyAuthenticator } from './api-key.auth.js';
import { modelAccess } from './model-access.js';

type TenantAccess = Extract<Access, { kind: 'tenant' }>;

/**
 * The check of a /v1 route's entry in the route table, run as that route's first middleware (so
 * after the /v1 chain has authenticated the caller and parsed the body): the caller must hold the
 * declared scope (or the one the entry's resolver picks from the request), and be the admin key
 * where the entry says so. 403 otherwise.
 */
export function authorize(access: TenantAccess): RequestHandler {
  return (req, _res, next) => {
    const id = req.identity;
    if (!id) return next(errors.unauthorized('Not authenticated.', 'missing_api_key'));
    const needed = access.scope === 'any' ? [] : typeof access.scope === 'string' ? [access.scope] : [access.scope.resolve(req)].flat();
    const missing = needed.filter((s) => !id.scopes.includes(s));
    if (missing.length > 0) {
      const what = needed.length > 1 ? `the ${needed.map((s) => `'${s}'`).join(' and ')} scopes this request needs (it lacks ${missing.map((s) => `'${s}'`).join(', ')})` : `the '${missing[0]}' scope this request needs`;
      return next(errors.forbidden(`This key does not have ${what}.`, 'insufficient_scope'));
    }
    if (access.globalAdmin && !id.admin) return next(errors.forbidden('Only the admin key (ADMIN_API_KEY) may do this.', 'admin_required'));
    next();
  };
}

/**
 * The middleware a route table entry puts in front of its handler: nothing for public routes, the
 * admin key for operations pages, and for /v1 routes the scope check, then tenant-specific models,
 * then the tokens-per-minute limits (after authorization, so a refused request spends no tokens).
 */
export function routeGuards(deps: { auth: ApiKeyAuthenticator; registry: ModelRegistry; limits: () => RateLimits }): (spec: RouteSpec) => RequestHandler[] {
  return (spec) => {
    const access = spec.access;
    switch (access.kind) {
      case 'public':
        return [];
      case 'admin-key':
        return [requireAdmin(deps.auth, { basicChallenge: access.basicChallenge ?? false })];
      case 'tenant':
        return [authorize(access), modelAccess(() => deps.registry, spec.modelTask), (req, res, next) => deps.limits().tokens(() => deps.registry)(req, res, next)];
    }
  };
}
