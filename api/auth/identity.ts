import type { Redis } from 'ioredis';
import type { IncomingHttpHeaders } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { SIGNATURE_HEADERS, computeSignature, stringToSign } from '../../shared/api/sign-request.js';
import { errors } from '../../shared/errors/app-error.js';
import { isRedisConnectionError } from '../../shared/redis/redis-errors.js';
import { SCOPES, type Limits, type Scope } from './admin-schemas.js';
import { presentedKey, type ApiKeyAuthenticator, type Principal } from './api-key.auth.js';
import { looksLikeJwt, type JwtService } from './jwt.js';
import { ADMIN_TENANT, type KeyStore } from './key-store.js';

/** Who is calling, with what rights and limits: the principal of api-key.auth.ts, plus scopes and limits. */
export interface Identity extends Principal {
  scopes: readonly Scope[];
  /** This key's own limits (absent fields: the deployment's defaults). */
  limits: Limits;
  /** Tenant-wide limits (absent fields: the deployment's defaults). */
  tenantLimits: Limits;
  via: 'bootstrap_key' | 'admin_key' | 'managed_key' | 'jwt' | 'signed_request';
}

/** A signed request whose headers checked out; its signature is verified once the body is read. */
export interface PendingSignature {
  keyId: string;
  timestamp: string;
  nonce: string;
  signature: string;
  signingKey: string;
  identity: Identity;
}

declare module 'express-serve-static-core' {
  interface Request {
    identity?: Identity;
    pendingSignature?: PendingSignature;
    /** hex SHA-256 of the raw body, recorded by the JSON parser for signature checks. */
    bodySha256?: string;
  }
}

const ALL_SCOPES: readonly Scope[] = SCOPES;

/**
 * Turns credentials into an Identity: bootstrap keys (API_KEYS: every scope), the admin key,
 * managed keys (Redis, hashed), bearer JWTs, and signed requests. Every refusal is an AppError
 * with a code; none of them quotes the credential.
 */
export class IdentityService {
  constructor(
    private readonly deps: {
      bootstrap: ApiKeyAuthenticator;
      store: KeyStore;
      jwt: JwtService;
      redis: Redis;
      prefix: string;
      signatureWindowSeconds: number;
    },
  ) {}

  /** An API key (bootstrap, admin or managed). `allowUnsigned` is false where a signature could not be sent. */
  async fromApiKey(key: string): Promise<Identity> {
    const boot = this.deps.bootstrap.authenticate(key);
    if (boot) {
      return boot.admin
        ? { ...boot, scopes: ALL_SCOPES, limits: { rpm: 0, tpm: 0 }, tenantLimits: { rpm: 0, tpm: 0 }, via: 'admin_key' }
        : { ...boot, scopes: ALL_SCOPES, limits: {}, tenantLimits: {}, via: 'bootstrap_key' };
    }
    const found = await storeCall(this.deps.store.verify(key));
    if (!found) throw errors.unauthorized('Invalid API key.');
    if (found.record.require_signature) {
      throw errors.unauthorized('This key only accepts signed requests (see docs/SIGNED_REQUESTS.md); the key itself must not be sent.', 'signature_required');
    }
    return managed(found.record, found.tenant.limits, 'managed_key');
  }

  async fromJwt(token: string): Promise<Identity> {
    const claims = await this.deps.jwt.verify(token);
    if (claims.keyId) {
      // Our own tokens die with the key they were minted from.
      const found = await storeCall(this.deps.store.liveKey(claims.keyId));
      if (found) {
        if (found.tenant.id !== claims.tenant) throw errors.unauthorized('Invalid bearer token.', 'invalid_token');
        return { ...managed(found.record, found.tenant.limits, 'jwt'), scopes: claims.scopes.filter((s) => found.record.scopes.includes(s)) };
      }
      if (!claims.keyId.startsWith('boot:')) throw errors.unauthorized('The key this token was issued for has been revoked.', 'key_revoked');
    }
    if (claims.tenant === ADMIN_TENANT && claims.issuerKind !== 'local') throw errors.unauthorized('Invalid bearer token.', 'invalid_token');
    const tenant = await storeCall(this.deps.store.getTenant(claims.tenant));
    if (tenant?.revoked_at) throw errors.unauthorized('This tenant has been revoked.', 'tenant_revoked');
    return {
      tenant: claims.tenant,
      // A bootstrap key's tokens count against that key's own limits: a token is not a second allowance.
      keyId: claims.keyId?.startsWith('boot:') ? claims.keyId.slice('boot:'.length) : (claims.keyId ?? `jwt:${claims.subject}`.slice(0, 80)),
      admin: false,
      scopes: claims.scopes,
      limits: {},
      tenantLimits: tenant?.limits ?? {},
      via: 'jwt',
    };
  }

