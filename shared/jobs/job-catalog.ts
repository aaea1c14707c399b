import { z } from 'zod';
import type { JobsOptions } from 'bullmq';
import { chatStructuredFields, chatToolCallSchema } from '../chat/chat-options.js';
import { chatJobRequestSchema, embeddingJobRequestSchema } from '../api/request-schemas.js';
import { documentJobCatalog } from '../documents/document-jobs.js';
import { webhookJobCatalog } from '../webhooks/webhook-jobs.js';
import { MAX_CHAT_CHOICES } from './chat-choices.js';
import type { JobSpec, JobSubmitSpec } from './job-spec.js';
import type { BatchLineRef } from '../batches/batch-line-ref.js';

export type { JobSpec, JobDomain, JobConcurrency, JobQueueSpec, JobStall, JobSubmitSpec, JobDeadlines } from './job-spec.js';

/**
 * The job catalog, the one home of a job type: its payload and result schemas, its default retry
 * options, the queue it travels on, whether it streams tokens, how its queue finds a dead worker's
 * job, its concurrency, and the folder of workers/ that holds its handler (shared/jobs/job-spec.ts).
 * Types are derived from the schemas; the API validates payloads with them before enqueueing and
 * the worker validates them again before running a handler. Queue creation on both sides, the set
 * of streaming types and queues, and the stall settings are all read from here.
 */
export const embeddingPayloadSchema = z
  .object({
    model: z.string().min(1),
    input: z.array(z.string()).min(1),
    /** Truncate (and re-normalise) vectors to this many dimensions, where the model allows it. */
    dimensions: z.number().int().positive().optional(),
  })
  .strict();

export const embeddingResultSchema = z.object({
  model: z.string(),
  dimensions: z.number().int().positive(),
  /** One little-endian float32 vector per input, base64: 4/3 bytes per byte instead of ~20 chars per float in JSON. */
  embeddings_b64: z.array(z.string()),
  prompt_tokens: z.number().int().min(0),
  /** Tokens of each input, so requests coalesced into one job each get their own usage. */
  input_tokens: z.array(z.number().int().min(0)),
});

export const chatMessageSchema = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    content: z.string(),
    /** An assistant turn's calls (its content may then be ''). */
    tool_calls: z.array(chatToolCallSchema).optional(),
    /** A tool turn: the call it answers. */
    tool_call_id: z.string().optional(),
  })
  .strict();

/** A token's log-probability, as OpenAI writes it: `bytes` are its exact UTF-8 bytes (split characters join across tokens). */
export const tokenLogprobSchema = z.object({ token: z.string(), logprob: z.number(), bytes: z.array(z.number().int().min(0).max(255)).nullable() });

/** One entry of OpenAI's `choices[i].logprobs.content`: the chosen token and its most likely alternatives, best first. */
export const chatTokenLogprobSchema = tokenLogprobSchema.extend({ top_logprobs: z.array(tokenLogprobSchema) });
export type ChatTokenLogprob = z.infer<typeof chatTokenLogprobSchema>;
/**
 * One prompt token's entry (job payload `prompt_logprobs`): its log-probability given the tokens
 * before it and the `prompt_logprobs` most likely tokens there, of the raw model distribution (as
 * vLLM's prompt_logprobs: log-softmax of the logits, no sampling transform). The first prompt
 * token has nothing before it: its `logprob` and `top_logprobs` are null.
 */
export const promptTokenLogprobSchema = tokenLogprobSchema.extend({ logprob: z.number().nullable(), top_logprobs: z.array(tokenLogprobSchema).nullable() });
export type PromptTokenLogprob = z.infer<typeof promptTokenLogprobSchema>;

export { MAX_CHAT_CHOICES };

