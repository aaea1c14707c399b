import type { IncrementalDetokenizer } from './chat-tokenizer.js';
import type { DecodeItem, ForwardOptions, ForwardStats, KvCache, PrefillResult } from './decoder-session.js';
import type { SequenceGrammar } from './grammar/grammar-runtime.js';
import { needsGrammar, type GrammarFormat, type PreparedFormat, type ResponseFormat } from './grammar/response-format.js';
import { Sampler, computeLogprobs, validateSamplingParams } from './sampler.js';
import type { TokenVocabulary } from './token-vocabulary.js';

/**
 * Continuous-batching text generation over one decoder session, inside one thread.
 *
 * An async loop runs while anything is active or waiting. Each iteration, at a step boundary:
 *   1. cancelled sequences leave (their slots free up);
 *   2. waiting sequences take the free slots (up to `maxBatch` active, FIFO) and are prefilled,
 *      prompts of similar length together in one session run; each samples its first token and
 *      JOINS the decode batch;
 *   3. one decode step feeds every active sequence's last token in ONE batched session run (each
 *      with its own KV cache, see DecoderSession.forward) and samples each one's next token;
 *      sequences that finish LEAVE;
 *   4. the loop yields to the thread's event loop (setImmediate), so control messages that
 *      arrived meanwhile (submit, cancel) are handled before the next step.
 *
 * A reply ends with `stop` on an end-of-sequence id (tokenizer.stopTokenIds: eos, <|im_end|>…)
 * or a stop string, with `length` after `maxTokens` tokens or when prompt + completion fill the
 * context, or with `cancelled`. Stop strings never reach the output: text that could be the start
 * of one is held back until it is decided.
 *
 * Constrained output (`responseFormat`: a JSON object, a JSON schema, an EBNF grammar or a
 * structural tag): the sequence gets its grammar's matcher when it is admitted (compiled once per
 * format, see grammar/grammar-runtime.ts; a format that cannot compile fails the sequence with a
 * GrammarError). Every sampling step first asks the matcher which tokens may come next; the
 * sampler sets all others to -Infinity before the repetition penalty, temperature, top-k and
 * top-p, and the sampled token advances the matcher. End-of-sequence ids are allowed only where
 * the grammar is complete, so `stop` means the output is complete; `length` means max_tokens or
 * the context ran out first and the output is INCOMPLETE (e.g. JSON that does not parse).
 *
 * Several samples of one prompt (`n`, OpenAI's `n`): the request becomes n sequences (choices
 * 0..n-1) that wait and are admitted together, share ONE prefill row (the other choices start
 * from a copy of its KV cache and sample their first tokens from the same logits) and then decode
 * as independent members of the batch. Choice i samples with `seed + i`, so choice 0 is what the
 * same request with n = 1 gives. Callbacks get the choice in TokenEvent and GenerationResult;
 * onDone runs once per choice; `cancel(id)` cancels every choice.
 *
 * Logprobs (`logprobs`, `topLogprobs`): each token's log-probability and its most likely
 * alternatives under the model's own distribution (see computeLogprobs in sampler.ts for which
 * one), with token strings and bytes, passed to onToken.
 *
 * Callbacks run synchronously inside the loop: onToken once per generated token, in order, with
 * the text that became final at that token (often '', e.g. while a UTF-8 character or a possible
 * stop string is incomplete); the texts of all onToken calls concatenate to onDone's `text`.
 * A callback that throws cancels its sequence and is reported through onError.
 */

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationRequest {
  id: string;
  promptIds: readonly number[];
  /** Most completion tokens (default: until the context is full); 0 only with promptLogprobs (scoring a text). */
  maxTokens?: number;
  /** 0 = greedy (default 1). */
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  /** Same seed (and parameters and prompt) → same text. Random when left out. */
  seed?: number;
  /** Strings that end the reply; they are not part of the text. */
  stop?: readonly string[];
  /** Constrain the output to a grammar (needs the engine's `grammar` option). Default: text. */
  responseFormat?: ResponseFormat;
  /** Report each token's log-probability (OpenAI `logprobs`). */
  logprobs?: boolean;
  /** Also report this many most likely alternatives per token, 0-20 (OpenAI `top_logprobs`; needs `logprobs`). */
  topLogprobs?: number;
  /** Samples of the prompt (OpenAI `n`), 1 to maxBatch; they share one prefill. Default 1. */
  n?: number;
  /**
   * Also report every prompt token's log-probability and this many alternatives (0-20), through
   * onPromptLogprobs, once, right after the prefill (which then keeps the logits of every position).
   */
  promptLogprobs?: number;
}

