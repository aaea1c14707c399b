import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { embeddingsRequestSchema } from '../../shared/api/request-schemas.js';
import { listExpressRoutes, routeListingApp } from '../helpers/express-routes.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/** One sample of Prometheus's text format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): { samples: Sample[]; families: Map<string, string> } {
  const samples: Sample[] = [];
  const families = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    assert.ok(m, `exposition line parses: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, families };
}

const find = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** The family a sample belongs to (histogram and summary samples carry suffixes). */
function familyOf(name: string, families: Map<string, string>): string | undefined {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count', '_created']) {
    if (name.endsWith(suffix) && families.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return undefined;
}

/** JSON pointer (as a URI fragment) into the OpenAPI document. */
const pointer = (...parts: string[]) => parts.map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');

describe('observability: /metrics, worker metrics, OpenAPI and /docs', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  const validError = openAiValidator('ErrorResponse');
  const JOB_UUID = '0b6f1c1e-6b0e-4c55-9a8e-3f1f0d2f4a11';

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel()]) });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const scrape = async (headers: Record<string, string> = { authorization: `Bearer ${KEYS.admin}` }) => {
    const r = await fetch(`${svc.baseUrl}/metrics`, { headers });
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  };
  const scrapeWorker = async () => (await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/metrics`)).text();
  const getJson = async (route: string, headers: Record<string, string> = authHeaders()) => {
    const r = await fetch(`${svc.baseUrl}${route}`, { headers });
    return { status: r.status, json: (await r.json()) as any };
  };
  let openapi: any;
  const loadOpenApi = async () => {
    if (!openapi) {
      const r = await fetch(`${svc.baseUrl}/openapi.json`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
      openapi = await r.json();
    }
    return openapi;
  };

  test('/metrics needs the admin key: 401 without or with a wrong key, 403 with a tenant key', async () => {
    const none = await scrape({});
    assert.equal(none.status, 401);
    assert.deepEqual(validError(JSON.parse(none.text)), []);
    assert.equal((await scrape({ authorization: 'Bearer not-a-key-0123456789' })).status, 401);
    const tenant = await scrape({ authorization: `Bearer ${KEYS.acme}` });
    assert.equal(tenant.status, 403);
    assert.equal(JSON.parse(tenant.text).error.code, 'admin_required');
    const admin = await scrape({ 'x-api-key': KEYS.admin });
    assert.equal(admin.status, 200);
    assert.match(admin.type ?? '', /^text\/plain; version=0\.0\.4/);
  });

  test('after embedding requests, /metrics has their latency by route pattern, queue_jobs, event-loop and process metrics', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: [`metrics text ${i}`, 'another one'] });
      assert.equal(r.status, 200, r.text);
    }
    // An async job stays in Redis once completed, so queue_jobs{state="completed"} must count it.
    const job = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['kept after completion'] });
    assert.equal(job.status, 202);
    await waitFor('async job completed', async () => ((await getJson(`/v1/jobs/${encodeURIComponent(job.json.id)}`)).json.status === 'completed' ? true : undefined), 30_000);
    assert.equal((await getJson(`/v1/jobs/embedding.use-lite~${JOB_UUID}`)).status, 404);
    assert.equal((await fetch(`${svc.baseUrl}/no/such/route/${JOB_UUID}`)).status, 404);

    const { text, status } = await scrape();
    assert.equal(status, 200);
    const { samples, families } = parseExposition(text);
    assert.equal(families.get('http_request_duration_seconds'), 'histogram');

    const ok = { method: 'POST', route: '/v1/embeddings', status: '200' };
    assert.ok((find(samples, 'http_request_duration_seconds_count', ok)[0]?.value ?? 0) >= 3, 'three POST /v1/embeddings 200 timed');
    assert.ok((find(samples, 'http_request_duration_seconds_bucket', { ...ok, le: '+Inf' })[0]?.value ?? 0) >= 3);
    assert.ok((find(samples, 'http_requests_total', ok)[0]?.value ?? 0) >= 3);
    // Route patterns, never raw URLs: the job id and the unknown path are not labels.
    assert.ok(find(samples, 'http_request_duration_seconds_count', { method: 'GET', route: '/v1/jobs/:id', status: '404' }).length === 1);
    assert.ok(find(samples, 'http_requests_total', { route: 'unmatched', status: '404' }).length >= 1);
    assert.ok(!text.includes(JOB_UUID), 'no label carries a raw URL');

    for (const state of ['waiting', 'active', 'delayed', 'failed', 'completed']) {
      assert.equal(find(samples, 'queue_jobs', { queue: 'embedding.use-lite', state }).length, 1, `queue_jobs{queue="embedding.use-lite",state="${state}"}`);
    }
    assert.ok(find(samples, 'queue_jobs', { queue: 'embedding.use-lite', state: 'completed' })[0]!.value >= 1);
    for (const name of ['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_seconds', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
      assert.ok(find(samples, name, {}).length >= 1, `${name} is exported`);
    }
  });

  test("the worker's metrics port shows request_queue_time_seconds, request_run_seconds, embedding_batch_size and model_load_seconds", async () => {
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: ['worker metrics'] });
    assert.equal(r.status, 200, r.text);
    const { samples, families } = parseExposition(await scrapeWorker());
    const labels = { queue: 'embedding.use-lite', model: 'use-lite' };
    assert.equal(families.get('request_queue_time_seconds'), 'histogram');
    assert.ok((find(samples, 'request_queue_time_seconds_count', labels)[0]?.value ?? 0) >= 1);
    assert.ok((find(samples, 'request_run_seconds_count', labels)[0]?.value ?? 0) >= 1);
    assert.ok((find(samples, 'e2e_request_latency_seconds_count', labels)[0]?.value ?? 0) >= 1);
    assert.ok((find(samples, 'embedding_batch_size_count', { model: 'use-lite' })[0]?.value ?? 0) >= 1);
    assert.ok((find(samples, 'model_load_seconds', { model: 'use-lite' })[0]?.value ?? 0) > 0);
    assert.ok(find(samples, 'worker_nodejs_eventloop_lag_p99_seconds', {}).length === 1);
    assert.equal((await fetch(`http://127.0.0.1:${svc.workers[0]!.metricsPort}/healthz`)).status, 200);
  });

  test('every metric and label the Grafana dashboard queries is exported (chat metrics may have no samples yet)', async () => {
    // Traffic of its own, so that labelled series exist even when this test runs alone.
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: ['dashboard traffic'] });
    assert.equal(r.status, 200, r.text);
    await waitFor('the worker counted the job', async () => (/worker_jobs_finished_total\{[^}]*outcome="completed"/.test(await scrapeWorker()) ? true : undefined), 10_000);
    const api = parseExposition((await scrape()).text);
    const worker = parseExposition(await scrapeWorker());
    const families = new Map([...api.families, ...worker.families]);
    const samples = [...api.samples, ...worker.samples];
    // Chat metrics: their families may be absent, or present without samples, when no chat model is served.
    const placeholders = new Set(['time_to_first_token_seconds', 'inter_token_latency_seconds', 'generation_tokens_total']);
    const dash = JSON.parse(readFileSync(path.join(ROOT, 'dashboards', 'grafana', 'inference.json'), 'utf8'));
    const exprs: string[] = dash.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));
    const missing: string[] = [];
    let selectors = 0;
    for (const expr of exprs) {
      // A selector is a name followed by {matchers} or by a [range].
      for (const m of expr.matchAll(/([a-zA-Z_:][\w:]*)\s*(\{[^}]*\}|\[)/g)) {
        const name = m[1]!;
        const matchers = m[2]!.startsWith('{') ? m[2]! : '';
        selectors++;
        const family = familyOf(name, families);
        const base = name.replace(/_(bucket|sum|count)$/, '');
        if (!family) {
          if (!placeholders.has(base)) missing.push(`${name} (in ${expr})`);
          continue;
        }
        // Label matchers must name labels the metric has (job and instance come from Prometheus).
        for (const l of matchers.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) {
          const label = l[1]!;
          if (label === 'job' || label === 'instance') continue;
          const ofFamily = samples.filter((s) => familyOf(s.name, families) === family);
          if (ofFamily.length === 0 && placeholders.has(family)) continue;
          if (!ofFamily.some((s) => label in s.labels)) missing.push(`${name}{${label}} (in ${expr})`);
        }
      }
    }
    assert.ok(selectors >= 20, `found the dashboard's selectors (${selectors})`);
    assert.deepEqual(missing, []);
  });

  test('/openapi.json is public and a valid OpenAPI 3.1 document with security schemes and the error shape', async () => {
    const doc = await loadOpenApi();
    assert.match(doc.openapi, /^3\.1\./);
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    assert.deepEqual(result.errors ?? [], []);
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');

    const schemes = doc.components.securitySchemes;
    assert.deepEqual({ type: schemes.bearerAuth.type, scheme: schemes.bearerAuth.scheme }, { type: 'http', scheme: 'bearer' });
    assert.deepEqual({ type: schemes.apiKeyHeader.type, in: schemes.apiKeyHeader.in, name: schemes.apiKeyHeader.name }, { type: 'apiKey', in: 'header', name: 'X-API-Key' });
    const error = doc.components.schemas.ErrorResponse;
    assert.deepEqual(Object.keys(error.properties.error.properties).sort(), ['code', 'message', 'param', 'type']);

    for (const [p, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const where = `${method.toUpperCase()} ${p}`;
        assert.ok(Object.keys(op.responses).some((s) => /^2\d\d$/.test(s)), `${where} documents a success`);
        if (p.startsWith('/v1/')) {
          const names = op.security.flatMap((s: object) => Object.keys(s));
          assert.ok(names.includes('bearerAuth') && names.includes('apiKeyHeader'), `${where} accepts Bearer and X-API-Key`);
          assert.equal(op.responses['401']?.content['application/json'].schema.$ref, '#/components/schemas/ErrorResponse', `${where} documents 401 with the error shape`);
        }
      }
    }
    assert.deepEqual(doc.paths['/healthz'].get.security, []);
  });

  test('the request schemas in the document are the ones the API validates with', async () => {
    const doc = await loadOpenApi();
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema(structuredClone(doc), 'openapi');
    const body = (p: string) => doc.paths[p].post.requestBody.content['application/json'].schema.$ref as string;
    assert.equal(body('/v1/embeddings'), '#/components/schemas/CreateEmbeddingRequest');
    assert.equal(body('/v1/jobs'), '#/components/schemas/CreateJobRequest');
    const validate = ajv.getSchema(`openapi#/components/schemas/CreateEmbeddingRequest`)!;
    const bodies: unknown[] = [
      { model: 'use-lite', input: 'one text' },
      { model: 'use-lite', input: ['a', 'b'], encoding_format: 'base64', dimensions: 128 },
      { model: 'use-lite', input: '' },
      { model: 'use-lite', input: [] },
      { model: 'use-lite' },
      { input: 'x' },
      { model: 'use-lite', input: 'x', encoding_format: 'hex' },
      { model: 'use-lite', input: 'x', dimensions: 0 },
      { model: 'use-lite', input: 'x', surprise: true },
      { model: 'use-lite', input: [1, 2, 3] },
    ];
    for (const b of bodies) {
      assert.equal(validate(b), embeddingsRequestSchema.safeParse(b).success, `document and zod agree on ${JSON.stringify(b)}`);
    }
    const job = ajv.getSchema(`openapi#/components/schemas/CreateJobRequest`)!;
    assert.equal(job({ type: 'embedding', model: 'use-lite', input: ['x'] }), true);
    assert.equal(job({ type: 'embedding', model: 'use-lite' }), false);
    assert.equal(job({ type: 'nope', model: 'use-lite', input: ['x'] }), false);
  });

  test('every Express route is documented, and every documented operation is a route', async () => {
    const doc = await loadOpenApi();
    const app = routeListingApp();
    const routes = listExpressRoutes(app);
    assert.ok(routes.length >= 10, `found the app's routes (${routes.length})`);
    const sample = (p: string) => p.replace(/\{[^}]+\}/g, 'sample-id');
    const documented = Object.entries<any>(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => ({ method: m.toUpperCase(), path: p })));
    const routeMatches = (r: (typeof routes)[number], d: { method: string; path: string }) => {
      if (r.method !== d.method) return false;
      if (r.path instanceof RegExp) return r.path.test(sample(d.path));
      return r.path.replace(/[:*](\w+)/g, '{$1}') === d.path;
    };
    const undocumented = routes.filter((r) => !documented.some((d) => routeMatches(r, d))).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(undocumented, [], 'Express routes missing from the OpenAPI document (add them in api/http/openapi.ts)');
    const phantom = documented.filter((d) => !routes.some((r) => routeMatches(r, d))).map((d) => `${d.method} ${d.path}`);
    assert.deepEqual(phantom, [], 'documented operations with no Express route');
  });

  test("real answers match the document's response schemas", async () => {
    const doc = await loadOpenApi();
    const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema(structuredClone(doc), 'openapi');
    const check = (route: string, method: string, status: number, body: unknown) => {
      const validate = ajv.getSchema(`openapi#/${pointer('paths', route, method, 'responses', String(status), 'content', 'application/json', 'schema')}`);
      assert.ok(validate, `${method.toUpperCase()} ${route} documents ${status}`);
      assert.ok(validate(body), `${method.toUpperCase()} ${route} ${status}: ${JSON.stringify(validate.errors)}`);
    };
    const models = await getJson('/v1/models');
    check('/v1/models', 'get', models.status, models.json);
    const one = await getJson('/v1/models/use-lite');
    check('/v1/models/{id}', 'get', one.status, one.json);
    const unknownModel = await getJson('/v1/models/nope');
    check('/v1/models/{id}', 'get', unknownModel.status, unknownModel.json);
    for (const encoding_format of ['float', 'base64']) {
      const e = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: ['schema check'], encoding_format });
      check('/v1/embeddings', 'post', e.status, e.json);
    }
    const bad = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: '' });
    check('/v1/embeddings', 'post', bad.status, bad.json);
    const unauth = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input: 'x' }, { 'content-type': 'application/json' });
    check('/v1/embeddings', 'post', unauth.status, unauth.json);
    const job = await postJson(svc.baseUrl, '/v1/jobs', { type: 'embedding', model: 'use-lite', input: ['schema job'] });
    check('/v1/jobs', 'post', job.status, job.json);
    const id = encodeURIComponent(job.json.id);
    const done = await waitFor('job completed', async () => {
      const j = await getJson(`/v1/jobs/${id}`);
      return j.json.status === 'completed' ? j : undefined;
    }, 30_000);
    check('/v1/jobs/{id}', 'get', done.status, done.json);
    const cancelFinished = await fetch(`${svc.baseUrl}/v1/jobs/${id}`, { method: 'DELETE', headers: authHeaders() });
    check('/v1/jobs/{id}', 'delete', cancelFinished.status, await cancelFinished.json());
    const missing = await getJson(`/v1/jobs/embedding.use-lite~${JOB_UUID}`);
    check('/v1/jobs/{id}', 'get', missing.status, missing.json);
    const health = await getJson('/healthz', {});
    check('/healthz', 'get', health.status, health.json);
    const ready = await getJson('/readyz', {});
    check('/readyz', 'get', ready.status, ready.json);
    const metrics = await getJson('/metrics', { authorization: `Bearer ${KEYS.globex}` });
    check('/metrics', 'get', metrics.status, metrics.json);
  });

  test('/docs is an HTML page whose scripts and styles are all local and answer 200', async () => {
    const page = await fetch(`${svc.baseUrl}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await page.text();
    const refs = [...html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/gi)].map((m) => m[1]!);
    assert.ok(refs.some((r) => r.endsWith('.js')) && refs.some((r) => r.endsWith('.css')), `the page loads scripts and styles (${refs.join(', ')})`);
    assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>\s*\S/i.test(html), 'no inline scripts');
    for (const ref of refs) {
      assert.ok(!/^([a-z][a-z0-9+.-]*:|\/\/)/i.test(ref), `${ref} is a local path, not a remote URL`);
      const asset = await fetch(new URL(ref, `${svc.baseUrl}/docs`));
      const body = await asset.arrayBuffer();
      assert.equal(asset.status, 200, `${ref} answers 200`);
      assert.ok(body.byteLength > 0, `${ref} is not empty`);
      if (ref.endsWith('.js')) assert.match(asset.headers.get('content-type') ?? '', /javascript/);
      if (ref.endsWith('.css')) assert.match(asset.headers.get('content-type') ?? '', /^text\/css/);
    }
    const init = await (await fetch(`${svc.baseUrl}/docs/docs-init.js`)).text();
    assert.match(init, /url: '\/openapi\.json'/);
    const unknown = await fetch(`${svc.baseUrl}/docs/index.html`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(validError(await unknown.json()), []);
    assert.equal((await fetch(`${svc.baseUrl}/docs/..%2Fpackage.json`)).status, 404);
  });
});
