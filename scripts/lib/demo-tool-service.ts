import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * DEMO DATA ONLY. The tool service `npm start` runs for the example chatbot
 * (config/chatbot.example.json) when no CHATBOT_CONFIG is given, so the bot's weather and order
 * intents answer out of the box. Its answers are made up (deterministic per city or order, marked
 * `demo: true` and "(demo data)" in the text); a real bot points its tools at real services.
 *
 *   GET /weather?city=Paris&day=tomorrow → {summary, temp_c, city, day, demo: true}
 *   GET /orders/12345                    → {order_id, status, demo: true}
 */
export interface DemoToolService {
  /** Origin the bot's tool URLs point at, e.g. http://127.0.0.1:8081. */
  url: string;
  close(): Promise<void>;
}

const SKIES = ['sunny', 'partly cloudy', 'cloudy', 'light rain', 'windy'];
const ORDER_STATES = ['received', 'packed', 'shipped', 'out for delivery', 'delivered'];

/** A small stable number from a string, so the same city or order always gets the same made-up answer. */
function pick(text: string, n: number): number {
  let h = 2166136261;
  for (const ch of text) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619) >>> 0;
  return h % n;
}

export async function startDemoToolService(opts: { port: number; host?: string }): Promise<DemoToolService> {
  const host = opts.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-demo-data': 'true' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, { error: 'GET only', demo: true });
    if (url.pathname === '/weather') {
      const city = url.searchParams.get('city') ?? '';
      const day = url.searchParams.get('day') || 'today';
      if (!city) return send(400, { error: 'city is required', demo: true });
      const key = `${city.toLowerCase()}|${day}`;
      return send(200, { city, day, summary: `${SKIES[pick(key, SKIES.length)]} (demo data)`, temp_c: 8 + pick(`t${key}`, 20), demo: true });
    }
    const order = /^\/orders\/([\w-]{1,64})$/.exec(url.pathname);
    if (order) return send(200, { order_id: order[1], status: `${ORDER_STATES[pick(order[1]!, ORDER_STATES.length)]} (demo data)`, demo: true });
    return send(404, { error: 'no such demo tool', demo: true });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