/** One token with its log-probability, as OpenAI's logprobs.content entries carry it. */
export interface TokenLogprob {
  id: number;
  /** The token's text on its own (U+FFFD where it holds part of a UTF-8 character). */
  token: string;
  /** Its exact UTF-8 bytes: join consecutive tokens' bytes to rebuild split characters. */
  bytes: number[];
  logprob: number;
}

export interface GeneratedTokenLogprobs extends TokenLogprob {
  /** The most likely tokens at this position, best first (as many as `topLogprobs`). */
  topLogprobs: TokenLogprob[];
}

/**
 * One prompt token's log-probability given the tokens before it, of the raw model distribution
 * (log-softmax of the logits, as vLLM's prompt_logprobs: no repetition penalty, temperature, top-k,
 * top-p or grammar applies to a prompt). The first token has nothing before it: null.
 */
export interface PromptTokenLogprobs extends Omit<TokenLogprob, 'logprob'> {
  logprob: number | null;
  topLogprobs: TokenLogprob[] | null;
}

/** What onToken gets besides the text. */
export interface TokenEvent {
  /** Which of the request's `n` samples the token belongs to (0 when n = 1). */
  choice: number;
  /** The token ended the reply (an end-of-sequence id): it adds no text. */
  endOfSequence: boolean;
  /** Present when the request asked for logprobs. */
  logprobs?: GeneratedTokenLogprobs;
}

export interface GenerationResult {
  /** Which of the request's `n` samples this is (0 when n = 1). */
  choice: number;
  finishReason: FinishReason;
  promptTokens: number;
  /** Tokens sampled, the end-of-sequence token included. */
  completionTokens: number;
  text: string;
  timings: {
    /** Submit → start of its prefill. */
    queuedMs: number;
    /** Submit → first token (undefined if cancelled before it). */
    firstTokenMs?: number;
    /** Submit → done. */
    totalMs: number;
  };
}

export interface GenerationCallbacks {
  onToken(index: number, text: string, tokenId: number, event: TokenEvent): void;
  onDone(result: GenerationResult): void;
  /** With `promptLogprobs`: the prompt tokens', in order, once per request before any onToken. */
  onPromptLogprobs?(entries: PromptTokenLogprobs[]): void;
  /** The sequence failed (session error or a throwing callback); onDone is not called. */
  onError?(error: Error): void;
}

export interface StepReport {
  kind: 'prefill' | 'decode';
  batchSize: number;
  /** Real tokens fed (prompt tokens for prefill, one per sequence for decode). */
  tokens: number;
  /** Longest past in the batch (all were padded to it). */
  pastLength: number;
  /** Session run time. */
  runMs: number;
  /** Whole step: batch assembly, run, sampling and callbacks. */
  stepMs: number;
  /** Sequences decoding and waiting after the step. */
  active: number;
  waiting: number;
}

export interface GenerationEngineOptions {
  /** Most sequences decoding at once (default 8); later ones wait. */
  maxBatch?: number;
  /** Most prompt tokens prefilled in one run (default 4096); one prompt always goes. */
  maxPrefillTokens?: number;
  /** Context limit (prompt + completion); default and ceiling: the model's max_position_embeddings. */
  maxContextTokens?: number;
  onStep?(report: StepReport): void;
  /** Errors of sequences without their own onError (default: console.error). */
  onError?(error: Error, id: string): void;
  /** Grammar compiler and matchers for constrained requests (one per thread; see GrammarRuntime). */
  grammar?: EngineGrammar;
}

/** What the engine needs of a grammar runtime (GrammarRuntime implements it). */
export interface EngineGrammar {
  /** Synchronous checks of a format; throws GrammarError. */
  prepare(format: GrammarFormat): PreparedFormat;
  /** A matcher for the format, compiled (or cached); rejects with GrammarError. */
  matcher(format: PreparedFormat): Promise<SequenceGrammar>;
}

