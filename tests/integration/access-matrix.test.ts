import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SCOPES, type Scope } from '../../api/auth/admin-schemas.js';
import { ROUTES, routeKey, type RouteSpec } from '../../api/http/route-table.js';
import { signRequest } from '../../shared/api/sign-request.js';
import { listExpressRoutes, routeListingApp } from '../helpers/express-routes.js';
import { rawHttpClient } from '../helpers/raw-http.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Every route of the route table × every kind of caller × every spelling of its path, against one
 * real API process. The expected answer comes from the route's entry: "passes authorization" (the
 * handler ran: anything but 401, a 403 of the authorization codes, or a 5xx), or the exact refusal.
 * Requests that pass are sent with an invalid body or the id of nothing, so handlers answer
 * 400/404 at once and change nothing. Other spellings of a path must never reach a route: 400
 * before routing (malformed or non-canonical), 404 (another case, a trailing slash), or 401 from
 * the /v1 chain that runs before routing.
 */

const JWT_SECRET = 'matrix-jwt-secret-0123456789abcdef-0123456789';
const AUTHZ_CODES = new Set(['insufficient_scope', 'admin_required']);

type Kind = 'none' | 'invalid' | 'managed' | 'jwt' | 'signed' | 'bootstrap' | 'admin';
interface Caller {
  name: string;
  kind: Kind;
  scopes: readonly Scope[];
  headers(method: string, target: string, body: string | undefined): Record<string, string>;
}

interface Sample {
  spec: RouteSpec;
  /** The concrete path with parameters filled in. */
  path: string;
  body?: string;
  /** The scopes the request needs (all of them); undefined: any credential (or none, for public and admin-key routes). */
  scope?: Scope | readonly Scope[];
}

type Expected = { pass: true } | { status: number; code?: string };

/** The requests of a route: one, or one per case of its scope resolver. */
function samplesOf(spec: RouteSpec): Sample[] {
  const fill = (params: Record<string, string> = {}) => spec.path.replace(/[:*](\w+)/g, (_, name: string) => params[name] ?? 'matrix-missing');
  const body = (extra: Record<string, unknown> = {}) => (spec.method === 'POST' ? JSON.stringify({ ...extra, matrix_invalid_field: true }) : undefined);
  const a = spec.access;
  if (a.kind === 'tenant' && typeof a.scope === 'object') {
    return a.scope.cases.map((c) => ({ spec, path: fill(c.params), body: body(c.body), scope: c.scope }));
  }
  return [{ spec, path: fill(), body: body(), scope: a.kind === 'tenant' && typeof a.scope === 'string' && a.scope !== 'any' ? a.scope : undefined }];
}

function expectedCanonical(s: Sample, who: Caller): Expected {
  const a = s.spec.access;
  switch (a.kind) {
    case 'public':
      return { pass: true };
    case 'admin-key':
      // requireAdmin knows bootstrap keys and the admin key only: other credentials are invalid there.
      if (who.kind === 'admin') return { pass: true };
      return who.kind === 'bootstrap' ? { status: 403, code: 'admin_required' } : { status: 401 };
    case 'tenant':
      if (who.kind === 'none' || who.kind === 'invalid') return { status: 401 };
      if (s.scope && ![s.scope].flat().every((needed) => who.scopes.includes(needed))) return { status: 403, code: 'insufficient_scope' };
      if (a.globalAdmin && who.kind !== 'admin') return { status: 403, code: 'admin_required' };
      return { pass: true };
  }
}

interface Spelling {
  name: string;
  target: string;
  expected: (who: Caller) => Expected;
}

