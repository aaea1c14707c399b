import { createHmac, randomBytes } from 'node:crypto';
import { sha256Hex } from '../sha256.js';
import { SIGNING_KEY_CONTEXT, keyIdOf, signatureHeaders, stringToSign } from './signature-scheme.js';

/**
 * Signed requests (docs/SIGNED_REQUESTS.md): HMAC-SHA256 over the method, the path with its query
 * string, a timestamp, a nonce and the SHA-256 of the body, with a signing key derived from the
 * API key. The client helper and the server's verifier both build the string to sign in
 * signature-scheme.ts, so the two cannot drift apart. This is Node's signer; browsers use
 * sign-request-web.ts (Web Crypto).
 */
export {
  EMPTY_BODY_SHA256,
  MANAGED_KEY_PATTERN,
  SIGNATURE_HEADERS,
  SIGNATURE_SCHEME,
  keyIdOf,
  multipartBody,
  stringToSign,
} from './signature-scheme.js';
/** Signing clients hash bodies they send whole themselves (`bodySha256`), with the same function. */
export { sha256Hex };

/** The signing key: HMAC-SHA256(key = the API key, message = "qi-request-signing-v1"), as hex. */
export function deriveSigningKey(apiKey: string): string {
  return createHmac('sha256', apiKey).update(SIGNING_KEY_CONTEXT).digest('hex');
}

/** Hex HMAC-SHA256 of the string to sign, keyed with the derived signing key (hex, used as UTF-8 text). */
export function computeSignature(signingKey: string, text: string): string {
  return createHmac('sha256', signingKey).update(text).digest('hex');
}

/**
 * Client helper: the headers to add to a request. `path` is what goes on the request line
 * (path and query string, e.g. `/v1/jobs?x=1`); `body` is the exact bytes sent (empty for GET),
 * whatever their type: JSON, a multipart form (see `multipartBody`), a file. A body too large to
 * hold can be hashed on its own and passed as `bodySha256` instead.
 */
export function signRequest(opts: {
  apiKey: string;
  method: string;
  path: string;
  body?: string | Uint8Array;
  /** hex SHA-256 of the body, when the body itself is not at hand (a file streamed from disk). */
  bodySha256?: string;
  /** Unix seconds; defaults to now. */
  timestamp?: number;
  /** 16-128 characters of [A-Za-z0-9_-]; defaults to 16 random bytes, base64url. */
  nonce?: string;
}): Record<string, string> {
  const keyId = keyIdOf(opts.apiKey);
  if (!keyId) throw new Error('signRequest: not a managed API key (qik_<id>_<secret>)');
  if (opts.body !== undefined && opts.bodySha256 !== undefined) throw new Error('signRequest: pass the body or its hash, not both');
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? randomBytes(16).toString('base64url');
  const bodySha256 = opts.bodySha256 ?? sha256Hex(opts.body ?? '');
  const text = stringToSign({ method: opts.method, path: opts.path, timestamp, nonce, bodySha256 });
  return signatureHeaders(keyId, timestamp, nonce, computeSignature(deriveSigningKey(opts.apiKey), text));
}
