import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchStats } from '../embeddings/embedding-batcher.js';

/**
 * A worker's own Prometheus registry, served on its own port: workers have no HTTP API to hang
 * /metrics on, and scraping each worker directly keeps per-process figures (event-loop delay,
 * batch sizes) attributable to the process that produced them.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  readonly batchSize = new Histogram({
    name: 'embedding_batch_size',
    help: 'Texts per ONNX run',
    labelNames: ['model'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  });
  readonly batchTokens = new Histogram({
    name: 'embedding_batch_padded_tokens',
    help: 'Padded tokens (rows x longest row) per ONNX run',
    labelNames: ['model'],
    buckets: [16, 64, 256, 1024, 2048, 4096, 8192],
    registers: [this.registry],
  });
  readonly batchQueueSeconds = new Histogram({
    name: 'embedding_batch_queue_seconds',
    help: 'How long the oldest text of a batch waited in the batcher',
    labelNames: ['model'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly inferenceSeconds = new Histogram({
    name: 'embedding_inference_seconds',
    help: 'Time of one ONNX run in a model thread',
    labelNames: ['model'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly jobsFinished = new Counter({
    name: 'worker_jobs_finished_total',
    help: 'Jobs this worker finished, by queue and outcome',
    labelNames: ['queue', 'outcome'],
    registers: [this.registry],
  });
  readonly modelLoadSeconds = new Gauge({
    name: 'model_load_seconds',
    help: 'Time to load each model at boot',
    labelNames: ['model'],
    registers: [this.registry],
  });

  constructor() {
    // Default metrics include worker_nodejs_eventloop_lag_p99_seconds, read by dashboards.
    collectDefaultMetrics({ register: this.registry, prefix: 'worker_' });
    this.loopDelay.enable();
  }

  recordBatch(model: string, s: BatchStats): void {
    this.batchSize.observe({ model }, s.size);
    this.batchTokens.observe({ model }, s.paddedTokens);
    this.batchQueueSeconds.observe({ model }, s.queueMs / 1000);
    this.inferenceSeconds.observe({ model }, s.runMs / 1000);
  }

  /** Event-loop delay percentiles in ms since the last call, then resets the window. */
  takeLoopDelay(): { p50: number; p99: number; max: number } {
    const h = this.loopDelay;
    const out = { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
    h.reset();
    return out;
  }

  /** Serves /metrics and /healthz; resolves with the bound port. */
  async serve(port: number, host: string, health: () => { ok: boolean; detail: unknown }): Promise<{ server: Server; port: number }> {
    const server = createServer((req, res) => {
      if (req.url === '/metrics') {
        void this.registry.metrics().then(
          (body) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(body);
          },
          () => {
            res.writeHead(500);
            res.end();
          },
        );
      } else if (req.url === '/healthz' || req.url === '/stats') {
        const h = health();
        res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(req.url === '/stats' ? { ...h, eventLoopDelayMs: this.takeLoopDelay() } : h));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return { server, port: (server.address() as AddressInfo).port };
  }

  close(): void {
    this.loopDelay.disable();
  }
}
