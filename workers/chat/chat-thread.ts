import { parentPort, workerData } from 'node:worker_threads';
import { ChatTokenizer } from './chat-tokenizer.js';
import type { ChatThreadReply, ChatThreadRequest } from './chat-thread.protocol.js';
import { DecoderSession, type DecoderSessionOptions } from './decoder-session.js';
import { GenerationEngine } from './generation-engine.js';

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
  const engine = new GenerationEngine(session, tokenizer, {
    maxBatch: data.maxBatch,
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
          .then(() => session.release())
          .finally(() => port.close());
        break;
    }
  });

  function generate(id: string, payload: Extract<ChatThreadRequest, { type: 'generate' }>['payload']): void {
    let promptIds: number[];
    try {
      promptIds = tokenizer.applyChatTemplate(payload.messages, { addGenerationPrompt: true });
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
        },
        {
          // Tokens whose text is not final yet (half a UTF-8 character, a possible stop string) carry ''.
          onToken: (_index, text) => {
            if (text) post({ type: 'token', id, text });
          },
          onDone: (r) =>
            post({ type: 'done', id, text: r.text, finishReason: r.finishReason, promptTokens: r.promptTokens, completionTokens: r.completionTokens }),
          onError: (err) => post({ type: 'error', id, code: 'generation_failed', message: err.message }),
        },
      );
    } catch (err) {
      post({ type: 'error', id, code: 'generation_failed', message: (err as Error).message });
    }
  }
} catch (err) {
  post({ type: 'load-error', message: (err as Error).message });
}
