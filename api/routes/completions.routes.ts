import { randomUUID } from 'node:crypto';
import { completionRequestSchema } from '../../shared/api/request-schemas.js';
import { errors } from '../../shared/errors/app-error.js';
import type { ChatTokenLogprob, JobPayload, PromptTokenLogprob } from '../../shared/jobs/job-catalog.js';
import type { TokenExtras } from '../../shared/streams/token-stream.js';
import { EventStream } from '../http/sse.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';
import { choicesOf } from '../../shared/api/openai-responses.js';
import type { ChatOutcome, ChatService } from '../jobs/chat-service.js';
import { failure } from './chat.routes.js';

/**
 * POST /v1/completions, OpenAI's legacy text completions, on the chat models: each prompt is one
 * chat job whose `prompt` is tokenized as is (no chat template) and that samples `n` choices from
 * one prefill. Choice `p * n + c` is prompt p's choice c, as OpenAI numbers them. Answered whole
 * or streamed as server-sent `text_completion` chunks ending with `data: [DONE]`.
 */

/** OpenAI's default for this endpoint (chat completions default to the model's `default_max_tokens`). */
const DEFAULT_MAX_TOKENS = 16;

interface LegacyLogprobs {
  tokens: string[];
  /** null for the first token of an echoed prompt (nothing comes before it). */
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * The legacy `logprobs` shape of a choice's tokens, built as they come (a stream gives them in
 * pieces): `text_offset` is where each token's text starts in the choice's text (after an echoed
 * prompt), counted in whole characters: a token that ends inside a UTF-8 character moves the
 * offset only once the character is complete.
 */
class LegacyLogprobsBuilder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private offset: number;

  constructor(start: number) {
    this.offset = start;
  }

  /**
   * Starts an echoed prompt's choice: its prompt tokens from offset 0, then the completion's from
   * after the prompt text (set to `promptLength` whatever the tokens' texts add up to, so that a
   * special token such as BOS cannot shift the completion's offsets).
   */
  static echoing(prompt: readonly PromptTokenLogprob[], promptLength: number): { builder: LegacyLogprobsBuilder; logprobs: LegacyLogprobs } {
    const builder = new LegacyLogprobsBuilder(0);
    const logprobs = builder.push(prompt);
    builder.offset = promptLength;
    return { builder, logprobs };
  }

  push(content: readonly (ChatTokenLogprob | PromptTokenLogprob)[]): LegacyLogprobs {
    const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const t of content) {
      out.tokens.push(t.token);
      out.token_logprobs.push(t.logprob);
      // The alternatives and, as OpenAI's legacy answers have it, the chosen token.
      out.top_logprobs.push(
        t.top_logprobs === null || t.logprob === null
          ? null
          : Object.fromEntries([...t.top_logprobs.map((a) => [a.token, a.logprob] as const), [t.token, t.logprob] as const]),
      );
      out.text_offset.push(this.offset);
      this.offset += this.decoder.decode(Uint8Array.from(t.bytes ?? []), { stream: true }).length;
    }
    return out;
  }
}