/** What the engine needs of a decoder session (DecoderSession implements it). */
export interface EngineDecoder {
  readonly config: { readonly vocabSize: number; readonly maxPositions: number };
  prefillBatch(
    prompts: readonly (readonly number[])[],
    options?: ForwardOptions,
    onStats?: (stats: ForwardStats) => void,
  ): Promise<PrefillResult[]>;
  decodeStep(
    sequences: readonly DecodeItem[],
    onStats?: (stats: ForwardStats) => void,
    options?: ForwardOptions,
  ): Promise<Float32Array[]>;
}

/** What the engine needs of a tokenizer (ChatTokenizer implements it). */
export interface EngineTokenizer {
  readonly stopTokenIds: ReadonlySet<number>;
  createDetokenizer(contextIds?: readonly number[]): IncrementalDetokenizer;
  /** Token strings and bytes, needed for logprobs. */
  readonly vocabulary?: TokenVocabulary;
}

export interface EngineStats {
  active: number;
  waiting: number;
  prefillRuns: number;
  decodeRuns: number;
  /** Completion tokens sampled, all sequences. */
  generatedTokens: number;
}

interface Sequence {
  id: string;
  /** Its index among the request's `n` samples. */
  choice: number;
  /** Every sample of the request, this one included: they are admitted and prefilled together. */
  group: Sequence[];
  callbacks: GenerationCallbacks;
  promptIds: readonly number[];
  /** Most completion tokens: maxTokens, capped by the room left in the context. */
  limit: number;
  sampler: Sampler;
  /** Distinct ids of prompt + completion, for the repetition penalty. */
  seen: Set<number>;
  stops: string[];
  /** The checked response format, when the output is constrained. */
  format?: PreparedFormat;
  /** Its matcher, from admission until the sequence ends. */
  grammar?: SequenceGrammar;
  /** How many alternatives to report per token; undefined = no logprobs. */
  topLogprobs?: number;
  /** How many alternatives to report per prompt token; undefined = no prompt logprobs. */
  promptLogprobs?: number;
  cache?: KvCache;
  /** Last sampled token, fed at the next decode step. */
  nextToken: number;
  generated: number;
  detokenizer: IncrementalDetokenizer;
  /** Decoded text so far; its first `emitted` characters have been delivered. */
  text: string;
  emitted: number;
  cancelRequested: boolean;
  done: boolean;
  submittedAt: number;
  startedAt?: number;
  firstTokenAt?: number;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class GenerationEngine {
  readonly maxBatch: number;
  readonly maxPrefillTokens: number;
  readonly maxContextTokens: number;

  /** Requests waiting for slots, each as the group of its samples. */
  private readonly waiting: Sequence[][] = [];
  private active: Sequence[] = [];
  private readonly byId = new Map<string, Sequence[]>();
  private loop: Promise<void> | undefined;
  private counters = { prefillRuns: 0, decodeRuns: 0, generatedTokens: 0 };

  constructor(
    private readonly decoder: EngineDecoder,
    private readonly tokenizer: EngineTokenizer,
    private readonly options: GenerationEngineOptions = {},
  ) {
    const positive = (value: number | undefined, fallback: number, name: string): number => {
      const v = value ?? fallback;
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
      return v;
    };
    this.maxBatch = positive(options.maxBatch, 8, 'maxBatch');
    this.maxPrefillTokens = positive(options.maxPrefillTokens, 4096, 'maxPrefillTokens');
    this.maxContextTokens = Math.min(
      positive(options.maxContextTokens, decoder.config.maxPositions, 'maxContextTokens'),
      decoder.config.maxPositions,
    );
  }

  get stats(): EngineStats {
    return { active: this.active.length, waiting: this.waitingSequences(), ...this.counters };
  }

  /**
   * Queues a request; it starts at the next step boundary with a free slot. Throws on an invalid
   * request (RangeError; GrammarError for a malformed response format) or an id already in use;
   * nothing is queued then. A response format that is well formed but cannot be compiled fails
   * the sequence later, through onError, with a GrammarError.
   */
  submit(request: GenerationRequest, callbacks: GenerationCallbacks): void {
    const { id, promptIds } = request;
    if (typeof id !== 'string' || id.length === 0) throw new RangeError('a generation request needs an id');
    if (this.byId.has(id)) throw new RangeError(`generation ${id} is already running`);
    if (!Array.isArray(promptIds) || promptIds.length === 0) throw new RangeError('promptIds must be a non-empty array');
    const vocab = this.decoder.config.vocabSize;
    for (const t of promptIds) {
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new RangeError(`prompt token id ${t} is outside the vocabulary`);
    }
    if (promptIds.length >= this.maxContextTokens) {
      throw new RangeError(
        `the prompt has ${promptIds.length} tokens; the context holds ${this.maxContextTokens}, which leaves no room for a reply`,
      );
    }
    // 0: the prefill alone, for the prompt's logprobs (nothing is sampled).
    const leastTokens = request.promptLogprobs === undefined ? 1 : 0;
    if (request.maxTokens !== undefined && !(Number.isInteger(request.maxTokens) && request.maxTokens >= leastTokens)) {
      throw new RangeError(`maxTokens must be an integer from ${leastTokens}${leastTokens === 0 ? ' (with promptLogprobs)' : ''}, got ${request.maxTokens}`);
    }
    const stop = request.stop ?? [];
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) throw new RangeError('stop must be a list of strings');
    const samplingParams = {
      temperature: request.temperature,
      topP: request.topP,
      topK: request.topK,
      repetitionPenalty: request.repetitionPenalty,
      seed: request.seed,
    };
    validateSamplingParams(samplingParams);
    if (request.topLogprobs !== undefined && !(Number.isInteger(request.topLogprobs) && request.topLogprobs >= 0 && request.topLogprobs <= 20)) {
      throw new RangeError(`topLogprobs must be an integer from 0 to 20, got ${request.topLogprobs}`);
    }
    if ((request.topLogprobs ?? 0) > 0 && request.logprobs !== true) throw new RangeError('topLogprobs needs logprobs: true');
    if (request.logprobs === true && this.tokenizer.vocabulary === undefined) throw new RangeError('logprobs need a tokenizer with a vocabulary');
    if (request.promptLogprobs !== undefined) {
      if (!(Number.isInteger(request.promptLogprobs) && request.promptLogprobs >= 0 && request.promptLogprobs <= 20)) {
        throw new RangeError(`promptLogprobs must be an integer from 0 to 20, got ${request.promptLogprobs}`);
      }
      if (this.tokenizer.vocabulary === undefined) throw new RangeError('prompt logprobs need a tokenizer with a vocabulary');
    }
    const n = request.n ?? 1;
    // The samples are admitted together, so they must fit in one batch.
    if (!Number.isInteger(n) || n < 1 || n > this.maxBatch) throw new RangeError(`n must be an integer from 1 to ${this.maxBatch} (this engine's batch), got ${n}`);
    // Each Sampler checks its own seed (seed + i must stay a safe integer) before anything is queued.
    const seeds = Array.from({ length: n }, (_, i) => (request.seed === undefined ? undefined : request.seed + i));
    let format: PreparedFormat | undefined;
    if (needsGrammar(request.responseFormat)) {
      if (this.options.grammar === undefined) throw new RangeError(`response format ${request.responseFormat.type} needs an engine with grammar support`);
      // Throws GrammarError for a malformed format, before anything is queued.
      format = this.options.grammar.prepare(request.responseFormat);
    }

    const room = this.maxContextTokens - promptIds.length;
    const prompt = [...promptIds];
    const group: Sequence[] = [];
    for (let choice = 0; choice < n; choice++) {
      group.push({
        id,
        choice,
        group,
        callbacks,
        promptIds: prompt,
        limit: Math.min(request.maxTokens ?? room, room),
        sampler: new Sampler({ ...samplingParams, seed: seeds[choice] }),
        seen: new Set(promptIds),
        stops: stop.filter((s) => s.length > 0),
        ...(format === undefined ? {} : { format }),
        ...(request.logprobs === true ? { topLogprobs: request.topLogprobs ?? 0 } : {}),
        ...(request.promptLogprobs === undefined ? {} : { promptLogprobs: request.promptLogprobs }),
        nextToken: -1,
        generated: 0,
        detokenizer: this.tokenizer.createDetokenizer(promptIds),
        text: '',
        emitted: 0,
        cancelRequested: false,
        done: false,
        submittedAt: performance.now(),
      });
    }
    this.byId.set(id, group);
    this.waiting.push(group);
    this.loop ??= this.run().finally(() => {
      this.loop = undefined;
    });
  }

