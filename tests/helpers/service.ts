import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../scripts/lib/redis-server.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const USE_LITE_DIR = path.join(ROOT, 'models', 'use-lite');

export const KEYS = {
  acme: 'acme-key-0123456789abcdef',
  globex: 'globex-key-0123456789abcdef',
  admin: 'admin-key-0123456789abcdef',
};

export interface ProcessHandle {
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ServiceHandle {
  baseUrl: string;
  port: number;
  prefix: string;
  redisUrl: string;
  env: NodeJS.ProcessEnv;
  api: ProcessHandle;
  workers: (ProcessHandle & { metricsPort: number })[];
  startWorker(extraEnv?: NodeJS.ProcessEnv): Promise<ProcessHandle & { metricsPort: number }>;
  /** Another API replica on the same Redis and prefix, on its own port. */
  startApi(): Promise<ProcessHandle & { baseUrl: string }>;
  stop(): Promise<void>;
}

/** Writes a models config into a temp folder and returns its path. */
export function writeModelsConfig(models: unknown[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-models-'));
  const file = path.join(dir, 'models.json');
  writeFileSync(file, JSON.stringify({ models }, null, 2));
  return file;
}

export const useLiteModel = (overrides: Record<string, unknown> = {}) => ({
  id: 'use-lite',
  task: 'embedding',
  format: 'use-lite',
  path: USE_LITE_DIR,
  dimensions: 512,
  threads: 2,
  concurrency: 64,
  max_queue: 5000,
  ...overrides,
});

export function spawnEntry(entry: string, env: NodeJS.ProcessEnv): ProcessHandle {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  // Only a process that outlived its own grace period (after which it exits by itself) is killed:
  // a drain that a busy machine makes long must still end with the process's own exit code.
  const killAfterMs = Number(env.SHUTDOWN_GRACE_MS ?? 10_000) + 10_000;
  return {
    child,
    output: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        const t = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        child.once('exit', (code) => {
          clearTimeout(t);
          resolve(code);
        });
        child.kill(signal);
      }),
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, onTimeout?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${onTimeout ? `\n${onTimeout()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts the real API process and (by default) one real worker process against the given Redis,
 * with a queue prefix of their own, and waits until the API answers (and /readyz says ready
 * when a worker was started).
 */
export async function startService(opts: {
  redisUrl: string;
  modelsConfig: string;
  env?: NodeJS.ProcessEnv;
  workers?: number;
  waitReady?: boolean;
}): Promise<ServiceHandle> {
  const port = await freePort();
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    REDIS_URL: opts.redisUrl,
    QUEUE_PREFIX: prefix,
    API_KEYS: `acme:${KEYS.acme},globex:${KEYS.globex}`,
    ADMIN_API_KEY: KEYS.admin,
    MODELS_CONFIG: opts.modelsConfig,
    LOG_LEVEL: 'info',
    SHUTDOWN_GRACE_MS: '8000',
    // Functional suites send bursts and repeat texts: no rate limits and no response cache unless a
    // suite asks for them (security, rate-limits, cache and fairness tests set their own).
    RATE_LIMIT_RPM: '0',
    RATE_LIMIT_TPM: '0',
    CACHE_TTL_SECONDS: '0',
    ...opts.env,
  };
  const api = spawnEntry('api/main.ts', env);
  const workers: ServiceHandle['workers'] = [];
  const startWorker = async (extraEnv: NodeJS.ProcessEnv = {}) => {
    const metricsPort = await freePort();
    const w = Object.assign(spawnEntry('workers/main.ts', { ...env, WORKER_METRICS_PORT: String(metricsPort), ...extraEnv }), { metricsPort });
    workers.push(w);
    // The worker serves /healthz only once its models are loaded and its queues are consumed.
    await waitFor(
      'worker ready',
      async () => {
        if (w.child.exitCode !== null) throw new Error('worker exited');
        return (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).ok ? true : undefined;
      },
      // Loading the models takes far longer when every core is busy (the suite runs beside other work).
      180_000,
      () => w.output().slice(-2000),
    );
    return w;
  };
  const extraApis: ProcessHandle[] = [];
  const startApi = async () => {
    const apiPort = await freePort();
    const replica = Object.assign(spawnEntry('api/main.ts', { ...env, PORT: String(apiPort) }), { baseUrl: `http://127.0.0.1:${apiPort}` });
    extraApis.push(replica);
    await waitFor('api replica /healthz', async () => ((await fetch(`${replica.baseUrl}/healthz`)).ok ? true : undefined), 60_000, () => replica.output().slice(-2000));
    return replica;
  };
  const baseUrl = `http://127.0.0.1:${port}`;
  const handle: ServiceHandle = {
    baseUrl,
    port,
    prefix,
    redisUrl: opts.redisUrl,
    env,
    api,
    workers,
    startWorker,
    startApi,
    async stop() {
      await Promise.all([api.stop(), ...extraApis.map((a) => a.stop()), ...workers.map((w) => w.stop())]);
    },
  };
  try {
    await waitFor('api /healthz', async () => ((await fetch(`${baseUrl}/healthz`)).ok ? true : undefined), 60_000, () => api.output().slice(-2000));
    for (let i = 0; i < (opts.workers ?? 1); i++) await startWorker();
    if (opts.waitReady ?? (opts.workers ?? 1) > 0) {
      await waitFor('api /readyz', async () => ((await fetch(`${baseUrl}/readyz`)).ok ? true : undefined), 30_000, () => api.output().slice(-2000));
    }
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

export function authHeaders(key: string = KEYS.acme): Record<string, string> {
  return { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
}

export async function postJson(baseUrl: string, route: string, body: unknown, headers: Record<string, string> = authHeaders()) {
  const res = await fetch(`${baseUrl}${route}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}
