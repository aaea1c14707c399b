import { BrokenCircuitError, ConsecutiveBreaker, TaskCancelledError, ExponentialBackoff, TimeoutStrategy, circuitBreaker, handleAll, retry, timeout, wrap, type IPolicy } from 'cockatiel';
import type { ToolConfig } from '../../shared/chatbot/chatbot-config.js';

export interface ToolCall {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
  result?: unknown;
}

/**
 * Calls the external HTTP services a bot declares. Each tool has its own resilience policy
 * (cockatiel): a timeout per attempt, retries with backoff, and a circuit breaker that, after
 * `breaker_failures` failures in a row, fails calls at once for `breaker_reset_ms` instead of
 * making every user wait for a dead service. Failures come back as data, never as exceptions:
 * the bot degrades its reply and says so.
 */
export class ToolCaller {
  private readonly policies = new Map<string, IPolicy>();

  async call(tool: ToolConfig, slots: Record<string, string>, signal?: AbortSignal): Promise<ToolCall> {
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    const url = tool.url.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(slots[k] ?? ''));
    try {
      const result = await this.policy(tool).execute(async ({ signal: attemptSignal }) => {
        const res = await fetch(url, {
          method: tool.method,
          signal: signal ? AbortSignal.any([signal, attemptSignal]) : attemptSignal,
          headers: { accept: 'application/json' },
          ...(tool.method === 'POST' ? { body: JSON.stringify(slots), headers: { 'content-type': 'application/json', accept: 'application/json' } } : {}),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const text = await res.text();
        try {
          const parsed = JSON.parse(text) as unknown;
          if (parsed === null || typeof parsed !== 'object') throw new Error('not an object');
          return parsed;
        } catch {
          throw new Error('the service answered something that is not a JSON object');
        }
      });
      return { name: tool.name, ok: true, ms: ms(), result };
    } catch (err) {
      const e = err as Error;
      const reason = err instanceof BrokenCircuitError ? 'circuit open after repeated failures' : err instanceof TaskCancelledError ? `timed out after ${tool.timeout_ms} ms` : e.message;
      return { name: tool.name, ok: false, ms: ms(), error: reason };
    }
  }

  private policy(tool: ToolConfig): IPolicy {
    let p = this.policies.get(tool.name);
    if (!p) {
      const breaker = circuitBreaker(handleAll, { halfOpenAfter: tool.breaker_reset_ms, breaker: new ConsecutiveBreaker(tool.breaker_failures) });
      const retries = retry(handleAll, { maxAttempts: tool.retries, backoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 500 }) });
      p = wrap(breaker, retries, timeout(tool.timeout_ms, TimeoutStrategy.Aggressive));
      this.policies.set(tool.name, p);
    }
    return p;
  }
}
