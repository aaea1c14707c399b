import type { NextFunction, Request, Response } from 'express';
import { errors } from '../../shared/errors/app-error.js';
import type { ModelConfig, ModelRegistry } from '../../shared/models/model-registry.js';
import type { RouteSpec } from '../http/route-table.js';
import type { Principal } from './api-key.auth.js';

/** The alias a request may name instead of a model: its tenant's default model for the task. */
export const DEFAULT_MODEL_ALIAS = 'default';

/** Whether a caller may see and use a model (`tenants` in the models config; the admin key sees all). */
export function canUseModel(model: ModelConfig, principal: Principal | undefined): boolean {
  if (!model.tenants) return true;
  if (!principal) return false;
  return principal.admin || model.tenants.includes(principal.tenant);
}

export function defaultModelFor(registry: ModelRegistry, tenant: string, task: string): ModelConfig | undefined {
  return registry.models.find((m) => m.task === task && (m.default_for ?? []).includes(tenant));
}

/** The task a request body's `model` is for, as its route declares it (api/http/route-table.ts). */
function taskOf(req: Request, modelTask: RouteSpec['modelTask']): string | undefined {
  if (modelTask !== 'job-type') return modelTask;
  const type = (req.body as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/**
 * Tenant-specific models, before any route sees the body: a model the tenant may not use is
 * answered exactly like one that does not exist (404 model_not_found), and `"model": "default"`
 * becomes the tenant's default model for the task when the models config names one.
 */
export function modelAccess(registry: () => ModelRegistry, modelTask?: RouteSpec['modelTask']) {
  return (req: Request, _res: Response, next: NextFunction) => {
    const body = req.body as { model?: unknown } | undefined;
    if (!body || typeof body !== 'object' || typeof body.model !== 'string') return next();
    const principal = req.principal;
    if (body.model === DEFAULT_MODEL_ALIAS && !registry().get(DEFAULT_MODEL_ALIAS)) {
      const task = taskOf(req, modelTask);
      const m = task && principal ? defaultModelFor(registry(), principal.tenant, task) : undefined;
      if (!m) return next(errors.modelNotFound(DEFAULT_MODEL_ALIAS));
      body.model = m.id;
      return next();
    }
    const m = registry().get(body.model);
    if (m && !canUseModel(m, principal)) return next(errors.modelNotFound(body.model));
    next();
  };
}
