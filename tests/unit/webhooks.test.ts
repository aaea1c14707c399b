import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { verifyWebhook as clientVerify } from '../../client/webhook-verify.js';
import { jobCatalog, scheduledRetryDelayMs } from '../../shared/jobs/job-catalog.js';
import { addressRefusal, parseWebhookUrl, resolveDestination, WebhookAddressError } from '../../shared/webhooks/address-guard.js';
import { generateWebhookSecret, webhookHeaders, WebhookVerificationError } from '../../shared/webhooks/webhook-signing.js';
import { sendWebhook } from '../../workers/webhooks/webhook-sender.js';

/** Signing is checked against `standardwebhooks`, the specification's own reference library, in both directions. */
describe('webhook signatures (Standard Webhooks)', () => {
  const body = JSON.stringify({ type: 'job.completed', timestamp: new Date().toISOString(), data: { id: 'x', n: [1, 2, 3], text: 'héllo' } });
  const now = Math.floor(Date.now() / 1000);

  test('secrets are whsec_ and at least 24 random bytes, and differ', () => {
    const a = generateWebhookSecret();
    const b = generateWebhookSecret();
    assert.match(a, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.ok(Buffer.from(a.slice(6), 'base64').length >= 24);
    assert.notEqual(a, b);
  });

  test('what the service signs, the reference library verifies; tampering, another secret and an old timestamp fail there', () => {
    const secret = generateWebhookSecret();
    const headers = webhookHeaders([secret], 'msg_1', now, body);
    assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(new Webhook(secret).verify(body, { ...headers }), JSON.parse(body));
    assert.throws(() => new Webhook(secret).verify(`${body} `, { ...headers }));
    assert.throws(() => new Webhook(generateWebhookSecret()).verify(body, { ...headers }));
    const stale = webhookHeaders([secret], 'msg_1', now - 3600, body);
    assert.throws(() => new Webhook(secret).verify(body, { ...stale }));
  });

  test('what the reference library signs, the client helper verifies', () => {
    const secret = generateWebhookSecret();
    const signature = new Webhook(secret).sign('msg_2', new Date(now * 1000), body);
    const headers = { 'webhook-id': 'msg_2', 'webhook-timestamp': String(now), 'webhook-signature': signature };
    assert.deepEqual(clientVerify(secret, headers, body), JSON.parse(body));
    assert.deepEqual(clientVerify(secret, new Headers(headers), Buffer.from(body)), JSON.parse(body));
    assert.throws(() => clientVerify(secret, { ...headers, 'webhook-id': 'msg_3' }, body), WebhookVerificationError);
    assert.throws(() => clientVerify(generateWebhookSecret(), headers, body), WebhookVerificationError);
    assert.throws(() => clientVerify(secret, headers, body, { nowSeconds: now + 301 }), /more than 300 s/);
    assert.deepEqual(clientVerify(secret, headers, body, { nowSeconds: now + 301, toleranceSeconds: 600 }), JSON.parse(body));
    assert.throws(() => clientVerify(secret, { 'webhook-id': 'msg_2' }, body), /missing/);
  });

  test('during a rotation overlap both secrets verify the same request, each on its own', () => {
    const fresh = generateWebhookSecret();
    const old = generateWebhookSecret();
    const headers = webhookHeaders([fresh, old], 'msg_4', now, body);
    assert.equal(headers['webhook-signature'].split(' ').length, 2);
    for (const s of [fresh, old]) {
      assert.deepEqual(new Webhook(s).verify(body, { ...headers }), JSON.parse(body));
      assert.deepEqual(clientVerify(s, headers, body), JSON.parse(body));
    }
    assert.throws(() => new Webhook(generateWebhookSecret()).verify(body, { ...headers }));
  });
});

describe('webhook address guard', () => {
  test('only public unicast addresses pass', () => {
    const refused = [
      '127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '100.100.100.200', '0.0.0.0',
      '224.0.0.1', '255.255.255.255', '168.63.129.16', '::1', '::', 'fe80::1', 'fd00:ec2::254', 'fc00::1', 'ff02::1',
      '::ffff:127.0.0.1', '::ffff:10.0.0.1', '192.0.2.1',
    ];
    for (const a of refused) assert.ok(addressRefusal(a), `${a} must be refused`);
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) assert.equal(addressRefusal(a), undefined, `${a} must pass`);
    assert.match(addressRefusal('169.254.169.254')!, /linkLocal/);
    assert.match(addressRefusal('100.64.0.1')!, /carrierGradeNat/);
  });

  test('URLs: http(s) only, no credentials', () => {
    assert.throws(() => parseWebhookUrl('ftp://example.com/x'), /http or https/);
    assert.throws(() => parseWebhookUrl('file:///etc/passwd'), /http or https/);
    assert.throws(() => parseWebhookUrl('https://u:p@example.com/'), /user name or password/);
    assert.throws(() => parseWebhookUrl('not a url'), /not a URL/);
    assert.equal(parseWebhookUrl('https://example.com/hook').hostname, 'example.com');
  });

  test('a name is refused when any of its addresses is private, unless private addresses are allowed', async () => {
    const resolve = async () => [{ address: '93.184.216.34', family: 4 as const }, { address: '10.0.0.5', family: 4 as const }];
    const url = new URL('https://hooks.example.test/x');
    await assert.rejects(resolveDestination(url, { allowPrivate: false, resolve }), (e: unknown) => e instanceof WebhookAddressError && /10\.0\.0\.5 is a private address/.test(e.message));
    assert.equal((await resolveDestination(url, { allowPrivate: true, resolve })).length, 2);
    await assert.rejects(resolveDestination(new URL('http://[::1]:8080/'), { allowPrivate: false }), /loopback/);
    await assert.rejects(resolveDestination(new URL('http://localhost/'), { allowPrivate: false }), /loopback/);
    await assert.rejects(
      resolveDestination(url, { allowPrivate: false, resolve: async () => Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })) }),
      /does not resolve \(ENOTFOUND\)/,
    );
  });

  test('a delivery connects to the addresses that were checked, not to a second resolution', async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.writeHead(202).end(`got ${req.headers.host} ${body.length}`));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      // The name does not exist in DNS: only the checked (pinned) answer can reach the server.
      const res = await sendWebhook(`http://hooks.invalid:${port}/in`, '{"a":1}', {}, { allowPrivate: true, timeoutMs: 5000, resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
      assert.deepEqual(res, { status: 202, snippet: `got hooks.invalid:${port} 7` });
      // The same name answered with a loopback address is refused without private addresses allowed.
      await assert.rejects(sendWebhook(`http://hooks.invalid:${port}/in`, '{}', {}, { allowPrivate: false, timeoutMs: 5000, resolve: async () => [{ address: '127.0.0.1', family: 4 }] }), WebhookAddressError);
    } finally {
      server.close();
    }
  });

  test('a destination that does not answer in time fails the attempt with a reason', async () => {
    const server = createServer(() => {
      /* never answers */
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      await assert.rejects(sendWebhook(`http://127.0.0.1:${port}/`, '{}', {}, { allowPrivate: true, timeoutMs: 300 }), /no answer within 300 ms/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('webhook retry schedule', () => {
  test('about a day over the catalog attempts, scaled down on request', () => {
    const attempts = jobCatalog['webhook.deliver'].defaults.attempts;
    const delays = Array.from({ length: attempts - 1 }, (_, i) => scheduledRetryDelayMs('webhook.deliver', i + 1, 1));
    assert.deepEqual(delays.slice(0, 2), [5_000, 300_000]);
    const hours = delays.reduce((a, b) => a + b, 0) / 3_600_000;
    assert.ok(hours > 20 && hours < 36, `${hours} h`);
    assert.equal(scheduledRetryDelayMs('webhook.deliver', 2, 0.001), 300);
    assert.equal(scheduledRetryDelayMs('webhook.deliver', 99, 1), delays.at(-1));
  });
});
