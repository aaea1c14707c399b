/** Messages between a worker process's main thread and its index thread (workers/index/index-thread.ts). */
export interface HnswParams {
  m: number;
  efConstruction: number;
}

export type IndexRequest =
  | { op: 'open'; cid: string; dims: number; params: HnswParams; dir: string }
  | {
      op: 'apply';
      cid: string;
      /** Log id of the last entry these changes come from. */
      seq: string;
      labels: number[];
      docs: string[];
      /** labels.length vectors of `dims` floats, back to back. */
      vectors: Float32Array;
      deletes: number[];
      /** Metadata of the documents of `docs`, for search filters. */
      metadata: [string, Record<string, unknown>][];
    }
  | { op: 'search'; cid: string; vector: Float32Array; k: number; ef: number; filter?: Record<string, unknown> }
  | { op: 'snapshot'; cid: string; dir: string }
  | { op: 'drop'; cid: string; dir?: string }
  | { op: 'stats'; cid: string };

export type IndexReply =
  | { op: 'open'; seq: string; count: number; fromSnapshot: boolean }
  | { op: 'apply'; count: number }
  | { op: 'search'; labels: number[]; distances: number[] }
  | { op: 'snapshot'; seq: string; count: number; ms: number; file: string }
  | { op: 'drop' }
  | { op: 'stats'; seq: string; count: number; deleted: number; maxElements: number; open: boolean };

export type IndexMessage = { id: number; req: IndexRequest };
export type IndexResponse = { id: number; ok: true; reply: IndexReply } | { id: number; ok: false; message: string };
