/**
 * The parts of the request-signing scheme (docs/SIGNED_REQUESTS.md) that need no crypto library:
 * header names, key ids and the string to sign. Both signers build on it, Node's
 * (sign-request.ts, also the server's) and the browser's (sign-request-web.ts), so none of them
 * can drift from the other.
 */
export const SIGNATURE_SCHEME = 'QI-HMAC-SHA256';

/** Headers of a signed request. The API key itself is never sent: only its public id. */
export const SIGNATURE_HEADERS = {
  keyId: 'x-qi-key-id',
  timestamp: 'x-qi-timestamp',
  nonce: 'x-qi-nonce',
  signature: 'x-qi-signature',
} as const;

/** The body hash of a request without a body (GET, DELETE): SHA-256 of zero bytes. */
export const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** The message the signing key is derived with: HMAC-SHA256(key = the API key, message = this). */
export const SIGNING_KEY_CONTEXT = 'qi-request-signing-v1';

/** Managed keys look like `qik_<id>_<secret>`: the id (12 lowercase hex) is public, the secret is not. */
export const MANAGED_KEY_PATTERN = /^qik_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export function keyIdOf(apiKey: string): string | undefined {
  return MANAGED_KEY_PATTERN.exec(apiKey)?.[1];
}

/** The exact text that is signed: six lines joined by "\n", no trailing newline. */
export function stringToSign(parts: { method: string; path: string; timestamp: string; nonce: string; bodySha256: string }): string {
  return [SIGNATURE_SCHEME, parts.method.toUpperCase(), parts.path, parts.timestamp, parts.nonce, parts.bodySha256].join('\n');
}

/** The four headers, from the parts that were signed and the signature. */
export function signatureHeaders(keyId: string, timestamp: string, nonce: string, signature: string): Record<string, string> {
  return {
    [SIGNATURE_HEADERS.keyId]: keyId,
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: signature,
  };
}

/**
 * The exact bytes and content type (with its boundary) that `fetch` sends for a FormData. A
 * multipart body is signed over these bytes, so the client must fix them before it signs; sending
 * the FormData itself would let `fetch` choose another boundary.
 */
export async function multipartBody(form: FormData): Promise<{ body: Uint8Array; contentType: string }> {
  const encoded = new Response(form);
  const contentType = encoded.headers.get('content-type');
  if (!contentType) throw new Error('multipartBody: the form has no content type');
  return { body: new Uint8Array(await encoded.arrayBuffer()), contentType };
}
