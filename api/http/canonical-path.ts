import type { NextFunction, Request, Response } from 'express';
import { errors } from '../../shared/errors/app-error.js';

/** RFC 3986's unreserved characters: percent-encoding one of them only makes another spelling of the same path. */
const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/**
 * Why a request target is not the one spelling of its path that the router matches, or undefined.
 * Checked, in order: an origin-form target (`/…`, not `http://host/…`), well-formed percent-encoding
 * of UTF-8 in path and query, no empty segment (`//`), no dot segment (`.`, `..`, also encoded),
 * and no percent-encoded unreserved character (`%61dmin` for `admin`).
 */
export function nonCanonical(target: string): { code: 'invalid_path_encoding' | 'non_canonical_path'; reason: string } | undefined {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  if (!path.startsWith('/')) return { code: 'non_canonical_path', reason: 'the request target must be a path starting with /' };
  for (const [part, text] of [
    ['path', path],
    ['query string', query],
  ] as const) {
    try {
      decodeURIComponent(text);
    } catch {
      return { code: 'invalid_path_encoding', reason: `the ${part} has malformed percent-encoding (each % must start a %XX escape of UTF-8 bytes)` };
    }
  }
  for (const segment of path.slice(1).split('/').slice(0, -1)) {
    if (segment === '') return { code: 'non_canonical_path', reason: 'the path has an empty segment (//)' };
  }
  for (const segment of path.slice(1).split('/')) {
    const decoded = decodeURIComponent(segment);
    if (decoded === '.' || decoded === '..') return { code: 'non_canonical_path', reason: 'the path has a dot segment (. or ..)' };
  }
  for (const m of path.matchAll(/%([0-9A-Fa-f]{2})/g)) {
    const ch = String.fromCharCode(parseInt(m[1]!, 16));
    if (UNRESERVED.test(ch)) return { code: 'non_canonical_path', reason: `'${m[0]}' encodes '${ch}', which is sent as itself` };
  }
  return undefined;
}

/**
 * First middleware after logging: one view of every path. Routes match case-sensitively and
 * strictly (a trailing slash or another case is simply another, unknown path), and every other way
 * of spelling a path differently is refused here, before authentication and routing, with 400.
 * Nothing after this point can see a path that routes one way and reads another.
 */
export function canonicalPath() {
  return (req: Request, _res: Response, next: NextFunction) => {
    const bad = nonCanonical(req.url);
    if (!bad) return next();
    const message =
      bad.code === 'invalid_path_encoding'
        ? `Malformed request target: ${bad.reason}.`
        : `The request path is not in canonical form: ${bad.reason}. Send each path exactly as documented (/openapi.json).`;
    next(errors.invalidRequest(message, null, bad.code));
  };
}