export const chatPayloadSchema = z
  .object({
    model: z.string().min(1),
    messages: z.array(chatMessageSchema).min(1),
    /** 0 only with `prompt_logprobs`: the prompt is scored, nothing generated. */
    max_tokens: z.number().int().min(0),
    temperature: z.number().min(0).max(2).default(1),
    top_p: z.number().gt(0).max(1).default(1),
    top_k: z.number().int().min(0).default(0),
    repetition_penalty: z.number().gt(0).max(10).default(1),
    seed: z.number().int().optional(),
    stop: z.array(z.string().min(1)).max(4).default([]),
    /** Report each token's log-probability (and `top_logprobs` alternatives, 0-20). */
    logprobs: z.boolean().optional(),
    top_logprobs: z.number().int().min(0).max(20).optional(),
    /**
     * Legacy completions' `echo` with `logprobs`: also report every prompt token's log-probability
     * and this many alternatives (0-20), once, in the result and as the token stream's first entry.
     */
    prompt_logprobs: z.number().int().min(0).max(20).optional(),
    /** Samples of the prompt, from one prefill; the result's `choices` holds them all when n > 1. */
    n: z.number().int().min(1).max(MAX_CHAT_CHOICES).optional(),
    /**
     * Legacy completions: the prompt as raw text, tokenized without the chat template. `messages`
     * then holds it as one user message, for backends that only speak chat (upstreams).
     */
    prompt: z.string().min(1).optional(),
    /**
     * The `file_search` tool with a model whose text is meaningless (`untrained`): the worker answers
     * with the sources' own sentences (workers/chatbot/extractive-answer.ts), citing them as [n]
     * in the order given, instead of generating. No sources (the search found nothing): it says so.
     */
    extractive: z
      .object({ question: z.string().min(1), sources: z.array(z.object({ text: z.string() }).strict()).max(50) })
      .strict()
      .optional(),
    /** Structured outputs and tools, as OpenAI's request has them; the worker enforces them. */
    ...chatStructuredFields,
  })
  .strict()
  .refine((p) => p.top_logprobs === undefined || p.logprobs === true, { message: 'top_logprobs needs logprobs: true', path: ['top_logprobs'] })
  .refine((p) => p.prompt_logprobs === undefined || p.prompt !== undefined, { message: 'prompt_logprobs needs prompt', path: ['prompt_logprobs'] })
  .refine((p) => p.max_tokens > 0 || p.prompt_logprobs !== undefined, { message: 'max_tokens 0 needs prompt_logprobs', path: ['max_tokens'] });

/** `tool_calls`: the reply ended with calls of the request's tools (message.tool_calls). */
export const chatFinishReason = z.enum(['stop', 'length', 'cancelled', 'tool_calls']);

export const chatResultSchema = z.object({
  /** The model that produced the answer: the requested one, or its fallback. */
  model: z.string(),
  /** With tool calls, `content` holds only the text outside them ('' when there is none). */
  message: z.object({ role: z.literal('assistant'), content: z.string(), tool_calls: z.array(chatToolCallSchema).optional() }),
  finish_reason: chatFinishReason,
  /** With `logprobs`: the answer's tokens (of choice 0 when n > 1), the end-of-sequence token left out. */
  logprobs: z.object({ content: z.array(chatTokenLogprobSchema) }).optional(),
  /** With `prompt_logprobs`: every prompt token's, in order. */
  prompt_logprobs: z.array(promptTokenLogprobSchema).optional(),
  /** When n > 1: every choice (choice 0 is also `message`, `finish_reason` and `logprobs`); `usage` sums their completion tokens. */
  choices: z
    .array(
      z.object({
        index: z.number().int().min(0),
        message: z.object({ role: z.literal('assistant'), content: z.string() }),
        finish_reason: chatFinishReason,
        logprobs: z.object({ content: z.array(chatTokenLogprobSchema) }).optional(),
        completion_tokens: z.number().int(),
      }),
    )
    .optional(),
  usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }),
  timings: z.object({ ttft_ms: z.number().nullable(), total_ms: z.number(), tokens_per_second: z.number().nullable() }),
});

