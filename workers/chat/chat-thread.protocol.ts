import type { JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';
import type { TokenExtras } from '../../shared/streams/token-stream.js';
import type { GenerationOutcome } from './chat-backend.js';

/** Messages between a worker's main thread and its chat model thread. */
export type ChatThreadRequest =
  | { type: 'generate'; id: string; payload: JobPayload<'chat'> }
  | { type: 'tokenize'; id: string; payload: JobPayload<'tokenize'> }
  | { type: 'cancel'; id: string }
  | { type: 'close' };

/** Why the thread failed a generation (workers/chat/decoder-backend.ts turns each into its error class). */
export type ChatThreadErrorCode = 'context_length_exceeded' | 'generation_failed' | 'invalid_tokenizer_input';

export type ChatThreadReply =
  | { type: 'ready'; provider: string; contextLength: number; loadMs: number }
  | { type: 'load-error'; message: string }
  | ({ type: 'token'; id: string; text: string } & TokenExtras)
  | ({ type: 'done'; id: string } & GenerationOutcome)
  | { type: 'tokenized'; id: string; result: JobResult<'tokenize'> }
  | { type: 'error'; id: string; code: ChatThreadErrorCode; message: string }
  | { type: 'step'; batch: number; ms: number };
