import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { verifyWebhook } from '../../client/webhook-verify.js';
import { freePort } from '../../scripts/lib/redis-server.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { KEYS, ROOT, authHeaders, postJson, spawnEntry, startService, useLiteModel, waitFor, writeModelsConfig, type ProcessHandle, type ServiceHandle } from '../helpers/service.js';

async function getJson(baseUrl: string, route: string, key = KEYS.acme) {
  const res = await fetch(`${baseUrl}${route}`, { headers: authHeaders(key) });
  return { status: res.status, json: (await res.json()) as any };
}

async function del(baseUrl: string, route: string, key = KEYS.acme) {
  const res = await fetch(`${baseUrl}${route}`, { method: 'DELETE', headers: authHeaders(key) });
  return { status: res.status, json: (await res.json()) as any };
}

describe('webhooks: endpoints, signed deliveries, retries, circuit breaker, address guard', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let rx: Awaited<ReturnType<typeof startReceiver>>;
  let strictApi: (ProcessHandle & { baseUrl: string }) | undefined;

  before(async () => {
    redis = await startPrivateRedis();
    rx = await startReceiver();
    const config = writeModelsConfig([useLiteModel(), useLiteModel({ id: 'parked' })]);
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: config,
      env: {
        WORKER_MODELS: 'use-lite',
        // The receiver is on 127.0.0.1; the guard's refusals are tested below with processes that do not allow it.
        WEBHOOK_ALLOW_PRIVATE: '1',
        // A day of retries in about ten seconds: 5 ms, 300 ms, 1.8 s, 7.2 s, ...
        RETRY_SCHEDULE_SCALE: '0.001',
        WEBHOOK_CIRCUIT_FAILURES: '3',
        WEBHOOK_CIRCUIT_OPEN_SECONDS: '8',
        WEBHOOK_TIMEOUT_MS: '3000',
      },
      waitReady: false,
    });
  });

  after(async () => {
    await strictApi?.stop();
    await svc?.stop();
    await rx?.close();
    await redis?.cleanup();
  });

  const register = async (path: string, events: string[] = ['job.completed', 'job.failed'], key = KEYS.acme) => {
    const r = await postJson(svc.baseUrl, '/v1/webhooks', { url: `${rx.base}${path}`, events, description: `test ${path}` }, authHeaders(key));
    assert.equal(r.status, 201, r.text);
    return r.json as { id: string; secret: string; url: string; events: string[] };
  };
  const submit = async (body: Record<string, unknown> = {}, key = KEYS.acme) => {
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['a webhook test'], ...body }, authHeaders(key));
    assert.equal(r.status, 202, r.text);
    return r.json as { id: string };
  };
  const eventsAt = (path: string, jobId: string) => rx.at(path).filter((r) => (JSON.parse(r.body) as { data: { id: string } }).data.id === jobId);
  const deliveries = async (endpointId: string, key = KEYS.acme) => (await getJson(svc.baseUrl, `/v1/webhooks/${endpointId}/deliveries`, key)).json.data as any[];

  test('an endpoint is registered with a secret shown once, and listed without it', async () => {
    const ep = await register('/shown-once');
    assert.match(ep.id, /^we_/);
    assert.match(ep.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.ok(Buffer.from(ep.secret.slice(6), 'base64').length >= 24);
    assert.deepEqual(ep.events, ['job.completed', 'job.failed']);
    const one = await getJson(svc.baseUrl, `/v1/webhooks/${ep.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.json.secret, undefined);
    assert.equal(one.json.circuit.state, 'closed');
    const list = await getJson(svc.baseUrl, '/v1/webhooks');
    assert.ok(list.json.data.some((e: { id: string }) => e.id === ep.id));
    assert.ok(!JSON.stringify(list.json).includes(ep.secret));
    assert.equal((await postJson(svc.baseUrl, '/v1/webhooks', { url: `${rx.base}/x`, events: ['job.exploded'] })).status, 400);
    assert.equal((await postJson(svc.baseUrl, '/v1/webhooks', { url: `${rx.base}/x`, events: [] })).status, 400);
    assert.equal((await postJson(svc.baseUrl, '/v1/webhooks', { url: 'ftp://example.com/x', events: ['job.completed'] })).json.error.code, 'invalid_webhook_url');
    assert.equal((await del(svc.baseUrl, `/v1/webhooks/${ep.id}`)).json.deleted, true);
    assert.equal((await getJson(svc.baseUrl, `/v1/webhooks/${ep.id}`)).status, 404);
  });

  test('qi webhooks add, list, rotate, deliveries and delete (through the typed client)', async () => {
    const qi = async (...args: string[]) =>
      (await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/qi.mjs'), 'webhooks', ...args], { cwd: ROOT, env: { PATH: process.env.PATH, QI_URL: svc.baseUrl, QI_API_KEY: KEYS.acme } })).stdout;
    const added = await qi('add', `${rx.base}/cli`, '--events', 'job.completed,batch.completed', '--description', 'from the cli');
    const id = /^(we_\w+)\t/.exec(added)?.[1];
    assert.ok(id, added);
    assert.match(added, /secret \(shown once\): whsec_/);
    assert.match(await qi('list'), new RegExp(`${id}\\t${rx.base}/cli\\tjob.completed,batch.completed\\tcircuit closed`));
    assert.match(await qi('rotate', id, '--overlap', '60'), /new secret \(shown once\): whsec_/);
    assert.equal(await qi('deliveries', id), '');
    assert.match(await qi('delete', id), /deleted/);
    assert.doesNotMatch(await qi('list'), new RegExp(id));
  });

  test('a /v1/jobs job announces job.completed, signed, with the job as GET /v1/jobs/:id shows it', async () => {
    const ep = await register('/main');
    const job = await submit();
    const [got] = await waitFor('job.completed delivery', async () => (eventsAt('/main', job.id).length ? eventsAt('/main', job.id) : undefined), 30_000);
    assert.ok(got);
    // The independent implementation of the specification, then the client's helper.
    const viaReference = new Webhook(ep.secret).verify(got.body, got.headers as Record<string, string>) as any;
    const viaClient = verifyWebhook(ep.secret, got.headers, got.body) as any;
    assert.deepEqual(viaClient, viaReference);
    assert.equal(viaReference.type, 'job.completed');
    assert.ok(!Number.isNaN(Date.parse(viaReference.timestamp)));
    const view = await getJson(svc.baseUrl, `/v1/jobs/${encodeURIComponent(job.id)}`);
    assert.deepEqual(viaReference.data, view.json);
    assert.equal(viaReference.data.status, 'completed');
    assert.equal(viaReference.data.result.data[0].embedding.length, 512);
    assert.match(String(got.headers['webhook-id']), /^msg_/);
    // The log says so.
    const log = await waitFor('delivered in the log', async () => {
      const d = (await deliveries(ep.id)).find((x) => x.event_id === got.headers['webhook-id']);
      return d?.state === 'delivered' ? d : undefined;
    });
    assert.equal(log.attempts, 1);
    assert.equal(log.last_status_code, 200);
    assert.equal(log.event_type, 'job.completed');
    await del(svc.baseUrl, `/v1/webhooks/${ep.id}`);
  });

  test('a job that fails announces job.failed with its reason', async () => {
    const ep = await register('/failed', ['job.failed']);
    // A deadline a millisecond away: still queued then, the worker fails it as expired instead of running it.
    const job = await submit({ timeout: 0.001 });
    const [got] = await waitFor('job.failed delivery', async () => (eventsAt('/failed', job.id).length ? eventsAt('/failed', job.id) : undefined), 30_000);
    const event = new Webhook(ep.secret).verify(got!.body, got!.headers as Record<string, string>) as any;
    assert.equal(event.type, 'job.failed');
    assert.equal(event.data.status, 'failed');
    assert.equal(event.data.error.code, 'expired');
    await del(svc.baseUrl, `/v1/webhooks/${ep.id}`);
  });

  test('a queued job cancelled by the API announces job.failed with status cancelled', async () => {
    const ep = await register('/cancelled', ['job.failed']);
    // No worker serves `parked`: the job stays queued until it is cancelled.
    const job = await submit({ model: 'parked' });
    assert.equal((await del(svc.baseUrl, `/v1/jobs/${encodeURIComponent(job.id)}`)).json.status, 'cancelled');
    const [got] = await waitFor('cancellation delivery', async () => (eventsAt('/cancelled', job.id).length ? eventsAt('/cancelled', job.id) : undefined), 30_000);
    const event = new Webhook(ep.secret).verify(got!.body, got!.headers as Record<string, string>) as any;
    assert.equal(event.type, 'job.failed');
    assert.equal(event.data.status, 'cancelled');
    await del(svc.baseUrl, `/v1/webhooks/${ep.id}`);
  });

  test('a receiver failing twice gets three attempts of one webhook-id, and the log shows them', async () => {
    const ep = await register('/flaky', ['job.completed']);
    rx.behave('/flaky', (nth) => (nth <= 2 ? 500 : 200));
    const job = await submit();
    const attempts = await waitFor('three attempts', async () => (eventsAt('/flaky', job.id).length >= 3 ? eventsAt('/flaky', job.id) : undefined), 30_000);
    assert.deepEqual(attempts.map((a) => a.status), [500, 500, 200]);
    assert.equal(new Set(attempts.map((a) => a.headers['webhook-id'])).size, 1);
    for (const a of attempts) new Webhook(ep.secret).verify(a.body, a.headers as Record<string, string>);
    const log = await waitFor('delivered after retries', async () => {
      const d = (await deliveries(ep.id)).find((x) => x.event_id === attempts[0]!.headers['webhook-id']);
      return d?.state === 'delivered' ? d : undefined;
    });
    assert.equal(log.attempts, 3);
    assert.equal(log.last_status_code, 200);
    // Two failures and a success: the circuit (3 in a row) never opened.
    assert.equal((await getJson(svc.baseUrl, `/v1/webhooks/${ep.id}`)).json.circuit.consecutive_failures, 0);
    // Nothing more arrives for it.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(eventsAt('/flaky', job.id).length, 3);
    await del(svc.baseUrl, `/v1/webhooks/${ep.id}`);
  });

  test("a job's own webhook URL gets its outcome (unsigned), and a bad one is refused at submission", async () => {
    const job = await submit({ webhook: `${rx.base}/one-off` });
    const [got] = await waitFor('one-off delivery', async () => (eventsAt('/one-off', job.id).length ? eventsAt('/one-off', job.id) : undefined), 30_000);
    assert.equal(JSON.parse(got!.body).type, 'job.completed');
    assert.match(String(got!.headers['webhook-id']), /^msg_/);
    assert.equal(got!.headers['webhook-signature'], undefined);
    const bad = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['x'], webhook: 'gopher://example.com/' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'invalid_webhook_url');
    assert.equal(bad.json.error.param, 'webhook');
  });

  test("tenants see only their own endpoints and logs, and only their own jobs' events", async () => {
    const mine = await register('/acme-only', ['job.completed']);
    const theirs = await register('/globex-only', ['job.completed'], KEYS.globex);
    for (const route of [`/v1/webhooks/${mine.id}`, `/v1/webhooks/${mine.id}/deliveries`]) {
      const r = await getJson(svc.baseUrl, route, KEYS.globex);
      assert.equal(r.status, 404);
      assert.equal(r.json.error.code, 'webhook_not_found');
    }
    assert.equal((await del(svc.baseUrl, `/v1/webhooks/${mine.id}`, KEYS.globex)).status, 404);
    assert.equal((await postJson(svc.baseUrl, `/v1/webhooks/${mine.id}/rotate_secret`, {}, authHeaders(KEYS.globex))).status, 404);
    const globexList = (await getJson(svc.baseUrl, '/v1/webhooks', KEYS.globex)).json.data as { id: string }[];
    assert.deepEqual(globexList.map((e) => e.id), [theirs.id]);
    const job = await submit();
    await waitFor('acme delivery', async () => (eventsAt('/acme-only', job.id).length ? true : undefined), 30_000);
    await waitFor('acme log', async () => ((await deliveries(mine.id)).some((d) => d.state === 'delivered') ? true : undefined));
    assert.equal(eventsAt('/globex-only', job.id).length, 0);
    assert.deepEqual(await deliveries(theirs.id, KEYS.globex), []);
    // Still the endpoint it was: globex's attempts changed nothing.
    assert.equal((await getJson(svc.baseUrl, `/v1/webhooks/${mine.id}`)).status, 200);
    await del(svc.baseUrl, `/v1/webhooks/${mine.id}`);
    await del(svc.baseUrl, `/v1/webhooks/${theirs.id}`, KEYS.globex);
  });

  test('a rotated secret signs alone, or alongside the old one for the overlap asked for', async () => {
    const ep = await register('/rotate', ['job.completed']);
    const rotated = await postJson(svc.baseUrl, `/v1/webhooks/${ep.id}/rotate_secret`, {});
    assert.equal(rotated.status, 200, rotated.text);
    assert.notEqual(rotated.json.secret, ep.secret);
    assert.ok(rotated.json.secret_rotated_at);
    const job = await submit();
    const [got] = await waitFor('delivery after rotation', async () => (eventsAt('/rotate', job.id).length ? eventsAt('/rotate', job.id) : undefined), 30_000);
    const headers = got!.headers as Record<string, string>;
    assert.equal(new Webhook(rotated.json.secret).verify(got!.body, headers) !== undefined, true);
    assert.throws(() => new Webhook(ep.secret).verify(got!.body, headers));
    assert.throws(() => verifyWebhook(ep.secret, headers, got!.body));

    const overlapping = await postJson(svc.baseUrl, `/v1/webhooks/${ep.id}/rotate_secret`, { overlap_seconds: 3600 });
    const job2 = await submit();
    const [got2] = await waitFor('delivery during overlap', async () => (eventsAt('/rotate', job2.id).length ? eventsAt('/rotate', job2.id) : undefined), 30_000);
    const headers2 = got2!.headers as Record<string, string>;
    assert.equal(headers2['webhook-signature']!.split(' ').length, 2);
    new Webhook(overlapping.json.secret).verify(got2!.body, headers2);
    new Webhook(rotated.json.secret).verify(got2!.body, headers2);
    assert.throws(() => new Webhook(ep.secret).verify(got2!.body, headers2));
    assert.equal((await postJson(svc.baseUrl, `/v1/webhooks/${ep.id}/rotate_secret`, { overlap_seconds: -1 })).status, 400);
    await del(svc.baseUrl, `/v1/webhooks/${ep.id}`);
  });

  test('after 3 failures in a row the circuit opens: deliveries are postponed, not dropped', async () => {
    const ep = await register('/down', ['job.completed']);
    let up = false;
    rx.behave('/down', () => (up ? 200 : 503));
    const job = await submit();
    await waitFor('three failed attempts', async () => (eventsAt('/down', job.id).length >= 3 ? true : undefined), 30_000);
    const opened = await getJson(svc.baseUrl, `/v1/webhooks/${ep.id}`);
    assert.equal(opened.json.circuit.state, 'open');
    assert.equal(opened.json.circuit.consecutive_failures, 3);
    // Without the breaker the fourth attempt would come 1.8 s after the third; it is held for the circuit's 8 s.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(eventsAt('/down', job.id).length, 3);
    const pending = (await deliveries(ep.id))[0];
    assert.equal(pending.state, 'pending');
    assert.equal(pending.attempts, 3);
    assert.equal(pending.last_status_code, 503);
    assert.ok(pending.next_attempt_at >= opened.json.circuit.open_until - 1, JSON.stringify({ pending, circuit: opened.json.circuit }));
    up = true;
    const done = await waitFor('delivered once the circuit lets a probe through', async () => {
      const d = (await deliveries(ep.id))[0];
      return d?.state === 'delivered' ? d : undefined;
    }, 30_000);
    assert.equal(done.attempts, 4);
    assert.equal(eventsAt('/down', job.id).length, 4);
    assert.equal((await getJson(svc.baseUrl, `/v1/webhooks/${ep.id}`)).json.circuit.state, 'closed');
    await del(svc.baseUrl, `/v1/webhooks/${ep.id}`);
  });

  test('without WEBHOOK_ALLOW_PRIVATE, private addresses are refused at registration and at delivery', async () => {
    // An API process that does not allow private addresses: registration and a job's URL get a 400.
    const port = await freePort();
    strictApi = Object.assign(spawnEntry('api/main.ts', { ...svc.env, PORT: String(port), WEBHOOK_ALLOW_PRIVATE: '0' }), { baseUrl: `http://127.0.0.1:${port}` });
    await waitFor('strict api', async () => ((await fetch(`${strictApi!.baseUrl}/healthz`)).ok ? true : undefined), 60_000, () => strictApi!.output().slice(-2000));
    for (const url of [`${rx.base}/private`, 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/', 'http://10.0.0.1/', 'http://localhost:9/']) {
      const r = await postJson(strictApi.baseUrl, '/v1/webhooks', { url, events: ['job.completed'] });
      assert.equal(r.status, 400, `${url}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_webhook_url');
      assert.match(r.json.error.message, /WEBHOOK_ALLOW_PRIVATE/);
    }
    const job = await postJson(strictApi.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['x'], webhook: `${rx.base}/private` });
    assert.equal(job.status, 400);

    // An endpoint accepted where private addresses were allowed is still refused by a worker that
    // does not allow them: the address is checked again at delivery.
    const ep = await register('/private', ['job.completed']);
    await svc.workers[0]!.stop();
    await svc.startWorker({ WEBHOOK_ALLOW_PRIVATE: '0' });
    const sent = await submit();
    const refused = await waitFor('refused delivery in the log', async () => {
      const d = (await deliveries(ep.id))[0];
      return d?.state === 'failed' ? d : undefined;
    }, 30_000);
    assert.equal(refused.attempts, 1);
    assert.match(refused.last_error, /127\.0\.0\.1 is a loopback address/);
    assert.equal(eventsAt('/private', sent.id).length, 0);
  });
});
