/**
 * The two halves of an embedding model, split by where they run.
 *
 * Tokenizers are pure JS and cheap, so they run in the worker process's main thread: the batcher
 * needs token counts to group texts by length and to respect a token budget before anything is
 * sent to a model thread.
 *
 * Sessions wrap onnxruntime-node, whose `run()` blocks the thread it is called on. They are only
 * ever created inside a `worker_threads` thread (see model-thread.ts), never on the main thread.
 */
export interface EmbeddingTokenizer {
  /** Longest sequence the model accepts; `tokenize` truncates to it. */
  readonly maxTokens: number;
  /** Token ids per text, already truncated to `maxTokens`, special tokens included. */
  tokenize(texts: readonly string[]): number[][];
}

export interface EmbeddingSession {
  readonly dimensions: number;
  /**
   * Embeds one batch of tokenized texts (rows may differ in length; the session pads them and
   * builds the attention mask itself). Returns one unit-length vector per row, in order.
   */
  embed(batch: readonly (readonly number[])[]): Promise<Float32Array[]>;
  release(): Promise<void>;
}

/** Options a session takes from the models config. */
export interface EmbeddingSessionOptions {
  intraOpThreads: number;
  /** onnxruntime execution providers in order of preference, e.g. ['cuda', 'cpu']. */
  executionProviders: string[];
}
