import { errors } from '../../shared/errors/app-error.js';
import type { Limits, Scope } from './admin-schemas.js';
import type { Identity } from './identity.js';

/** Per-minute limits where 0 means unlimited (the rate limiter's convention). */
export interface PerMinute {
  rpm: number;
  tpm: number;
}

const DIMENSIONS = ['rpm', 'tpm'] as const;
const unlimited = (n: number) => n <= 0;
/** a ≤ b, where 0 is infinity. */
const atMost = (a: number, b: number) => unlimited(b) || (!unlimited(a) && a <= b);

/**
 * What a caller may put into a key it creates or rotates: never more than it has itself. The
 * admin key (ADMIN_API_KEY) may grant anything. Every other caller (a tenant key or JWT with the
 * `admin` scope) may grant only scopes it holds, and limits at most its own allowance (see
 * RateLimits.allowance: its tightest effective limit); 0 ("unlimited") is the admin key's alone.
 * Without it, a bootstrap key (every scope) could mint itself an unlimited key and escape
 * RATE_LIMIT_RPM, and a reduced-scope key could mint a full one.
 *
 * Returns the limits to store: a key created without limits by a limited caller gets the
 * caller's allowance where the deployment default would be larger.
 */
export function grantableLimits(
  creator: Identity,
  allowance: PerMinute,
  defaults: PerMinute,
  wanted: { scopes: readonly Scope[]; limits?: Limits },
): Limits {
  const limits: Limits = { ...wanted.limits };
  if (creator.admin) return limits;
  const extra = wanted.scopes.filter((s) => !creator.scopes.includes(s));
  if (extra.length) {
    throw errors.forbidden(
      `A key can only grant scopes it has itself; this one does not have ${extra.map((s) => `'${s}'`).join(', ')} (it has ${creator.scopes.join(', ') || 'none'}).`,
      'scope_not_grantable',
    );
  }
  for (const dim of DIMENSIONS) {
    const asked = limits[dim];
    if (asked === 0) {
      throw errors.forbidden(`'limits.${dim}': 0 (unlimited) can only be set with the admin key; give a number${unlimited(allowance[dim]) ? '' : ` up to ${allowance[dim]}`}, or leave it out.`, 'limit_not_grantable');
    }
    if (asked !== undefined && !atMost(asked, allowance[dim])) {
      throw errors.forbidden(`'limits.${dim}' is ${asked}, more than this key's own limit of ${allowance[dim]} per minute; a key cannot grant more than it has.`, 'limit_not_grantable');
    }
    if (asked === undefined && !atMost(defaults[dim], allowance[dim])) limits[dim] = allowance[dim];
  }
  return limits;
}

/**
 * Rotating hands the caller a new secret with the old key's scopes and limits unchanged, so the
 * caller must be allowed to grant exactly those (403 otherwise).
 */
export function checkRotation(creator: Identity, allowance: PerMinute, defaults: PerMinute, key: { id: string; scopes: readonly Scope[]; limits: Limits }): void {
  if (creator.admin) return;
  const extra = key.scopes.filter((s) => !creator.scopes.includes(s));
  const over = DIMENSIONS.filter((dim) => !atMost(key.limits[dim] ?? defaults[dim], allowance[dim]));
  if (extra.length || over.length) {
    const why = [
      ...(extra.length ? [`it has scope(s) ${extra.map((s) => `'${s}'`).join(', ')} that this key lacks`] : []),
      ...over.map((dim) => `its ${dim} (${describe(key.limits[dim] ?? defaults[dim])}) is above this key's own (${describe(allowance[dim])})`),
    ];
    throw errors.forbidden(`This key cannot rotate key '${key.id}': ${why.join('; ')}. Rotating would hand over more than this key has.`, 'rotation_not_grantable');
  }
}

function describe(n: number): string {
  return unlimited(n) ? 'unlimited' : String(n);
}
