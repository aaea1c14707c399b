import { readNamedSecret } from '../../shared/config/env.js';
import type { Logger } from '../../shared/logger.js';
import type { ChatModelConfig } from '../../shared/models/model-registry.js';
import type { ChatBackend } from './chat-backend.js';
import { startDecoderBackend } from './decoder-backend.js';
import { createUpstreamBackend } from './upstream-backend.js';

/**
 * The one switch over chat model formats, as embedding-formats.ts is for embeddings: a new format
 * is an entry here (the record is exhaustive over the models config's formats) and its schema in
 * shared/models/model-registry.ts; nothing else in the worker knows which format it runs.
 */
type ChatFormat = ChatModelConfig['format'];
type ChatModelOf<F extends ChatFormat> = Extract<ChatModelConfig, { format: F }>;

const formats: { [F in ChatFormat]: (model: ChatModelOf<F>, log: Logger) => Promise<ChatBackend> } = {
  'hf-decoder': (model, log) => startDecoderBackend(model, log),
  'openai-upstream': async (model) => createUpstreamBackend(model, model.api_key_env ? readNamedSecret(model.api_key_env) : undefined),
};

/** Starts the backend of a chat model (its thread loaded, or its upstream client made). */
export function startChatBackend(model: ChatModelConfig, log: Logger): Promise<ChatBackend> {
  // The record pairs each format with its own config type; indexing by a union widens that pairing away.
  const start = formats[model.format] as (model: ChatModelConfig, log: Logger) => Promise<ChatBackend>;
  return start(model, log);
}
