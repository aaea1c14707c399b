import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/**
 * A real HTTP receiver on 127.0.0.1: records every request, and answers each path as its
 * behaviour says (default 200), so a test can make an endpoint fail, recover or stay down.
 */
export async function startReceiver() {
  const received: Received[] = [];
  const behaviour = new Map<string, (nth: number) => number>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const nth = received.filter((r) => r.path === path).length + 1;
      const status = behaviour.get(path)?.(nth) ?? 200;
      received.push({ path, headers: req.headers, body, status });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'receiver says no');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    received,
    at: (path: string) => received.filter((r) => r.path === path),
    behave: (path: string, f: (nth: number) => number) => behaviour.set(path, f),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
