import type { JobResult } from '../jobs/job-catalog.js';

/** How a chat job ended, as the API's chat runs and the Responses objects built from them read it. */
export type ChatOutcome =
  | { status: 'completed'; jobId: string; model: string; result: JobResult<'chat'> }
  | { status: 'failed' | 'cancelled'; jobId: string; model: string; error: { message: string; code: string } };
