import type { Worker } from 'node:worker_threads';
import type { JobResult } from '../../shared/jobs/job-catalog.js';
import type { Logger } from '../../shared/logger.js';
import type { TokenExtras } from '../../shared/streams/token-stream.js';
import type { DecoderModelConfig } from '../../shared/models/model-registry.js';
import { spawnThread, waitForThreadReady } from '../threads/spawn-thread.js';
import type { ChatBackend, GenerationOutcome } from './chat-backend.js';
import type { ChatThreadErrorCode, ChatThreadReply, ChatThreadRequest } from './chat-thread.protocol.js';
import { ContextLengthError } from './context-length.error.js';
import { GenerationError } from './generation.error.js';
import { TokenizerInputError } from './tokenizer-input.error.js';
import { StructuredOutputError } from './structured-output.error.js';

/** The chat thread names its failures by code (messages between threads carry no classes): each code's error. */
const THREAD_ERRORS: Record<ChatThreadErrorCode, (message: string) => Error> = {
  context_length_exceeded: (m) => new ContextLengthError(m),
  generation_failed: (m) => new GenerationError(m),
  invalid_tokenizer_input: (m) => new TokenizerInputError(m),
  invalid_response_format: (m) => new StructuredOutputError('invalid_response_format', m),
  unsupported_response_format: (m) => new StructuredOutputError('unsupported_response_format', m),
  invalid_function_parameters: (m) => new StructuredOutputError('invalid_function_parameters', m),
  grammar_unavailable: (m) => new StructuredOutputError('grammar_unavailable', m),
};

interface Pending {
  onToken: (text: string, extras: TokenExtras) => void;
  resolve: (o: GenerationOutcome) => void;
  reject: (e: Error) => void;
}

/**
 * A local decoder model: one chat thread runs the ONNX session and its continuous-batching
 * engine (workers/chat/chat-thread.ts); this side forwards jobs to it and relays its tokens.
 * Every chat job the worker holds is one sequence in the thread's running batch.
 */
export async function startDecoderBackend(model: DecoderModelConfig, log: Logger): Promise<ChatBackend> {
  const thread = spawnThread(import.meta.url, 'chat-thread', {
    dir: model.dir,
    options: {
      intraOpThreads: model.threads,
      executionProviders: model.execution_providers,
      ...(model.dtype === undefined ? {} : { dtype: model.dtype }),
    },
    maxBatch: model.concurrency,
  });
  const ready = await waitReady(thread);
  log.info({ model: model.id, provider: ready.provider, contextLength: ready.contextLength, loadMs: Math.round(ready.loadMs), maxBatch: model.concurrency }, 'chat model loaded');

  const pending = new Map<string, Pending>();
  /** Tokenize jobs waiting for the thread (quick, not cancellable). */
  const tokenizing = new Map<string, { resolve: (r: JobResult<'tokenize'>) => void; reject: (e: Error) => void }>();
  let closed = false;
  thread.on('message', (msg: ChatThreadReply) => {
    switch (msg.type) {
      case 'token': {
        const { type: _type, id, text, ...extras } = msg;
        pending.get(id)?.onToken(text, extras);
        break;
      }
      case 'done': {
        const { type: _type, id, ...outcome } = msg;
        const p = pending.get(id);
        pending.delete(id);
        p?.resolve(outcome);
        break;
      }
      case 'tokenized': {
        tokenizing.get(msg.id)?.resolve(msg.result);
        tokenizing.delete(msg.id);
        break;
      }
      case 'error': {
        const p = pending.get(msg.id) ?? tokenizing.get(msg.id);
        pending.delete(msg.id);
        tokenizing.delete(msg.id);
        p?.reject(THREAD_ERRORS[msg.code](msg.message));
        break;
      }
    }
  });
  const failAll = (err: Error) => {
    for (const p of [...pending.values(), ...tokenizing.values()]) p.reject(err);
    pending.clear();
    tokenizing.clear();
  };
  thread.on('error', (err) => failAll(new GenerationError(`chat thread crashed: ${err.message}`)));
  thread.on('exit', (code) => {
    if (!closed) failAll(new GenerationError(`chat thread exited with code ${code}`));
  });
  const post = (msg: ChatThreadRequest) => thread.postMessage(msg);

  return {
    generate(jobId, payload, { signal, onToken }) {
      return new Promise<GenerationOutcome>((resolve, reject) => {
        if (closed) return reject(new GenerationError('chat model is shut down'));
        pending.set(jobId, { onToken, resolve, reject });
        const onAbort = () => post({ type: 'cancel', id: jobId });
        signal.addEventListener('abort', onAbort, { once: true });
        post({ type: 'generate', id: jobId, payload });
        const cleanup = () => signal.removeEventListener('abort', onAbort);
        const p = pending.get(jobId)!;
        p.resolve = (o) => (cleanup(), resolve(o));
        p.reject = (e) => (cleanup(), reject(e));
      });
    },
    tokenize(jobId, payload) {
      return new Promise<JobResult<'tokenize'>>((resolve, reject) => {
        if (closed) return reject(new GenerationError('chat model is shut down'));
        tokenizing.set(jobId, { resolve, reject });
        post({ type: 'tokenize', id: jobId, payload });
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => void thread.terminate().then(() => resolve()), 2000);
        thread.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        post({ type: 'close' });
      });
    },
  };
}

function waitReady(thread: Worker): Promise<Extract<ChatThreadReply, { type: 'ready' }>> {
  return waitForThreadReady(
    thread,
    (msg: ChatThreadReply): msg is Extract<ChatThreadReply, { type: 'ready' }> => msg.type === 'ready',
    (msg) => (msg.type === 'load-error' ? `chat model failed to load: ${msg.message}` : undefined),
  );
}
