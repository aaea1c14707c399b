import { SIGNING_KEY_CONTEXT, keyIdOf, signatureHeaders, stringToSign } from './signature-scheme.js';

/**
 * The request signer for browsers (and any runtime with Web Crypto, Node included): the same
 * scheme as sign-request.ts, which the typed client cannot import because browser bundles have no
 * `node:crypto`. Asynchronous, as Web Crypto is.
 */
export async function signRequestWeb(opts: {
  apiKey: string;
  method: string;
  path: string;
  /** The exact bytes sent; a string is sent (and hashed) as UTF-8. */
  body?: string | Uint8Array;
  timestamp?: number;
  nonce?: string;
}): Promise<Record<string, string>> {
  const keyId = keyIdOf(opts.apiKey);
  if (!keyId) throw new Error('signRequestWeb: not a managed API key (qik_<id>_<secret>)');
  const enc = new TextEncoder();
  const body = typeof opts.body === 'string' ? enc.encode(opts.body) : (opts.body ?? new Uint8Array());
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? base64url(crypto.getRandomValues(new Uint8Array(16)));
  const bodySha256 = hex(await crypto.subtle.digest('SHA-256', body as Uint8Array<ArrayBuffer>));
  const signingKey = hex(await hmac(enc.encode(opts.apiKey), enc.encode(SIGNING_KEY_CONTEXT)));
  const text = stringToSign({ method: opts.method, path: opts.path, timestamp, nonce, bodySha256 });
  return signatureHeaders(keyId, timestamp, nonce, hex(await hmac(enc.encode(signingKey), enc.encode(text))));
}

async function hmac(key: Uint8Array<ArrayBuffer>, message: Uint8Array<ArrayBuffer>): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return crypto.subtle.sign('HMAC', k, message);
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