  /**
   * Cancels a waiting or running request at the next step boundary (no token of it is delivered
   * after this call returns); its onDone gets finishReason 'cancelled'. False for an unknown id.
   */
  cancel(id: string): boolean {
    const group = this.byId.get(id);
    if (group === undefined) return false;
    for (const seq of group) seq.cancelRequested = true;
    return true;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Resolves when nothing is active or waiting. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** Cancels everything and waits for the loop to stop. */
  async close(): Promise<void> {
    for (const group of this.byId.values()) for (const seq of group) seq.cancelRequested = true;
    await this.idle();
  }

  // -------------------------------------------------------------------------------------------

  private async run(): Promise<void> {
    try {
      // Start on the next turn, so requests submitted together are prefilled together.
      await yieldToEventLoop();
      while (this.active.length > 0 || this.waiting.length > 0) {
        this.reapCancelled();
        if (this.active.length < this.maxBatch && this.waiting.length > 0) await this.admit();
        if (this.active.length > 0) await this.decodeStep();
        await yieldToEventLoop();
      }
    } catch (err) {
      // A bug, not a session error (those fail their batch): fail everything rather than hang.
      const error = new Error(`generation engine stopped: ${asError(err).message}`);
      for (const seq of [...this.byId.values()].flat()) this.fail(seq, error);
      this.active = [];
      this.waiting.length = 0;
    }
  }

  private reapCancelled(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const group = this.waiting[i]!;
      // A request is cancelled as a whole, so its first sample speaks for the group.
      if (group[0]!.cancelRequested) {
        this.waiting.splice(i, 1);
        for (const seq of group) this.finish(seq, 'cancelled');
      }
    }
    for (const seq of this.active) if (seq.cancelRequested) this.finish(seq, 'cancelled');
    this.active = this.active.filter((s) => !s.done);
  }

