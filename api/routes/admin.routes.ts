import type { Request } from 'express';
import { errors } from '../../shared/errors/app-error.js';
import { createKeySchema, createTenantSchema, rotateKeySchema, tenantIdSchema, tokenRequestSchema } from '../auth/admin-schemas.js';
import type { Identity } from '../auth/identity.js';
import type { JwtService } from '../auth/jwt.js';
import { checkRotation, grantableLimits } from '../auth/grants.js';
import { keyView, tenantView, type KeyStore } from '../auth/key-store.js';
import type { RateLimits } from '../limits/rate-limits.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * The identity admin API. The admin key (ADMIN_API_KEY) manages every tenant and key; a tenant key
 * with the `admin` scope manages the keys of its own tenant only (it cannot create or revoke
 * tenants). New keys are shown once, in the creation answer; Redis keeps only their hashes. No
 * caller creates or rotates a key with more scopes or higher limits than its own (api/auth/grants.ts).
 * (The route table requires the `admin` scope for every route here, and the admin key for tenants.)
 */
export function adminRoutes(deps: { store: () => KeyStore; limits: () => RateLimits }): TableRoutes {
  const router = tableRoutes();
  const who = (req: Request): Identity => req.identity!;
  /** A tenant admin may only touch its own tenant: another tenant's things are reported as missing. */
  const mayManage = (req: Request, tenant: string) => who(req).admin || who(req).tenant === tenant;

  router.post('/v1/admin/tenants', async (req, res) => {
    const body = createTenantSchema.parse(req.body);
    const t = await deps.store().createTenant(body);
    req.log.info({ tenant: t.id }, 'tenant created');
    res.status(201).json(tenantView(t));
  });

  router.get('/v1/admin/tenants', async (req, res) => {
    const all = await deps.store().listTenants();
    res.json({ object: 'list', data: all.filter((t) => mayManage(req, t.id)).map(tenantView) });
  });

  router.delete('/v1/admin/tenants/:id', async (req, res) => {
    const id = tenantIdSchema.parse(req.params.id);
    const t = await deps.store().revokeTenant(id);
    req.log.info({ tenant: t.id }, 'tenant revoked');
    res.json(tenantView(t));
  });

  router.post('/v1/admin/keys', async (req, res) => {
    const body = createKeySchema.parse(req.body);
    if (!mayManage(req, body.tenant)) throw errors.notFound(`No active tenant '${body.tenant}'.`, 'tenant_not_found', 'tenant');
    const limits = grantableLimits(who(req), deps.limits().allowance(who(req)), deps.limits().keyDefaults(), body);
    const { key, record } = await deps.store().createKey({ ...body, limits });
    req.log.info({ tenant: record.tenant, keyId: record.id, scopes: record.scopes }, 'api key created');
    res.status(201).setHeader('cache-control', 'no-store');
    res.json({ ...keyView(record), key });
  });

  router.get('/v1/admin/keys', async (req, res) => {
    const tenant = typeof req.query.tenant === 'string' ? tenantIdSchema.parse(req.query.tenant) : undefined;
    const scope = who(req).admin ? tenant : who(req).tenant;
    if (tenant && !mayManage(req, tenant)) return void res.json({ object: 'list', data: [] });
    const keys = await deps.store().listKeys(scope);
    res.json({ object: 'list', data: keys.map(keyView) });
  });

  const ownKey = async (req: Request) => {
    const id = String(req.params.id);
    const record = await deps.store().getKey(id);
    if (!record || !mayManage(req, record.tenant)) throw errors.notFound(`No key '${id}'.`, 'key_not_found', 'id');
    return record;
  };

  router.delete('/v1/admin/keys/:id', async (req, res) => {
    const record = await ownKey(req);
    const revoked = await deps.store().revokeKey(record.id);
    req.log.info({ tenant: revoked.tenant, keyId: revoked.id }, 'api key revoked');
    res.json(keyView(revoked));
  });

  router.post('/v1/admin/keys/:id/rotate', async (req, res) => {
    const record = await ownKey(req);
    const body = rotateKeySchema.parse(req.body ?? {});
    checkRotation(who(req), deps.limits().allowance(who(req)), deps.limits().keyDefaults(), record);
    const { key, record: fresh, previous } = await deps.store().rotateKey(record.id, body.grace_seconds);
    req.log.info({ tenant: fresh.tenant, keyId: fresh.id, previous: previous.id }, 'api key rotated');
    res.status(201).setHeader('cache-control', 'no-store');
    res.json({ ...keyView(fresh), key, previous: keyView(previous) });
  });

  return router;
}

/** POST /v1/auth/token: trades the API key of this request for a short-lived JWT with (a subset of) its scopes. */
export function authRoutes(deps: { jwt: () => JwtService }): TableRoutes {
  const router = tableRoutes();
  router.post('/v1/auth/token', async (req, res) => {
    const id = req.identity!;
    if (id.admin) throw errors.forbidden('The admin key cannot be exchanged for a token.', 'admin_key_not_exchangeable');
    if (id.via === 'jwt') throw errors.forbidden('A token cannot be exchanged for another token; use an API key.', 'token_not_exchangeable');
    const body = tokenRequestSchema.parse(req.body ?? {});
    const scopes = body.scopes ?? [...id.scopes];
    const extra = scopes.filter((s) => !id.scopes.includes(s));
    if (extra.length) throw errors.forbidden(`This key does not have the scope(s) ${extra.join(', ')}.`, 'insufficient_scope');
    const keyId = id.via === 'bootstrap_key' ? `boot:${id.keyId}` : id.keyId;
    const { token, expiresIn } = await deps.jwt().mint({ tenant: id.tenant, scopes, keyId, ttlSeconds: body.expires_in });
    res.setHeader('cache-control', 'no-store');
    res.json({ access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: scopes.join(' ') });
  });
  return router;
}
