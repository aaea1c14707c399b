import type { IncomingMessage } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { SIGNATURE_HEADERS } from '../../shared/api/sign-request.js';
import { sha256Hex } from '../../shared/sha256.js';
import { errors } from '../../shared/errors/app-error.js';
import type { Identity, IdentityService } from './identity.js';
import { SignedBody } from './signed-body.js';

/**
 * The /v1 authentication chain, in the order app.ts mounts it:
 * 1. `authenticate` (before the body is read): an API key or JWT resolves to an identity; a
 *    signed request has its headers, key and timestamp checked and waits for its body;
 * 2. the JSON parser, with `recordBodyHash` as its `verify` hook;
 * 3. `completeSignature`: the HMAC over method, path, timestamp, nonce and body hash, then the nonce.
 *    A body of any other type is hashed too: read and dropped here, or, for a route that streams it
 *    (an upload), hashed on its way to the route, which verifies before committing (signed-body.ts);
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

export interface CompleteSignatureOptions {
  /** The most bytes read to hash a body that no parser reads (MAX_BODY_BYTES). */
  maxBodyBytes: number;
  /** Requests whose body the route streams itself (uploads): hashed on the way, verified by the route. */
  streamsBody: (req: Request) => boolean;
  /** Counts a streamed request against its key's limits once its signature checked out. */
  countRequest: (identity: Identity, res: Response) => Promise<void>;
}

export function completeSignature(identity: () => IdentityService, opts: CompleteSignatureOptions) {
  // A body that no parser read (text, octet-stream, a form sent to a JSON route) is still part of what
  // was signed: it is read here only to be hashed, then dropped, so the route sees what an unsigned
  // request of that type shows it (no body).
  const hashOnly = express.raw({ type: () => true, limit: opts.maxBodyBytes, verify: recordBodyHash });
  return async (req: Request, res: Response, next: NextFunction) => {
    const pending = req.pendingSignature;
    if (!pending) return next();
    req.pendingSignature = undefined;
    if (req.bodySha256 === undefined && hasBody(req)) {
      if (opts.streamsBody(req)) {
        const signed = new SignedBody(req, async (bodySha256) => {
          adopt(req, await identity().finishSignature(pending, req.method, req.originalUrl, bodySha256));
          await opts.countRequest(pending.identity, res);
        });
        req.signedBody = signed;
        // Answered without the upload route reading it all (e.g. no route matched): drop the rest, as
        // Node does for an unread body, rather than leave it stuck behind the hasher.
        res.once('finish', () => {
          if (signed.complete) return;
          signed.discard();
          req.resume();
        });
        // Unproven until the route has read the body and called verify(): enough for the scope check,
        // not counted against the key's limits (see countRequest), and no tenant in the log yet.
        req.identity = pending.identity;
        req.principal = pending.identity;
        req.requestCounted = true;
        return next();
      }
      await new Promise<void>((resolve, reject) => hashOnly(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
      req.body = undefined;
    }
    adopt(req, await identity().finishSignature(pending, req.method, req.originalUrl, req.bodySha256 ?? sha256Hex('')));
    next();
  };
}

function adopt(req: Request, id: Identity): void {
  req.identity = id;
  req.principal = id;
  req.log?.setBindings?.({ tenant: id.tenant, keyId: id.keyId });
}

/** Whether the request carries a body at all: type-is's `hasBody`, the test the body parsers make. */
function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || !Number.isNaN(Number.parseInt(req.headers['content-length'] ?? '', 10));
}