/**
 * A chat model's tokenizer (vLLM's /tokenize and /detokenize): text (`prompt`, raw) or `messages`
 * (through the chat template) to ids, or `tokens` back to text. Exactly one of the three.
 */
export const tokenizePayloadSchema = z
  .object({
    model: z.string().min(1),
    prompt: z.string().optional(),
    messages: z.array(chatMessageSchema).min(1).optional(),
    /** Add the tokenizer's special tokens (BOS…) around a prompt; for messages the template places them. */
    add_special_tokens: z.boolean().optional(),
    /** Open the assistant's turn after the messages (default true, as for generation). */
    add_generation_prompt: z.boolean().optional(),
    tokens: z.array(z.number().int().min(0)).optional(),
  })
  .strict()
  .refine((p) => [p.prompt, p.messages, p.tokens].filter((x) => x !== undefined).length === 1, { message: 'needs exactly one of prompt, messages and tokens' });

export const tokenizeResultSchema = z.object({
  /** Tokenizing: the ids and their count. */
  tokens: z.array(z.number().int()).optional(),
  count: z.number().int().optional(),
  /** Detokenizing: the text. */
  prompt: z.string().optional(),
  /** The context the model serves (prompt + completion). */
  max_model_len: z.number().int(),
});

export const chatbotPayloadSchema = z
  .object({
    user_id: z.string().min(1).max(128),
    session_id: z.string().min(1).max(128),
    message: z.string().min(1),
    collection: z.string().optional(),
  })
  .strict();

export const chatbotResultSchema = z.object({
  reply: z.string(),
  intent: z.string(),
  confidence: z.number(),
  session_id: z.string(),
  sources: z.array(z.object({ document_id: z.string(), page: z.number().nullable(), score: z.number(), text: z.string() })),
  tool_calls: z.array(z.object({ name: z.string(), ok: z.boolean(), ms: z.number(), error: z.string().optional(), result: z.unknown().optional() })),
  metadata: z.record(z.string(), z.unknown()),
});

export const batchJobPayloadSchema = z.object({ batch_id: z.string().regex(/^batch_[0-9a-f]{32}$/) }).strict();

