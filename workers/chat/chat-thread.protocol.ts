import type { ChatToolCall } from '../../shared/chat/chat-options.js';
import type { JobPayload } from '../../shared/jobs/job-catalog.js';
import type { StructuredOutputErrorCode } from './structured-output.error.js';

/** Messages between a worker's main thread and its chat model thread. */
export type ChatThreadRequest =
  | { type: 'generate'; id: string; payload: JobPayload<'chat'> }
  | { type: 'cancel'; id: string }
  | { type: 'close' };

/** Why the thread failed a generation (workers/chat/decoder-backend.ts turns each into its error class). */
export type ChatThreadErrorCode = 'context_length_exceeded' | 'generation_failed' | StructuredOutputErrorCode;

export type ChatThreadReply =
  | { type: 'ready'; provider: string; contextLength: number; loadMs: number }
  | { type: 'load-error'; message: string }
  | { type: 'token'; id: string; text: string }
  | {
      type: 'done';
      id: string;
      /** The reply's content (without its tool calls' text). */
      text: string;
      finishReason: 'stop' | 'length' | 'cancelled' | 'tool_calls';
      toolCalls?: ChatToolCall[];
      promptTokens: number;
      completionTokens: number;
    }
  | { type: 'error'; id: string; code: ChatThreadErrorCode; message: string }
  | { type: 'step'; batch: number; ms: number };
