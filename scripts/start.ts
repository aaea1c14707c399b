/**
 * All-in-one launcher for a single machine: `npm start`.
 * Builds missing models, starts a local redis-server when nothing answers at REDIS_URL (data in
 * EMBEDDED_REDIS_DIR, append-only), then runs one API process and one worker process with the
 * same environment, and stops all of them together. Without a CHATBOT_CONFIG (outside production)
 * it serves the example chatbot for the API_KEYS tenants (or the generated development tenant),
 * with its tools answered by a demo tool service on DEMO_TOOLS_PORT. Real deployments run
 * `npm run start:api` and `npm run start:worker` separately instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEnv } from '../shared/config/env.js';
import { loadModelRegistry } from '../shared/models/model-registry.js';
import { writeDemoChatbotConfig } from './lib/demo-chatbot.js';
import { startDemoToolService, type DemoToolService } from './lib/demo-tool-service.js';
import { REDIS_INSTALL_HINT, findRedisServer, redisAnswers, startRedisServer, type RedisServerHandle } from './lib/redis-server.js';
import { ensureModels } from './models/build-models.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (msg: string) => console.log(`[start] ${msg}`);

async function main(): Promise<void> {
  const env = loadEnv();
  const registry = loadModelRegistry(env.MODELS_CONFIG);
  await ensureModels(registry.models, { log: say });

  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  let tenants = env.API_KEYS.map((k) => k.tenant);
  if (env.API_KEYS.length === 0 && env.NODE_ENV !== 'production') {
    const key = `dev-${randomBytes(18).toString('base64url')}`;
    childEnv.API_KEYS = `dev:${key}`;
    tenants = ['dev'];
    say(`API_KEYS is not set; generated a development key for tenant "dev": ${key}`);
  }

  let demoTools: DemoToolService | undefined;
  if (!env.CHATBOT_CONFIG && env.NODE_ENV !== 'production' && tenants.length > 0) {
    demoTools = await startDemoToolService({ port: env.DEMO_TOOLS_PORT });
    childEnv.CHATBOT_CONFIG = writeDemoChatbotConfig({
      example: path.join(root, 'config/chatbot.example.json'),
      tenants: [...new Set(tenants)],
      toolsUrl: demoTools.url,
      file: path.resolve(root, '.data/chatbot.demo.json'),
    });
    say(
      `CHATBOT_CONFIG is not set: serving the example chatbot (config/chatbot.example.json) for tenant(s) ${[...new Set(tenants)].join(', ')}; ` +
        `its weather and order tools are answered by the DEMO tool service at ${demoTools.url} (made-up data), ` +
        `and its knowledge answers come from the collection "handbook" (upload documents into it)`,
    );
  }

  let redis: RedisServerHandle | undefined;
  const url = new URL(env.REDIS_URL);
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 6379);
  // On Redis Cluster (REDIS_CLUSTER_NODES) there is nothing to start here: REDIS_URL is not used.
  if (!env.REDIS_CLUSTER_NODES && !(await redisAnswers(host, port))) {
    const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host);
    if (env.EMBEDDED_REDIS === 'never' || !local) {
      throw new Error(`Nothing answers at REDIS_URL=${env.REDIS_URL}. Start Redis there, or unset REDIS_URL to use an embedded one.`);
    }
    if (!findRedisServer()) throw new Error(REDIS_INSTALL_HINT);
    redis = await startRedisServer({ port, dir: path.resolve(root, env.EMBEDDED_REDIS_DIR), appendOnly: true });
    say(`no Redis at ${env.REDIS_URL}: started an embedded redis-server on port ${port} (data in ${env.EMBEDDED_REDIS_DIR})`);
  }

  const children: ChildProcess[] = [];
  const run = (entry: string) => {
    // Detached (a process group of their own): Ctrl-C reaches the launcher only, which passes one
    // SIGTERM on. Otherwise the terminal's SIGINT and the launcher's SIGTERM would be two signals,
    // and the second one makes a process skip its graceful shutdown.
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, entry)], { stdio: 'inherit', env: childEnv, cwd: root, detached: true });
    children.push(child);
    child.once('exit', (code, signal) => {
      if (!stopping) {
        say(`${entry} exited (${signal ?? code}); stopping everything`);
        void stop(typeof code === 'number' && code !== 0 ? code : 1);
      }
    });
  };

  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
          }),
      ),
    );
    await demoTools?.close();
    await redis?.stop();
    process.exit(code);
  };
  // A second signal is passed on as a second SIGTERM: the processes then exit at once.
  const onSignal = (code: number) => (stopping ? children.forEach((c) => c.kill('SIGTERM')) : void stop(code));
  process.on('SIGINT', () => onSignal(130));
  process.on('SIGTERM', () => onSignal(143));
  process.on('exit', () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')));

  run('workers/main.ts');
  run('api/main.ts');
}

main().catch((err) => {
  console.error(`[start] ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