export const jobCatalog = {
  embedding: {
    payload: embeddingPayloadSchema,
    result: embeddingResultSchema,
    defaults: {
      attempts: 3,
      backoff: { type: 'exponential', delay: 500 },
    } satisfies JobsOptions,
    queue: { perModel: true },
    streams: false,
    stall: 'attempts',
    concurrency: 'model',
    domain: 'embeddings',
    scope: 'embeddings',
    submit: { request: embeddingJobRequestSchema },
    // An async embedding nobody collected within a day is not worth computing any more.
    deadlines: { maxQueuedSeconds: 86_400 },
  },
  chat: {
    payload: chatPayloadSchema,
    result: chatResultSchema,
    // Generation is not retried: a retry would re-stream text its subscribers already have.
    // Only a job whose worker died before its first token runs again (shared/jobs/queues.ts,
    // stallOptions); one that had streamed text fails as `worker_lost`, and subscribers hear so.
    defaults: { attempts: 1 } satisfies JobsOptions,
    queue: { perModel: true },
    streams: true,
    stall: 'stream',
    concurrency: 'model',
    domain: 'chat',
    scope: 'chat',
    submit: { request: chatJobRequestSchema },
    // Generation is bounded by max_tokens; a run past this is a stuck model or upstream, not a long answer.
    deadlines: { maxQueuedSeconds: 86_400, maxRunSeconds: 900 },
  },
  tokenize: {
    payload: tokenizePayloadSchema,
    result: tokenizeResultSchema,
    // Pure and quick: a retry after a worker died does no harm.
    defaults: { attempts: 2 } satisfies JobsOptions,
    // A queue per chat model beside its chat queue (`tokenize.<model>`): the tokenizer lives in the
    // model's thread on the workers (the API image carries no model files), and a tokenization
    // must not wait behind the generations queued for the model.
    queue: { perModel: true, modelTask: 'chat' },
    streams: false,
    stall: 'attempts',
    concurrency: 'model',
    domain: 'chat',
    // Submitted through POST /v1/tokenize and /v1/detokenize only (synchronous), so no `submit`.
    scope: 'chat',
  },
  chatbot: {
    payload: chatbotPayloadSchema,
    result: chatbotResultSchema,
    // Not retried, for the reason chat is not: the reply streams as it is made, and a tool may have been called.
    defaults: { attempts: 1 } satisfies JobsOptions,
    // One queue for every tenant's bot; past `maxQueued` waiting turns, new ones get 429.
    queue: { name: 'chatbot.default', maxQueued: 1000 },
    streams: true,
    stall: 'stream',
    // Turns mostly wait for the chat and embedding models' threads, so a worker holds many.
    concurrency: 16,
    domain: 'chatbot',
    // Submitted through POST /v1/chatbot only (it needs the tenant's bot), so no `submit`.
    scope: 'chat',
  },
  // Documents and vector search: ingestion stages (a BullMQ flow) and search.
  ...documentJobCatalog,
  // The Batch API (workers/batches): a batch's own jobs. Its lines are ordinary embedding and chat
  // jobs on the model queues, at batch priority, that carry a `batch` reference in their envelope.
  'batch.validate': {
    payload: batchJobPayloadSchema,
    result: z.object({ batch_id: z.string(), status: z.string(), lines: z.number().int() }),
    // Validation is idempotent (lines are stored by index), so a retry after a crash is safe.
    defaults: { attempts: 3, backoff: { type: 'exponential', delay: 1000 } } satisfies JobsOptions,
    queue: { name: 'batches.validate', maxQueued: 10_000 },
    streams: false,
    stall: 'attempts',
    concurrency: 2,
    domain: 'batches',
    // Internal: a batch is reached through /v1/batches, never as a job of /v1/jobs.
    scope: null,
  },
  'batch.run': {
    payload: batchJobPayloadSchema,
    result: z.object({ batch_id: z.string(), status: z.string() }),
    // One per batch (its id is the batch's), deferred between looks at its lines: it queues lines a
    // window at a time, sees cancel and expiry, and writes the output files at the end.
    defaults: { attempts: 5, backoff: { type: 'exponential', delay: 1000 } } satisfies JobsOptions,
    queue: { name: 'batches.run', maxQueued: 10_000 },
    streams: false,
    stall: 'attempts',
    concurrency: 16,
    domain: 'batches',
    // Internal: a batch is reached through /v1/batches, never as a job of /v1/jobs.
    scope: null,
  },
  // Signed webhook deliveries (shared/webhooks).
  ...webhookJobCatalog,
} as const satisfies Record<string, JobSpec>;

export type JobType = keyof typeof jobCatalog;
export const JOB_TYPES = Object.keys(jobCatalog) as JobType[];

/** The spec of a job type, widened: what generic code (queues, workers, streams) reads. */
export function jobSpec(type: JobType): JobSpec {
  return jobCatalog[type];
}

/** Job types clients may submit with POST /v1/jobs: those whose entry has `submit`. */
export type SubmittableJobType = { [K in JobType]: (typeof jobCatalog)[K] extends { submit: JobSubmitSpec } ? K : never }[JobType];
export const SUBMITTABLE_JOB_TYPES = JOB_TYPES.filter((t): t is SubmittableJobType => jobSpec(t).submit !== undefined);
/** The public request of a submittable type (its fields less `type`, `timeout` and `webhook`), as validated. */
export type JobRequest<K extends SubmittableJobType> = z.output<(typeof jobCatalog)[K]['submit']['request']>;
/** The same, as a client sends it (before defaults and normalisation). */
export type JobRequestInput<K extends SubmittableJobType> = z.input<(typeof jobCatalog)[K]['submit']['request']>;

