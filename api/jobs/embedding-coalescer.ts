import type { JobResult } from '../../shared/jobs/job-catalog.js';
import type { EmbeddingModelConfig } from '../../shared/models/model-registry.js';
import type { JobService } from './job-service.js';

interface Part {
  input: string[];
  resolve: (r: JobResult<'embedding'>) => void;
  reject: (e: unknown) => void;
}

interface Group {
  tenant: string;
  model: EmbeddingModelConfig;
  dimensions: number | undefined;
  parts: Part[];
  texts: number;
  requestId: string;
}

/**
 * Coalesces synchronous embedding requests that arrive together (same tenant, model and
 * dimensions) into one queue job, as text-embeddings-inference's router does before its batcher.
 * A job costs the same Redis round trips and worker bookkeeping whether it carries one text or
 * fifty, so under load this is what keeps one-text requests from paying a job each. When the
 * model is idle a request leaves on the next turn of the event loop: no added latency.
 */
export class EmbeddingCoalescer {
  private readonly groups = new Map<string, Group>();
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly jobs: JobService,
    private readonly opts: { syncTimeoutMs: number; maxTextsPerJob: number; windowMs: number },
  ) {}

  embed(tenant: string, model: EmbeddingModelConfig, input: string[], dimensions: number | undefined, requestId: string): Promise<JobResult<'embedding'>> {
    const key = `${tenant}\n${model.id}\n${dimensions ?? ''}`;
    return new Promise((resolve, reject) => {
      let group = this.groups.get(key);
      if (group && group.texts + input.length > this.opts.maxTextsPerJob) {
        this.flush(key);
        group = undefined;
      }
      if (!group) {
        group = { tenant, model, dimensions, parts: [], texts: 0, requestId };
        this.groups.set(key, group);
        // Busy model: hold the job open a moment for company. Idle model: leave at once.
        if ((this.inFlight.get(key) ?? 0) > 0 && this.opts.windowMs > 0) setTimeout(() => this.flush(key), this.opts.windowMs);
        else setImmediate(() => this.flush(key));
      }
      group.parts.push({ input, resolve, reject });
      group.texts += input.length;
    });
  }

  private flush(key: string): void {
    const group = this.groups.get(key);
    if (!group) return;
    this.groups.delete(key);
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    const input = group.parts.flatMap((p) => p.input);
    this.jobs
      .run('embedding', group.tenant, group.model, { model: group.model.id, input, dimensions: group.dimensions }, this.opts.syncTimeoutMs, group.requestId)
      .then(
        (result) => {
          let offset = 0;
          for (const p of group.parts) {
            const end = offset + p.input.length;
            const tokens = result.input_tokens.slice(offset, end);
            p.resolve({
              ...result,
              embeddings_b64: result.embeddings_b64.slice(offset, end),
              input_tokens: tokens,
              prompt_tokens: tokens.reduce((a, b) => a + b, 0),
            });
            offset = end;
          }
        },
        (err) => group.parts.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        const n = (this.inFlight.get(key) ?? 1) - 1;
        if (n > 0) this.inFlight.set(key, n);
        else this.inFlight.delete(key);
      });
  }
}