export function completionsRoutes(deps: { chat: ChatService; sseKeepAliveMs?: number }): TableRoutes {
  const router = tableRoutes();

  router.post('/v1/completions', async (req, res) => {
    const body = completionRequestSchema.parse(req.body);
    if (body.suffix) throw errors.invalidRequest("'suffix' (text after the completion, fill-in-the-middle) is not supported.", 'suffix', 'unsupported_parameter');
    const n = body.n ?? 1;
    if (body.best_of != null && body.best_of !== n) {
      throw errors.invalidRequest("'best_of' is not supported (each of the 'n' choices is returned).", 'best_of', 'unsupported_parameter');
    }
    for (const p of ['presence_penalty', 'frequency_penalty'] as const) {
      if (body[p]) throw errors.invalidRequest(`'${p}' is not supported; use 'repetition_penalty'.`, p, 'unsupported_parameter');
    }
    // Echo with logprobs lists the prompt's tokens first: the worker computes theirs from the prefill.
    const promptLogprobs = body.echo && body.logprobs != null;
    if (body.max_tokens === 0 && !promptLogprobs) {
      throw errors.invalidRequest("'max_tokens' 0 needs 'echo' and 'logprobs' (it scores the prompt and generates nothing).", 'max_tokens');
    }
    const model = deps.chat.resolveModel(body.model);
    const prompts = typeof body.prompt === 'string' ? [body.prompt] : body.prompt;
    const payloads: JobPayload<'chat'>[] = prompts.map((prompt) => ({
      ...deps.chat.payload(model, {
        messages: [{ role: 'user', content: prompt }],
        prompt,
        max_tokens: body.max_tokens ?? Math.min(DEFAULT_MAX_TOKENS, model.max_tokens_limit),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        repetition_penalty: body.repetition_penalty,
        seed: body.seed,
        stop: body.stop,
        n,
        ...(body.logprobs == null ? {} : { logprobs: true, top_logprobs: body.logprobs }),
      }),
      ...(promptLogprobs ? { prompt_logprobs: body.logprobs! } : {}),
    }));
    const tenant = req.principal!.tenant;
    const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const echoed = (p: number) => (body.echo ? prompts[p]! : '');
    const runOptions = { requestId: String(req.id), ...(body.priority ? { priority: body.priority } : {}) };
    const usageOf = (outcomes: Extract<ChatOutcome, { status: 'completed' }>[]) => {
      const prompt_tokens = outcomes.reduce((sum, o) => sum + o.result.usage.prompt_tokens, 0);
      const completion_tokens = outcomes.reduce((sum, o) => sum + o.result.usage.completion_tokens, 0);
      return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
    };
    /** The outcomes, all completed, or the first failure as an error. */
    const completed = (outcomes: ChatOutcome[]): Extract<ChatOutcome, { status: 'completed' }>[] =>
      outcomes.map((o) => {
        if (o.status !== 'completed') throw failure(o);
        return o;
      });

    /** A whole choice's legacy logprobs: the echoed prompt's tokens (when the worker gave them), then the completion's. */
    const wholeLogprobs = (prompt: PromptTokenLogprob[] | undefined, p: number, content: ChatTokenLogprob[]): LegacyLogprobs => {
      if (!promptLogprobs || prompt === undefined) return new LegacyLogprobsBuilder(echoed(p).length).push(content);
      const { builder, logprobs } = LegacyLogprobsBuilder.echoing(prompt, echoed(p).length);
      const rest = builder.push(content);
      return {
        tokens: [...logprobs.tokens, ...rest.tokens],
        token_logprobs: [...logprobs.token_logprobs, ...rest.token_logprobs],
        top_logprobs: [...logprobs.top_logprobs, ...rest.top_logprobs],
        text_offset: [...logprobs.text_offset, ...rest.text_offset],
      };
    };

    if (!body.stream) {
      const outcomes = completed(await Promise.all(payloads.map((payload) => deps.chat.run(tenant, model, payload, runOptions))));
      res.setHeader('x-job-id', outcomes.map((o) => o.jobId).join(', '));
      res.json({
        id,
        object: 'text_completion',
        created,
        model: outcomes[0]!.model,
        choices: outcomes.flatMap((o, p) =>
          choicesOf(o.result).map((c) => ({
            index: p * n + c.index,
            text: echoed(p) + c.message.content,
            logprobs: c.logprobs ? wholeLogprobs(o.result.prompt_logprobs, p, c.logprobs.content) : null,
            finish_reason: c.finish_reason === 'cancelled' ? 'stop' : c.finish_reason,
          })),
        ),
        usage: usageOf(outcomes),
      });
      return;
    }

    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const jobIds: string[] = [];
    let answering = model.id;
    const stream = new EventStream(res, { keepAliveMs: deps.sseKeepAliveMs, jobId: () => jobIds.join(', ') });
    const chunk = (index: number, text: string, finish: string | null, logprobs: LegacyLogprobs | null = null) =>
      stream.send({ id, object: 'text_completion', created, model: answering, choices: [{ index, text, logprobs, finish_reason: finish }] });
    // Each choice opens with its echoed prompt (or nothing), and builds its logprobs' offsets from there.
    const builders = new Map<number, LegacyLogprobsBuilder>();
    /** Per prompt: its tokens' logprobs, from the job stream's first entry (echo with logprobs). */
    const promptEntries = new Map<number, PromptTokenLogprob[]>();
    const start = (p: number, index: number): LegacyLogprobsBuilder => {
      let builder = builders.get(index);
      if (builder === undefined) {
        const prompt = promptEntries.get(p);
        if (prompt !== undefined) {
          const echoing = LegacyLogprobsBuilder.echoing(prompt, echoed(p).length);
          builder = echoing.builder;
          chunk(index, echoed(p), null, echoing.logprobs);
        } else {
          builder = new LegacyLogprobsBuilder(echoed(p).length);
          if (body.echo) chunk(index, echoed(p), null);
        }
        builders.set(index, builder);
      }
      return builder;
    };
    let outcomes: ChatOutcome[];
    try {
      outcomes = await Promise.all(
        payloads.map((payload, p) =>
          deps.chat.run(tenant, model, payload, {
            ...runOptions,
            signal: abort.signal,
            onStart: (jobId, modelId) => {
              jobIds.push(jobId);
              answering = modelId;
            },
            onToken: (text: string, _i: number, { choice = 0, logprobs, prompt_logprobs }: TokenExtras) => {
              if (prompt_logprobs !== undefined) {
                if (promptLogprobs) promptEntries.set(p, prompt_logprobs);
                return;
              }
              const index = p * n + choice;
              const builder = start(p, index);
              chunk(index, text, null, logprobs ? builder.push(logprobs) : null);
            },
          }),
        ),
      );
    } catch (err) {
      stream.fail(err, req.log, 'completions');
      return;
    }
    if (abort.signal.aborted || res.writableEnded) {
      stream.stop();
      return;
    }
    let done: Extract<ChatOutcome, { status: 'completed' }>[];
    try {
      done = completed(outcomes);
    } catch (err) {
      stream.fail(err, req.log, 'completions');
      return;
    }
    done.forEach((o, p) => {
      answering = o.model;
      for (const c of choicesOf(o.result)) {
        start(p, p * n + c.index);
        chunk(p * n + c.index, '', c.finish_reason === 'cancelled' ? 'stop' : c.finish_reason);
      }
    });
    if (body.stream_options?.include_usage) stream.send({ id, object: 'text_completion', created, model: answering, choices: [], usage: usageOf(done) });
    stream.end();
  });

  return router;
}
