import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { generateWebhookSecret } from './webhook-signing.js';
import type { WebhookDeliveryView, WebhookEndpointView, WebhookEventType } from './webhook-api.js';

/** A registered endpoint as stored: its secrets too (HMAC needs them in clear; they never leave through the API but once). */
export interface WebhookEndpointRecord {
  id: string;
  tenant: string;
  url: string;
  events: WebhookEventType[];
  description: string | null;
  created_at: number;
  secret_rotated_at: number | null;
  /** The current secret first; a rotated one stays with `expires_at` (Unix seconds) while it overlaps. */
  secrets: { secret: string; expires_at: number | null }[];
}

export interface CircuitSettings {
  /** Failed attempts in a row that open the circuit. */
  failures: number;
  /** How long it stays open; then one delivery probes it (half-open). */
  openMs: number;
  /** How long a probe may take before another delivery may probe. */
  probeMs: number;
}

/** Newest deliveries kept per endpoint; older ones leave the log. */
const DELIVERY_LOG_SIZE = 1000;
/** Circuit state of a destination nobody sends to any more goes away by itself. */
const CIRCUIT_TTL_SECONDS = 7 * 86_400;

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Webhook endpoints, delivery logs and circuit breakers in Redis, shared by the API (which
 * registers endpoints and reads logs) and the workers (which deliver, log and keep the breakers):
 * - `<prefix>:webhooks:<tenant>`: hash endpoint id → record (per tenant, so a tenant only ever
 *   reads its own);
 * - `<prefix>:webhooks:deliveries:<endpoint id>` (hash delivery id → entry) with
 *   `…:deliveries-order:<endpoint id>` (sorted by creation) for the newest-first log;
 * - `<prefix>:webhooks:circuit:<destination>` and `…:probe:<destination>`: the breaker, in Redis so
 *   every worker agrees on it.
 */
