import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { freePort } from '../../scripts/lib/redis-server.js';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { failureCode, type JobPayload } from '../../shared/jobs/job-catalog.js';
import { createLogger } from '../../shared/logger.js';
import { parseModelRegistry, type ModelConfig } from '../../shared/models/model-registry.js';
import { createRedis, closeRedis } from '../../shared/redis/redis-connections.js';
import { ContextLengthError } from '../../workers/chat/context-length.error.js';
import { startDecoderBackend } from '../../workers/chat/decoder-backend.js';
import { GenerationError } from '../../workers/chat/generation.error.js';
import { createUpstreamBackend } from '../../workers/chat/upstream-backend.js';
import { UpstreamError } from '../../workers/chat/upstream.error.js';
import { UpstreamTimeoutError } from '../../workers/chat/upstream-timeout.error.js';
import { CollectionGoneError } from '../../workers/index/collection-replicas.js';
import { JobError, TransientJobError, jobErrorCode } from '../../workers/jobs/job.error.js';
import { ExpiredError } from '../../workers/jobs/expired.error.js';
import { JobEndedError } from '../../workers/jobs/job-ended.error.js';
import { DocumentFailedError } from '../../workers/documents/document-failed.error.js';
import { ParseFailure, TransientParseFailure, parseFailure } from '../../workers/documents/parse-failure.error.js';
import { DocumentStoreError, StaleCommitError } from '../../shared/documents/document-store.js';
import { WorkerLostError } from '../../workers/jobs/worker-lost.error.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/service.js';

/** Worker failures: one class per kind, terminal, their code read back from their type. */
const cleanups: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const log = createLogger({ level: 'silent', name: 'job-errors-test' });
const payload = (content: string): JobPayload<'chat'> => ({
  model: 'm',
  messages: [{ role: 'user', content }],
  max_tokens: 4,
  temperature: 0,
  top_p: 1,
  top_k: 0,
  repetition_penalty: 1,
  stop: [],
});

test('each kind is a terminal JobError whose type gives its code', () => {
  const kinds: [JobError, string, string][] = [
    [new WorkerLostError('its worker died mid-stream'), 'worker_lost', 'WorkerLostError'],
    [new ContextLengthError('too long'), 'context_length_exceeded', 'ContextLengthError'],
    [new GenerationError('thread crashed'), 'generation_failed', 'GenerationError'],
    [new UpstreamError('refused'), 'upstream_error', 'UpstreamError'],
    [new UpstreamTimeoutError('silent'), 'upstream_timeout', 'UpstreamTimeoutError'],
    [new CollectionGoneError('deleted'), 'collection_deleted', 'CollectionGoneError'],
    [new DocumentStoreError('document_deleted', 'gone'), 'document_deleted', 'DocumentStoreError'],
    [new ParseFailure('encrypted_pdf', 'has a password'), 'encrypted_pdf', 'ParseFailure'],
    [parseFailure('corrupt_pdf', 'truncated', true) as JobError, 'corrupt_pdf', 'ParseFailure'],
    [new DocumentFailedError('stage_failed', 'the parse stage failed'), 'stage_failed', 'DocumentFailedError'],
    [new ExpiredError('still queued 3 s past its deadline'), 'expired', 'ExpiredError'],
    [new JobEndedError('upstream_error', 'refused'), 'upstream_error', 'JobEndedError'],
  ];
  for (const [err, code, name] of kinds) {
    assert.ok(err instanceof JobError && err instanceof UnrecoverableError, name);
    assert.equal(err.name, name);
    assert.equal(err.code, code);
    assert.equal(jobErrorCode(err), code);
  }
  assert.match(kinds[0]![0].message, /^worker lost: /, 'worker_lost keeps the failed-reason prefix failureCode() reads');
  assert.equal(failureCode(new ExpiredError('late').message), 'expired', 'expired keeps the failed-reason prefix failureCode() reads');
  // By type, not by shape: an error that merely has a `code` is no known kind.
  assert.equal(jobErrorCode(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })), 'job_failed');
  assert.equal(jobErrorCode(new Error('boom')), 'job_failed');
  assert.equal(jobErrorCode('not even an error'), 'job_failed');
});

test('passing kinds are TransientJobErrors: not terminal, their code still read from their type', () => {
  const kinds: [TransientJobError, string, string][] = [
    [new StaleCommitError('expected 3 committed chunks, found 5'), 'stale_commit', 'StaleCommitError'],
    [new TransientParseFailure('parse_crashed', 'its process died'), 'parse_crashed', 'TransientParseFailure'],
    [parseFailure('parse_pool_closed', 'shutting down', false) as TransientJobError, 'parse_pool_closed', 'TransientParseFailure'],
  ];
  for (const [err, code, name] of kinds) {
    assert.ok(err instanceof TransientJobError && !(err instanceof UnrecoverableError) && !(err instanceof JobError), name);
    assert.equal(err.name, name);
    assert.equal(jobErrorCode(err), code);
    assert.equal(jobErrorCode(err, 'stage_failed'), code, 'a known kind keeps its code whatever the fallback');
  }
  assert.equal(jobErrorCode(new Error('boom'), 'stage_failed'), 'stage_failed');
});

