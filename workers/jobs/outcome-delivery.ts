import type { Emitter } from '@socket.io/redis-emitter';
import type { Redis } from 'ioredis';
import { jobRoom } from '../../shared/events/job-events.js';
import { STREAMING_JOB_TYPES } from '../../shared/jobs/job-catalog.js';
import { appendEnd } from '../../shared/streams/token-stream.js';
import type { ResultDelivery } from './job-runner.js';

/**
 * How a worker announces outcomes, for every job type: the synchronous caller's reply channel, or
 * the job's subscribers. Subscribers of a streaming type follow its token stream, so its outcome
 * is the stream's end entry; the others are told in the job's Socket.IO room.
 */
export function createOutcomeDelivery(deps: {
  publisher: Redis;
  emitter: Emitter;
  prefix: string;
  retentionSeconds: number;
  /** Batch lines (workers/batches/batch-lines.ts records them once in their batch). */
  batchLine: ResultDelivery['batchLine'];
}): ResultDelivery {
  const { publisher, emitter, prefix, retentionSeconds } = deps;
  return {
    batchLine: deps.batchLine,
    reply: async (channel, message) => {
      await publisher.publish(channel, JSON.stringify(message));
    },
    progress: (jobId, progress) => {
      emitter.to(jobRoom(jobId)).emit('progress', { id: jobId, progress });
    },
    completed: async (type, jobId, result) => {
      if (STREAMING_JOB_TYPES.has(type)) await appendEnd(publisher, prefix, jobId, { status: 'completed', result }, retentionSeconds);
      else emitter.to(jobRoom(jobId)).emit('completed', { id: jobId, status: 'completed', result });
    },
    failed: async (type, jobId, status, error) => {
      if (STREAMING_JOB_TYPES.has(type)) await appendEnd(publisher, prefix, jobId, { status, error }, retentionSeconds);
      else emitter.to(jobRoom(jobId)).emit('failed', { id: jobId, status, error });
    },
  };
}
