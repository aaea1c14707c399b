import { UnrecoverableError } from 'bullmq';
import type { JobHandler } from '../jobs/job-handler.js';
import type { ChatBackend } from './chat-backend.js';

/** Tokenizes or detokenizes with a chat model's own tokenizer, in its thread (POST /v1/tokenize, /v1/detokenize). */
export function createTokenizeHandler(backends: ReadonlyMap<string, ChatBackend>): JobHandler<'tokenize'> {
  return async (payload, ctx) => {
    const backend = backends.get(payload.model);
    if (!backend) throw new UnrecoverableError(`chat model ${payload.model} is not served by this worker`);
    if (!backend.tokenize) throw new UnrecoverableError(`chat model ${payload.model} has no local tokenizer (an upstream serves it)`);
    return backend.tokenize(ctx.jobId, payload);
  };
}
