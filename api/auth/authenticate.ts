import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { SIGNATURE_HEADERS, sha256Hex } from '../../shared/api/sign-request.js';
import { errors } from '../../shared/errors/app-error.js';
import type { IdentityService } from './identity.js';

/**
 * The /v1 authentication chain, in the order app.ts mounts it:
 * 1. `authenticate` (before the body is read): an API key or JWT resolves to an identity; a
 *    signed request has its headers, key and timestamp checked and waits for its body;
 * 2. the JSON parser, with `recordBodyHash` as its `verify` hook;
 * 3. `completeSignature`: the HMAC over method, path, timestamp, nonce and body hash, then the nonce;
 * 4. once a route matched, its entry in the route table (api/http/route-table.ts) decides: see
 *    `authorize` in api/auth/authorize.ts (403 without the route's scope).
 */
export function authenticate(identity: () => IdentityService) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (req.headers[SIGNATURE_HEADERS.signature] !== undefined || req.headers[SIGNATURE_HEADERS.keyId] !== undefined) {
      if (req.headers.authorization !== undefined || req.headers['x-api-key'] !== undefined) {
        throw errors.unauthorized('Send either a signature or a key, not both.', 'ambiguous_credentials');
      }
      req.pendingSignature = await identity().beginSignature(req.headers);
      return next();
    }
    const id = await identity().fromHeaders(req.headers);
    req.identity = id;
    req.principal = id;
    req.log?.setBindings?.({ tenant: id.tenant, keyId: id.keyId });
    next();
  };
}

/** `verify` hook of express.json: the SHA-256 of the exact bytes received, for signed requests. */
export function recordBodyHash(req: IncomingMessage, _res: unknown, buf: Buffer): void {
  (req as Request).bodySha256 = sha256Hex(buf);
}

export function completeSignature(identity: () => IdentityService) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const pending = req.pendingSignature;
    if (!pending) return next();
    req.pendingSignature = undefined;
    const id = await identity().finishSignature(pending, req.method, req.originalUrl, req.bodySha256 ?? sha256Hex(''));
    req.identity = id;
    req.principal = id;
    req.log?.setBindings?.({ tenant: id.tenant, keyId: id.keyId });
    next();
  };
}