/** The canonical path and the other ways of writing it, each with what it must get. */
function spellingsOf(s: Sample): Spelling[] {
  const p = s.path;
  const segments = p.split('/').slice(1);
  const v1 = p.startsWith('/v1/');
  const anonymous = (who: Caller) => who.kind === 'none' || who.kind === 'invalid';
  // Not a route: the /v1 chain authenticates before routing, so anonymous callers hear 401 first.
  const unknown = (target: string) => (who: Caller): Expected =>
    target.startsWith('/v1/') && anonymous(who) ? { status: 401 } : { status: 404, code: 'unknown_route' };
  const refused = () => ({ status: 400, code: 'non_canonical_path' }) as Expected;
  const out: Spelling[] = [{ name: 'canonical', target: p, expected: (who) => expectedCanonical(s, who) }];
  const add = (name: string, target: string, expected: (who: Caller) => Expected) => {
    if (target !== p && !out.some((o) => o.target === target)) out.push({ name, target, expected });
  };
  // The first segment with a letter after /v1 (or the first one outside /v1): /v1/Admin/keys, /Healthz.
  const at = segments.findIndex((seg, i) => (!v1 || i > 0) && /[a-z]/.test(seg));
  if (at >= 0) {
    const mixed = [...segments];
    mixed[at] = mixed[at]!.replace(/[a-z]/, (c) => c.toUpperCase());
    add('mixed case', `/${mixed.join('/')}`, unknown(`/${mixed.join('/')}`));
    add('upper case', p.toUpperCase(), unknown(p.toUpperCase()));
    const encoded = [...segments];
    encoded[at] = encoded[at]!.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    add('percent-encoded letter', `/${encoded.join('/')}`, refused);
  }
  // A trailing slash is another path, except under a mounted sub-application and in a `*rest` parameter.
  const sameRoute = s.spec.mount || s.spec.path.includes('*');
  if (p !== '/') add('trailing slash', `${p}/`, sameRoute ? (who) => expectedCanonical(s, who) : unknown(`${p}/`));
  const first = `/${segments[0]}`;
  const rest = p.slice(first.length);
  add('double slash', p === '/' ? '//' : `${first}/${rest}`.replace(/\/$/, '') || '//', refused);
  add('leading double slash', `/${p}`, refused);
  add('dot segment', p === '/' ? '/./' : `${first}/.${rest || '/'}`, refused);
  add('dot-dot segment', p === '/' ? '/x/../' : `${first}/x/..${rest || '/'}`, refused);
  add('encoded dot-dot', p === '/' ? '/x/%2e%2e/' : `${first}/x/%2e%2e${rest || '/'}`, refused);
  return out;
}

