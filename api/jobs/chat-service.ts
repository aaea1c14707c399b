import { chatPayload, resolveChatModel } from '../../shared/api/openai-requests.js';
import { errors } from '../../shared/errors/app-error.js';
import { BATCH_PRIORITY, INTERACTIVE_PRIORITY } from '../../shared/jobs/priorities.js';
import { modelQueueName, type JobPayload, type JobResult } from '../../shared/jobs/job-catalog.js';
import { isChatModel, type ChatModelConfig, type ModelRegistry } from '../../shared/models/model-registry.js';
import type { TokenRelay } from '../realtime/token-relay.js';
import type { ChatParams } from '../../shared/api/request-schemas.js';
import type { ChatOutcome } from '../../shared/chat/chat-outcome.js';
import type { JobService, JobView, SubmitOptions } from './job-service.js';
import { runStreamingJob, type StreamedEnd, type StreamRunOptions } from './stream-runner.js';

export type { ChatParams, ChatOutcome };

export interface ChatRunOptions extends SubmitOptions {
  /** Aborting (the client went away) cancels the job. */
  signal?: AbortSignal;
  onStart?: (jobId: string, model: string) => void;
  onToken?: StreamRunOptions['onToken'];
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
      /** How long tokenize jobs may take (SYNC_TIMEOUT_MS). */
      syncTimeoutMs: number;
    },
  ) {}

  resolveModel(id: string): ChatModelConfig {
    return resolveChatModel(this.deps.registry, id);
  }

  /** The job payload of a chat request; `prompt`: a legacy completion's raw prompt (see chatPayloadSchema). */
  payload(model: ChatModelConfig, p: ChatParams & { prompt?: string }): JobPayload<'chat'> {
    return chatPayload(model, p);
  }

  /**
   * Tokenizes or detokenizes with the model's own tokenizer: a job on the model's tokenize queue,
   * since the tokenizer lives with the model on the workers (the API image carries no model files).
   */
  tokenize(tenant: string, model: ChatModelConfig, payload: JobPayload<'tokenize'>, requestId: string): Promise<JobResult<'tokenize'>> {
    if (model.format !== 'hf-decoder') {
      throw errors.invalidRequest(`Model '${model.id}' is served by an upstream; its tokenizer is not available here.`, 'model', 'unsupported_parameter');
    }
    const target = { id: model.id, queueName: modelQueueName('tokenize', model.id), max_queue: model.max_queue };
    return this.deps.jobs.run('tokenize', tenant, target, payload, this.deps.syncTimeoutMs, requestId);
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
    return { outcome: chatOutcome(jobId, model.id, end), tokensSent };
  }
}

/** How a chat job ended, from its token stream's end entry; `model` is the one it was submitted to. */
export function chatOutcome(jobId: string, model: string, end: StreamedEnd<'chat'>): ChatOutcome {
  if (end.status === 'completed') return { status: 'completed', jobId, model: end.result.model, result: end.result };
  return { status: end.status, jobId, model, error: end.error ?? { message: 'failed', code: 'job_failed' } };
}
