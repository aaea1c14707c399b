import { test } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { postJson, startService, useLiteModel, writeModelsConfig } from '../helpers/service.js';

test('probe', { timeout: 120_000 }, async () => {
  const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-chat-'));
  await makeTinyDecoder(modelDir, { maxPositions: 256 });
  const redis = await startPrivateRedis();
  const svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([
    useLiteModel(),
    useLiteModel({ id: 'slow', threads: 1, concurrency: 4, batching: { max_batch_size: 1 } }),
    { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 200, default_max_tokens: 32 },
  ]) });
  const text = (i: number) => `Document ${i}: the quick brown fox jumps over the lazy dog while the committee reviews the quarterly figures and drafts a plan for next year, noting shipping delays ${i}.`;
  for (const [model, n] of [['use-lite', 512], ['slow', 256], ['slow', 1024]] as const) {
    const t = Date.now();
    const r = await postJson(svc.baseUrl, '/v1/embeddings', { model, input: Array.from({ length: n }, (_, i) => text(i)) });
    console.log(model, n, r.status, Date.now() - t, 'ms');
  }
  for (const mt of [16, 64, 150]) {
    const t = Date.now();
    const r = await postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages: [{ role: 'user', content: 'hi there' }], max_tokens: mt });
    console.log('chat', mt, r.status, Date.now() - t, 'ms');
  }
  const t = Date.now();
  await Promise.all(Array.from({ length: 16 }, () => postJson(svc.baseUrl, '/v1/chat/completions', { model: 'tiny-chat', messages: [{ role: 'user', content: 'hi there' }], max_tokens: 16 })));
  console.log('16 parallel chat x16', Date.now() - t, 'ms');
  await svc.stop();
  await redis.cleanup();
});
