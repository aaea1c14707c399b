import type { Redis } from 'ioredis';

/**
 * Live tokens of a chat job. Each job has a Redis Stream (the record: every token in order, then
 * one end entry) and a pub/sub channel of the same name (the fast path). Readers subscribe first,
 * read the stream from the index they already have, then take live messages, dropping any index
 * they already delivered: so a client that reconnects, even to another API replica, gets every
 * missing token exactly once and then the live rest. Tokens never travel as BullMQ jobs or
 * progress updates.
 */
export type StreamEntry =
  | { kind: 'token'; i: number; text: string }
  | { kind: 'end'; status: 'completed' | 'failed' | 'cancelled'; result?: unknown; error?: { message: string; code: string } };

/** Job types whose workers stream tokens; their subscribers follow the token stream, end entry included. */
export const STREAMING_JOB_TYPES: ReadonlySet<string> = new Set(['chat', 'chatbot']);
/** Queues of those job types (chat models' queues and the chatbot's). */
export const isStreamingQueue = (queueName: string | undefined) => !!queueName && (queueName.startsWith('chat.') || queueName.startsWith('chatbot.'));

export const tokenStreamKey = (prefix: string, jobId: string) => `${prefix}:tokens:${jobId}`;
const endGuardKey = (prefix: string, jobId: string) => `${prefix}:tokens-end:${jobId}`;

/** Appends tokens in one round trip; the first append sets the stream's expiry. */
export async function appendTokens(redis: Redis, prefix: string, jobId: string, tokens: { i: number; text: string }[], ttlSeconds: number): Promise<void> {
  if (tokens.length === 0) return;
  const key = tokenStreamKey(prefix, jobId);
  const pipe = redis.pipeline();
  for (const t of tokens) {
    const entry = JSON.stringify({ kind: 'token', i: t.i, text: t.text } satisfies StreamEntry);
    pipe.xadd(key, '*', 'e', entry);
    pipe.publish(key, entry);
  }
  if (tokens[0]!.i === 0) pipe.expire(key, ttlSeconds);
  await pipe.exec();
}

/**
 * Appends the end entry once. Both the worker (normal end) and the API (a job that failed
 * without its worker, e.g. killed and then marked stalled) may try; the guard key makes the
 * first one win, so subscribers never see two endings.
 */
export async function appendEnd(redis: Redis, prefix: string, jobId: string, end: Omit<Extract<StreamEntry, { kind: 'end' }>, 'kind'>, ttlSeconds: number): Promise<boolean> {
  const won = await redis.set(endGuardKey(prefix, jobId), '1', 'EX', ttlSeconds, 'NX');
  if (!won) return false;
  const key = tokenStreamKey(prefix, jobId);
  const entry = JSON.stringify({ kind: 'end', ...end } satisfies StreamEntry);
  await redis.pipeline().xadd(key, '*', 'e', entry).publish(key, entry).expire(key, ttlSeconds).exec();
  return true;
}

export function parseEntry(raw: string): StreamEntry | undefined {
  try {
    const e = JSON.parse(raw) as StreamEntry;
    return e && (e.kind === 'token' || e.kind === 'end') ? e : undefined;
  } catch {
    return undefined;
  }
}
