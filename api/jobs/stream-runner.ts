import type { JobPayload, JobResult, JobType } from '../../shared/jobs/job-catalog.js';
import type { TokenRelay } from '../realtime/token-relay.js';
import type { TokenExtras } from '../../shared/streams/token-stream.js';
import type { JobService, QueueTarget, SubmitOptions } from './job-service.js';

/**
 * How a streamed job ended: a completed one carries its job type's result (its worker wrote the end
 * entry from its handler's result, typed JobResult<K>), the others an error.
 */
export type StreamedEnd<K extends JobType = JobType> =
  | { kind: 'end'; status: 'completed'; result: JobResult<K> }
  | { kind: 'end'; status: 'failed' | 'cancelled'; error?: { message: string; code: string } };

export interface StreamRunOptions extends SubmitOptions {
  /** Aborting cancels the job (the client went away). */
  signal?: AbortSignal;
  onStart?: (jobId: string) => void;
  /** `extras`: the choice (n > 1) and logprobs the token entry carries. */
  onToken?: (text: string, index: number, extras: TokenExtras) => void;
}

/**
 * Submits a job whose worker streams tokens (chat, chatbot) and follows its token stream to the
 * end entry. Used by every endpoint that answers synchronously or over SSE.
 */
export async function runStreamingJob<K extends JobType>(
  deps: { jobs: JobService; relay: TokenRelay },
  type: K,
  tenant: string,
  target: QueueTarget,
  payload: JobPayload<K>,
  opts: StreamRunOptions,
): Promise<{ jobId: string; end: StreamedEnd<K>; tokensSent: boolean }> {
  const { view } = await deps.jobs.submit(type, tenant, target, payload, opts);
  const jobId = view.id;
  opts.onStart?.(jobId);
  const { end, tokensSent } = await followToEnd<K>(deps.relay, jobId, {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onToken ? { onToken: opts.onToken } : {}),
    onAbort: () => void deps.jobs.cancel(tenant, jobId).catch(() => {}),
  });
  return { jobId, end, tokensSent };
}

/**
 * Follows a streaming job's token stream from its first token to its end entry (however long ago
 * the job started: the stream's backlog comes first). Aborting `signal` stops following and
 * resolves as `cancelled` after calling `onAbort` (which may cancel the job, or leave it running).
 */
export async function followToEnd<K extends JobType>(
  relay: TokenRelay,
  jobId: string,
  opts: { signal?: AbortSignal; onToken?: StreamRunOptions['onToken']; onAbort?: () => void },
): Promise<{ end: StreamedEnd<K>; tokensSent: boolean }> {
  let tokensSent = false;
  let following: Promise<() => void> | undefined;
  const end = await new Promise<StreamedEnd<K>>((resolve) => {
    const onAbort = () => {
      opts.onAbort?.();
      resolve({ kind: 'end', status: 'cancelled', error: { message: 'cancelled: client went away', code: 'cancelled' } });
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    following = relay.follow(jobId, 0, (entry) => {
      if (entry.kind === 'token') {
        tokensSent = true;
        const { kind: _kind, i, text, ...extras } = entry;
        opts.onToken?.(text, i, extras);
      } else {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(entry as StreamedEnd<K>);
      }
    });
    following.catch(() => resolve({ kind: 'end', status: 'failed', error: { message: 'lost the token stream', code: 'stream_error' } }));
  });
  // The end may come from the backlog, before follow() has returned its unfollow function: stop
  // following once it has (a follower left behind would keep its channel and watchdog alive).
  void following?.then((unfollow) => unfollow()).catch(() => {});
  return { end, tokensSent };
}
