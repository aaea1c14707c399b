import http from 'node:http';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/**
 * An HTTP client that sends the request target exactly as given. fetch() (WHATWG URL) would
 * resolve `/./`, `/../` and `%2e%2e` before sending, so it cannot test how the server treats them.
 * Keeps connections alive for speed; `close()` ends them.
 */
export function rawHttpClient(baseUrl: string) {
  const { hostname, port } = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const request = (method: string, target: string, opts: { headers?: Record<string, string>; body?: string } = {}) =>
    new Promise<RawResponse>((resolve, reject) => {
      const headers = { ...opts.headers, ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}) };
      const req = http.request({ hostname, port: Number(port), method, path: target, headers, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  return { request, close: () => agent.destroy() };
}
