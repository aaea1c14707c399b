import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadEnv } from '../../shared/config/env.js';
import { DOCUMENT_QUEUES } from '../../shared/documents/documents.js';
import {
  JOB_TYPES,
  STREAMING_JOB_TYPES,
  fixedQueueNames,
  fixedQueueTarget,
  isStreamingQueue,
  jobSpec,
  jobTypeOfQueue,
} from '../../shared/jobs/job-catalog.js';
import { queueNames, stallOptions } from '../../shared/jobs/queues.js';
import { parseModelRegistry } from '../../shared/models/model-registry.js';

const registry = parseModelRegistry(
  {
    models: [
      { id: 'BAAI/bge-small', task: 'embedding', format: 'sentence-transformers', path: 'bge' },
      { id: 'use-lite', task: 'embedding', format: 'use-lite', path: 'use-lite' },
      { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: 'tiny-chat' },
      { id: 'Up/Stream', task: 'chat', format: 'openai-upstream', base_url: 'http://127.0.0.1:9/v1' },
    ],
  },
  '/etc/qi',
);

test('the catalog says which job types stream tokens, and every queue name tells its job type', () => {
  assert.deepEqual([...STREAMING_JOB_TYPES].sort(), ['chat', 'chatbot']);
  for (const model of registry.models) {
    assert.equal(jobTypeOfQueue(model.queueName), model.task, model.queueName);
    assert.equal(isStreamingQueue(model.queueName), model.task === 'chat', model.queueName);
  }
  for (const type of JOB_TYPES) {
    const q = jobSpec(type).queue;
    if (!('name' in q)) continue;
    assert.equal(jobTypeOfQueue(q.name), type, q.name);
    assert.equal(isStreamingQueue(q.name), type === 'chatbot', q.name);
  }
  // A chat model's second queue, for tokenize jobs (beside its chat queue, never behind its generations).
  assert.equal(jobTypeOfQueue('tokenize.tiny-chat'), 'tokenize');
  assert.equal(isStreamingQueue('tokenize.tiny-chat'), false);
  assert.equal(jobTypeOfQueue('nothing.here'), undefined);
  assert.equal(isStreamingQueue(undefined), false);
});

test('queues are created from the catalog: every model, every fixed queue, less the skipped types', () => {
  const all = queueNames(registry);
  assert.deepEqual(all, [
    'embedding.baai-bge-small',
    'embedding.use-lite',
    'chat.tiny-chat',
    'tokenize.tiny-chat',
    'chat.up-stream',
    'tokenize.up-stream',
    'chatbot.default',
    ...Object.values(DOCUMENT_QUEUES),
    'batches.validate',
    'batches.run',
  ]);
  assert.deepEqual(queueNames(registry, ['chatbot']), all.filter((q) => q !== 'chatbot.default'));
  assert.deepEqual(fixedQueueNames(['chatbot', 'document.search', 'batch.validate', 'batch.run']), Object.values(DOCUMENT_QUEUES).filter((q) => q !== 'documents.search'));
});

test('a job type with a queue of its own is submitted there, bounded by its catalog entry', () => {
  assert.deepEqual(fixedQueueTarget('chatbot'), { id: 'chatbot', queueName: 'chatbot.default', max_queue: 1000 });
  assert.deepEqual(fixedQueueTarget('document.search', 'use-lite'), { id: 'use-lite', queueName: 'documents.search', max_queue: 10_000 });
});

test('stall settings follow the catalog: streams put back once, parses judged by crash marks, others by attempts', () => {
  const env = loadEnv({ DOCUMENTS_POISON_CRASHES: '3' });
  assert.deepEqual(stallOptions('chatbot', env), { lockDuration: env.STREAM_LOCK_DURATION_MS, stalledInterval: env.STREAM_STALLED_INTERVAL_MS, maxStalledCount: 1 });
  assert.deepEqual(stallOptions('document.parse', env), { lockDuration: env.WORKER_LOCK_DURATION_MS, stalledInterval: env.WORKER_STALLED_INTERVAL_MS, maxStalledCount: 3 });
  assert.equal(stallOptions('document.index', env).maxStalledCount, 6);
  assert.equal(stallOptions('document.ingest', env).maxStalledCount, 2);
});