/**
 * The delay before the retry that follows attempt `attemptsMade` (1 = the first attempt), for a type
 * with a `retrySchedule`: the schedule's entry (its last repeats), times `scale` (RETRY_SCHEDULE_SCALE).
 */
export function scheduledRetryDelayMs(type: JobType, attemptsMade: number, scale: number): number {
  const schedule = jobSpec(type).retrySchedule;
  if (!schedule?.length) throw new Error(`${type} jobs have no retry schedule`);
  return Math.round(schedule[Math.min(Math.max(attemptsMade, 1), schedule.length) - 1]! * scale);
}

/** Job types that have one queue per model (named by `modelQueueName`), and those with a queue of their own. */
export type ModelJobType = { [K in JobType]: (typeof jobCatalog)[K]['queue'] extends { perModel: true } ? K : never }[JobType];
export type FixedQueueJobType = Exclude<JobType, ModelJobType>;

/** The queue of a model's jobs of a per-model job type (its task). Names cannot contain ':' nor '~'. */
export function modelQueueName(task: string, modelId: string): string {
  return `${task}.${modelId.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')}`;
}

/** The task of the models that have a queue of a per-model job type. */
export function modelTaskOf(type: ModelJobType): string {
  const q = jobCatalog[type].queue as { perModel: true; modelTask?: string };
  return q.modelTask ?? type;
}

/** The queues a model has: one per per-model job type of its task (its own, `model.queueName`, first). */
export function modelQueues(model: { id: string; task: string }): { type: ModelJobType; queueName: string }[] {
  return JOB_TYPES.filter((t): t is ModelJobType => 'perModel' in jobSpec(t).queue && modelTaskOf(t as ModelJobType) === model.task)
    .sort((a, b) => Number(b === model.task) - Number(a === model.task))
    .map((type) => ({ type, queueName: modelQueueName(type, model.id) }));
}

/** The queue of a job type that has one queue of its own. */
export function fixedQueueName<K extends FixedQueueJobType>(type: K): (typeof jobCatalog)[K]['queue']['name'] {
  return jobCatalog[type].queue.name;
}

/** Queues of the job types that have one of their own (document stages, chatbot), less those in `skip`. */
export function fixedQueueNames(skip: readonly JobType[] = []): string[] {
  return JOB_TYPES.flatMap((t) => {
    const q = jobSpec(t).queue;
    return 'name' in q && !skip.includes(t) ? [q.name] : [];
  });
}

/**
 * Where a job of a type with a queue of its own goes, in the shape JobService bounds and routes by
 * (a model's queue is the model itself). `id` names the queue in errors ("the queue for model …").
 */
export function fixedQueueTarget(type: FixedQueueJobType, id: string = type): { id: string; queueName: string; max_queue: number } {
  const q = jobCatalog[type].queue as { name: string; maxQueued?: number };
  return { id, queueName: q.name, max_queue: q.maxQueued ?? Number.POSITIVE_INFINITY };
}

/** Job types whose workers stream tokens; their subscribers follow the token stream, end entry included. */
export const STREAMING_JOB_TYPES: ReadonlySet<JobType> = new Set(JOB_TYPES.filter((t) => jobSpec(t).streams));

/** The job type a queue carries, from its name alone (job ids carry their queue: `queueOfJobId`). */
export function jobTypeOfQueue(queueName: string | undefined): JobType | undefined {
  if (!queueName) return undefined;
  return JOB_TYPES.find((t) => {
    const q = jobSpec(t).queue;
    return 'name' in q ? q.name === queueName : queueName.startsWith(modelQueueName(t, ''));
  });
}

