import type { Redis } from 'ioredis';
import { parseEntry, tokenStreamKey, type StreamEntry } from '../../shared/streams/token-stream.js';

interface Follower {
  /** Next token index this follower has not seen yet. */
  next: number;
  ended: boolean;
  /** Live messages that arrived while the backlog was being read. */
  buffer: StreamEntry[] | undefined;
  onEntry: (e: StreamEntry) => void;
}

/**
 * Follows chat jobs' token streams for this API instance (see shared/streams/token-stream.ts).
 * One pub/sub connection carries every followed job; each follower reads the stream's backlog
 * from the index it asks for, then continues live, with duplicates (by index) dropped, so each
 * token reaches it exactly once and in order, followed by exactly one end entry.
 */
export class TokenRelay {
  private readonly channels = new Map<string, { followers: Set<Follower>; subscribed: Promise<unknown>; unwatch: () => void }>();

  constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
    /**
     * Watches a followed job for a dead worker (api/jobs/stream-watchdog.ts), from its first
     * follower to its last: whoever follows a job here, its stream ends if its worker dies.
     */
    private readonly watch: (jobId: string) => () => void = () => () => {},
  ) {
    subscriber.on('message', (channel: string, raw: string) => {
      const followers = this.channels.get(channel)?.followers;
      if (!followers) return;
      const entry = parseEntry(raw);
      if (!entry) return;
      for (const f of followers) {
        if (f.buffer) f.buffer.push(entry);
        else deliver(f, entry);
      }
    });
  }

  /** Starts following; resolves once the backlog has been delivered. Returns the unfollow function. */
  async follow(jobId: string, from: number, onEntry: (e: StreamEntry) => void): Promise<() => void> {
    const key = tokenStreamKey(this.prefix, jobId);
    const follower: Follower = { next: Math.max(0, from), ended: false, buffer: [], onEntry };
    let channel = this.channels.get(key);
    if (!channel) {
      // Subscribe before reading the backlog: a token published in between is then buffered, not lost.
      channel = { followers: new Set(), subscribed: this.subscriber.subscribe(key), unwatch: this.watch(jobId) };
      this.channels.set(key, channel);
    }
    channel.followers.add(follower);
    const unfollow = () => {
      const c = this.channels.get(key);
      if (!c) return;
      c.followers.delete(follower);
      if (c.followers.size === 0) {
        this.channels.delete(key);
        c.unwatch();
        void this.subscriber.unsubscribe(key).catch(() => {});
      }
    };
    try {
      await channel.subscribed;
      const backlog = await this.redis.xrange(key, '-', '+');
      for (const [, fields] of backlog) {
        const entry = parseEntry(fields[1] ?? '');
        if (entry) deliver(follower, entry);
      }
    } catch (err) {
      unfollow();
      throw err;
    }
    const buffered = follower.buffer ?? [];
    follower.buffer = undefined;
    for (const entry of buffered) deliver(follower, entry);
    return unfollow;
  }

  /** Whether a job's token stream is still kept: it expires with the job's retention after the job ends. */
  async hasStream(jobId: string): Promise<boolean> {
    return (await this.redis.exists(tokenStreamKey(this.prefix, jobId))) === 1;
  }

  get following(): number {
    return this.channels.size;
  }
}

function deliver(f: Follower, entry: StreamEntry): void {
  if (f.ended) return;
  if (entry.kind === 'token') {
    if (entry.i < f.next) return;
    f.next = entry.i + 1;
  } else {
    f.ended = true;
  }
  f.onEntry(entry);
}
