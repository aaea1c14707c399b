import type { Redis } from 'ioredis';
import type { ChatTokenLogprob, PromptTokenLogprob } from '../jobs/job-catalog.js';

/**
 * Live tokens of a chat job. Each job has a Redis Stream (the record: every token in order, then
 * one end entry) and a pub/sub channel of the same name (the fast path). Readers subscribe first,
 * read the stream from the index they already have, then take live messages, dropping any index
 * they already delivered: so a client that reconnects, even to another API replica, gets every
 * missing token exactly once and then the live rest. Tokens never travel as BullMQ jobs or
 * progress updates.
 *
 * Ownership (dead workers, docs/RELIABILITY.md "Dead workers and streams"): a run of a job must
 * claim the stream before it writes, and may only claim a stream that holds nothing yet. Every
 * append checks the claim in the same script, and the end entry revokes it. So a job whose worker
 * died before its first token can run again elsewhere, but a job that already streamed text is
 * never continued by a second run (its text would repeat), and a worker that lost its claim (its
 * job ended as `worker_lost`, or another worker took over) cannot add a single token.
 */
export type StreamEntry =
  | ({ kind: 'token'; i: number; text: string } & TokenExtras)
  | { kind: 'end'; status: 'completed' | 'failed' | 'cancelled'; result?: unknown; error?: { message: string; code: string } };

/**
 * What a token entry may carry besides its text: the choice it belongs to when a chat job samples
 * n > 1 answers (absent = 0), and, when the job asked for logprobs, those of the tokens its text
 * came from (a token whose text is not final yet, e.g. half a UTF-8 character, travels with the
 * next entry that has text; an entry may then have '' as text).
 */
export interface TokenExtras {
  choice?: number;
  logprobs?: ChatTokenLogprob[];
  /** A chat job with `prompt_logprobs`: its first entry (text '') carries the prompt tokens'. */
  prompt_logprobs?: PromptTokenLogprob[];
}

export type StreamEnd = Omit<Extract<StreamEntry, { kind: 'end' }>, 'kind'>;

/** Error code of a job whose worker died (or stopped answering) while it ran. */
export const WORKER_LOST = 'worker_lost';

export const tokenStreamKey = (prefix: string, jobId: string) => `${prefix}:tokens:${jobId}`;
const endGuardKey = (prefix: string, jobId: string) => `${prefix}:tokens-end:${jobId}`;
/** Who may write the stream: `<workerId>/<run>`; set by a claim, removed by the end entry. */
export const streamOwnerKey = (prefix: string, jobId: string) => `${prefix}:tokens-owner:${jobId}`;
/** The owning worker's heartbeat: refreshed every STREAM_HEARTBEAT_MS, expires after STREAM_HEARTBEAT_TTL_MS. */
export const streamAliveKey = (prefix: string, jobId: string) => `${prefix}:tokens-alive:${jobId}`;

/** The worker id part of an owner (`<workerId>/<run>`). */
export const ownerWorker = (owner: string) => owner.slice(0, Math.max(0, owner.indexOf('/')));

// The scripts touch only keys that start with the prefix: on Redis Cluster they share its hash tag.
const CLAIM = `
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('XLEN', KEYS[1]) > 0 then
  redis.call('DEL', KEYS[3])
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local raw = false
  if last[1] then raw = last[1][2][2] end
  return {0, redis.call('XLEN', KEYS[1]), raw}
end
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[3])
return {1, 0, false}`;

const APPEND = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
for i = 4, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  redis.call('PUBLISH', KEYS[1], ARGV[i])
end
if ARGV[3] == '1' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

const END = `
if ARGV[3] == '1' and (redis.call('EXISTS', KEYS[4]) == 1 or redis.call('EXISTS', KEYS[3]) == 0) then return -1 end
if not redis.call('SET', KEYS[2], '1', 'EX', ARGV[2], 'NX') then return 0 end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('PUBLISH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
return 1`;

