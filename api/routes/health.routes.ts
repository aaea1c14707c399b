import type { Redis } from 'ioredis';
import { WORKER_HEARTBEAT_TTL_MS, workersKey } from '../../shared/jobs/job-views.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import { withTimeout } from '../../shared/with-timeout.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

interface WorkerBeat {
  id: string;
  at: number;
  models: { id: string; provider: string }[];
}

/**
 * /healthz: the process is up. /readyz: this instance can serve: Redis answers, and every model
 * in the registry has at least one live worker that has loaded it (workers heartbeat only after
 * their models are loaded).
 */
export function healthRoutes(deps: { redis: Redis; registry: ModelRegistry; prefix: string; isShuttingDown: () => boolean }): TableRoutes {
  const router = tableRoutes();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const checks: Record<string, unknown> = {};
    let ready = !deps.isShuttingDown();
    if (!ready) checks.shutdown = 'in progress';
    try {
      await withTimeout(deps.redis.ping(), 1000);
      checks.redis = 'ok';
      const raw = await withTimeout(deps.redis.hgetall(workersKey(deps.prefix)), 1000);
      const now = Date.now();
      const live: WorkerBeat[] = [];
      const stale: string[] = [];
      for (const [id, json] of Object.entries(raw)) {
        const beat = JSON.parse(json) as WorkerBeat;
        if (now - beat.at <= WORKER_HEARTBEAT_TTL_MS) live.push(beat);
        else stale.push(id);
      }
      // A worker killed without shutting down leaves its entry behind; drop it here.
      if (stale.length) void deps.redis.hdel(workersKey(deps.prefix), ...stale).catch(() => {});
      const models: Record<string, number> = {};
      for (const m of deps.registry.models) {
        models[m.id] = live.filter((w) => w.models.some((x) => x.id === m.id)).length;
        if (models[m.id] === 0) ready = false;
      }
      checks.workers = live.length;
      checks.models = models;
    } catch (err) {
      ready = false;
      checks.redis = `unreachable: ${(err as Error).message}`;
    }
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });
  return router;
}