/** Queues of streaming job types (chat models' queues and the chatbot's). */
export const isStreamingQueue = (queueName: string | undefined): boolean => {
  const type = jobTypeOfQueue(queueName);
  return type !== undefined && STREAMING_JOB_TYPES.has(type);
};
export type JobPayload<K extends JobType> = z.infer<(typeof jobCatalog)[K]['payload']>;
export type JobResult<K extends JobType> = z.infer<(typeof jobCatalog)[K]['result']>;

/** What travels in BullMQ's job data: the typed payload plus who asked and where to answer. */
export interface JobEnvelope<K extends JobType = JobType> {
  type: K;
  tenant: string;
  payload: JobPayload<K>;
  request_id?: string;
  /** Pub/sub channel of the API instance waiting synchronously for this job, if any. */
  reply_to?: string;
  /** Idempotency key the job was submitted with (already scoped to the tenant). */
  idempotency_key?: string;
  /** Epoch ms after which the job must not start: a worker that takes it later fails it as expired. */
  deadline?: number;
  /** A batch line (embedding and chat jobs): its outcome is recorded in the batch, not announced. */
  batch?: BatchLineRef;
  /**
   * Present on jobs submitted through POST /v1/jobs: their outcome is announced as a `job.completed`
   * or `job.failed` webhook event to the tenant's endpoints, and to `url` when the job named one.
   */
  webhook_events?: { url?: string };
}

export const jobEnvelopeSchema = z.object({
  type: z.enum(JOB_TYPES as [JobType, ...JobType[]]),
  tenant: z.string().min(1),
  payload: z.unknown(),
  request_id: z.string().optional(),
  reply_to: z.string().optional(),
  idempotency_key: z.string().optional(),
  deadline: z.number().int().positive().optional(),
  batch: z
    .object({ id: z.string(), line: z.number().int().min(0), pack: z.array(z.object({ line: z.number().int().min(0), inputs: z.number().int().min(1) })).min(1).optional(), endpoint: z.string().optional() })
    .optional(),
  webhook_events: z.object({ url: z.string().optional() }).optional(),
});

/** Public job states (GET /v1/jobs/:id). */
export type JobStatus = 'queued' | 'active' | 'completed' | 'failed' | 'cancelled';

/** Failed reasons that start with this mean the job was cancelled, not that it broke. */
export const CANCELLED_REASON_PREFIX = 'cancelled';

/** Failed reasons that start with this mean the job was still queued at its deadline and never ran. */
export const EXPIRED_REASON_PREFIX = 'expired';

/** Failed reasons that start with this mean the job's worker died (or stopped answering) while it ran. */
export const WORKER_LOST_REASON_PREFIX = 'worker lost';
/** BullMQ's reason for a job found stalled more often than its queue allows. */
const STALLED_TOO_OFTEN = /stalled more than allowable limit/;

/** The error code of a failed job, from its failed reason. */
export function failureCode(failedReason: string | undefined): 'cancelled' | 'expired' | 'worker_lost' | 'job_failed' {
  if (failedReason?.startsWith(CANCELLED_REASON_PREFIX)) return 'cancelled';
  if (failedReason?.startsWith(EXPIRED_REASON_PREFIX)) return 'expired';
  if (failedReason?.startsWith(WORKER_LOST_REASON_PREFIX) || STALLED_TOO_OFTEN.test(failedReason ?? '')) return 'worker_lost';
  return 'job_failed';
}

/**
 * Public job ids carry the queue they live in, so GET/DELETE /v1/jobs/:id find the job with one
 * lookup and no index: `<queue>~<uuid>`. Queue names never contain '~'.
 */
export function makeJobId(queueName: string, uuid: string): string {
  return `${queueName}~${uuid}`;
}

export function queueOfJobId(jobId: string): string | undefined {
  const i = jobId.indexOf('~');
  return i > 0 ? jobId.slice(0, i) : undefined;
}

export function encodeVector(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

export function decodeVector(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  // Copy into a fresh, aligned buffer: Buffer pools may hand out unaligned offsets.
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}