const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('XLEN', KEYS[3]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1`;

const REFRESH = `
local lost = {}
for i = 1, #KEYS / 2 do
  if redis.call('GET', KEYS[2 * i - 1]) == ARGV[i + 1] then
    redis.call('SET', KEYS[2 * i], ARGV[i + 1], 'PX', ARGV[1])
  else
    table.insert(lost, i)
  end
end
return lost`;

const keys = (prefix: string, jobId: string) => [tokenStreamKey(prefix, jobId), endGuardKey(prefix, jobId), streamOwnerKey(prefix, jobId), streamAliveKey(prefix, jobId)];

export type StreamClaim =
  | { claimed: true }
  /** The stream already has entries: `tokens` of them, and `end` if it has ended. */
  | { claimed: false; tokens: number; end: StreamEnd | undefined };

/**
 * Claims a job's stream for one run (`owner`) and starts its heartbeat, if the stream holds
 * nothing yet. Otherwise says what it holds, and revokes any earlier claim: a stream that has
 * text is never written by a second run.
 */
export async function claimStream(
  redis: Redis,
  prefix: string,
  jobId: string,
  owner: string,
  opts: { ttlSeconds: number; heartbeatTtlMs: number },
): Promise<StreamClaim> {
  const [claimed, length, raw] = (await redis.eval(CLAIM, 4, ...keys(prefix, jobId), owner, opts.ttlSeconds, opts.heartbeatTtlMs)) as [number, number, string | null];
  if (claimed === 1) return { claimed: true };
  const last = raw ? parseEntry(raw) : undefined;
  const end = last?.kind === 'end' ? (({ kind: _k, ...rest }) => rest)(last) : undefined;
  return { claimed: false, tokens: end ? length - 1 : length, end };
}

/**
 * Appends tokens in one round trip, if `owner` still holds the stream's claim; the first append
 * sets the stream's expiry. Returns false (and writes nothing) when the claim is gone.
 */
export async function appendTokens(
  redis: Redis,
  prefix: string,
  jobId: string,
  owner: string,
  tokens: ({ i: number; text: string } & TokenExtras)[],
  ttlSeconds: number,
): Promise<boolean> {
  if (tokens.length === 0) return true;
  const [stream, , ownerKey] = keys(prefix, jobId);
  const entries = tokens.map((t) => JSON.stringify({ kind: 'token', ...t } satisfies StreamEntry));
  const ok = await redis.eval(APPEND, 2, stream!, ownerKey!, owner, ttlSeconds, tokens[0]!.i === 0 ? '1' : '0', ...entries);
  return ok === 1;
}

/**
 * Appends the end entry once, and revokes the stream's claim. Both the worker (normal end) and
 * the API (a job whose worker died) may try; the guard key makes the first one win, so
 * subscribers never see two endings. With `onlyIfAbandoned` it ends only a stream that is claimed
 * and whose owner's heartbeat has lapsed (checked in the same script, so a worker that has just
 * taken the job over is never cut off): the result is then -1 when the stream was not abandoned.
 */
export async function appendEnd(redis: Redis, prefix: string, jobId: string, end: StreamEnd, ttlSeconds: number, opts: { onlyIfAbandoned?: boolean } = {}): Promise<boolean> {
  const entry = JSON.stringify({ kind: 'end', ...end } satisfies StreamEntry);
  const r = await redis.eval(END, 4, ...keys(prefix, jobId), entry, ttlSeconds, opts.onlyIfAbandoned ? '1' : '0');
  return r === 1;
}

/**
 * Gives `owner`'s claim back, if the stream is still empty (the run stopped before its first
 * token), so that another run can claim it. Returns false when the claim was not `owner`'s or
 * the stream has entries: then the job cannot run again.
 */
export async function releaseStream(redis: Redis, prefix: string, jobId: string, owner: string): Promise<boolean> {
  const [stream, , ownerKey, aliveKey] = keys(prefix, jobId);
  return (await redis.eval(RELEASE, 3, ownerKey!, aliveKey!, stream!, owner)) === 1;
}

/**
 * Refreshes the heartbeats of a worker's running jobs in one round trip, each only while its run
 * still owns the stream. Returns the jobs whose claim is gone (their stream was ended for them,
 * or another run took over): their runs must stop.
 */
export async function refreshHeartbeats(redis: Redis, prefix: string, jobs: readonly { jobId: string; owner: string }[], ttlMs: number): Promise<string[]> {
  if (jobs.length === 0) return [];
  const keyList = jobs.flatMap((j) => [streamOwnerKey(prefix, j.jobId), streamAliveKey(prefix, j.jobId)]);
  const lost = (await redis.eval(REFRESH, keyList.length, ...keyList, ttlMs, ...jobs.map((j) => j.owner))) as number[];
  return lost.map((i) => jobs[i - 1]!.jobId);
}

export function parseEntry(raw: string): StreamEntry | undefined {
  try {
    const e = JSON.parse(raw) as StreamEntry;
    return e && (e.kind === 'token' || e.kind === 'end') ? e : undefined;
  } catch {
    return undefined;
  }
}
