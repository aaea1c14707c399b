import type { JobStatus } from '../jobs/job-catalog.js';

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

export interface ServerToClientEvents {
  progress: (e: JobProgressEvent) => void;
  completed: (e: JobCompletedEvent) => void;
  failed: (e: JobFailedEvent) => void;
}

export type SubscribeAck =
  | { ok: true; id: string; status: JobStatus }
  | { ok: false; error: { message: string; code: string } };

export interface ClientToServerEvents {
  subscribe: (jobId: string, ack?: (res: SubscribeAck) => void) => void;
  unsubscribe: (jobId: string, ack?: (res: { ok: boolean }) => void) => void;
}
