import type { Redis } from 'ioredis';

export interface DialogueState {
  history: { role: 'user' | 'assistant'; content: string }[];
  last_intent?: string;
  slots: Record<string, string>;
}

/**
 * Dialogue state per tenant, user and session in Redis: bounded history, last intent and filled
 * slots, with a TTL renewed on every turn. The key includes the user, so another user cannot
 * continue someone's session by guessing its id.
 */
export class DialogueStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(tenant: string, user: string, session: string): string {
    return `${this.prefix}:dialogue:${tenant}:${encodeURIComponent(user)}:${encodeURIComponent(session)}`;
  }

  async load(tenant: string, user: string, session: string): Promise<DialogueState> {
    const raw = await this.redis.get(this.key(tenant, user, session));
    if (!raw) return { history: [], slots: {} };
    try {
      const s = JSON.parse(raw) as DialogueState;
      return { history: Array.isArray(s.history) ? s.history : [], last_intent: s.last_intent, slots: s.slots ?? {} };
    } catch {
      return { history: [], slots: {} };
    }
  }

  async save(tenant: string, user: string, session: string, state: DialogueState, maxTurns: number, ttlSeconds: number): Promise<void> {
    const bounded: DialogueState = { ...state, history: state.history.slice(-2 * maxTurns) };
    await this.redis.set(this.key(tenant, user, session), JSON.stringify(bounded), 'EX', ttlSeconds);
  }
}
