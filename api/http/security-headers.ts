import cors from 'cors';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

const CSP_DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
};

/**
 * Secure response headers (helmet) for every answer. The policy fits what this origin serves: JSON
 * everywhere, plus three pages that load only their own scripts and styles (the playground at `/`,
 * Swagger UI at `/docs`, which replaces this CSP with its own, and Bull Board). HSTS only over TLS:
 * a plain-HTTP deployment behind a TLS proxy leaves it to the proxy.
 */
export function securityHeaders(opts: { tls: boolean }): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    strictTransportSecurity: opts.tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    // The API is called from other origins through CORS when CORS_ORIGINS allows it.
    crossOriginResourcePolicy: { policy: 'same-site' },
    referrerPolicy: { policy: 'no-referrer' },
  });
}

/**
 * The CSP of Bull Board's mount, replacing the app's: the same policy, except that the page may set
 * a `<base>` of this origin. Bull Board's HTML sets `<base href="/admin/queues/">` and loads its
 * scripts relative to it (`static/js/...`); under `base-uri 'none'` the browser ignores the base, so
 * on a deep link such as `/admin/queues/queue/<name>` the scripts are fetched from the wrong folder,
 * 404, and the page stays at "Loading". Everything else keeps `base-uri 'none'`.
 */
export function dashboardSecurityHeaders(): RequestHandler {
  return helmet.contentSecurityPolicy({ useDefaults: false, directives: { ...CSP_DIRECTIVES, 'base-uri': ["'self'"] } });
}

/** CORS only for the configured origins; with none configured there is no CORS at all (browsers refuse cross-origin calls). */
export function corsPolicy(origins: readonly string[]): RequestHandler | undefined {
  if (origins.length === 0) return undefined;
  return cors({
    origin: [...origins],
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'x-api-key', 'idempotency-key', 'cache-control', 'x-request-id', 'x-qi-key-id', 'x-qi-timestamp', 'x-qi-nonce', 'x-qi-signature'],
    exposedHeaders: [
      'x-request-id',
      'x-job-id',
      'x-cache',
      'retry-after',
      'x-ratelimit-limit-requests',
      'x-ratelimit-remaining-requests',
      'x-ratelimit-reset-requests',
      'x-ratelimit-limit-tokens',
      'x-ratelimit-remaining-tokens',
      'x-ratelimit-reset-tokens',
    ],
    maxAge: 600,
  });
}
