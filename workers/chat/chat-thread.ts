import { parentPort, workerData } from 'node:worker_threads';
import { planChat, splitReply, type ChatPlan } from './chat-request.js';
import { ChatTokenizer } from './chat-tokenizer.js';
import type { ChatThreadErrorCode, ChatThreadReply, ChatThreadRequest } from './chat-thread.protocol.js';
import { DecoderSession, type DecoderSessionOptions } from './decoder-session.js';
import type { ChatTokenLogprob, JobPayload, PromptTokenLogprob } from '../../shared/jobs/job-catalog.js';
import type { ChoiceOutcome } from './chat-backend.js';
import { GenerationEngine, type GeneratedTokenLogprobs, type GenerationResult } from './generation-engine.js';
import { GrammarError } from './grammar/grammar-error.js';
import { GrammarRuntime } from './grammar/grammar-runtime.js';

/**
 * A chat model's thread: tokenizer, chat template, ONNX decoder session and the
 * continuous-batching engine all live here, because onnxruntime's run() blocks the thread it runs
 * on. The worker's main thread sends `generate` and `cancel` and relays the tokens it gets back.
 */
interface ChatThreadData {
  dir: string;
  options: DecoderSessionOptions;
  maxBatch: number;
}

const port = parentPort;
if (!port) throw new Error('chat-thread.ts must run inside a worker thread');
const data = workerData as ChatThreadData;
const post = (msg: ChatThreadReply) => port.postMessage(msg);

