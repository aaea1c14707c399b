import type { NextFunction, Request, Response } from 'express';
import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../../shared/logger.js';
import { withTimeout } from '../../shared/with-timeout.js';

/** BullMQ states reported by `queue_jobs{queue,state}`; `waiting` is the list KEDA scales workers on. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** Requests that matched no route share one label, so scanners cannot blow up the series count. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The API process's Prometheus registry, served at GET /metrics behind the admin key.
 *
 * - `http_requests_total` / `http_request_duration_seconds{method,route,status}`: `route` is the
 *   Express route pattern (`/v1/jobs/:id`), never the raw URL, so ids do not become series.
 * - `queue_jobs{queue,state}`: BullMQ job counts, read from Redis at scrape time (every API replica
 *   reports the same figures: aggregate them with `max by (queue, state)`).
 * - Node's default process metrics, event-loop delay included (`nodejs_eventloop_lag_*_seconds`).
 */
export class ApiMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'],
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from request to the end of the response, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  /** The response cache (api/cache): embeddings count per text, chat per request. */
  readonly cacheLookups = new Counter({
    name: 'cache_lookups_total',
    help: 'Response cache lookups by kind (embedding: per text, chat: per request) and result (hit, miss)',
    labelNames: ['kind', 'result'],
    registers: [this.registry],
  });

  cacheLookup(kind: 'embedding' | 'chat', result: 'hit' | 'miss', n = 1): void {
    this.cacheLookups.inc({ kind, result }, n);
  }

  constructor(private readonly deps: { queues: ReadonlyMap<string, Queue>; log: Logger; queueTimeoutMs?: number }) {
    collectDefaultMetrics({ register: this.registry });
    const queues = deps.queues;
    const timeoutMs = deps.queueTimeoutMs ?? 2000;
    const log = deps.log;
    new Gauge({
      name: 'queue_jobs',
      help: 'BullMQ jobs per queue and state, read from Redis at scrape time',
      labelNames: ['queue', 'state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        // A queue that cannot be read is left out of this scrape rather than failing all of /metrics.
        await Promise.all(
          [...queues.values()].map(async (queue) => {
            try {
              const counts = await withTimeout(queue.getJobCounts(...QUEUE_STATES), timeoutMs);
              for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
            } catch (err) {
              log.warn({ err, queue: queue.name }, 'queue_jobs: could not read job counts');
            }
          }),
        );
      },
    });
  }

  /** Express middleware, mounted first: times every request and labels it when the response ends. */
  httpMiddleware() {
    return (req: Request, res: Response, next: NextFunction) => {
      const end = this.httpDuration.startTimer();
      res.once('finish', () => {
        const labels = { method: req.method, route: routeLabel(req), status: String(res.statusCode) };
        end(labels);
        this.httpRequests.inc(labels);
      });
      next();
    };
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * The route pattern a request matched: Express sets `req.route` on a match and keeps it for the
 * rest of the request. Regular-expression routes are shown readably (`/v1/models/*`).
 */
export function routeLabel(req: Request): string {
  const route = req.route as { path?: unknown } | undefined;
  if (!route) return req.baseUrl ? `${req.baseUrl}/*` : UNMATCHED_ROUTE;
  const pattern = route.path instanceof RegExp ? readableRegExp(route.path) : String(route.path);
  return `${req.baseUrl}${pattern === '/' && req.baseUrl ? '' : pattern}` || '/';
}

function readableRegExp(re: RegExp): string {
  return re.source
    .replace(/^\^/, '')
    .replace(/\$$/, '')
    .replace(/\(\?<(\w+)>[^)]*\)/g, ':$1')
    .replace(/\([^)]*\)/g, '*')
    .replace(/\\\//g, '/');
}
