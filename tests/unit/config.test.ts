import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadEnv } from '../../shared/config/env.js';
import { isEmbeddingModel, parseModelRegistry, queueNameFor } from '../../shared/models/model-registry.js';

test('defaults give a working local configuration', () => {
  const env = loadEnv({});
  assert.equal(env.PORT, 3000);
  assert.equal(env.REDIS_URL, 'redis://127.0.0.1:6379');
  assert.equal(env.MODELS_CONFIG, 'config/models.json');
  assert.deepEqual(env.API_KEYS, []);
});

test('numbers are coerced and API_KEYS is parsed into tenant/key pairs', () => {
  const env = loadEnv({ PORT: '8080', API_KEYS: 'acme:key-aaaaaaaa, globex:key-bbbbbbbb' });
  assert.equal(env.PORT, 8080);
  assert.deepEqual(env.API_KEYS, [
    { tenant: 'acme', key: 'key-aaaaaaaa' },
    { tenant: 'globex', key: 'key-bbbbbbbb' },
  ]);
});

test('every configuration problem is reported at once', () => {
  assert.throws(
    () => loadEnv({ PORT: 'eighty', REDIS_URL: 'not a url', API_KEYS: 'nokey', ADMIN_API_KEY: 'short', LOG_LEVEL: 'loud' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const joined = err.issues.join('\n');
      for (const name of ['PORT', 'REDIS_URL', 'API_KEYS', 'ADMIN_API_KEY', 'LOG_LEVEL']) assert.match(joined, new RegExp(name));
      return true;
    },
  );
});

test('models config: defaults fill in, paths resolve against the config folder, queues are named per model', () => {
  const reg = parseModelRegistry({ models: [{ id: 'BAAI/bge-small', task: 'embedding', format: 'sentence-transformers', path: 'bge' }] }, '/etc/qi');
  const m = reg.get('BAAI/bge-small')!;
  assert.ok(isEmbeddingModel(m));
  assert.equal(m.dir, '/etc/qi/bge');
  assert.equal(m.queueName, 'embedding.baai-bge-small');
  assert.equal(m.threads, 2);
  assert.deepEqual(m.execution_providers, ['cpu']);
  assert.equal(m.batching.max_batch_size, 32);
  assert.equal(queueNameFor('embedding', 'a:b'), 'embedding.a-b');
});

test('models config: unknown fields, bad values and duplicate ids are refused with their path', () => {
  const bad = (models: unknown[]) => () => parseModelRegistry({ models }, '/x');
  const base = { id: 'm', task: 'embedding', format: 'use-lite', path: 'p' };
  assert.throws(bad([{ ...base, threds: 2 }]), /threds/);
  assert.throws(bad([{ ...base, execution_providers: ['tpu'] }]), /execution_providers/);
  assert.throws(bad([{ ...base, format: 'gguf' }]), /format/);
  assert.throws(bad([base, base]), /duplicate model id "m"/);
  assert.throws(bad([{ ...base, id: 'a:b' }, { ...base, id: 'a/b' }]), /maps to queue/);
  assert.throws(() => parseModelRegistry({ models: [] }, '/x'), /models/);
});

test('the example chatbot config parses; a bot naming an unknown tool or a broken pattern is refused', async () => {
  const { loadChatbotConfig, chatbotConfigSchema } = await import('../../shared/chatbot/chatbot-config.js');
  const example = loadChatbotConfig('config/chatbot.example.json');
  assert.equal(example.tenants.demo?.intents.length, 4);
  const bot = (extra: Record<string, unknown>) => ({ embedding_model: 'e', chat_model: 'c', intents: [{ name: 'x', examples: ['hi'], ...extra }] });
  assert.equal(chatbotConfigSchema.safeParse({ tenants: { t: bot({ tool: 'nope' }) } }).success, false);
  assert.equal(chatbotConfigSchema.safeParse({ tenants: { t: bot({ slots: { a: '(' } }) } }).success, false);
  assert.equal(chatbotConfigSchema.safeParse({ tenants: { t: bot({}) } }).success, true);
});

test('streaming jobs get short locks by default; a heartbeat TTL under two beats is refused', async () => {
  const { stallOptions, streamRetryWindowMs } = await import('../../shared/jobs/queues.js');
  const env = loadEnv({});
  assert.deepEqual(stallOptions('chat', env), { lockDuration: 5000, stalledInterval: 2000, maxStalledCount: 1 });
  assert.deepEqual(stallOptions('chatbot', env), { lockDuration: 5000, stalledInterval: 2000, maxStalledCount: 1 });
  assert.deepEqual(stallOptions('embedding', env), { lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 3 });
  assert.equal(streamRetryWindowMs(env), 5000 + 2 * 2000 + 3000);
  assert.equal(env.SSE_KEEPALIVE_MS, 15_000);
  assert.throws(() => loadEnv({ STREAM_HEARTBEAT_MS: '1000', STREAM_HEARTBEAT_TTL_MS: '1500' }), /STREAM_HEARTBEAT_TTL_MS/);
});
