import { createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * Signed requests (docs/SIGNED_REQUESTS.md): HMAC-SHA256 over the method, the path with its query
 * string, a timestamp, a nonce and the SHA-256 of the body, with a signing key derived from the
 * API key. The client helper and the server's verifier both build the string to sign here, so the
 * two cannot drift apart.
 */
export const SIGNATURE_SCHEME = 'QI-HMAC-SHA256';

/** Headers of a signed request. The API key itself is never sent: only its public id. */
export const SIGNATURE_HEADERS = {
  keyId: 'x-qi-key-id',
  timestamp: 'x-qi-timestamp',
  nonce: 'x-qi-nonce',
  signature: 'x-qi-signature',
} as const;

/** Managed keys look like `qik_<id>_<secret>`: the id (12 lowercase hex) is public, the secret is not. */
export const MANAGED_KEY_PATTERN = /^qik_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export function keyIdOf(apiKey: string): string | undefined {
  return MANAGED_KEY_PATTERN.exec(apiKey)?.[1];
}

/** The signing key: HMAC-SHA256(key = the API key, message = "qi-request-signing-v1"), as hex. */
export function deriveSigningKey(apiKey: string): string {
  return createHmac('sha256', apiKey).update('qi-request-signing-v1').digest('hex');
}

export function sha256Hex(body: string | Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** The exact text that is signed: six lines joined by "\n", no trailing newline. */
export function stringToSign(parts: { method: string; path: string; timestamp: string; nonce: string; bodySha256: string }): string {
  return [SIGNATURE_SCHEME, parts.method.toUpperCase(), parts.path, parts.timestamp, parts.nonce, parts.bodySha256].join('\n');
}

/** Hex HMAC-SHA256 of the string to sign, keyed with the derived signing key (hex, used as UTF-8 text). */
export function computeSignature(signingKey: string, text: string): string {
  return createHmac('sha256', signingKey).update(text).digest('hex');
}

/**
 * Client helper: the headers to add to a request. `path` is what goes on the request line
 * (path and query string, e.g. `/v1/jobs?x=1`); `body` is the exact bytes sent (empty for GET).
 */
export function signRequest(opts: {
  apiKey: string;
  method: string;
  path: string;
  body?: string | Uint8Array;
  /** Unix seconds; defaults to now. */
  timestamp?: number;
  /** 16-128 characters of [A-Za-z0-9_-]; defaults to 16 random bytes, base64url. */
  nonce?: string;
}): Record<string, string> {
  const keyId = keyIdOf(opts.apiKey);
  if (!keyId) throw new Error('signRequest: not a managed API key (qik_<id>_<secret>)');
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? randomBytes(16).toString('base64url');
  const text = stringToSign({ method: opts.method, path: opts.path, timestamp, nonce, bodySha256: sha256Hex(opts.body ?? '') });
  return {
    [SIGNATURE_HEADERS.keyId]: keyId,
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: computeSignature(deriveSigningKey(opts.apiKey), text),
  };
}