  private waitingSequences(): number {
    return this.waiting.reduce((count, group) => count + group.length, 0);
  }

  /**
   * Moves waiting requests into the free slots, all samples of a request at once: prefills them
   * (one row per request; prompts of similar length share a run, see groupByLength) and samples
   * their first tokens; those not finished join the batch.
   */
  private async admit(): Promise<void> {
    const admitted: Sequence[][] = [];
    let slots = this.active.length;
    let tokens = 0;
    while (this.waiting.length > 0 && slots + this.waiting[0]!.length <= this.maxBatch) {
      const next = this.waiting[0]!;
      if (admitted.length > 0 && tokens + next[0]!.promptIds.length > this.maxPrefillTokens) break;
      this.waiting.shift();
      admitted.push(next);
      slots += next.length;
      tokens += next[0]!.promptIds.length;
    }
    const ready: Sequence[][] = [];
    for (const group of admitted) {
      const live: Sequence[] = [];
      for (const seq of group) if (await this.attachGrammar(seq)) live.push(seq);
      if (live.length > 0) ready.push(live);
    }
    for (const run of groupByLength(ready)) await this.prefill(run);
  }

  /** Gives a constrained sequence its matcher (compiling the grammar unless cached); false if that failed. */
  private async attachGrammar(seq: Sequence): Promise<boolean> {
    if (seq.format === undefined) return true;
    try {
      seq.grammar = await this.options.grammar!.matcher(seq.format);
      return true;
    } catch (err) {
      this.fail(seq, asError(err));
      return false;
    }
  }

  /**
   * The grammar bitmasks of a batch (undefined for unconstrained sequences), fetched before
   * sampling. One after another: the work is synchronous WebAssembly behind a promise, so running
   * them "in parallel" only interleaves them.
   */
  private async masksFor(batch: readonly Sequence[]): Promise<(Int32Array | undefined)[] | undefined> {
    if (!batch.some((s) => s.grammar !== undefined && !s.done)) return undefined;
    const masks: (Int32Array | undefined)[] = [];
    for (const seq of batch) {
      let mask: Int32Array | undefined;
      if (seq.grammar !== undefined && !seq.done) {
        try {
          mask = await seq.grammar.nextTokenBitmask();
        } catch (err) {
          // One matcher's failure ends its own sequence, not the batch.
          this.fail(seq, new Error(`the grammar failed: ${asError(err).message}`));
        }
      }
      masks.push(mask);
    }
    return masks;
  }

