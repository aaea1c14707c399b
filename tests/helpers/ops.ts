import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { io as connect, type Socket } from 'socket.io-client';
import { KEYS, type ProcessHandle } from './service.js';

/** Helpers of the operations tests (shutdown, failure drills, soak, cluster). */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resident set size of a process in KiB, from /proc/<pid>/status (Linux). */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** How a child process ended: its exit code (or null) and the signal that killed it (or null). */
export function exitOf(p: ProcessHandle): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
  const { child } = p;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode, at: Date.now() });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
}

export function isRunning(p: ProcessHandle): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** A connected Socket.IO client (one transport, websocket by default; no reconnection) with a tenant key. */
export async function socketClient(baseUrl: string, key = KEYS.acme, transport: 'websocket' | 'polling' = 'websocket'): Promise<Socket> {
  const s = connect(baseUrl, { auth: { token: key }, transports: [transport], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  return s;
}

/**
 * A fake OpenAI-compatible chat upstream on loopback whose answers take as long as a test needs:
 * the upstream model name `slow-<ms>` streams `max_tokens` tokens, one every <ms> milliseconds;
 * `hang` accepts the request and never answers; `gate-<ms>` is `slow-<ms>`, except that while
 * `hold(true)` is in force requests wait before their first token (`held()` counts them) until
 * `hold(false)`. Configured as an `openai-upstream` model, it gives chat jobs whose running time
 * is known in advance, or that are running and have produced nothing yet.
 */
export async function startFakeUpstream(): Promise<{
  baseUrl: string;
  open: () => number;
  release: () => void;
  hold: (on: boolean) => void;
  held: () => number;
  close: () => Promise<void>;
}> {
  const responses = new Set<ServerResponse>();
  const held = new Set<() => void>();
  let holding = false;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const body = JSON.parse(raw || '{}') as { model?: string; max_tokens?: number };
      responses.add(res);
      res.on('close', () => responses.delete(res));
      if (body.model === 'hang') return;
      const gated = /^gate-(\d+)$/.exec(body.model ?? '');
      const delay = Number(gated?.[1] ?? /^slow-(\d+)$/.exec(body.model ?? '')?.[1] ?? 10);
      const total = body.max_tokens ?? 16;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
        res.write(`data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created, model: body.model, choices, ...extra })}\n\n`);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let sent = 0;
      const tick = () => {
        if (res.destroyed) return;
        if (sent < total) {
          chunk([{ index: 0, delta: { content: `t${sent} ` }, finish_reason: null }]);
          sent++;
          setTimeout(tick, delay);
          return;
        }
        chunk([{ index: 0, delta: {}, finish_reason: 'length' }]);
        chunk([], { usage: { prompt_tokens: 5, completion_tokens: total, total_tokens: total + 5 } });
        res.end('data: [DONE]\n\n');
      };
      if (gated && holding) {
        const go = () => {
          held.delete(go);
          tick();
        };
        held.add(go);
        res.on('close', () => held.delete(go));
        return;
      }
      tick();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    open: () => responses.size,
    hold: (on: boolean) => {
      holding = on;
      if (!on) for (const go of [...held]) go();
    },
    held: () => held.size,
    /** Cuts every open answer (a hanging one fails its job at once). */
    release: () => {
      for (const r of responses) r.destroy();
    },
    close: async () => {
      for (const r of responses) r.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Reads an SSE response to its end; returns the data lines (parsed JSON, or the raw `[DONE]`). */
export async function readSse(res: Response): Promise<{ events: unknown[]; done: boolean; error?: unknown }> {
  const events: unknown[] = [];
  let done = false;
  let buffer = '';
  const decoder = new TextDecoder();
  try {
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(part, { stream: true });
      let i: number;
      while ((i = buffer.indexOf('\n\n')) >= 0) {
        const line = buffer.slice(0, i).trim();
        buffer = buffer.slice(i + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') done = true;
        else events.push(JSON.parse(data));
      }
    }
  } catch (error) {
    return { events, done, error };
  }
  return { events, done };
}
