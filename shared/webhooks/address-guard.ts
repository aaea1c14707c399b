import { lookup as dnsLookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

/**
 * Where webhooks may go. A tenant chooses the URL, so without a check it could make the service
 * probe the operator's own network (SSRF): only http(s) URLs without credentials, whose host
 * resolves to public unicast addresses only, are accepted, unless the operator allows private ones
 * (WEBHOOK_ALLOW_PRIVATE=1, for tests and closed networks). The check runs when an endpoint is
 * registered (a clear 400) and again at every delivery, since DNS can change in between; the
 * delivery then connects to exactly the addresses that were checked (workers/webhooks/webhook-sender.ts).
 */
export class WebhookAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookAddressError';
  }
}

/**
 * Public addresses that are still cloud metadata or host services: Azure's wire server. (The
 * usual ones, 169.254.169.254, fd00:ec2::254 and 100.100.100.200, are link-local, unique-local and
 * CGNAT, refused as such.)
 */
const METADATA_ADDRESSES: ReadonlySet<string> = new Set(['168.63.129.16']);

/** Why an address is refused, or undefined when it is a public unicast address. */
export function addressRefusal(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return `'${address}' is not an IP address`;
  // IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) are judged as the IPv4 address they are.
  const ip = ipaddr.process(address);
  const normalized = ip.toString();
  if (METADATA_ADDRESSES.has(normalized)) return `${normalized} is a cloud metadata address`;
  const range = ip.range();
  // Everything but plain unicast: loopback, private, link-local (metadata), unique-local, CGNAT,
  // multicast, unspecified, broadcast, reserved, documentation and translation ranges.
  if (range !== 'unicast') return `${normalized} is a ${range} address`;
  return undefined;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface DestinationPolicy {
  allowPrivate: boolean;
  /** DNS resolution (tests give their own to play a name that changes its answer). */
  resolve?: (hostname: string) => Promise<ResolvedAddress[]>;
}

const systemResolve = async (hostname: string): Promise<ResolvedAddress[]> =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

/** A webhook URL's syntax: http or https, no user name or password (secrets in URLs end up in logs). */
export function parseWebhookUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookAddressError(`'${raw}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookAddressError(`webhook URLs must be http or https, not ${url.protocol.replace(/:$/, '')}`);
  if (url.username || url.password) throw new WebhookAddressError('webhook URLs must not carry a user name or password');
  return url;
}

/**
 * The addresses a delivery to `url` may connect to: every address its host resolves to, each one
 * allowed. A name with one private address among public ones is refused as a whole, so the
 * connection cannot be steered to the private one.
 */
export async function resolveDestination(url: URL, policy: DestinationPolicy): Promise<ResolvedAddress[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: ResolvedAddress[];
  if (ipaddr.isValid(host)) {
    addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }];
  } else {
    try {
      addresses = await (policy.resolve ?? systemResolve)(host);
    } catch (err) {
      throw new WebhookAddressError(`the host '${host}' does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (addresses.length === 0) throw new WebhookAddressError(`the host '${host}' does not resolve`);
  }
  if (!policy.allowPrivate) {
    for (const a of addresses) {
      const why = addressRefusal(a.address);
      if (why) throw new WebhookAddressError(`webhooks may not go to '${host}': ${why} (private and internal addresses are refused unless WEBHOOK_ALLOW_PRIVATE=1)`);
    }
  }
  return addresses;
}
