import { randomUUID } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { isValidId } from '../../shared/api/ids.js';
import { errors } from '../../shared/errors/app-error.js';
import { SCOPES, type Scope } from './admin-schemas.js';

/** What a verified token says about its bearer. */
export interface TokenClaims {
  tenant: string;
  scopes: Scope[];
  /** The managed key the token was minted from (our own HS256 tokens), re-checked for revocation. */
  keyId?: string;
  subject: string;
  /** 'local' = minted by POST /v1/auth/token (HS256), 'jwks' = an external identity provider's (RS256/ES256). */
  issuerKind: 'local' | 'jwks';
}

/** A compact JWS: three base64url parts (the last may be empty, as `alg: none` tokens have it). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function looksLikeJwt(token: string): boolean {
  return token.startsWith('eyJ') && COMPACT_JWS.test(token);
}

/**
 * Short-lived bearer tokens. HS256 tokens are minted here with JWT_SECRET; RS256 and ES256 tokens
 * of an external identity provider are verified against its JWKS (JWT_JWKS_URL). The algorithm a
 * token names only picks which of those two keys to try, and each verification pins its allowed
 * algorithms, so an RS256 public key can never be used as an HS256 secret (algorithm confusion)
 * and `alg: none` is never accepted. Issuer, audience, expiry and not-before are always checked.
 */
export class JwtService {
  private readonly secret: Uint8Array | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(
    private readonly opts: { secret?: string; jwksUrl?: string; issuer: string; audience: string; ttlSeconds: number; clockToleranceSeconds?: number },
  ) {
    this.secret = opts.secret ? new TextEncoder().encode(opts.secret) : undefined;
    this.jwks = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl), { timeoutDuration: 3000, cooldownDuration: 5000 }) : undefined;
  }

  get canMint(): boolean {
    return this.secret !== undefined;
  }

  get maxTtlSeconds(): number {
    return this.opts.ttlSeconds;
  }

  async mint(claims: { tenant: string; scopes: readonly Scope[]; keyId: string; ttlSeconds?: number }): Promise<{ token: string; expiresIn: number }> {
    if (!this.secret) throw errors.unavailable('Token issuing is not configured (JWT_SECRET).', 'jwt_not_configured');
    const expiresIn = Math.min(claims.ttlSeconds ?? this.opts.ttlSeconds, this.opts.ttlSeconds);
    const token = await new SignJWT({ tenant: claims.tenant, scope: claims.scopes.join(' '), key_id: claims.keyId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.audience)
      .setSubject(`key:${claims.keyId}`)
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(`${expiresIn}s`)
      .setJti(randomUUID())
      .sign(this.secret);
    return { token, expiresIn };
  }

  /** Verifies a bearer token; every failure is a 401 whose message says what was wrong (never the token). */
  async verify(token: string): Promise<TokenClaims> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw errors.unauthorized('Malformed bearer token.', 'invalid_token');
    }
    const common = { issuer: this.opts.issuer, audience: this.opts.audience, clockTolerance: this.opts.clockToleranceSeconds ?? 5, requiredClaims: ['exp'] };
    let payload: JWTPayload;
    let issuerKind: TokenClaims['issuerKind'];
    try {
      if (alg === 'HS256' && this.secret) {
        ({ payload } = await jwtVerify(token, this.secret, { ...common, algorithms: ['HS256'] }));
        issuerKind = 'local';
      } else if ((alg === 'RS256' || alg === 'ES256') && this.jwks) {
        ({ payload } = await jwtVerify(token, this.jwks, { ...common, algorithms: ['RS256', 'ES256'] }));
        issuerKind = 'jwks';
      } else {
        throw errors.unauthorized(`Tokens signed with '${String(alg)}' are not accepted.`, 'invalid_token');
      }
    } catch (err) {
      if ((err as { status?: number }).status === 401) throw err;
      throw errors.unauthorized(`Invalid bearer token: ${describe(err)}.`, (err as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'token_expired' : 'invalid_token');
    }
    const tenant = payload.tenant;
    if (typeof tenant !== 'string' || !isValidId(tenant)) throw errors.unauthorized('The token names no valid tenant.', 'invalid_token');
    const raw = typeof payload.scope === 'string' ? payload.scope.split(' ') : Array.isArray(payload.scp) ? payload.scp : [];
    const scopes = raw.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s as string));
    const keyId = issuerKind === 'local' && typeof payload.key_id === 'string' ? payload.key_id : undefined;
    return { tenant, scopes, keyId, subject: String(payload.sub ?? ''), issuerKind };
  }
}

/** jose's error codes in words; its messages can quote claim values, which do not belong in answers. */
function describe(err: unknown): string {
  switch ((err as { code?: string }).code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (err as { claim?: string }).claim;
      return claim === 'nbf' ? 'not yet valid' : `claim '${claim}' is not acceptable`;
    }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature does not verify';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'algorithm not allowed';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no matching key in the JWKS';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JOSE_GENERIC':
      return 'could not fetch the signing keys';
    default:
      return 'malformed';
  }
}
