/** BullMQ serves lower numbers first. Interactive requests (OpenAI endpoints, SSE) come before batch work unless they say otherwise. */
export const INTERACTIVE_PRIORITY = 1;
/** Asynchronous chat jobs and every line of a batch (Batch API). */
export const BATCH_PRIORITY = 5;
