import { z } from 'zod';
import { ID_RULE, isValidId } from '../api/ids.js';

/**
 * The only module that reads `process.env`. Every setting of both processes is declared here,
 * parsed once at boot, and every problem is reported at once rather than one per restart.
 */
const booleanish = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no', ''])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');

/** `VAR=` (empty) means unset, as in .env files. */
const unsetWhenEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema);

const tenantKeyPairs = z
  .string()
  .default('')
  .transform((raw, ctx) => {
    const pairs: { tenant: string; key: string }[] = [];
    for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const sep = item.indexOf(':');
      const tenant = sep > 0 ? item.slice(0, sep) : '';
      const key = sep > 0 ? item.slice(sep + 1) : '';
      if (!isValidId(tenant) || key.length < 8) {
        ctx.addIssue({
          code: 'custom',
          message: `API_KEYS entries must be tenant:key with a tenant id of ${ID_RULE} and a key of 8+ characters (bad entry #${pairs.length + 1})`,
        });
        continue;
      }
      pairs.push({ tenant, key });
    }
    return pairs;
  });

const clusterNodes = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const items = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) return undefined;
    const nodes: { host: string; port: number }[] = [];
    let username: string | undefined;
    let password: string | undefined;
    let tls = false;
    for (const item of items) {
      let url: URL;
      try {
        url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(item) ? item : `redis://${item}`);
      } catch {
        ctx.addIssue({ code: 'custom', message: `REDIS_CLUSTER_NODES entries must be host:port (bad entry '${item}')` });
        continue;
      }
      const port = Number(url.port || 6379);
      if (!['redis:', 'rediss:'].includes(url.protocol) || !url.hostname || !Number.isInteger(port)) {
        ctx.addIssue({ code: 'custom', message: `REDIS_CLUSTER_NODES entries must be host:port (bad entry '${item}')` });
        continue;
      }
      nodes.push({ host: url.hostname.replace(/^\[|\]$/g, ''), port });
      if (url.username) username = decodeURIComponent(url.username);
      if (url.password) password = decodeURIComponent(url.password);
      if (url.protocol === 'rediss:') tls = true;
    }
    return { nodes, username, password, tls };
  });

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /**
   * Redis Cluster seed nodes, comma-separated `host:port` (or `redis://user:pass@host:port`,
   * `rediss://` for TLS; credentials and TLS apply to every node). When set, REDIS_URL is not
   * used and QUEUE_PREFIX must carry a hash tag such as `{qi}`.
   */
  REDIS_CLUSTER_NODES: clusterNodes,
  /** BullMQ key prefix; tests give each run its own. */
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_{}-]+$/).default('qi'),
  API_KEYS: tenantKeyPairs,
  ADMIN_API_KEY: z.string().min(16, 'ADMIN_API_KEY must be at least 16 characters').optional(),
  MODELS_CONFIG: z.string().default('config/models.json'),
  /** Per-tenant chatbots (intents, tools, knowledge base); unset: /v1/chatbot answers 404 for every tenant. */
  CHATBOT_CONFIG: z.string().optional(),
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
  /**
   * How long stored Responses (POST /v1/responses with `store`, the default) stay readable and
   * chainable with `previous_response_id`: OpenAI keeps them 30 days.
   */
  RESPONSES_RETENTION_SECONDS: z.coerce.number().int().positive().default(30 * 86_400),
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
  /**
   * Streaming jobs (chat, chatbot) and dead workers (docs/RELIABILITY.md, "Dead workers and
   * streams"). Their queues use a shorter BullMQ lock and stalled check than the others, so a job
   * whose worker died is retried (no token yet) or failed (text already streamed) within seconds.
   */
  STREAM_LOCK_DURATION_MS: z.coerce.number().int().min(1000).default(5000),
  STREAM_STALLED_INTERVAL_MS: z.coerce.number().int().min(500).default(2000),
  /** A worker refreshes each running streaming job's heartbeat this often... */
  STREAM_HEARTBEAT_MS: z.coerce.number().int().min(100).default(1000),
  /** ...and the API takes a heartbeat missing this long for a dead worker (`worker_lost`). */
  STREAM_HEARTBEAT_TTL_MS: z.coerce.number().int().min(500).default(4000),
  /** Server-sent-event streams get a `: keep-alive` comment after this long without a write. */
  SSE_KEEPALIVE_MS: z.coerce.number().int().min(50).default(15_000),
  /** Where the all-in-one launcher keeps the data of the Redis it starts itself. */
  EMBEDDED_REDIS_DIR: z.string().default('.data/redis'),
  EMBEDDED_REDIS: z.enum(['auto', 'never']).default('auto'),
  /**
   * Port of the demo tool service the all-in-one launcher runs for the example chatbot when
   * CHATBOT_CONFIG is not set (loopback only; 0 picks a free port).
   */
  DEMO_TOOLS_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  PRETTY_LOGS: booleanish.default(false),
  /**
   * Security (api/auth, api/limits, api/cache). JWT_SECRET signs the tokens of POST /v1/auth/token
   * (HS256) and verifies HS256 bearer tokens; JWT_JWKS_URL verifies RS256/ES256 tokens of an
   * external identity provider. Without either, JWTs are refused.
   */
  JWT_SECRET: unsetWhenEmpty(z.string().min(32, 'JWT_SECRET must be at least 32 characters').optional()),
  JWT_JWKS_URL: unsetWhenEmpty(z.string().url().optional()),
  JWT_ISSUER: z.string().min(1).default('queue-inference'),
  JWT_AUDIENCE: z.string().min(1).default('queue-inference'),
  /** Lifetime of tokens minted by POST /v1/auth/token. */
  JWT_TTL_SECONDS: z.coerce.number().int().min(30).max(86_400).default(900),
  /** Signed requests: how far X-Timestamp may be from the server's clock (nonces are kept twice as long). */
  SIGNATURE_WINDOW_SECONDS: z.coerce.number().int().min(5).max(3600).default(300),
  /** Per-key defaults (a key may carry its own); 0 turns a limit off. */
  RATE_LIMIT_RPM: z.coerce.number().int().min(0).default(600),
  RATE_LIMIT_TPM: z.coerce.number().int().min(0).default(1_000_000),
  /** Per-tenant defaults across all its keys (a tenant may carry its own); 0 = no tenant-wide limit. */
  TENANT_RATE_LIMIT_RPM: z.coerce.number().int().min(0).default(0),
  TENANT_RATE_LIMIT_TPM: z.coerce.number().int().min(0).default(0),
  /** Queued + running jobs one tenant may have at once (429 with a wait estimate past it). */
  TENANT_MAX_JOBS: z.coerce.number().int().min(1).default(5000),
  /** Fair scheduling: a tenant's jobs lose one priority step per this many of its jobs in flight. */
  FAIRNESS_STEP: z.coerce.number().int().min(1).default(50),
  /** Exact-match response cache for embeddings and deterministic chat; 0 turns it off. */
  CACHE_TTL_SECONDS: z.coerce.number().int().min(0).default(3600),
  /** HTTPS: both files (PEM) make the API serve TLS only. */
  TLS_CERT_FILE: unsetWhenEmpty(z.string().min(1).optional()),
  TLS_KEY_FILE: unsetWhenEmpty(z.string().min(1).optional()),
  /** Comma-separated origins allowed by CORS (REST and Socket.IO); empty = CORS off. */
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
  /** `npm run models:pull`: the Hugging Face hub (or a mirror) and an optional access token. */
  HF_ENDPOINT: z.string().url().default('https://huggingface.co'),
  HF_TOKEN: z.string().optional(),
  /**
   * Documents and vector search (api/documents, workers/documents, workers/index). DOCUMENTS_DIR
   * holds uploads and stage outputs and must be shared by the API and the workers (one machine, or
   * a shared volume); INDEX_DIR holds each worker's HNSW snapshots (its own disk is fine).
   */
  DOCUMENTS_DIR: z.string().default('.data/documents'),
  INDEX_DIR: z.string().default('.data/index'),
  /**
   * Files and batches (api/files, api/batches, workers/batches). Files live in DOCUMENTS_DIR beside
   * documents (shared/storage/blob-store.ts). FILES_MAX_BYTES and BATCH_MAX_LINES are OpenAI's
   * limits, checked while the upload streams.
   */
  FILES_MAX_BYTES: z.coerce.number().int().positive().default(200 * 1024 * 1024),
  BATCH_MAX_LINES: z.coerce.number().int().positive().default(50_000),
  /** The one completion window a batch may ask for ("24h"), in seconds: tests make it short to see batches expire. */
  BATCH_COMPLETION_WINDOW_S: z.coerce.number().int().positive().default(86_400),
  /** How often a batch's driver job looks at its lines (tops up, sees cancel and expiry, finalizes). */
  BATCH_POLL_MS: z.coerce.number().int().min(20).default(1000),
  /** How often each worker removes files past their `expires_after` (record and bytes). */
  FILES_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).default(60_000),
  /** Lines of one batch queued or running at once: the rest wait in Redis, so cancel is quick and the tenant's job cap (TENANT_MAX_JOBS) keeps room for interactive work. */
  BATCH_LINES_IN_FLIGHT: z.coerce.number().int().min(1).default(1024),
  /** Largest upload; bigger ones are cut off while streaming with 413. */
  DOCUMENTS_MAX_BYTES: z.coerce.number().int().positive().default(50 * 1024 * 1024),
  /** PDFs with more pages are refused (the job fails with the reason). */
  DOCUMENTS_MAX_PAGES: z.coerce.number().int().positive().default(500),
  /** The embedding model documents and queries are embedded with (a worker serving it runs the document stages). */
  DOCUMENTS_EMBEDDING_MODEL: z.string().default('use-lite'),
  /** Chunk overlap in tokens (the window is the embedding model's own, 128 for use-lite). */
  CHUNK_OVERLAP_TOKENS: z.coerce.number().int().min(0).default(24),
  /** OCR of images and of PDF pages without a text layer (PaddleOCR via onnxruntime). */
  DOCUMENTS_OCR: booleanish.default(true),
  /**
   * Poison inputs (docs/RELIABILITY.md, "Poison inputs and parsing fairness"). Sizes are read from
   * headers before anything is decoded: a PNG/JPEG whose width × height exceeds
   * DOCUMENTS_MAX_IMAGE_PIXELS is refused (`image_too_large`: 422 at upload when its header is in
   * the first 8 KiB, else a failed job), as is a PDF page wider or taller than
   * DOCUMENTS_MAX_PAGE_POINTS (`page_too_large`; 14400 pt = 200 in, the PDF format's own limit).
   */
  DOCUMENTS_MAX_IMAGE_PIXELS: z.coerce.number().int().positive().default(50_000_000),
  DOCUMENTS_MAX_PAGE_POINTS: z.coerce.number().positive().default(14_400),
  /** Pixels of one OCR input: PDF pages are rendered at a scale that fits, larger images are downscaled first. */
  DOCUMENTS_OCR_MAX_PIXELS: z.coerce.number().int().min(10_000).default(4_000_000),
  /** OCR time one document may use (rendering and reading its scanned pages); past it the document fails with `ocr_time_limit`. */
  DOCUMENTS_OCR_BUDGET_SECONDS: z.coerce.number().positive().default(600),
  /** Parse processes per worker (each holds its own OCR models) and parse jobs one worker runs at once. */
  DOCUMENTS_PARSE_PROCESSES: z.coerce.number().int().min(1).max(16).default(1),
  DOCUMENTS_PARSE_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /** Parse jobs of one tenant a worker runs at once; the tenant's others wait, so the remaining slots go to other tenants. */
  DOCUMENTS_PARSE_TENANT_SLOTS: z.coerce.number().int().min(1).default(2),
  /** V8 heap of a parse process (`--max-old-space-size`); it is replaced when idle once its resident memory passes DOCUMENTS_PARSE_RECYCLE_MB. */
  DOCUMENTS_PARSE_MAX_HEAP_MB: z.coerce.number().int().min(64).default(1024),
  DOCUMENTS_PARSE_RECYCLE_MB: z.coerce.number().int().min(64).default(1536),
  /** One parse step (opening a PDF, one page, one image) running longer than this kills its parse process (counted as a crash). */
  DOCUMENTS_PARSE_STEP_TIMEOUT_SECONDS: z.coerce.number().positive().default(120),
  /**
   * A document that crashes (or hangs) its parse process this many times fails with `poison_input`
   * instead of being retried (at most 3: the parse stage has 4 attempts, and the verdict must come first).
   */
  DOCUMENTS_POISON_CRASHES: z.coerce.number().int().min(1).max(3).default(2),
  /**
   * Webhooks (docs/WEBHOOKS.md). Private, loopback, link-local, unique-local, CGNAT and metadata
   * addresses are refused as destinations unless WEBHOOK_ALLOW_PRIVATE is set (tests, closed networks).
   */
  WEBHOOK_ALLOW_PRIVATE: booleanish.default(false),
  /** One delivery attempt (connect, send, answer) may take this long before it counts as failed. */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** Failed attempts in a row that open an endpoint's circuit; its deliveries then wait WEBHOOK_CIRCUIT_OPEN_SECONDS. */
  WEBHOOK_CIRCUIT_FAILURES: z.coerce.number().int().min(1).default(10),
  WEBHOOK_CIRCUIT_OPEN_SECONDS: z.coerce.number().positive().default(300),
  /** Endpoints one tenant may register. */
  WEBHOOK_MAX_ENDPOINTS: z.coerce.number().int().min(1).default(20),
  /** Multiplies the retry schedules of the job catalog (`retrySchedule`): tests shrink a day of webhook retries to seconds. */
  RETRY_SCHEDULE_SCALE: z.coerce.number().positive().max(1).default(1),
  /** HNSW parameters of every collection index (hnswlib, cosine). */
  HNSW_M: z.coerce.number().int().min(2).max(128).default(16),
  HNSW_EF_CONSTRUCTION: z.coerce.number().int().min(8).max(2000).default(200),
  HNSW_EF_SEARCH: z.coerce.number().int().min(1).max(5000).default(64),
  /** A collection's index is snapshotted to INDEX_DIR after this many new chunks (and at most every INDEX_SNAPSHOT_SECONDS). */
  INDEX_SNAPSHOT_EVERY: z.coerce.number().int().min(1).default(2000),
  INDEX_SNAPSHOT_SECONDS: z.coerce.number().int().min(0).default(30),
});

