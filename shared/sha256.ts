import { createHash } from 'node:crypto';

/**
 * Hex SHA-256: request bodies for signatures, idempotency and cache keys, stored key hashes. The
 * one hashing helper of the Node side (browsers hash with Web Crypto: shared/api/sign-request-web.ts).
 */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