  /**
   * Samples a sequence's next token from its logits (masked by its grammar), advances the grammar
   * and takes the token; false when the sequence does not go on.
   */
  private sampleNext(seq: Sequence, logits: Float32Array, mask: Int32Array | undefined): boolean {
    let token: number;
    let logprobs: GeneratedTokenLogprobs | undefined;
    try {
      token = seq.sampler.sample(logits, seq.seen, mask);
      if (seq.topLogprobs !== undefined) logprobs = this.logprobs(logits, token, seq.topLogprobs, mask);
    } catch (err) {
      this.fail(seq, new Error(`sampling failed: ${asError(err).message}`));
      return false;
    }
    if (seq.grammar !== undefined) {
      let accepted: boolean;
      try {
        accepted = seq.grammar.accept(token);
      } catch (err) {
        this.fail(seq, new Error(`the grammar failed: ${asError(err).message}`));
        return false;
      }
      if (!accepted) {
        // Cannot happen unless mask and matcher disagree: fail loudly rather than emit invalid output.
        this.fail(seq, new Error(`the grammar rejected token ${token}, which its own mask allowed`));
        return false;
      }
    }
    return this.accept(seq, token, logprobs);
  }

  private logprobs(logits: Float32Array, token: number, top: number, mask: Int32Array | undefined): GeneratedTokenLogprobs {
    const vocabulary = this.tokenizer.vocabulary!;
    const entry = (id: number, logprob: number): TokenLogprob => ({
      id,
      token: vocabulary.tokenText(id),
      bytes: Array.from(vocabulary.tokenBytes(id)),
      logprob,
    });
    const computed = computeLogprobs(logits, token, top, mask);
    return { ...entry(token, computed.logprob), topLogprobs: computed.top.map((t) => entry(t.id, t.logprob)) };
  }

  /**
   * Each prompt token's log-probability under the logits of the position before it (`allLogits`
   * holds one vocabulary-sized row per prompt position), with no grammar mask: see PromptTokenLogprobs.
   */
  private promptLogprobs(promptIds: readonly number[], allLogits: Float32Array, top: number): PromptTokenLogprobs[] {
    const vocabulary = this.tokenizer.vocabulary!;
    const vocab = this.decoder.config.vocabSize;
    const entry = (id: number, logprob: number): TokenLogprob => ({ id, token: vocabulary.tokenText(id), bytes: Array.from(vocabulary.tokenBytes(id)), logprob });
    return promptIds.map((id, i) => {
      if (i === 0) return { ...entry(id, 0), logprob: null, topLogprobs: null };
      const computed = computeLogprobs(allLogits.subarray((i - 1) * vocab, i * vocab), id, top);
      return { ...entry(id, computed.logprob), topLogprobs: computed.top.map((t) => entry(t.id, t.logprob)) };
    });
  }

  /** Prefills one row per request (its samples share it) in one session run. */
  private async prefill(requests: Sequence[][]): Promise<void> {
    const started = performance.now();
    const batch = requests.flat();
    for (const seq of batch) seq.startedAt = started;
    let stats: ForwardStats | undefined;
    let results: PrefillResult[];
    // Prompt logprobs need every position's logits; the run keeps them only when one asks.
    const allLogits = requests.some((samples) => samples[0]!.promptLogprobs !== undefined);
    try {
      results = await this.decoder.prefillBatch(
        requests.map((samples) => samples[0]!.promptIds),
        allLogits ? { allLogits } : {},
        (s) => void (stats = s),
      );
    } catch (err) {
      for (const seq of batch) this.fail(seq, asError(err));
      return;
    }
    this.counters.prefillRuns++;
    const masks = await this.masksFor(batch);
    let at = 0;
    requests.forEach((samples, row) => {
      const { cache, logits: rowLogits } = results[row]!;
      const vocab = this.decoder.config.vocabSize;
      // With allLogits, the next token is sampled from the last position's row.
      const logits = allLogits ? rowLogits.subarray(rowLogits.length - vocab) : rowLogits;
      const first = samples[0]!;
      if (first.promptLogprobs !== undefined && !first.done) {
        try {
          first.callbacks.onPromptLogprobs?.(this.promptLogprobs(first.promptIds, rowLogits, first.promptLogprobs));
        } catch (err) {
          for (const seq of samples) this.fail(seq, new Error(`onPromptLogprobs of generation ${first.id} threw: ${asError(err).message}`));
        }
      }
      samples.forEach((seq, k) => {
        const mask = masks?.[at++];
        if (seq.done) return;
        // The first sample takes the prefill's cache, the others copies; `logits` is only read.
        seq.cache = k === 0 ? cache : cache.clone();
        if (seq.cancelRequested) return this.finish(seq, 'cancelled');
        if (seq.limit === 0) return this.finish(seq, 'length');
        if (this.sampleNext(seq, logits, mask)) this.active.push(seq);
      });
    });
    const tokens = requests.reduce((n, samples) => n + samples[0]!.promptIds.length, 0);
    this.report('prefill', requests.length, tokens, stats, started);
  }