export class WebhookStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  private endpointsKey = (tenant: string) => `${this.prefix}:webhooks:${tenant}`;
  private deliveriesKey = (endpointId: string) => `${this.prefix}:webhooks:deliveries:${endpointId}`;
  private deliveryOrderKey = (endpointId: string) => `${this.prefix}:webhooks:deliveries-order:${endpointId}`;
  private circuitKey = (destination: string) => `${this.prefix}:webhooks:circuit:${destination}`;
  private probeKey = (destination: string) => `${this.prefix}:webhooks:probe:${destination}`;

  async count(tenant: string): Promise<number> {
    return this.redis.hlen(this.endpointsKey(tenant));
  }

  async create(tenant: string, input: { url: string; events: WebhookEventType[]; description?: string }): Promise<{ record: WebhookEndpointRecord; secret: string }> {
    const secret = generateWebhookSecret();
    const record: WebhookEndpointRecord = {
      id: `we_${randomBytes(12).toString('hex')}`,
      tenant,
      url: input.url,
      events: input.events,
      description: input.description ?? null,
      created_at: nowSeconds(),
      secret_rotated_at: null,
      secrets: [{ secret, expires_at: null }],
    };
    await this.redis.hset(this.endpointsKey(tenant), record.id, JSON.stringify(record));
    return { record, secret };
  }

  async list(tenant: string): Promise<WebhookEndpointRecord[]> {
    const all = await this.redis.hvals(this.endpointsKey(tenant));
    return all.map((v) => JSON.parse(v) as WebhookEndpointRecord).sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  }

  /** The tenant's endpoint, or undefined (another tenant's endpoint is as missing as a deleted one). */
  async get(tenant: string, id: string): Promise<WebhookEndpointRecord | undefined> {
    const v = await this.redis.hget(this.endpointsKey(tenant), id);
    return v ? (JSON.parse(v) as WebhookEndpointRecord) : undefined;
  }

  /** The tenant's endpoints subscribed to an event type. */
  async subscribers(tenant: string, type: WebhookEventType): Promise<WebhookEndpointRecord[]> {
    return (await this.list(tenant)).filter((e) => e.events.includes(type));
  }

  async delete(tenant: string, id: string): Promise<boolean> {
    const removed = await this.redis.hdel(this.endpointsKey(tenant), id);
    if (!removed) return false;
    await this.redis.del(this.deliveriesKey(id), this.deliveryOrderKey(id), this.circuitKey(id), this.probeKey(id));
    return true;
  }

  /** A new current secret; the old one keeps signing for `overlapSeconds` (0: it stops now). */
  async rotateSecret(tenant: string, id: string, overlapSeconds: number): Promise<{ record: WebhookEndpointRecord; secret: string } | undefined> {
    const record = await this.get(tenant, id);
    if (!record) return undefined;
    const now = nowSeconds();
    const secret = generateWebhookSecret();
    const previous = record.secrets[0];
    const kept = overlapSeconds > 0 && previous ? [{ secret: previous.secret, expires_at: now + overlapSeconds }] : [];
    const rotated: WebhookEndpointRecord = { ...record, secret_rotated_at: now, secrets: [{ secret, expires_at: null }, ...kept] };
    await this.redis.hset(this.endpointsKey(tenant), id, JSON.stringify(rotated));
    return { record: rotated, secret };
  }

  /** The secrets a delivery is signed with now: the current one, and a rotated one still overlapping. */
  static activeSecrets(record: WebhookEndpointRecord, now = nowSeconds()): string[] {
    return record.secrets.filter((s) => s.expires_at === null || s.expires_at > now).map((s) => s.secret);
  }

  async view(record: WebhookEndpointRecord): Promise<WebhookEndpointView> {
    const [failures, openUntil] = await this.redis.hmget(this.circuitKey(record.id), 'failures', 'open_until');
    const open = openUntil ? Number(openUntil) : null;
    return {
      id: record.id,
      object: 'webhook_endpoint',
      url: record.url,
      events: record.events,
      description: record.description,
      created_at: record.created_at,
      secret_rotated_at: record.secret_rotated_at,
      circuit: {
        state: open === null ? 'closed' : open > Date.now() ? 'open' : 'half_open',
        consecutive_failures: Number(failures ?? 0),
        open_until: open === null ? null : Math.ceil(open / 1000),
      },
    };
  }

  /** A delivery enters the log as pending; a second call for the same delivery (another producer) changes nothing. */
  async logDelivery(entry: WebhookDeliveryView): Promise<void> {
    const created = await this.redis.hsetnx(this.deliveriesKey(entry.endpoint_id), entry.id, JSON.stringify(entry));
    if (!created) return;
    const order = this.deliveryOrderKey(entry.endpoint_id);
    await this.redis.zadd(order, Date.now(), entry.id);
    const evicted = await this.redis.zrange(order, '0', String(-DELIVERY_LOG_SIZE - 1));
    if (evicted.length) await this.redis.multi().zrem(order, ...evicted).hdel(this.deliveriesKey(entry.endpoint_id), ...evicted).exec();
  }

  /** Records an attempt's outcome; a delivery that left the log (or whose endpoint was deleted) stays out. */
  async updateDelivery(endpointId: string, deliveryId: string, patch: Partial<WebhookDeliveryView>): Promise<void> {
    const key = this.deliveriesKey(endpointId);
    const v = await this.redis.hget(key, deliveryId);
    if (!v) return;
    await this.redis.hset(key, deliveryId, JSON.stringify({ ...(JSON.parse(v) as WebhookDeliveryView), ...patch }));
  }

  /** The newest deliveries first. */
  async deliveries(endpointId: string, limit: number): Promise<WebhookDeliveryView[]> {
    const ids = await this.redis.zrevrange(this.deliveryOrderKey(endpointId), 0, limit - 1);
    if (ids.length === 0) return [];
    const values = await this.redis.hmget(this.deliveriesKey(endpointId), ...ids);
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as WebhookDeliveryView);
  }

  /**
   * May a delivery to `destination` be attempted now? Closed: yes. Open: not before it reopens
   * (`waitMs`). Past its open time: one delivery at a time probes it; the others wait for the probe.
   */
  async circuitGate(destination: string, s: CircuitSettings): Promise<{ pass: true } | { pass: false; waitMs: number }> {
    const openUntil = await this.redis.hget(this.circuitKey(destination), 'open_until');
    if (!openUntil) return { pass: true };
    const wait = Number(openUntil) - Date.now();
    if (wait > 0) return { pass: false, waitMs: wait };
    const probing = await this.redis.set(this.probeKey(destination), '1', 'PX', s.probeMs, 'NX');
    return probing ? { pass: true } : { pass: false, waitMs: s.probeMs };
  }

  /** An attempt's outcome: a success closes the circuit; the `failures`-th failure in a row (or a failed probe) opens it. */
  async circuitRecord(destination: string, ok: boolean, s: CircuitSettings): Promise<{ opened: boolean }> {
    const key = this.circuitKey(destination);
    if (ok) {
      await this.redis.del(key, this.probeKey(destination));
      return { opened: false };
    }
    const failures = await this.redis.hincrby(key, 'failures', 1);
    await this.redis.expire(key, CIRCUIT_TTL_SECONDS);
    if (failures < s.failures) return { opened: false };
    await this.redis.multi().hset(key, 'open_until', String(Date.now() + s.openMs)).del(this.probeKey(destination)).exec();
    return { opened: true };
  }
}
