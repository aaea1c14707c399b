import { z } from 'zod';

/**
 * The only module that reads `process.env`. Every setting of both processes is declared here,
 * parsed once at boot, and every problem is reported at once rather than one per restart.
 */
const booleanish = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no', ''])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');

const tenantKeyPairs = z
  .string()
  .default('')
  .transform((raw, ctx) => {
    const pairs: { tenant: string; key: string }[] = [];
    for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const sep = item.indexOf(':');
      const tenant = sep > 0 ? item.slice(0, sep) : '';
      const key = sep > 0 ? item.slice(sep + 1) : '';
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(tenant) || key.length < 8) {
        ctx.addIssue({
          code: 'custom',
          message: `API_KEYS entries must be tenant:key with a tenant of [A-Za-z0-9_.-] and a key of 8+ characters (bad entry #${pairs.length + 1})`,
        });
        continue;
      }
      pairs.push({ tenant, key });
    }
    return pairs;
  });

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** BullMQ key prefix; tests give each run its own. */
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_{}-]+$/).default('qi'),
  API_KEYS: tenantKeyPairs,
  ADMIN_API_KEY: z.string().min(16, 'ADMIN_API_KEY must be at least 16 characters').optional(),
  MODELS_CONFIG: z.string().default('config/models.json'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How long POST /v1/embeddings waits for its job before answering 504. */
  SYNC_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  /**
   * While a model already has synchronous embedding jobs in flight, new requests wait up to this
   * long to share one job (0 = only requests of the same event-loop turn share).
   */
  COALESCE_WINDOW_MS: z.coerce.number().min(0).max(100).default(2),
  /** How long finished async jobs stay readable through GET /v1/jobs/:id. */
  JOB_RETENTION_SECONDS: z.coerce.number().int().positive().default(3600),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(2 * 1024 * 1024),
  /** Upper bound on inputs per embedding request (OpenAI's own limit is 2048). */
  MAX_EMBEDDING_INPUTS: z.coerce.number().int().positive().default(2048),
  /** Comma-separated model ids this worker serves; empty means every model in the registry. */
  WORKER_MODELS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
  /** Port of the worker's own /metrics and /healthz listener; 0 picks a free port, unset disables. */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** BullMQ lock of a running job; a killed worker's jobs count as stalled once it lapses. */
  WORKER_LOCK_DURATION_MS: z.coerce.number().int().min(1000).default(30_000),
  /** How often workers look for stalled jobs (those whose worker died). */
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(500).default(30_000),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(10_000),
  /** Where the all-in-one launcher keeps the data of the Redis it starts itself. */
  EMBEDDED_REDIS_DIR: z.string().default('.data/redis'),
  EMBEDDED_REDIS: z.enum(['auto', 'never']).default('auto'),
  PRETTY_LOGS: booleanish.default(false),
  /** `npm run models:pull`: the Hugging Face hub (or a mirror) and an optional access token. */
  HF_ENDPOINT: z.string().url().default('https://huggingface.co'),
  HF_TOKEN: z.string().optional(),
});

export type Env = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Secrets whose variable names come from configuration (an upstream model's `api_key_env`):
 * read here, so that this stays the only module that touches process.env.
 */
export function readNamedSecret(name: string, source: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = source[name];
  return v === undefined || v === '' ? undefined : v;
}

export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  return parsed.data;
}
