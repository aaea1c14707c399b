import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPrivateRedis } from '../helpers/redis.js';
import { postJson, startService, useLiteModel, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

const sentences = [
  'A man is playing a guitar.',
  'The new movie is awesome and everyone should see it this weekend.',
  'Stocks fell sharply after the central bank raised interest rates again, surprising most analysts.',
  'How do I reset my password?',
  'The committee will meet on Thursday to review the proposed budget for the coming fiscal year and vote on it.',
  'Cats sleep a lot.',
];

function metricValue(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : NaN;
}

describe('worker under load', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;

  before(async () => {
    redis = await startPrivateRedis();
    svc = await startService({ redisUrl: redis.url, modelsConfig: writeModelsConfig([useLiteModel()]) });
  });
  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  test('inference stays off the event loop, and concurrent jobs are batched together', async () => {
    const stats = `http://127.0.0.1:${svc.workers[0]!.metricsPort}`;
    await fetch(`${stats}/stats`); // resets the event-loop delay window
    const deadline = Date.now() + 4000;
    let requests = 0;
    const client = async (c: number) => {
      while (Date.now() < deadline && requests < 4000) {
        requests++;
        const input = Array.from({ length: 8 }, (_, i) => `${sentences[(c + i) % sentences.length]} (${requests})`);
        const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input });
        assert.equal(r.status, 200);
      }
    };
    await Promise.all(Array.from({ length: 32 }, (_, c) => client(c)));
    const s = (await (await fetch(`${stats}/stats`)).json()) as { eventLoopDelayMs: { p99: number; max: number } };
    const metrics = await (await fetch(`${stats}/metrics`)).text();
    const batches = metricValue(metrics, 'embedding_batch_size_count{model="use-lite"}');
    const texts = metricValue(metrics, 'embedding_batch_size_sum{model="use-lite"}');
    console.log(
      `# ${requests} requests in 4 s; worker event-loop delay p99 ${s.eventLoopDelayMs.p99.toFixed(1)} ms, max ${s.eventLoopDelayMs.max.toFixed(1)} ms; ` +
        `${texts} texts in ${batches} ONNX runs (mean batch ${(texts / batches).toFixed(1)})`,
    );
    assert.ok(requests > 50, 'the load ran');
    // A batch on the main thread would block it for its whole run (tens to hundreds of ms);
    // BullMQ's lock renewal needs the loop to turn well inside lockDuration (30 s).
    assert.ok(s.eventLoopDelayMs.p99 < 50, `event-loop p99 ${s.eventLoopDelayMs.p99} ms`);
    assert.ok(texts >= requests * 8, 'every text went through the batcher');
    assert.ok(texts / batches > 2, `texts were coalesced across jobs (mean batch ${texts / batches})`);
  });
});