describe('access matrix: every route × every caller × every spelling of its path', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: ReturnType<typeof rawHttpClient>;
  const callers: Caller[] = [];

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel()]), workers: 0, waitReady: false, env: { JWT_SECRET } });
    client = rawHttpClient(svc.baseUrl);
    const json = { 'content-type': 'application/json' };
    const post = async (path: string, key: string, body: unknown) => {
      const r = await client.request('POST', path, { headers: { ...json, authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
      assert.ok(r.status === 200 || r.status === 201, `${path}: ${r.status} ${r.text}`);
      return r.json;
    };
    const bearer = (name: string, kind: Kind, key: string, scopes: readonly Scope[]): Caller => ({
      name,
      kind,
      scopes,
      headers: (_m, _t, body) => ({ authorization: `Bearer ${key}`, ...(body !== undefined ? json : {}) }),
    });
    callers.push({ name: 'no key', kind: 'none', scopes: [], headers: (_m, _t, body) => (body !== undefined ? json : {}) });
    callers.push(bearer('wrong key', 'invalid', 'matrix-wrong-key-0123456789abcdef', []));
    for (const scope of SCOPES) {
      const k = await post('/v1/admin/keys', KEYS.admin, { tenant: 'acme', scopes: [scope], name: `matrix ${scope}` });
      callers.push(bearer(`managed key [${scope}]`, 'managed', k.key, [scope]));
    }
    const other = await post('/v1/admin/keys', KEYS.admin, { tenant: 'globex', scopes: ['chat', 'embeddings', 'documents'] });
    callers.push(bearer("another tenant's key [chat, embeddings, documents]", 'managed', other.key, other.scopes));
    const token = await post('/v1/auth/token', KEYS.acme, { scopes: ['embeddings'] });
    callers.push(bearer('reduced-scope JWT [embeddings]', 'jwt', token.access_token, ['embeddings']));
    const signing = await post('/v1/admin/keys', KEYS.admin, { tenant: 'acme', scopes: ['documents'], require_signature: true });
    callers.push({
      name: 'signed request [documents]',
      kind: 'signed',
      scopes: ['documents'],
      headers: (method, target, body) => ({ ...signRequest({ apiKey: signing.key, method, path: target, body: body ?? '' }), ...(body !== undefined ? json : {}) }),
    });
    callers.push(bearer('bootstrap key (every scope)', 'bootstrap', KEYS.acme, SCOPES));
    callers.push(bearer('admin key', 'admin', KEYS.admin, SCOPES));
  });

  after(async () => {
    client?.close();
    await svc?.stop();
    await redis?.cleanup();
  });

  test('every route Express registers is in the route table, and every table route is registered', () => {
    const app = routeListingApp();
    const registered = listExpressRoutes(app).map((r) => {
      assert.equal(typeof r.path, 'string', `route ${String(r.path)} is a plain path pattern, not a regular expression`);
      return `${r.method} ${String(r.path)}`;
    });
    const table = (ROUTES as readonly RouteSpec[]).map((r) => routeKey(r));
    // A mounted sub-application (Bull Board) owns every path below its mount: its own routes are its business.
    const mounts = (ROUTES as readonly RouteSpec[]).filter((r) => r.mount).map((r) => `${r.path}/`);
    const outside = registered.filter((r) => !table.includes(r) && !mounts.some((m) => r.split(' ')[1]!.startsWith(m)));
    assert.deepEqual(outside, [], 'routes registered outside the route table');
    const present = (key: string) => registered.includes(key) || registered.some((r) => mounts.some((m) => key === `GET ${m.slice(0, -1)}` && r.startsWith(`GET ${m}`)));
    assert.deepEqual(table.filter((r) => !present(r)), [], 'table routes Express does not have');
  });

  test('each caller gets exactly what the route table allows, on every spelling of every path', async () => {
    const samples = (ROUTES as readonly RouteSpec[]).flatMap(samplesOf);
    const jobs: { sample: Sample; spelling: Spelling; who: Caller }[] = [];
    for (const sample of samples) for (const spelling of spellingsOf(sample)) for (const who of callers) jobs.push({ sample, spelling, who });

    const wrong: string[] = [];
    const seen = { pass: 0, refused: 0 };
    const run = async ({ sample, spelling, who }: (typeof jobs)[number]) => {
      const { method } = sample.spec;
      const r = await client.request(method, spelling.target, { headers: who.headers(method, spelling.target, sample.body), body: sample.body });
      const exp = spelling.expected(who);
      const code: string | undefined = r.json?.error?.code;
      const where = `${method} ${spelling.target} (${spelling.name}) as ${who.name}`;
      if ('pass' in exp) {
        seen.pass++;
        const denied = r.status === 401 || (r.status === 403 && AUTHZ_CODES.has(code ?? ''));
        const broken = r.status >= 500 && !(sample.spec.path === '/readyz' && r.status === 503);
        if (denied || broken) wrong.push(`${where}: expected to pass authorization, got ${r.status} ${code ?? ''}`);
      } else {
        seen.refused++;
        if (r.status !== exp.status || (exp.code && code !== exp.code) || typeof r.json?.error?.message !== 'string') {
          wrong.push(`${where}: expected ${exp.status} ${exp.code ?? ''}, got ${r.status} ${code ?? r.text.slice(0, 80)}`);
        }
      }
    };
    // A few at a time: one API process on a shared machine.
    const queue = [...jobs];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let j = queue.shift(); j; j = queue.shift()) await run(j);
      }),
    );
    console.log(`# access matrix: ${samples.length} sample requests of ${ROUTES.length} routes × ${callers.length} callers × their spellings = ${jobs.length} requests; ${seen.pass} expected to pass authorization, ${seen.refused} to be refused`);
    assert.deepEqual(wrong.slice(0, 40), [], `${wrong.length} answers differ from the route table`);
    assert.ok(seen.pass > 0 && seen.refused > 0);
  });

  test('the findings that started this: another case of a path is not another way in', async () => {
    const embeddingsOnly = callers.find((c) => c.name === 'managed key [embeddings]')!;
    const jwt = callers.find((c) => c.kind === 'jwt')!;
    const body = JSON.stringify({ tenant: 'acme', scopes: ['chat', 'embeddings', 'documents', 'admin'] });
    for (const who of [embeddingsOnly, jwt]) {
      for (const target of ['/v1/Admin/keys', '/V1/admin/keys', '/v1/admin/keys/', '/v1/%61dmin/keys', '/v1//admin/keys', '/v1/embeddings/../admin/keys', '/v1/admin/keys']) {
        const r = await client.request('POST', target, { headers: who.headers('POST', target, body), body });
        assert.ok([400, 403, 404].includes(r.status), `${who.name} POST ${target}: ${r.status} ${r.text}`);
        assert.equal(r.json?.key, undefined, 'no key was minted');
      }
    }
  });
});
