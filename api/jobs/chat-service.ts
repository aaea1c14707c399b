import { chatPayload, resolveChatModel } from '../../shared/api/openai-requests.js';
import { BATCH_PRIORITY, INTERACTIVE_PRIORITY } from '../../shared/jobs/priorities.js';
import type { JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';
import { isChatModel, type ChatModelConfig, type ModelRegistry } from '../../shared/models/model-registry.js';
import type { TokenRelay } from '../realtime/token-relay.js';
import type { ChatParams } from '../../shared/api/request-schemas.js';
import type { JobService, JobView, SubmitOptions } from './job-service.js';
import { runStreamingJob } from './stream-runner.js';

export type { ChatParams };

export type ChatOutcome =
  | { status: 'completed'; jobId: string; model: string; result: JobResult<'chat'> }
  | { status: 'failed' | 'cancelled'; jobId: string; model: string; error: { message: string; code: string } };

export interface ChatRunOptions extends SubmitOptions {
  /** Aborting (the client went away) cancels the job. */
  signal?: AbortSignal;
  onStart?: (jobId: string, model: string) => void;
  onToken?: (text: string, index: number) => void;
}

/** Runs a chat job to its end: ChatService itself, or a decorator in front of it (the response cache). */
export interface ChatRunner {
  run(tenant: string, model: ChatModelConfig, payload: JobPayload<'chat'>, opts: ChatRunOptions): Promise<ChatOutcome>;
}

/** Failures of an upstream that its fallback model may answer instead. */
const FALLBACK_CODES = new Set(['upstream_error', 'upstream_timeout']);

export { INTERACTIVE_PRIORITY, BATCH_PRIORITY };

/**
 * Chat on top of the job service: validates against the model's limits, submits, and follows the
 * job's token stream. A model whose upstream fails before its first token hands the request to
 * its configured fallback; the outcome names the model that answered.
 */
export class ChatService implements ChatRunner {
  constructor(
    private readonly deps: {
      jobs: JobService;
      relay: TokenRelay;
      registry: ModelRegistry;
    },
  ) {}

  resolveModel(id: string): ChatModelConfig {
    return resolveChatModel(this.deps.registry, id);
  }

  payload(model: ChatModelConfig, p: ChatParams): JobPayload<'chat'> {
    return chatPayload(model, p);
  }

  submit(tenant: string, model: ChatModelConfig, payload: JobPayload<'chat'>, opts: SubmitOptions): Promise<{ view: JobView; created: boolean }> {
    return this.deps.jobs.submit('chat', tenant, model, payload, { priority: BATCH_PRIORITY, ...opts });
  }

  /**
   * Runs a chat job to its end, calling onToken for each token as it arrives. Aborting `signal`
   * (the client went away) cancels the job, which frees its batch slot within one decode step.
   */
  async run(tenant: string, model: ChatModelConfig, payload: JobPayload<'chat'>, opts: ChatRunOptions): Promise<ChatOutcome> {
    const tried = new Set<string>();
    let current = model;
    for (;;) {
      tried.add(current.id);
      const outcome = await this.runOnce(tenant, current, { ...payload, model: current.id }, opts);
      const fallback = current.fallback ? this.deps.registry.get(current.fallback) : undefined;
      const { outcome: o, tokensSent } = outcome;
      const retryable = o.status === 'failed' && FALLBACK_CODES.has(o.error.code) && !tokensSent;
      if (!retryable || !fallback || !isChatModel(fallback) || tried.has(fallback.id)) return o;
      current = fallback;
    }
  }

  private async runOnce(tenant: string, model: ChatModelConfig, payload: JobPayload<'chat'>, opts: ChatRunOptions): Promise<{ outcome: ChatOutcome; tokensSent: boolean }> {
    const { jobId, end, tokensSent } = await runStreamingJob(this.deps, 'chat', tenant, model, payload, {
      priority: INTERACTIVE_PRIORITY,
      ...opts,
      onStart: (id) => opts.onStart?.(id, model.id),
    });
    if (end.status === 'completed') return { outcome: { status: 'completed', jobId, model: end.result.model, result: end.result }, tokensSent };
    return { outcome: { status: end.status, jobId, model: model.id, error: end.error ?? { message: 'failed', code: 'job_failed' } }, tokensSent };
  }
}
