import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { deriveSigningKey, keyIdOf } from '../../shared/api/sign-request.js';
import { errors } from '../../shared/errors/app-error.js';
import { sha256Hex } from '../../shared/sha256.js';
import type { KeyView, Limits, Scope, TenantView } from './admin-schemas.js';

/** What Redis holds for a managed key: never the key itself, only its SHA-256 and a derived signing key. */
export interface KeyRecord {
  id: string;
  tenant: string;
  name: string | null;
  scopes: Scope[];
  limits: Limits;
  require_signature: boolean;
  created_at: number;
  revoked_at: number | null;
  expires_at: number | null;
  rotated_to: string | null;
  last4: string;
  /** hex SHA-256 of the whole key. Keys carry 256 random bits, so a fast hash is enough (no stretching needed). */
  hash: string;
  /** HMAC-derived signing key (docs/SIGNED_REQUESTS.md): verifies signatures, cannot be used as a bearer key. */
  signing_key: string;
}

export interface TenantRecord {
  id: string;
  name: string | null;
  limits: Limits;
  created_at: number;
  revoked_at: number | null;
  source: 'admin' | 'bootstrap';
}

/** The tenant the admin key acts as on /v1 routes; no managed tenant may take its name. */
export const ADMIN_TENANT = 'admin';

const now = () => Math.floor(Date.now() / 1000);

/**
 * Tenants and managed API keys in Redis:
 * `<prefix>:auth:tenant:<id>` and `<prefix>:auth:key:<id>` (JSON records), `<prefix>:auth:tenants`
 * and `<prefix>:auth:tenant-keys:<tenant>` (sets of ids). A key is `qik_<id>_<secret>`: the id finds
 * the record in one lookup, and the secret is checked against the stored hash in constant time.
 */
export class KeyStore {
  constructor(private readonly deps: { redis: Redis; prefix: string }) {}

  private k(...parts: string[]): string {
    return [this.deps.prefix, 'auth', ...parts].join(':');
  }

  /** Bootstrap tenants (API_KEYS) exist as records too, so keys can be created for them. */
  async ensureBootstrapTenants(ids: Iterable<string>): Promise<void> {
    for (const id of new Set(ids)) {
      const record: TenantRecord = { id, name: null, limits: {}, created_at: now(), revoked_at: null, source: 'bootstrap' };
      await this.deps.redis.set(this.k('tenant', id), JSON.stringify(record), 'NX');
      await this.deps.redis.sadd(this.k('tenants'), id);
    }
  }

  async createTenant(input: { id: string; name?: string; limits?: Limits }): Promise<TenantRecord> {
    if (input.id === ADMIN_TENANT) throw errors.invalidRequest(`'${ADMIN_TENANT}' is reserved.`, 'id', 'tenant_id_reserved');
    const record: TenantRecord = { id: input.id, name: input.name ?? null, limits: input.limits ?? {}, created_at: now(), revoked_at: null, source: 'admin' };
    const ok = await this.deps.redis.set(this.k('tenant', input.id), JSON.stringify(record), 'NX');
    if (!ok) throw errors.conflict(`Tenant '${input.id}' already exists.`, 'tenant_exists');
    await this.deps.redis.sadd(this.k('tenants'), input.id);
    return record;
  }

  async getTenant(id: string): Promise<TenantRecord | undefined> {
    const raw = await this.deps.redis.get(this.k('tenant', id));
    return raw ? (JSON.parse(raw) as TenantRecord) : undefined;
  }

  async listTenants(): Promise<TenantRecord[]> {
    const ids = (await this.deps.redis.smembers(this.k('tenants'))).sort();
    if (ids.length === 0) return [];
    const raws = await this.deps.redis.mget(ids.map((id) => this.k('tenant', id)));
    return raws.filter((r): r is string => !!r).map((r) => JSON.parse(r) as TenantRecord);
  }

  /** Revoking a tenant refuses all its keys at once (they stay listed, as revoked). */
  async revokeTenant(id: string): Promise<TenantRecord> {
    const t = await this.getTenant(id);
    if (!t) throw errors.notFound(`No tenant '${id}'.`, 'tenant_not_found', 'id');
    if (t.revoked_at === null) {
      t.revoked_at = now();
      await this.deps.redis.set(this.k('tenant', id), JSON.stringify(t));
    }
    return t;
  }

