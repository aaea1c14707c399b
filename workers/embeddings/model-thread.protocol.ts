/** Messages between a worker process's main thread and its model threads. */
export type ThreadRequest =
  | { type: 'embed'; id: number; lengths: Int32Array; ids: Int32Array }
  | { type: 'close' };

export type ThreadReply =
  | { type: 'ready'; dimensions: number; provider: string; loadMs: number }
  | { type: 'load-error'; message: string }
  | { type: 'result'; id: number; vectors: Float32Array; runMs: number }
  | { type: 'error'; id: number; message: string };