  /** Any credential a client may present in headers (Bearer key or JWT, X-API-Key, Basic). */
  async fromHeaders(headers: IncomingHttpHeaders): Promise<Identity> {
    const token = presentedKey(headers);
    if (!token) throw errors.unauthorized('Missing API key: send Authorization: Bearer <key or token> or X-API-Key: <key>.', 'missing_api_key');
    return this.fromToken(token);
  }

  /** A bare credential (Socket.IO's `auth.token`): a JWT or an API key. */
  fromToken(token: string): Promise<Identity> {
    if (token.length > 8192) return Promise.reject(errors.unauthorized('Invalid API key.'));
    return looksLikeJwt(token) ? this.fromJwt(token) : this.fromApiKey(token);
  }

  /**
   * First half of a signed request, before the body is read: the key exists and is live, the
   * headers are well-formed and the timestamp is inside the window. Cheap, so an anonymous caller
   * cannot make us read a body.
   */
  async beginSignature(headers: IncomingHttpHeaders): Promise<PendingSignature> {
    const h = (name: string) => {
      const v = headers[name];
      return typeof v === 'string' ? v : undefined;
    };
    const keyId = h(SIGNATURE_HEADERS.keyId);
    const timestamp = h(SIGNATURE_HEADERS.timestamp);
    const nonce = h(SIGNATURE_HEADERS.nonce);
    const signature = h(SIGNATURE_HEADERS.signature);
    if (!keyId || !timestamp || !nonce || !signature) {
      throw errors.unauthorized(`A signed request needs all of ${Object.values(SIGNATURE_HEADERS).join(', ')}.`, 'invalid_signature');
    }
    if (!/^\d{1,12}$/.test(timestamp) || !/^[A-Za-z0-9_-]{16,128}$/.test(nonce) || !/^[0-9a-f]{64}$/.test(signature)) {
      throw errors.unauthorized('Malformed signature headers.', 'invalid_signature');
    }
    const skew = Math.abs(Math.floor(Date.now() / 1000) - Number(timestamp));
    if (skew > this.deps.signatureWindowSeconds) {
      throw errors.unauthorized(`The request timestamp is outside the allowed window of ${this.deps.signatureWindowSeconds} s.`, 'signature_expired');
    }
    const found = await storeCall(this.deps.store.liveKey(keyId));
    if (!found) throw errors.unauthorized('Invalid signature.', 'invalid_signature');
    return { keyId, timestamp, nonce, signature, signingKey: found.record.signing_key, identity: managed(found.record, found.tenant.limits, 'signed_request') };
  }

  /** Second half, once the body's hash is known: the HMAC (constant-time), then the nonce (once only). */
  async finishSignature(pending: PendingSignature, method: string, path: string, bodySha256: string): Promise<Identity> {
    const expected = Buffer.from(computeSignature(pending.signingKey, stringToSign({ method, path, timestamp: pending.timestamp, nonce: pending.nonce, bodySha256 })), 'hex');
    const given = Buffer.from(pending.signature, 'hex');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw errors.unauthorized('Invalid signature.', 'invalid_signature');
    // Remembered for twice the window: any replay still inside the window finds it.
    const fresh = await storeCall(this.deps.redis.set(`${this.deps.prefix}:auth:nonce:${pending.keyId}:${pending.nonce}`, '1', 'EX', this.deps.signatureWindowSeconds * 2, 'NX'));
    if (!fresh) throw errors.unauthorized('This nonce was already used: signed requests cannot be replayed.', 'nonce_reused');
    return pending.identity;
  }
}

/** Redis unreachable while checking a credential is the service being unavailable (503), not a bad credential. */
async function storeCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw isRedisConnectionError(err) ? errors.redisUnavailable('key store') : err;
  }
}

function managed(record: { id: string; tenant: string; scopes: Scope[]; limits: Limits }, tenantLimits: Limits, via: Identity['via']): Identity {
  return { tenant: record.tenant, keyId: record.id, admin: false, scopes: record.scopes, limits: record.limits, tenantLimits, via };
}

export { ADMIN_TENANT, ALL_SCOPES };
