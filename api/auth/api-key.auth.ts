import { timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { errors } from '../../shared/errors/app-error.js';
import { sha256Hex } from '../../shared/sha256.js';

export interface Principal {
  tenant: string;
  /** A short, non-secret fingerprint of the key, for logs. */
  keyId: string;
  admin: boolean;
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

/**
 * Bootstrap API keys (from API_KEYS) and the admin key. Keys are compared as SHA-256 digests with
 * timingSafeEqual, so neither the lookup nor the comparison leaks how much of a guess was right.
 */
export class ApiKeyAuthenticator {
  private readonly byDigest = new Map<string, Principal>();
  private readonly adminDigest: Buffer | undefined;

  constructor(keys: readonly { tenant: string; key: string }[], adminKey: string | undefined) {
    for (const { tenant, key } of keys) {
      const d = digest(key);
      this.byDigest.set(d.toString('hex'), { tenant, keyId: d.toString('hex').slice(0, 12), admin: false });
    }
    this.adminDigest = adminKey ? digest(adminKey) : undefined;
  }

  /** The principal for a presented key, or undefined. */
  authenticate(key: string): Principal | undefined {
    const d = digest(key);
    if (this.adminDigest && timingSafeEqual(d, this.adminDigest)) {
      return { tenant: 'admin', keyId: d.toString('hex').slice(0, 12), admin: true };
    }
    return this.byDigest.get(d.toString('hex'));
  }
}

function digest(key: string): Buffer {
  return Buffer.from(sha256Hex(key), 'hex');
}

/** Reads `Authorization: Bearer <key>`, `X-API-Key: <key>`, or HTTP Basic (password = key, for browsers). */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = typeof headers.authorization === 'string' ? headers.authorization.trim() : undefined;
  if (auth) {
    const [scheme, ...rest] = auth.split(/\s+/);
    const value = rest.join(' ');
    if (/^bearer$/i.test(scheme ?? '') && value) return value;
    if (/^basic$/i.test(scheme ?? '') && value) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      return sep >= 0 ? decoded.slice(sep + 1) : undefined;
    }
    return undefined;
  }
  const x = headers['x-api-key'];
  return typeof x === 'string' && x ? x.trim() : undefined;
}

export function requireAdmin(auth: ApiKeyAuthenticator, opts: { basicChallenge?: boolean } = {}) {
  return (req: Request, res: Response, next: NextFunction) => {
    const key = presentedKey(req.headers);
    const principal = key ? auth.authenticate(key) : undefined;
    if (principal?.admin) {
      req.principal = principal;
      return next();
    }
    // Browsers only show a login prompt for Bull Board when asked with a Basic challenge.
    if (opts.basicChallenge) res.setHeader('WWW-Authenticate', 'Basic realm="admin", charset="UTF-8"');
    if (!key) return next(errors.unauthorized('Missing admin key.', 'missing_api_key'));
    next(principal ? errors.forbidden('This route needs the admin key.', 'admin_required') : errors.unauthorized('Invalid API key.'));
  };
}