test('BullMQ fails a JobError at once, and retries a plain error', { timeout: 60_000 }, async () => {
  const redis = await startPrivateRedis();
  cleanups.push(() => redis.cleanup());
  const connection = createRedis(redis.url, 'worker', 'job-errors-test');
  cleanups.push(() => closeRedis(connection));
  const queue = new Queue('job-errors', { connection, prefix: 'qi-job-errors' });
  const worker = new Worker(
    'job-errors',
    async (job) => {
      if (job.name === 'known') throw new UpstreamError('upstream refused');
      throw job.name === 'transient' ? new StaleCommitError('raced another attempt') : new Error('something passing');
    },
    { connection, prefix: 'qi-job-errors' },
  );
  cleanups.push(() => worker.close(), () => queue.close());
  const opts = { attempts: 3, backoff: { type: 'fixed', delay: 10 } };
  const known = await queue.add('known', {}, opts);
  const unknown = await queue.add('unknown', {}, opts);
  const transient = await queue.add('transient', {}, opts);
  // State first, then the job: a job read before it failed would show the attempts of then.
  const settled = async (id: string) => ((await queue.getJobState(id)) === 'failed' ? queue.getJob(id) : undefined);
  const k = await waitFor('the known failure to fail', () => settled(known.id!), 30_000);
  const u = await waitFor('the plain failure to run out of attempts', () => settled(unknown.id!), 30_000);
  assert.equal(k.attemptsMade, 1, 'a known kind is not retried');
  assert.equal(k.failedReason, 'upstream refused');
  assert.equal(u.attemptsMade, 3, 'a plain error spends every attempt');
  const t = await waitFor('the transient failure to run out of attempts', () => settled(transient.id!), 30_000);
  assert.equal(t.attemptsMade, 3, 'a TransientJobError spends every attempt too');
});

test('a local chat model fails a prompt longer than its context with ContextLengthError', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-job-errors-decoder-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  await makeTinyDecoder(dir, { maxPositions: 32 });
  const model = parseModelRegistry({ models: [{ id: 'tiny', task: 'chat', format: 'hf-decoder', path: dir, threads: 1, concurrency: 1 }] }, dir).get('tiny')!;
  assert.ok(model.task === 'chat' && model.format === 'hf-decoder');
  const backend = await startDecoderBackend(model, log);
  cleanups.push(() => backend.close());
  const err = await backend.generate('job-1', payload('word '.repeat(200)), { signal: new AbortController().signal, onToken: () => {} }).then(
    () => assert.fail('a prompt past the context must fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ContextLengthError, String(err));
  assert.match(err.message, /context holds 32/);
  await backend.close();
  const closed = await backend.generate('job-2', payload('hi'), { signal: new AbortController().signal, onToken: () => {} }).catch((e: unknown) => e);
  assert.ok(closed instanceof GenerationError, 'a closed model fails as generation_failed');
});

test('an upstream that refuses fails with UpstreamError, one that stays silent with UpstreamTimeoutError', { timeout: 30_000 }, async () => {
  const sockets: Socket[] = [];
  const silent: Server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    sockets.forEach((s) => s.destroy());
    return new Promise((r) => silent.close(r));
  });
  const refusing = await freePort();
  const upstream = (id: string, base: string) => {
    const m: ModelConfig = parseModelRegistry({ models: [{ id, task: 'chat', format: 'openai-upstream', base_url: base, timeout_ms: 300 }] }, '/').get(id)!;
    assert.ok(m.task === 'chat' && m.format === 'openai-upstream');
    return createUpstreamBackend(m, undefined);
  };
  const generate = (id: string, base: string) =>
    upstream(id, base).generate('job', payload('hi'), { signal: new AbortController().signal, onToken: () => {} }).catch((e: unknown) => e);
  const refused = await generate('refusing', `http://127.0.0.1:${refusing}/v1`);
  assert.ok(refused instanceof UpstreamError, String(refused));
  const timedOut = await generate('silent', `http://127.0.0.1:${(silent.address() as { port: number }).port}/v1`);
  assert.ok(timedOut instanceof UpstreamTimeoutError, String(timedOut));
  assert.equal(jobErrorCode(timedOut), 'upstream_timeout');
});
