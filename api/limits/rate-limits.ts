import type { NextFunction, Request, Response } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { errors } from '../../shared/errors/app-error.js';
import type { Logger } from '../../shared/logger.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import type { Identity } from '../auth/identity.js';
import { checkCompletionBudget, estimateRequestTokens } from './token-estimate.js';

export interface LimitDefaults {
  keyRpm: number;
  keyTpm: number;
  tenantRpm: number;
  tenantTpm: number;
}

type Dimension = 'requests' | 'tokens';

interface Outcome {
  limit: number;
  remaining: number;
  resetMs: number;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Set once the request has been counted against its requests-per-minute limits. */
    requestCounted?: boolean;
  }
}

/**
 * Requests and tokens per minute, per key and per tenant, counted in Redis by rate-limiter-flexible
 * (fixed one-minute windows shared by every API replica). A key's own limits override the
 * defaults (RATE_LIMIT_RPM / RATE_LIMIT_TPM); a tenant's likewise (TENANT_RATE_LIMIT_*); 0 means
 * unlimited. Answers carry OpenAI's headers: `x-ratelimit-limit-requests`,
 * `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` and the same for `-tokens`, for
 * whichever of the key's and the tenant's limit is closer to running out. Past a limit: 429 with
 * `Retry-After`. Redis errors let the request through (the job path answers 503 on its own).
 */
export class RateLimits {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(private readonly deps: { redis: Redis; prefix: string; defaults: LimitDefaults; log: Logger }) {}

  private limiter(dim: Dimension, points: number): RateLimiterRedis {
    const id = `${dim}:${points}`;
    let l = this.limiters.get(id);
    if (!l) {
      // Limiters of one dimension share their counters (same keyPrefix); only the allowance differs.
      l = new RateLimiterRedis({ storeClient: this.deps.redis, keyPrefix: `${this.deps.prefix}:rl:${dim}`, points, duration: 60 });
      this.limiters.set(id, l);
    }
    return l;
  }

  private limitsOf(identity: Identity, dim: Dimension): { subject: string; points: number }[] {
    const d = this.deps.defaults;
    const key = dim === 'requests' ? (identity.limits.rpm ?? d.keyRpm) : (identity.limits.tpm ?? d.keyTpm);
    const tenant = dim === 'requests' ? (identity.tenantLimits.rpm ?? d.tenantRpm) : (identity.tenantLimits.tpm ?? d.tenantTpm);
    const out: { subject: string; points: number }[] = [];
    if (key > 0) out.push({ subject: `key:${identity.keyId}`, points: key });
    if (tenant > 0) out.push({ subject: `tenant:${identity.tenant}`, points: tenant });
    return out;
  }

  /**
   * What a key may grant to keys it creates, per minute (0 = unlimited): the tightest limit that
   * applies to it, its own (else the deployment's per-key default) or its tenant's (else the
   * deployment's per-tenant default).
   */
  allowance(identity: Identity): { rpm: number; tpm: number } {
    const tightest = (dim: Dimension) => Math.min(...this.limitsOf(identity, dim).map((l) => l.points), Infinity);
    const finite = (n: number) => (Number.isFinite(n) ? n : 0);
    return { rpm: finite(tightest('requests')), tpm: finite(tightest('tokens')) };
  }

  /** The per-key limits a key without its own gets (RATE_LIMIT_RPM / RATE_LIMIT_TPM; 0 = unlimited). */
  keyDefaults(): { rpm: number; tpm: number } {
    return { rpm: this.deps.defaults.keyRpm, tpm: this.deps.defaults.keyTpm };
  }

  /**
   * Counts `amount` against every limit of the dimension; sets the headers; throws a 429 past one.
   * A request larger than a whole minute's allowance is a 400 instead, before anything is counted:
   * waiting would never make room for it, and a 429 would have clients retry it forever.
   */
  async consume(identity: Identity, dim: Dimension, amount: number, res: Response): Promise<void> {
    if (amount <= 0) return;
    const limits = this.limitsOf(identity, dim);
    for (const { subject, points } of limits) {
      if (amount > points) {
        const who = subject.startsWith('tenant:') ? 'this tenant' : 'this key';
        throw errors.invalidRequest(
          `This request needs about ${amount} ${dim}, more than the ${points} ${dim} per minute ${who} may use, so it can never be served; send a smaller request (fewer or shorter inputs, a lower max_tokens).`,
          null,
          'request_too_large',
        );
      }
    }
    let tightest: Outcome | undefined;
    for (const { subject, points } of limits) {
      let r: RateLimiterRes;
      try {
        r = await this.limiter(dim, points).consume(subject, amount);
      } catch (rej) {
        if (!(rej instanceof RateLimiterRes)) {
          this.deps.log.debug({ err: (rej as Error).message }, 'rate limiter unavailable; request let through');
          return;
        }
        const outcome = { limit: points, remaining: 0, resetMs: rej.msBeforeNext };
        setHeaders(res, dim, outcome);
        const who = subject.startsWith('tenant:') ? 'this tenant' : 'this key';
        throw errors.tooManyRequests(
          `Rate limit reached for ${who}: ${points} ${dim} per minute. Retry in ${Math.ceil(rej.msBeforeNext / 1000)} s.`,
          rej.msBeforeNext / 1000,
          'rate_limit_exceeded',
        );
      }
      const outcome = { limit: points, remaining: r.remainingPoints, resetMs: r.msBeforeNext };
      if (!tightest || outcome.remaining < tightest.remaining) tightest = outcome;
    }
    if (tightest) setHeaders(res, dim, tightest);
  }

  /** Before the body is read: one request against the requests-per-minute limits. */
  requests() {
    return async (req: Request, res: Response, next: NextFunction) => {
      // A signed request is counted once its signature checked out, so forgeries cannot drain a key's allowance.
      if (!req.identity || req.requestCounted) return next();
      req.requestCounted = true;
      await this.consume(req.identity, 'requests', 1, res);
      next();
    };
  }

  /**
   * After the body is read: its estimated tokens against the tokens-per-minute limits. A chat
   * request asking for more completion tokens than its model ever gives is refused first (400),
   * whatever the caller's limits, rather than counted at its impossible size.
   */
  tokens(registry: () => ModelRegistry) {
    return async (req: Request, res: Response, next: NextFunction) => {
      if (!req.identity) return next();
      checkCompletionBudget(req.body, registry());
      const tokens = estimateRequestTokens(req.body, registry());
      await this.consume(req.identity, 'tokens', tokens, res);
      next();
    };
  }
}

function setHeaders(res: Response, dim: Dimension, o: Outcome): void {
  if (res.headersSent) return;
  res.setHeader(`x-ratelimit-limit-${dim}`, String(o.limit));
  res.setHeader(`x-ratelimit-remaining-${dim}`, String(Math.max(0, o.remaining)));
  res.setHeader(`x-ratelimit-reset-${dim}`, `${Math.max(0, Math.ceil(o.resetMs / 1000))}s`);
}
