import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { createKeySchema, createTenantSchema, createdKeyView, keyView, rotateKeySchema, tenantView, tokenRequestSchema, tokenView } from '../auth/admin-schemas.js';

type Json = (schema: z.ZodType, description: string) => { description: string; content: { 'application/json': { schema: z.ZodType } } };
type ErrorsFor = (...statuses: number[]) => Record<number, unknown>;

/**
 * The security routes in the OpenAPI document: the identity admin API and the token exchange.
 * Called by buildOpenApiDocument (api/http/openapi.ts), with its helpers.
 */
export function registerSecurityPaths(registry: OpenAPIRegistry, h: { json: Json; errorsFor: ErrorsFor; security: Record<string, string[]>[] }): void {
  const { json, errorsFor, security } = h;
  const list = (item: z.ZodType, id: string) => z.object({ object: z.literal('list'), data: z.array(item) }).meta({ id });
  const body = (schema: z.ZodType) => ({ body: { required: true, content: { 'application/json': { schema } } } });
  const idParam = (what: string) => z.object({ id: z.string().meta({ param: { description: what } }) });
  const tags = ['admin'];

  registry.registerPath({
    method: 'post',
    path: '/v1/auth/token',
    tags: ['auth'],
    summary: 'Exchange the API key of this request for a short-lived JWT (HS256)',
    description:
      'The token carries the tenant and the (requested subset of the) key’s scopes, and is accepted as `Authorization: Bearer <jwt>` on every /v1 route and in the Socket.IO handshake until it expires (JWT_TTL_SECONDS). It dies with its key. The admin key and tokens cannot be exchanged.',
    security,
    request: { body: { required: false, content: { 'application/json': { schema: tokenRequestSchema } } } },
    responses: { 200: json(tokenView, 'The token'), ...errorsFor(400, 401, 403, 429, 503) },
  });

  registry.registerPath({
    method: 'post',
    path: '/v1/admin/tenants',
    tags,
    summary: 'Create a tenant (admin key only)',
    security,
    request: body(createTenantSchema),
    responses: { 201: json(tenantView, 'The tenant'), ...errorsFor(400, 401, 403, 409) },
  });
  registry.registerPath({
    method: 'get',
    path: '/v1/admin/tenants',
    tags,
    summary: 'List tenants (a tenant admin sees its own)',
    security,
    responses: { 200: json(list(tenantView, 'TenantList'), 'Tenants'), ...errorsFor(401, 403) },
  });
  registry.registerPath({
    method: 'delete',
    path: '/v1/admin/tenants/{id}',
    tags,
    summary: 'Revoke a tenant: every key of it is refused from now on (admin key only)',
    security,
    request: { params: idParam('Tenant id') },
    responses: { 200: json(tenantView, 'The revoked tenant'), ...errorsFor(400, 401, 403, 404) },
  });

  registry.registerPath({
    method: 'post',
    path: '/v1/admin/keys',
    tags,
    summary: 'Create an API key; the answer is the only place the key is ever shown',
    description: 'The admin key creates keys for any tenant; a key with the `admin` scope for its own tenant only.',
    security,
    request: body(createKeySchema),
    responses: { 201: json(createdKeyView, 'The key, with its secret'), ...errorsFor(400, 401, 403, 404) },
  });
  registry.registerPath({
    method: 'get',
    path: '/v1/admin/keys',
    tags,
    summary: 'List API keys (never their secrets)',
    security,
    request: { query: z.object({ tenant: z.string().optional().meta({ param: { description: 'Only this tenant’s keys' } }) }) },
    responses: { 200: json(list(keyView, 'ApiKeyList'), 'Keys'), ...errorsFor(400, 401, 403) },
  });
  registry.registerPath({
    method: 'delete',
    path: '/v1/admin/keys/{id}',
    tags,
    summary: 'Revoke an API key at once (tokens minted from it die too)',
    security,
    request: { params: idParam('Key id') },
    responses: { 200: json(keyView, 'The revoked key'), ...errorsFor(401, 403, 404) },
  });
  registry.registerPath({
    method: 'post',
    path: '/v1/admin/keys/{id}/rotate',
    tags,
    summary: 'Replace an API key with a new one of the same tenant, scopes, limits and signing rule',
    description: 'The old key is revoked now, or keeps working for `grace_seconds`.',
    security,
    request: { params: idParam('Key id'), body: { required: false, content: { 'application/json': { schema: rotateKeySchema } } } },
    responses: { 201: json(createdKeyView.extend({ previous: keyView }), 'The new key (shown once) and the old one'), ...errorsFor(400, 401, 403, 404) },
  });
}
