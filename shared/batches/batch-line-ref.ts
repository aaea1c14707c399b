// Its own module, importing nothing: the job catalog carries it in job envelopes, and the batch
// store (which imports the Responses objects, which import the catalog) must not be on that path.

/** Where a line job reports to: carried in its job envelope (`batch`). */
export interface BatchLineRef {
  id: string;
  line: number;
  /**
   * An embedding job that carries several lines (workers/batches/run-batch.handler.ts packs them):
   * each line's index and how many of the job's inputs are its own, in input order. `line` is the
   * first of them, and names the job.
   */
  pack?: { line: number; inputs: number }[];
  /** The batch's endpoint (metrics label; a chat job may answer a chat completions or a responses line). */
  endpoint?: string;
}