  /** One batched decode run for every active sequence. */
  private async decodeStep(): Promise<void> {
    const batch = this.active;
    const started = performance.now();
    let stats: ForwardStats | undefined;
    let logits: Float32Array[];
    try {
      // Reused buffers: the logits are sampled before the next run overwrites them.
      logits = await this.decoder.decodeStep(
        batch.map((s) => ({ cache: s.cache!, tokenId: s.nextToken })),
        (s) => void (stats = s),
        { reuseBuffers: true },
      );
    } catch (err) {
      for (const seq of batch) this.fail(seq, asError(err));
      this.active = this.active.filter((s) => !s.done);
      return;
    }
    this.counters.decodeRuns++;
    // Only microtasks run while the masks are fetched: no other session run can overwrite the
    // reused logits buffers before they are sampled.
    const masks = await this.masksFor(batch);
    batch.forEach((seq, i) => {
      if (seq.done) return;
      if (seq.cancelRequested) return this.finish(seq, 'cancelled');
      this.sampleNext(seq, logits[i]!, masks?.[i]);
    });
    this.active = this.active.filter((s) => !s.done);
    this.report('decode', batch.length, batch.length, stats, started);
  }

  /** Takes a sampled token: delivers its text, decides whether the sequence goes on. */
  private accept(seq: Sequence, token: number, logprobs?: GeneratedTokenLogprobs): boolean {
    const index = seq.generated++;
    this.counters.generatedTokens++;
    seq.firstTokenAt ??= performance.now();
    seq.seen.add(token);

    if (this.tokenizer.stopTokenIds.has(token)) {
      const { delta } = this.settle(seq);
      return this.deliver(seq, index, delta, token, { choice: seq.choice, endOfSequence: true, logprobs }) && this.finish(seq, 'stop');
    }
    const event: TokenEvent = { choice: seq.choice, endOfSequence: false, logprobs };

    seq.text += seq.detokenizer.push(token);
    const stopAt = this.findStop(seq);
    if (stopAt >= 0) {
      const delta = seq.text.slice(seq.emitted, stopAt);
      seq.text = seq.text.slice(0, stopAt);
      seq.emitted = stopAt;
      return this.deliver(seq, index, delta, token, event) && this.finish(seq, 'stop');
    }

    // A grammar that ends without a stop token (none of ours do, but xgrammar can) is complete too.
    if (seq.grammar?.terminated === true) {
      const { delta } = this.settle(seq);
      return this.deliver(seq, index, delta, token, event) && this.finish(seq, 'stop');
    }

    if (seq.generated >= seq.limit) {
      const { delta, stopped } = this.settle(seq);
      return this.deliver(seq, index, delta, token, event) && this.finish(seq, stopped ? 'stop' : 'length');
    }

    // Hold back the longest tail that could still grow into a stop string.
    let hold = 0;
    const pending = seq.text.length - seq.emitted;
    for (const stop of seq.stops) {
      for (let n = Math.min(stop.length - 1, pending); n > hold; n--) {
        if (seq.text.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    const end = seq.text.length - hold;
    const delta = seq.text.slice(seq.emitted, end);
    seq.emitted = end;
    if (!this.deliver(seq, index, delta, token, event)) return false;
    seq.nextToken = token;
    return true;
  }

  /** End of the reply: flushes the detokenizer and releases held-back text, up to any stop string. */
  private settle(seq: Sequence): { delta: string; stopped: boolean } {
    seq.text += seq.detokenizer.flush();
    const stopAt = this.findStop(seq);
    const end = stopAt >= 0 ? stopAt : seq.text.length;
    const delta = seq.text.slice(seq.emitted, end);
    seq.text = seq.text.slice(0, end);
    seq.emitted = end;
    return { delta, stopped: stopAt >= 0 };
  }

  /**
   * Earliest stop string in the undelivered text. Delivered text never holds the start of one:
   * a tail that could begin a stop string is always held back, and text only grows at the end.
   */
  private findStop(seq: Sequence): number {
    let first = -1;
    for (const stop of seq.stops) {
      const at = seq.text.indexOf(stop, seq.emitted);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    return first;
  }

  private deliver(seq: Sequence, index: number, text: string, token: number, event: TokenEvent): boolean {
    try {
      seq.callbacks.onToken(index, text, token, event);
      return true;
    } catch (err) {
      this.fail(seq, new Error(`onToken of generation ${seq.id} threw: ${asError(err).message}`));
      return false;
    }
  }

  /** Always returns false (the sequence does not go on). */
  private finish(seq: Sequence, finishReason: FinishReason): false {
    if (seq.done) return false;
    this.markDone(seq);
    const now = performance.now();
    const result: GenerationResult = {
      choice: seq.choice,
      finishReason,
      promptTokens: seq.promptIds.length,
      completionTokens: seq.generated,
      text: seq.text.slice(0, seq.emitted),
      timings: {
        queuedMs: (seq.startedAt ?? now) - seq.submittedAt,
        ...(seq.firstTokenAt === undefined ? {} : { firstTokenMs: seq.firstTokenAt - seq.submittedAt }),
        totalMs: now - seq.submittedAt,
      },
    };
    this.release(seq);
    try {
      seq.callbacks.onDone(result);
    } catch (err) {
      this.reportError(seq, new Error(`onDone of generation ${seq.id} threw: ${asError(err).message}`));
    }
    return false;
  }

  private fail(seq: Sequence, error: Error): void {
    if (seq.done) return;
    this.markDone(seq);
    this.release(seq);
    this.reportError(seq, error);
  }

  /** The request's id is free again once its last sample is done. */
  private markDone(seq: Sequence): void {
    seq.done = true;
    if (seq.group.every((s) => s.done)) this.byId.delete(seq.id);
  }

  /** Drops what a finished sequence holds: its KV cache and its grammar matcher. */
  private release(seq: Sequence): void {
    seq.cache = undefined;
    try {
      seq.grammar?.dispose();
    } catch (err) {
      // The sequence's own outcome is already decided; a leak is all that is left to report.
      console.error(`generation ${seq.id}: disposing its grammar failed: ${asError(err).message}`);
    }
    seq.grammar = undefined;
  }

  private reportError(seq: Sequence, error: Error): void {
    try {
      if (seq.callbacks.onError) seq.callbacks.onError(error);
      else if (this.options.onError) this.options.onError(error, seq.id);
      else console.error(`generation ${seq.id}: ${error.message}`);
    } catch (err) {
      console.error(`generation ${seq.id}: error handler threw: ${asError(err).message}`);
    }
  }

  private report(kind: StepReport['kind'], batchSize: number, tokens: number, stats: ForwardStats | undefined, started: number): void {
    const onStep = this.options.onStep;
    if (!onStep) return;
    try {
      onStep({
        kind,
        batchSize,
        tokens,
        pastLength: stats?.pastLength ?? 0,
        runMs: stats?.runMs ?? 0,
        stepMs: performance.now() - started,
        active: this.active.length,
        waiting: this.waitingSequences(),
      });
    } catch (err) {
      console.error(`generation engine: onStep threw: ${asError(err).message}`);
    }
  }
}

/**
 * Most padding a shared prefill run may add, as a fraction of its real tokens. Prefill cost is
 * proportional to padded tokens (and exports compute logits for every position), so prompts of
 * very different lengths are cheaper in separate runs than padded to the longest.
 */
const PREFILL_PADDING_RATIO = 0.25;

/** Splits requests (each the samples of one prompt) into runs of similar prompt length (shortest first). */
function groupByLength(requests: readonly Sequence[][]): Sequence[][][] {
  const promptLength = (samples: Sequence[]) => samples[0]!.promptIds.length;
  const sorted = [...requests].sort((a, b) => promptLength(a) - promptLength(b));
  const groups: Sequence[][][] = [];
  let group: Sequence[][] = [];
  let real = 0;
  for (const seq of sorted) {
    const length = promptLength(seq); // the longest so far: the group pads to it
    if (group.length > 0 && length * (group.length + 1) > (real + length) * (1 + PREFILL_PADDING_RATIO)) {
      groups.push(group);
      group = [];
      real = 0;
    }
    group.push(seq);
    real += length;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