export type Env = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Settings of the command-line client (bin/qi.mjs): where the service is and which key to use. */
export const clientEnvSchema = z.object({
  QI_URL: z.string().url().default('http://127.0.0.1:3000'),
  QI_API_KEY: z.string().min(1, 'set QI_API_KEY to an API key of the service').optional(),
});

export function loadClientEnv(source: NodeJS.ProcessEnv = process.env): z.infer<typeof clientEnvSchema> {
  const parsed = clientEnvSchema.safeParse(source);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  return parsed.data;
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
  if (Boolean(parsed.data.TLS_CERT_FILE) !== Boolean(parsed.data.TLS_KEY_FILE)) {
    throw new ConfigError(['TLS_CERT_FILE and TLS_KEY_FILE: set both (HTTPS) or neither (HTTP)']);
  }
  if (parsed.data.STREAM_HEARTBEAT_TTL_MS < 2 * parsed.data.STREAM_HEARTBEAT_MS) {
    throw new ConfigError(['STREAM_HEARTBEAT_TTL_MS: must be at least twice STREAM_HEARTBEAT_MS, or one late heartbeat reads as a dead worker']);
  }
  // BullMQ's scripts touch several keys of a queue at once: on a cluster they must share a slot.
  if (parsed.data.REDIS_CLUSTER_NODES && !/\{[^{}]+\}/.test(parsed.data.QUEUE_PREFIX)) {
    throw new ConfigError([`QUEUE_PREFIX: on Redis Cluster it must contain a hash tag, e.g. {${parsed.data.QUEUE_PREFIX.replace(/[{}]/g, '')}}`]);
  }
  return parsed.data;
}