try {
  const started = performance.now();
  const [tokenizer, session] = await Promise.all([ChatTokenizer.load(data.dir), DecoderSession.open(data.dir, data.options)]);
  // Compiles lazily: xgrammar loads on the first constrained request, not at boot.
  const grammar = new GrammarRuntime({ vocabulary: tokenizer.vocabulary, vocabSize: session.config.vocabSize, stopTokenIds: tokenizer.stopTokenIds });
  const engine = new GenerationEngine(session, tokenizer, {
    maxBatch: data.maxBatch,
    grammar,
    onStep: (r) => {
      if (r.kind === 'decode') post({ type: 'step', batch: r.batchSize, ms: r.stepMs });
    },
  });
  post({ type: 'ready', provider: session.provider, contextLength: engine.maxContextTokens, loadMs: performance.now() - started });

  port.on('message', (msg: ChatThreadRequest) => {
    switch (msg.type) {
      case 'generate':
        generate(msg.id, msg.payload);
        break;
      case 'tokenize':
        tokenize(msg.id, msg.payload);
        break;
      case 'cancel':
        engine.cancel(msg.id);
        break;
      case 'close':
        void engine
          .close()
          .then(() => grammar.close())
          .then(() => session.release())
          .finally(() => port.close());
        break;
    }
  });

  /** A tokenize job: the same tokenizer and template as generation, so the counts match what generation sees. */
  function tokenize(id: string, payload: JobPayload<'tokenize'>): void {
    const max_model_len = engine.maxContextTokens;
    try {
      if (payload.tokens !== undefined) {
        const outside = payload.tokens.find((t) => t >= session.config.vocabSize);
        if (outside !== undefined) {
          return post({ type: 'error', id, code: 'invalid_tokenizer_input', message: `token id ${outside} is outside the vocabulary of ${session.config.vocabSize} ids` });
        }
        return post({ type: 'tokenized', id, result: { prompt: tokenizer.decode(payload.tokens, { skipSpecialTokens: false }), max_model_len } });
      }
      const tokens =
        payload.messages !== undefined
          ? tokenizer.applyChatTemplate(payload.messages, { addGenerationPrompt: payload.add_generation_prompt ?? true })
          : tokenizer.encode(payload.prompt ?? '', { addSpecialTokens: payload.add_special_tokens ?? true });
      post({ type: 'tokenized', id, result: { tokens, count: tokens.length, max_model_len } });
    } catch (err) {
      post({ type: 'error', id, code: 'generation_failed', message: (err as Error).message });
    }
  }

  function generate(id: string, payload: Extract<ChatThreadRequest, { type: 'generate' }>['payload']): void {
    let plan: ChatPlan;
    let promptIds: number[];
    try {
      plan = planChat(payload);
    } catch (err) {
      return post({ type: 'error', id, code: 'generation_failed', message: (err as Error).message });
    }
    try {
      // A legacy completion's raw prompt skips the chat template.
      promptIds = payload.prompt !== undefined ? tokenizer.encode(payload.prompt, { addSpecialTokens: true }) : tokenizer.applyChatTemplate(payload.messages, plan.template);
    } catch (err) {
      return post({ type: 'error', id, code: 'generation_failed', message: `${payload.prompt !== undefined ? 'tokenizing the prompt' : 'chat template'} failed: ${(err as Error).message}` });
    }
    // The reply needs at least one position after the prompt.
    if (promptIds.length >= engine.maxContextTokens) {
      return post({
        type: 'error',
        id,
        code: 'context_length_exceeded',
        message: `The prompt is ${promptIds.length} tokens; this model's context holds ${engine.maxContextTokens}, including the reply.`,
      });
    }
    const n = payload.n ?? 1;
    const wantLogprobs = payload.logprobs === true;
    /** Per choice: logprobs of tokens whose text has not gone out yet, and all of them. */
    const unsent: ChatTokenLogprob[][] = Array.from({ length: n }, () => []);
    const all: ChatTokenLogprob[][] = Array.from({ length: n }, () => []);
    const results: GenerationResult[] = [];
    let promptLogprobs: PromptTokenLogprob[] | undefined;
    let finished = 0;
    let failed = false;
    const sendToken = (choice: number, text: string) => {
      const logprobs = unsent[choice]!;
      unsent[choice] = [];
      post({ type: 'token', id, text, ...(choice > 0 ? { choice } : {}), ...(wantLogprobs ? { logprobs } : {}) });
    };
    try {
      engine.submit(
        {
          id,
          promptIds,
          maxTokens: payload.max_tokens,
          temperature: payload.temperature,
          topP: payload.top_p,
          topK: payload.top_k,
          repetitionPenalty: payload.repetition_penalty,
          ...(payload.seed === undefined ? {} : { seed: payload.seed }),
          stop: payload.stop,
          logprobs: wantLogprobs,
          ...(payload.top_logprobs === undefined ? {} : { topLogprobs: payload.top_logprobs }),
          n,
          ...(payload.prompt_logprobs === undefined ? {} : { promptLogprobs: payload.prompt_logprobs }),
          ...(plan.responseFormat ? { responseFormat: plan.responseFormat } : {}),
        },
        {
          // Tokens whose text is not final yet (half a UTF-8 character, a possible stop string)
          // carry '': they are not sent, and their logprobs travel with the next text.
          onToken: (_index, text, _tokenId, event) => {
            if (failed) return;
            // OpenAI's logprobs cover the content: the end-of-sequence token is left out.
            if (event.logprobs !== undefined && !event.endOfSequence) {
              const entry = openAiLogprob(event.logprobs);
              unsent[event.choice]!.push(entry);
              all[event.choice]!.push(entry);
            }
            if (text) sendToken(event.choice, text);
          },
          // Before any token: the stream's first entry, so a client can echo the prompt with them.
          onPromptLogprobs: (entries) => {
            if (failed) return;
            promptLogprobs = entries.map((t) => ({
              token: t.token,
              logprob: t.logprob,
              bytes: t.bytes,
              top_logprobs: t.topLogprobs?.map((alt) => ({ token: alt.token, logprob: alt.logprob, bytes: alt.bytes })) ?? null,
            }));
            post({ type: 'token', id, text: '', prompt_logprobs: promptLogprobs });
          },
          onDone: (r) => {
            if (failed) return;
            // Logprobs of tokens that never produced text (the start of a stop string) still go out.
            if (unsent[r.choice]!.length > 0) sendToken(r.choice, '');
            results[r.choice] = r;
            if (++finished < n) return;
            const choices = results.map(
              (c): ChoiceOutcome => ({ text: c.text, finishReason: c.finishReason, completionTokens: c.completionTokens, ...(wantLogprobs ? { logprobs: all[c.choice]! } : {}) }),
            );
            const first = choices[0]!;
            // Tool calls come out of the reply's text (n > 1 with tools is refused by the API).
            const { content, toolCalls } = splitReply(plan, id, first.text);
            // A reply cut by max_tokens stays `length`, even if it made calls before the cut.
            const finishReason = toolCalls && first.finishReason === 'stop' ? 'tool_calls' : first.finishReason;
            post({
              type: 'done',
              id,
              text: content,
              finishReason,
              ...(toolCalls ? { toolCalls } : {}),
              promptTokens: r.promptTokens,
              completionTokens: choices.reduce((sum, c) => sum + c.completionTokens, 0),
              ...(first.logprobs === undefined ? {} : { logprobs: first.logprobs }),
              ...(n > 1 ? { choices } : {}),
              ...(promptLogprobs === undefined ? {} : { promptLogprobs }),
            });
          },
          // One failed choice fails the request: the others stop too.
          onError: (err) => {
            if (failed) return;
            failed = true;
            engine.cancel(id);
            post({ type: 'error', id, ...threadError(err) });
          },
        },
      );
    } catch (err) {
      post({ type: 'error', id, ...threadError(err as Error) });
    }
  }
} catch (err) {
  post({ type: 'load-error', message: (err as Error).message });
}

/** The engine's logprobs of a token in OpenAI's shape (`choices[i].logprobs.content` entries). */
function openAiLogprob(t: GeneratedTokenLogprobs): ChatTokenLogprob {
  return {
    token: t.token,
    logprob: t.logprob,
    bytes: t.bytes,
    top_logprobs: t.topLogprobs.map((alt) => ({ token: alt.token, logprob: alt.logprob, bytes: alt.bytes })),
  };
}

/** A generation's failure as the thread reports it: grammar failures keep their code, named for the field at fault. */
function threadError(err: Error): { code: ChatThreadErrorCode; message: string } {
  if (!(err instanceof GrammarError)) return { code: 'generation_failed', message: err.message };
  if (err.code === 'grammar_unavailable') return { code: err.code, message: err.message };
  return { code: err.param === 'tools' ? 'invalid_function_parameters' : err.code, message: err.message };
}
