import { z } from 'zod';
import { idSchema } from '../../shared/api/ids.js';
import { SCOPES } from '../../shared/api/scopes.js';

export { SCOPES, type Scope } from '../../shared/api/scopes.js';

/**
 * Request and response shapes of the identity admin API (/v1/admin/tenants, /v1/admin/keys) and
 * of POST /v1/auth/token. The routes validate with these and api/http/openapi.ts documents them.
 */
export const tenantIdSchema = idSchema('tenant ids');

/** Per-minute limits; absent = the deployment's default, 0 = unlimited. */
export const limitsSchema = z
  .object({
    rpm: z.number().int().min(0).max(10_000_000).optional().meta({ description: 'Requests per minute' }),
    tpm: z.number().int().min(0).max(10_000_000_000).optional().meta({ description: 'Tokens per minute (estimated input tokens + max_tokens)' }),
  })
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

export const createTenantSchema = z
  .object({
    id: tenantIdSchema,
    name: z.string().max(200).optional(),
    limits: limitsSchema.optional().meta({ description: 'Tenant-wide limits across all its keys' }),
  })
  .strict()
  .meta({ id: 'CreateTenantRequest' });

export const createKeySchema = z
  .object({
    tenant: tenantIdSchema,
    name: z.string().max(200).optional(),
    scopes: z.array(z.enum(SCOPES)).min(1).default(['chat', 'embeddings', 'documents', 'files', 'batches', 'webhooks']),
    limits: limitsSchema.optional(),
    require_signature: z.boolean().default(false).meta({ description: 'Requests with this key must be signed (docs/SIGNED_REQUESTS.md)' }),
  })
  .strict()
  .meta({ id: 'CreateKeyRequest' });

export const rotateKeySchema = z
  .object({
    grace_seconds: z.number().int().min(0).max(7 * 86_400).default(0).meta({ description: 'How long the old key keeps working; 0 revokes it now' }),
  })
  .strict()
  .meta({ id: 'RotateKeyRequest' });

export const tokenRequestSchema = z
  .object({
    scopes: z.array(z.enum(SCOPES)).min(1).optional().meta({ description: "A subset of the key's scopes (default: all of them)" }),
    expires_in: z.number().int().min(30).max(86_400).optional().meta({ description: 'Seconds; at most JWT_TTL_SECONDS' }),
  })
  .strict()
  .meta({ id: 'CreateTokenRequest' });

export const tenantView = z
  .object({
    id: z.string(),
    object: z.literal('tenant'),
    name: z.string().nullable(),
    limits: limitsSchema,
    created_at: z.number().int(),
    revoked_at: z.number().int().nullable(),
    source: z.enum(['admin', 'bootstrap']),
  })
  .meta({ id: 'Tenant' });
export type TenantView = z.infer<typeof tenantView>;

export const keyView = z
  .object({
    id: z.string().meta({ description: 'Public key id (the part after `qik_`)' }),
    object: z.literal('api_key'),
    tenant: z.string(),
    name: z.string().nullable(),
    scopes: z.array(z.enum(SCOPES)),
    limits: limitsSchema,
    require_signature: z.boolean(),
    created_at: z.number().int(),
    revoked_at: z.number().int().nullable(),
    expires_at: z.number().int().nullable().meta({ description: 'Set on a key rotated with a grace period' }),
    rotated_to: z.string().nullable(),
    redacted: z.string().meta({ description: 'Recognisable, non-secret form: qik_<id>_…<last 4>' }),
  })
  .meta({ id: 'ApiKey' });
export type KeyView = z.infer<typeof keyView>;

export const createdKeyView = keyView
  .extend({ key: z.string().meta({ description: 'The secret key. Shown only in this answer; only its hash is stored.' }) })
  .meta({ id: 'CreatedApiKey' });

export const tokenView = z
  .object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    scope: z.string(),
  })
  .meta({ id: 'TokenResponse' });
