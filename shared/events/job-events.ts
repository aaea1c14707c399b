import type { ChatTokenLogprob, JobStatus } from '../jobs/job-catalog.js';

/**
 * Socket.IO contract between the API and its clients. Workers never import Socket.IO; they emit
 * these events through @socket.io/redis-emitter into the room of the job, and the API's Redis
 * adapter delivers them to whichever replica holds the subscribed socket.
 */
export const jobRoom = (jobId: string) => `job:${jobId}`;

export interface JobProgressEvent {
  id: string;
  progress: unknown;
}

export interface JobCompletedEvent {
  id: string;
  status: 'completed';
  result: unknown;
}

export interface JobFailedEvent {
  id: string;
  status: 'failed' | 'cancelled';
  error: { message: string; code: string };
}

/** One generated token of a chat job; `index` counts from 0 and is what a resuming client sends back as `from`. */
export interface JobTokenEvent {
  id: string;
  index: number;
  text: string;
  /** Which of the job's `n` answers the text belongs to; absent for 0 (and for jobs with n = 1). */
  choice?: number;
  /** With `logprobs`: those of the tokens this text came from (see TokenExtras in shared/streams/token-stream.ts). */
  logprobs?: ChatTokenLogprob[];
}

export interface ServerToClientEvents {
  token: (e: JobTokenEvent) => void;
  progress: (e: JobProgressEvent) => void;
  completed: (e: JobCompletedEvent) => void;
  failed: (e: JobFailedEvent) => void;
}

export type SubscribeAck =
  | { ok: true; id: string; status: JobStatus }
  | { ok: false; error: { message: string; code: string } };

/**
 * What `subscribe` takes: a job id, or `{id, from}` to resume a chat job's token stream at index
 * `from` (every token from there on is delivered once, then the live rest).
 */
export type SubscribeRequest = string | { id: string; from?: number };

export interface ClientToServerEvents {
  subscribe: (req: SubscribeRequest, ack?: (res: SubscribeAck) => void) => void;
  unsubscribe: (jobId: string, ack?: (res: { ok: boolean }) => void) => void;
}
