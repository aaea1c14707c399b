import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { build } from 'esbuild';
import { signRequestWeb } from '../../shared/api/sign-request-web.js';
import { multipartBody, sha256Hex, signRequest, stringToSign } from '../../shared/api/sign-request.js';
import { ROOT } from '../helpers/service.js';

const apiKey = 'qik_0123456789ab_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS';
const B = 'qi-example-boundary';
const uploadBody =
  `--${B}\r\nContent-Disposition: form-data; name="collection"\r\n\r\nnotes\r\n` +
  `--${B}\r\nContent-Disposition: form-data; name="file"; filename="hello.txt"\r\nContent-Type: text/plain\r\n\r\n` +
  `hello world\r\n--${B}--\r\n`;

test('the signed upload example of docs/SIGNED_REQUESTS.md is reproduced by the helper', () => {
  assert.equal(Buffer.byteLength(uploadBody), 239);
  const headers = signRequest({ apiKey, method: 'POST', path: '/v1/documents', body: uploadBody, timestamp: 1767225600, nonce: 'n0nce-upload-0123456789' });
  assert.equal(headers['x-qi-signature'], 'd94e315c6e2f356dda6aefcccea6602686b6e832ca8c9272b2d1775769e21978');
  const doc = readFileSync(path.join(ROOT, 'docs', 'SIGNED_REQUESTS.md'), 'utf8');
  assert.ok(doc.includes(sha256Hex(uploadBody)));
  assert.ok(doc.includes(headers['x-qi-signature']!));
  assert.ok(doc.includes(stringToSign({ method: 'POST', path: '/v1/documents', timestamp: '1767225600', nonce: 'n0nce-upload-0123456789', bodySha256: sha256Hex(uploadBody) })));
  // The body shown in the document, its line breaks read as CRLF, is the body signed.
  const shown = /```\n(--qi-example-boundary\n[\s\S]*?--qi-example-boundary--)\n```/.exec(doc)?.[1];
  assert.equal(`${shown?.replace(/\n/g, '\r\n')}\r\n`, uploadBody);
});

test('a body hashed apart (bodySha256) signs the same as the body itself; not both at once', () => {
  const fixed = { apiKey, method: 'POST', path: '/v1/documents', timestamp: 1767225600, nonce: 'n0nce-upload-0123456789' };
  assert.deepEqual(signRequest({ ...fixed, bodySha256: sha256Hex(uploadBody) }), signRequest({ ...fixed, body: uploadBody }));
  assert.throws(() => signRequest({ ...fixed, body: uploadBody, bodySha256: sha256Hex(uploadBody) }), /not both/);
});

test("the Web Crypto signer agrees with Node's, for JSON, multipart bytes and empty bodies", async () => {
  const cases = [
    { method: 'POST', path: '/v1/embeddings', body: '{"model":"use-lite","input":["hello world"]}' },
    { method: 'POST', path: '/v1/documents', body: new TextEncoder().encode(uploadBody) },
    { method: 'POST', path: '/v1/documents', body: new Uint8Array([0, 255, 13, 10, 128, 7]) },
    { method: 'GET', path: '/v1/collections/notes/documents?limit=5' },
  ];
  for (const c of cases) {
    const fixed = { apiKey, ...c, timestamp: 1767225600, nonce: 'n0nce-0123456789abcdef' };
    assert.deepEqual(await signRequestWeb(fixed), signRequest(fixed), c.path);
  }
  const fresh = await signRequestWeb({ apiKey, method: 'GET', path: '/v1/models' });
  assert.match(fresh['x-qi-nonce']!, /^[A-Za-z0-9_-]{16,128}$/);
  assert.match(fresh['x-qi-signature']!, /^[0-9a-f]{64}$/);
  await assert.rejects(signRequestWeb({ apiKey: 'acme-key-0123456789abcdef', method: 'GET', path: '/v1/models' }), /not a managed API key/);
});

test('multipartBody gives the exact bytes and the content type (with its boundary) to send and sign', async () => {
  const form = new FormData();
  form.set('collection', 'notes');
  form.set('file', new Blob(['hello world'], { type: 'text/plain' }), 'hello.txt');
  const { body, contentType } = await multipartBody(form);
  const boundary = /^multipart\/form-data; boundary=(.+)$/.exec(contentType)?.[1];
  assert.ok(boundary, contentType);
  const text = Buffer.from(body).toString('utf8');
  assert.ok(text.startsWith(`--${boundary}\r\n`));
  assert.ok(text.endsWith(`--${boundary}--\r\n`), JSON.stringify(text.slice(-60)));
  assert.ok(text.includes('filename="hello.txt"') && text.includes('\r\n\r\nhello world\r\n'));
});

test('the typed client, signer included, still bundles for browsers (no node: imports)', async () => {
  const out = await build({
    entryPoints: [path.join(ROOT, 'client', 'inference-client.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  const code = out.outputFiles[0]!.text;
  assert.ok(code.includes('HMAC') && code.includes('SHA-256'), 'the Web Crypto signer is in the bundle');
  assert.ok(!/from\s*["']node:/.test(code));
});
