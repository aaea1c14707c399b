import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { parseWebhookUrl, resolveDestination, type DestinationPolicy, type ResolvedAddress } from '../../shared/webhooks/address-guard.js';

export interface SendResult {
  status: number;
  /** The start of the answer's body, for the delivery log. */
  snippet: string;
}

/** The most of an answer's body that is read (for the log); the rest is discarded. */
const SNIPPET_BYTES = 512;

/**
 * POSTs one signed webhook. The host is resolved and checked here, at every attempt (DNS may have
 * changed since the endpoint was registered), and the connection goes to exactly the addresses
 * that were checked: the socket's own lookup is replaced by one that answers with them, so a second
 * resolution cannot swap in a private address. Redirects are not followed (a 3xx is a failed
 * attempt): one could point anywhere. Throws WebhookAddressError for a refused destination, and a
 * plain Error for network failures and timeouts.
 */
export async function sendWebhook(
  rawUrl: string,
  body: string,
  headers: Record<string, string>,
  opts: DestinationPolicy & { timeoutMs: number; signal?: AbortSignal },
): Promise<SendResult> {
  const url = parseWebhookUrl(rawUrl);
  const addresses = await resolveDestination(url, opts);
  const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]) : AbortSignal.timeout(opts.timeoutMs);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<SendResult>((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'queue-inference-webhooks/1' },
        lookup: pinnedLookup(addresses),
        signal,
        // A fresh connection per attempt: a pooled one could have been opened to an address checked earlier.
        agent: false,
      },
      (res: IncomingMessage) => {
        let snippet = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (snippet.length < SNIPPET_BYTES) snippet += chunk.slice(0, SNIPPET_BYTES - snippet.length);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, snippet }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => {
      reject(signal.aborted && !opts.signal?.aborted ? new Error(`no answer within ${opts.timeoutMs} ms`) : err);
    });
    req.end(body);
  });
}

/** A socket lookup that answers with the checked addresses only (Node asks with `all: true` when it races IPv4 and IPv6). */
function pinnedLookup(addresses: ResolvedAddress[]): LookupFunction {
  return ((_hostname: string, options: { all?: boolean; family?: number }, callback: (...args: unknown[]) => void) => {
    const usable = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    if (usable.length === 0) return callback(Object.assign(new Error('no checked address of the requested family'), { code: 'ENOTFOUND' }));
    if (options.all) return callback(null, usable.map((a) => ({ address: a.address, family: a.family })));
    callback(null, usable[0]!.address, usable[0]!.family);
  }) as LookupFunction;
}
