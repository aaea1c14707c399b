import { z } from 'zod';
import { createKeySchema, createTenantSchema, createdKeyView, keyView, rotateKeySchema, tenantView, tokenRequestSchema, tokenView } from '../auth/admin-schemas.js';
import type { DescribeOperation } from './openapi-operation.js';

type Json = (schema: z.ZodType, description: string) => { description: string; content: { 'application/json': { schema: z.ZodType } } };
type ErrorsFor = (...statuses: number[]) => Record<number, unknown>;

/**
 * The security routes in the OpenAPI document: the identity admin API and the token exchange.
 * Called by buildOpenApiDocument (api/http/openapi.ts), with its helpers.
 */
export function securityOperations(op: DescribeOperation, h: { json: Json; errorsFor: ErrorsFor }): void {
  const { json, errorsFor } = h;
  const list = (item: z.ZodType, id: string) => z.object({ object: z.literal('list'), data: z.array(item) }).meta({ id });
  const body = (schema: z.ZodType) => ({ body: { required: true, content: { 'application/json': { schema } } } });
  const idParam = (what: string) => z.object({ id: z.string().meta({ param: { description: what } }) });

  op('POST /v1/auth/token', {
    description:
      'The token carries the tenant and the (requested subset of the) key’s scopes, and is accepted as `Authorization: Bearer <jwt>` on every /v1 route and in the Socket.IO handshake until it expires (JWT_TTL_SECONDS). It dies with its key. The admin key and tokens cannot be exchanged.',
    request: { body: { required: false, content: { 'application/json': { schema: tokenRequestSchema } } } },
    responses: { 200: json(tokenView, 'The token'), ...errorsFor(400, 401, 403, 429, 503) },
  });

  op('POST /v1/admin/tenants', {
    request: body(createTenantSchema),
    responses: { 201: json(tenantView, 'The tenant'), ...errorsFor(400, 401, 403, 409) },
  });
  op('GET /v1/admin/tenants', {
    responses: { 200: json(list(tenantView, 'TenantList'), 'Tenants'), ...errorsFor(401, 403) },
  });
  op('DELETE /v1/admin/tenants/:id', {
    request: { params: idParam('Tenant id') },
    responses: { 200: json(tenantView, 'The revoked tenant'), ...errorsFor(400, 401, 403, 404) },
  });

  op('POST /v1/admin/keys', {
    description: 'The admin key creates keys for any tenant; a key with the `admin` scope for its own tenant only.',
    request: body(createKeySchema),
    responses: { 201: json(createdKeyView, 'The key, with its secret'), ...errorsFor(400, 401, 403, 404) },
  });
  op('GET /v1/admin/keys', {
    request: { query: z.object({ tenant: z.string().optional().meta({ param: { description: 'Only this tenant’s keys' } }) }) },
    responses: { 200: json(list(keyView, 'ApiKeyList'), 'Keys'), ...errorsFor(400, 401, 403) },
  });
  op('DELETE /v1/admin/keys/:id', {
    request: { params: idParam('Key id') },
    responses: { 200: json(keyView, 'The revoked key'), ...errorsFor(401, 403, 404) },
  });
  op('POST /v1/admin/keys/:id/rotate', {
    description: 'The old key is revoked now, or keeps working for `grace_seconds`.',
    request: { params: idParam('Key id'), body: { required: false, content: { 'application/json': { schema: rotateKeySchema } } } },
    responses: { 201: json(createdKeyView.extend({ previous: keyView }), 'The new key (shown once) and the old one'), ...errorsFor(400, 401, 403, 404) },
  });
}