  /** Creates a key and returns it once, with its record. */
  async createKey(input: { tenant: string; name?: string; scopes: Scope[]; limits?: Limits; require_signature: boolean }): Promise<{ key: string; record: KeyRecord }> {
    const tenant = await this.getTenant(input.tenant);
    if (!tenant || tenant.revoked_at !== null) throw errors.notFound(`No active tenant '${input.tenant}'.`, 'tenant_not_found', 'tenant');
    const id = randomBytes(6).toString('hex');
    const key = `qik_${id}_${randomBytes(32).toString('base64url')}`;
    const record: KeyRecord = {
      id,
      tenant: input.tenant,
      name: input.name ?? null,
      scopes: [...new Set(input.scopes)],
      limits: input.limits ?? {},
      require_signature: input.require_signature,
      created_at: now(),
      revoked_at: null,
      expires_at: null,
      rotated_to: null,
      last4: key.slice(-4),
      hash: sha256Hex(key),
      signing_key: deriveSigningKey(key),
    };
    const ok = await this.deps.redis.set(this.k('key', id), JSON.stringify(record), 'NX');
    if (!ok) throw errors.internal('key id collision; retry');
    await this.deps.redis.sadd(this.k('tenant-keys', input.tenant), id);
    return { key, record };
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    if (!/^[0-9a-f]{12}$/.test(id)) return undefined;
    const raw = await this.deps.redis.get(this.k('key', id));
    return raw ? (JSON.parse(raw) as KeyRecord) : undefined;
  }

  async listKeys(tenant?: string): Promise<KeyRecord[]> {
    const tenants = tenant ? [tenant] : await this.deps.redis.smembers(this.k('tenants'));
    const ids = (await Promise.all(tenants.map((t) => this.deps.redis.smembers(this.k('tenant-keys', t))))).flat();
    if (ids.length === 0) return [];
    const raws = await this.deps.redis.mget(ids.map((id) => this.k('key', id)));
    return raws
      .filter((r): r is string => !!r)
      .map((r) => JSON.parse(r) as KeyRecord)
      .sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  }

  async revokeKey(id: string): Promise<KeyRecord> {
    const record = await this.getKey(id);
    if (!record) throw errors.notFound(`No key '${id}'.`, 'key_not_found', 'id');
    if (record.revoked_at === null) {
      record.revoked_at = now();
      await this.deps.redis.set(this.k('key', id), JSON.stringify(record));
    }
    return record;
  }

  /** A new key with the same tenant, scopes, limits and signing rule; the old one ends now or after a grace period. */
  async rotateKey(id: string, graceSeconds: number): Promise<{ key: string; record: KeyRecord; previous: KeyRecord }> {
    const old = await this.getKey(id);
    if (!old || !isLive(old)) throw errors.notFound(`No active key '${id}'.`, 'key_not_found', 'id');
    const created = await this.createKey({ tenant: old.tenant, name: old.name ?? undefined, scopes: old.scopes, limits: old.limits, require_signature: old.require_signature });
    old.rotated_to = created.record.id;
    if (graceSeconds > 0) old.expires_at = now() + graceSeconds;
    else old.revoked_at = now();
    await this.deps.redis.set(this.k('key', id), JSON.stringify(old));
    return { ...created, previous: old };
  }

  /**
   * The live record of a presented managed key, or undefined (unknown, wrong secret, revoked,
   * expired, or its tenant revoked). The hash comparison is constant-time.
   */
  async verify(presented: string): Promise<{ record: KeyRecord; tenant: TenantRecord } | undefined> {
    const id = keyIdOf(presented);
    if (!id) return undefined;
    const found = await this.liveKey(id);
    if (!found) return undefined;
    const a = Buffer.from(sha256Hex(presented), 'hex');
    const b = Buffer.from(found.record.hash, 'hex');
    return a.length === b.length && timingSafeEqual(a, b) ? found : undefined;
  }

  /** A key that may be used now, by id (signed requests and JWTs name the key by id). */
  async liveKey(id: string): Promise<{ record: KeyRecord; tenant: TenantRecord } | undefined> {
    const record = await this.getKey(id);
    if (!record || !isLive(record)) return undefined;
    const tenant = await this.getTenant(record.tenant);
    if (!tenant || tenant.revoked_at !== null) return undefined;
    return { record, tenant };
  }
}

export function isLive(r: KeyRecord): boolean {
  return r.revoked_at === null && (r.expires_at === null || r.expires_at > now());
}

export function keyView(r: KeyRecord): KeyView {
  return {
    id: r.id,
    object: 'api_key',
    tenant: r.tenant,
    name: r.name,
    scopes: r.scopes,
    limits: r.limits,
    require_signature: r.require_signature,
    created_at: r.created_at,
    revoked_at: r.revoked_at,
    expires_at: r.expires_at,
    rotated_to: r.rotated_to,
    redacted: `qik_${r.id}_…${r.last4}`,
  };
}

export function tenantView(t: TenantRecord): TenantView {
  return { id: t.id, object: 'tenant', name: t.name, limits: t.limits, created_at: t.created_at, revoked_at: t.revoked_at, source: t.source };
}
