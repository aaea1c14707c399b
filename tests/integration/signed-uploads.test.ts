import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { InferenceClient, InferenceError } from '../../client/inference-client.js';
import { multipartBody, sha256Hex, signRequest } from '../../shared/api/sign-request.js';
import { documentKeys } from '../../shared/documents/documents.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Signed requests over bodies the JSON parser does not read: multipart uploads are hashed while
 * they stream to their temporary file and committed (stored, deduplicated, enqueued) only once the
 * signature over their exact bytes checked out; any other unread body is hashed before the routes
 * run. A refused upload leaves no document, no job and no file.
 */
const JWT_SECRET = 'signed-uploads-jwt-secret-0123456789abcdef';
const MAX_BYTES = 1024 * 1024;

describe('signed uploads: the signature covers the exact bytes of any body', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let db: Redis;
  let docsDir: string;
  /** A key that must sign, with the scopes these tests use. */
  let key: string;
  /** The same tenant's key with a limit of 3 requests per minute. */
  let limitedKey: string;
  /** A key without the documents scope. */
  let embeddingsKey: string;

  before(async () => {
    redis = await startPrivateRedis();
    docsDir = path.join(mkdtempSync(path.join(tmpdir(), 'qi-signed-')), 'uploads');
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([useLiteModel()]),
      env: {
        DOCUMENTS_DIR: docsDir,
        INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-signed-index-')),
        DOCUMENTS_MAX_BYTES: String(MAX_BYTES),
        JWT_SECRET,
      },
    });
    db = new Redis(redis.url);
    const newKey = async (body: Record<string, unknown>) => {
      const r = await fetch(`${svc.baseUrl}/v1/admin/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tenant: 'acme', require_signature: true, ...body }),
      });
      const json = (await r.json()) as { key: string };
      assert.equal(r.status, 201, JSON.stringify(json));
      return json.key;
    };
    key = await newKey({ scopes: ['documents', 'embeddings'] });
    limitedKey = await newKey({ scopes: ['documents'], limits: { rpm: 3 } });
    embeddingsKey = await newKey({ scopes: ['embeddings'] });
  });

  after(async () => {
    db?.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  /** A multipart form of a `collection` field and one text file, as the exact bytes fetch would send. */
  const form = (collection: string, text: string, filename = 'note.txt') => {
    const f = new FormData();
    f.set('collection', collection);
    f.set('file', new Blob([text], { type: 'text/plain' }), filename);
    return multipartBody(f);
  };

  const send = async (route: string, init: { method?: string; headers: Record<string, string>; body?: Uint8Array | ReadableStream<Uint8Array> | string }) => {
    const res = await fetch(`${svc.baseUrl}${route}`, {
      method: init.method ?? 'POST',
      headers: init.headers,
      body: init.body as BodyInit | undefined,
      ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  };

  /** POST /v1/documents signed over `signedBody` (default: the body sent). */
  const upload = (body: { body: Uint8Array; contentType: string }, opts: { signedBody?: Uint8Array | string; headers?: Record<string, string>; apiKey?: string } = {}) => {
    const headers = opts.headers ?? signRequest({ apiKey: opts.apiKey ?? key, method: 'POST', path: '/v1/documents', body: opts.signedBody ?? body.body });
    return { headers, sent: send('/v1/documents', { headers: { 'content-type': body.contentType, ...headers }, body: body.body }) };
  };

  const signedGet = (route: string) => send(route, { method: 'GET', headers: signRequest({ apiKey: key, method: 'GET', path: route }) });

  const waitReady = (id: string) =>
    waitFor(
      `document ${id} to be ready`,
      async () => {
        const d = await signedGet(`/v1/documents/${id}`);
        if (d.json?.status === 'failed') throw new Error(`document failed: ${d.text}`);
        return d.json?.status === 'ready' ? d.json : undefined;
      },
      120_000,
      () => svc.workers.map((w) => w.output().slice(-2000)).join('\n'),
    );

  const expectError = (r: { status: number; json: any; text: string }, status: number, code: string) => {
    assert.equal(r.status, status, r.text);
    assert.equal(r.json?.error?.code, code, r.text);
    assert.equal(typeof r.json.error.message, 'string');
  };

  /** What an upload leaves behind: document records and pipeline jobs in Redis, the tenant's collections, files. */
  const footprint = async () => {
    const jobKey = new RegExp(`^${svc.prefix}:documents\\.[a-z]+:documents\\.[a-z]+~[0-9a-f-]{36}$`);
    const keys = (await db.keys(`${svc.prefix}:*`)).filter((k) => k.startsWith(`${svc.prefix}:docs:d:`) || jobKey.test(k)).sort();
    const collections = await db.hgetall(documentKeys(svc.prefix).tenantCollections('acme'));
    const files = existsSync(docsDir) ? (readdirSync(docsDir, { recursive: true }) as string[]).sort() : [];
    return { keys, collections, files };
  };
  const incoming = () => (existsSync(path.join(docsDir, 'incoming')) ? readdirSync(path.join(docsDir, 'incoming')) : []);

  test('a multipart upload signed over its exact bytes is accepted (202) and ingested to ready, sent whole or chunked', async () => {
    const whole = upload(await form('signed', 'The lighthouse keeper climbed the spiral stairs every evening to light the lamp.'));
    const r = await whole.sent;
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.collection, 'signed');
    const ready = await waitReady(r.json.id);
    assert.ok(ready.chunks > 0, JSON.stringify(ready));

    // Chunked transfer (no Content-Length): the hash follows the stream piece by piece.
    const body = await form('signed', 'Honeybees tell their hive mates where flowers are through a waggle dance.');
    const pieces = [body.body.subarray(0, 7), body.body.subarray(7, 100), body.body.subarray(100)];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = pieces.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const chunked = await send('/v1/documents', {
      headers: { 'content-type': body.contentType, ...signRequest({ apiKey: key, method: 'POST', path: '/v1/documents', body: body.body }) },
      body: stream,
    });
    assert.equal(chunked.status, 202, chunked.text);
    await waitReady(chunked.json.id);
    const search = await send('/v1/collections/signed/search', {
      headers: { 'content-type': 'application/json', ...signRequest({ apiKey: key, method: 'POST', path: '/v1/collections/signed/search', body: '{"query":"bees dancing","top_k":1}' }) },
      body: '{"query":"bees dancing","top_k":1}',
    });
    assert.equal(search.status, 200, search.text);
    assert.equal(search.json.data[0].document_id, chunked.json.id);
  });

  test('the typed client signs its uploads (Blob and stream), its reads and its Socket.IO token', async () => {
    const client = new InferenceClient({ baseUrl: svc.baseUrl, apiKey: key, signRequests: true });
    try {
      const doc = await client.uploadDocument(new Blob(['Sourdough bread needs a lively starter and a very hot oven.']), { filename: 'bread.txt', collection: 'client-signed' });
      assert.equal(doc.status, 'queued');
      // follow() connects with a token minted by a signed POST /v1/auth/token: the key itself cannot be sent.
      await client.follow(doc.job_id);
      assert.equal((await client.getDocument(doc.id)).status, 'ready');
      async function* pieces() {
        yield new TextEncoder().encode('The treaty was signed in the spring, ');
        yield new TextEncoder().encode('ending a decade of border disputes.');
      }
      const streamed = await client.uploadDocument(pieces(), { filename: 'treaty.txt', collection: 'client-signed' });
      assert.equal(streamed.bytes, 72);
      assert.equal((await waitReady(streamed.id)).status, 'ready');
      // Without signing, the key is refused: it only accepts signatures.
      const unsigned = new InferenceClient({ baseUrl: svc.baseUrl, apiKey: key });
      await assert.rejects(unsigned.getDocument(doc.id), (err: InferenceError) => err.status === 401 && err.code === 'signature_required');
    } finally {
      client.close();
    }
  });

  test('a swapped file (signature over file A, body with file B) is refused 401 and leaves no document, job or file', async () => {
    const a = await form('swapped', 'File A: the quarterly report as approved by the board.');
    // Same boundary and length as A; only the file's bytes differ.
    const b = { ...a, body: Buffer.from(Buffer.from(a.body).toString('latin1').replace('File A', 'File B'), 'latin1') };
    assert.equal(b.body.length, a.body.length);
    assert.notEqual(sha256Hex(a.body), sha256Hex(b.body));
    const before = await footprint();
    expectError(await upload(b, { signedBody: a.body }).sent, 401, 'invalid_signature');
    assert.deepEqual(await footprint(), before, 'nothing was stored or enqueued');
    assert.equal(before.collections.swapped, undefined, 'the collection was never created');
    assert.deepEqual(incoming(), [], 'no temporary file is left');
    // The same headers with file A itself go through: the refusal was about the bytes.
    const ok = await upload(a, { signedBody: a.body }).sent;
    assert.equal(ok.status, 202, ok.text);
    await waitReady(ok.json.id);
  });

  test('a replay of the exact signed upload is refused (nonce_reused) and creates nothing', async () => {
    const body = await form('replayed', 'Quantum computers use qubits that can hold superpositions of states.');
    const first = upload(body);
    const accepted = await first.sent;
    assert.equal(accepted.status, 202, accepted.text);
    await waitReady(accepted.json.id);
    const before = await footprint();
    const replay = await send('/v1/documents', { headers: { 'content-type': body.contentType, ...first.headers }, body: body.body });
    expectError(replay, 401, 'nonce_reused');
    assert.deepEqual(await footprint(), before);
    assert.deepEqual(incoming(), []);
    const listed = await signedGet('/v1/collections/replayed/documents');
    assert.deepEqual(
      listed.json.data.map((d: { id: string }) => d.id),
      [accepted.json.id],
    );
  });

  test('a signature over the empty body does not cover a file', async () => {
    const before = await footprint();
    expectError(await upload(await form('empty-hash', 'Anything at all.'), { signedBody: '' }).sent, 401, 'invalid_signature');
    assert.deepEqual(await footprint(), before);
    assert.equal((await footprint()).collections['empty-hash'], undefined);
    assert.deepEqual(incoming(), []);
  });

  test('bodies no parser reads (text, octet-stream) are hashed too: signed over other bytes they are refused', async () => {
    const text = 'plain text the embeddings route does not parse';
    const sign = (route: string, body: string) => signRequest({ apiKey: key, method: 'POST', path: route, body });
    // Signed over the empty body (what the server hashed before): refused.
    expectError(await send('/v1/embeddings', { headers: { 'content-type': 'text/plain', ...sign('/v1/embeddings', '') }, body: text }), 401, 'invalid_signature');
    // Signed over its bytes: authenticated, then refused by the route for what it is (not JSON).
    const read = await send('/v1/embeddings', { headers: { 'content-type': 'text/plain', ...sign('/v1/embeddings', text) }, body: text });
    assert.equal(read.status, 400, read.text);
    expectError(await send('/v1/documents', { headers: { 'content-type': 'application/octet-stream', ...sign('/v1/documents', '') }, body: text }), 401, 'invalid_signature');
    expectError(await send('/v1/documents', { headers: { 'content-type': 'application/octet-stream', ...sign('/v1/documents', text) }, body: text }), 415, 'unsupported_media_type');
  });

  test('a signed upload over the size limit is refused 413 and leaves no temporary file', async () => {
    // Chunked, so only the streaming limit can stop it; the signature is over the bytes that would be sent.
    const boundary = 'qi-signed-huge-boundary';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="collection"\r\n\r\nhuge\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\nContent-Type: text/plain\r\n\r\n`);
    const block = Buffer.alloc(64 * 1024, 'a');
    const blocks = (2 * MAX_BYTES) / block.length;
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const whole = Buffer.concat([head, ...Array.from({ length: blocks }, () => block), tail]);
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (i === 0) controller.enqueue(head);
        else if (i <= blocks) controller.enqueue(block);
        else if (i === blocks + 1) controller.enqueue(tail);
        else controller.close();
        i++;
      },
    });
    const before = await footprint();
    const headers = { 'content-type': `multipart/form-data; boundary=${boundary}`, ...signRequest({ apiKey: key, method: 'POST', path: '/v1/documents', body: whole }) };
    const r = await send('/v1/documents', { headers, body }).catch((err: Error) => ({ status: -1, json: undefined, text: String(err.cause ?? err) }));
    // The answer is sent before the rest of the body is read; the connection is then closed.
    if (r.status !== -1) expectError(r, 413, 'payload_too_large');
    await waitFor('the partial upload to be removed', async () => (incoming().length === 0 ? true : undefined), 10_000);
    assert.deepEqual(await footprint(), before);
    assert.equal((await fetch(`${svc.baseUrl}/healthz`)).status, 200);
  });

  test('a key without the documents scope is refused (403) before its upload is read; nothing is left and the server reads on', async () => {
    const before = await footprint();
    const body = await form('no-scope', 'x'.repeat(512 * 1024));
    expectError(await upload(body, { apiKey: embeddingsKey }).sent, 403, 'insufficient_scope');
    assert.deepEqual(await footprint(), before);
    assert.deepEqual(incoming(), []);
    // The unread rest of that body does not hold up the service.
    const next = await signedGet('/v1/collections');
    assert.equal(next.status, 200, next.text);
  });

  test("forged uploads do not use up the key's request limit; signed ones count once verified", async () => {
    const body = await form('limited', 'Counted only once the signature checked out.');
    const forged = { ...body, body: Buffer.from(Buffer.from(body.body).toString('latin1').replace('Counted', 'Forged!'), 'latin1') };
    for (let n = 0; n < 5; n++) expectError(await upload(forged, { apiKey: limitedKey, signedBody: body.body }).sent, 401, 'invalid_signature');
    // Three real uploads (the same content: the second and third are answered from the first) fit the limit of 3.
    const statuses = [];
    for (let n = 0; n < 3; n++) statuses.push((await upload(body, { apiKey: limitedKey }).sent).status);
    assert.deepEqual(statuses, [202, 200, 200]);
    const over = await upload(body, { apiKey: limitedKey }).sent;
    expectError(over, 429, 'rate_limit_exceeded');
    assert.deepEqual(incoming(), []);
  });
});
