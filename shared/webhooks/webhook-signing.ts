import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Signatures of the Standard Webhooks specification (https://www.standardwebhooks.com): a secret
 * `whsec_<base64 key>`, and three headers on every request: `webhook-id` (the message id, the same
 * on every retry, so receivers can drop duplicates), `webhook-timestamp` (Unix seconds of this
 * attempt, so a receiver's tolerance window also holds for a retry sent a day later) and
 * `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per
 * secret in use (two while a rotated secret overlaps the new one). The service signs with these
 * functions and the typed client verifies with them (client/webhook-verify.ts); tests check both
 * against the independent `standardwebhooks` package.
 */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

/** A new secret: 32 random bytes (the specification asks for 24 to 64). */
export function generateWebhookSecret(): string {
  return `${WEBHOOK_SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

function secretKey(secret: string): Buffer {
  const key = Buffer.from(secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret, 'base64');
  if (key.length === 0) throw new WebhookVerificationError('the webhook secret is empty or not base64');
  return key;
}

/** One `v1,<base64>` signature of a message under one secret. */
export function signWebhook(secret: string, messageId: string, timestampSeconds: number, body: string | Buffer): string {
  const mac = createHmac('sha256', secretKey(secret)).update(`${messageId}.${timestampSeconds}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

// A type, not an interface, so that it is a HeaderSource (a record) as it is.
export type WebhookHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
};

/** The three headers of a message, signed with every secret given (the current one first). */
export function webhookHeaders(secrets: readonly string[], messageId: string, timestampSeconds: number, body: string): WebhookHeaders {
  if (secrets.length === 0) throw new Error('a webhook needs at least one secret to be signed');
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': secrets.map((s) => signWebhook(s, messageId, timestampSeconds, body)).join(' '),
  };
}

export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

/** Headers as Node (`req.headers`), fetch (`Headers`) or a plain object carry them. */
export type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : record[key];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Checks a received webhook and returns its parsed body: one of the `v1` signatures must match
 * under one of `secrets` (compared in constant time), and `webhook-timestamp` must be within
 * `toleranceSeconds` (default 300) of now, so a captured request cannot be replayed later. Pass the
 * body exactly as received (the raw bytes): parsing and re-serialising JSON changes them.
 */
export function verifyWebhook(
  secrets: string | readonly string[],
  headers: HeaderSource,
  rawBody: string | Buffer,
  opts: { toleranceSeconds?: number; nowSeconds?: number } = {},
): unknown {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature header');
  if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookVerificationError('webhook-timestamp is not Unix seconds');
  const tolerance = opts.toleranceSeconds ?? 300;
  const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) throw new WebhookVerificationError(`webhook-timestamp is more than ${tolerance} s away from now`);
  const received = signatures
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    const expected = Buffer.from(signWebhook(secret, id, Number(timestamp), rawBody).slice(3), 'base64');
    if (received.some((r) => r.length === expected.length && timingSafeEqual(r, expected))) {
      return JSON.parse(typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8'));
    }
  }
  throw new WebhookVerificationError('no webhook-signature matches this secret');
}
