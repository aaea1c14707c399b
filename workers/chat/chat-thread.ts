import { parentPort, workerData } from 'node:worker_threads';
import { planChat, splitReply, type ChatPlan } from './chat-request.js';
import { ChatTokenizer } from './chat-tokenizer.js';
import type { ChatThreadErrorCode, ChatThreadReply, ChatThreadRequest } from './chat-thread.protocol.js';
import { DecoderSession, type DecoderSessionOptions } from './decoder-session.js';
import { GenerationEngine } from './generation-engine.js';
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

  function generate(id: string, payload: Extract<ChatThreadRequest, { type: 'generate' }>['payload']): void {
    let plan: ChatPlan;
    let promptIds: number[];
    try {
      plan = planChat(payload);
    } catch (err) {
      return post({ type: 'error', id, code: 'generation_failed', message: (err as Error).message });
    }
    try {
      promptIds = tokenizer.applyChatTemplate(payload.messages, plan.template);
    } catch (err) {
      return post({ type: 'error', id, code: 'generation_failed', message: `chat template failed: ${(err as Error).message}` });
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
          ...(plan.responseFormat ? { responseFormat: plan.responseFormat } : {}),
        },
        {
          // Tokens whose text is not final yet (half a UTF-8 character, a possible stop string) carry ''.
          onToken: (_index, text) => {
            if (text) post({ type: 'token', id, text });
          },
          onDone: (r) => {
            const { content, toolCalls } = splitReply(plan, id, r.text);
            // A reply cut by max_tokens stays `length`, even if it made calls before the cut.
            const finishReason = toolCalls && r.finishReason === 'stop' ? 'tool_calls' : r.finishReason;
            post({ type: 'done', id, text: content, finishReason, promptTokens: r.promptTokens, completionTokens: r.completionTokens, ...(toolCalls ? { toolCalls } : {}) });
          },
          onError: (err) => post({ type: 'error', id, ...threadError(err) }),
        },
      );
    } catch (err) {
      post({ type: 'error', id, ...threadError(err as Error) });
    }
  }
} catch (err) {
  post({ type: 'load-error', message: (err as Error).message });
}

/** A generation's failure as the thread reports it: grammar failures keep their code, named for the field at fault. */
function threadError(err: Error): { code: ChatThreadErrorCode; message: string } {
  if (!(err instanceof GrammarError)) return { code: 'generation_failed', message: err.message };
  if (err.code === 'grammar_unavailable') return { code: err.code, message: err.message };
  return { code: err.param === 'tools' ? 'invalid_function_parameters' : err.code, message: err.message };
}
