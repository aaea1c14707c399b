import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

/**
 * CPU time (user + system, in clock ticks) from a /proc stat file: of the whole process
 * (/proc/<pid>/stat) or of one of its threads (/proc/<pid>/task/<tid>/stat; the main thread's tid
 * is the pid). CPU time is what a thread really ran, so unlike wall-clock delays it does not grow
 * when a busy machine keeps the process waiting for a core.
 */
function cpuTicks(statFile: string): number {
  // Fields after the command name, which is in parentheses and may contain spaces: utime and stime are the 12th and 13th.
  const stat = readFileSync(statFile, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

const CLIENTS = 32;
const REQUESTS_PER_CLIENT = 6;

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
    const pid = svc.workers[0]!.child.pid!;
    const mainThread = () => cpuTicks(`/proc/${pid}/task/${pid}/stat`);
    const wholeProcess = () => cpuTicks(`/proc/${pid}/stat`);
    await fetch(`${stats}/stats`); // resets the event-loop delay window
    const before = { main: mainThread(), all: wholeProcess() };
    // A fixed amount of work (not a time window), so a slow machine does the same work, only later.
    let requests = 0;
    const started = performance.now();
    const client = async (c: number) => {
      for (let k = 0; k < REQUESTS_PER_CLIENT; k++) {
        const n = requests++;
        const input = Array.from({ length: 8 }, (_, i) => `${sentences[(c + i) % sentences.length]} (${n})`);
        const r = await postJson(svc.baseUrl, '/v1/embeddings', { model: 'use-lite', input });
        assert.equal(r.status, 200);
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    const seconds = (performance.now() - started) / 1000;
    const cpu = { main: mainThread() - before.main, all: wholeProcess() - before.all };
    const s = (await (await fetch(`${stats}/stats`)).json()) as { eventLoopDelayMs: { p99: number; max: number } };
    const metrics = await (await fetch(`${stats}/metrics`)).text();
    const batches = metricValue(metrics, 'embedding_batch_size_count{model="use-lite"}');
    const texts = metricValue(metrics, 'embedding_batch_size_sum{model="use-lite"}');
    const mainShare = cpu.main / cpu.all;
    console.log(
      `# ${requests} requests in ${seconds.toFixed(1)} s; worker event-loop delay p99 ${s.eventLoopDelayMs.p99.toFixed(1)} ms, max ${s.eventLoopDelayMs.max.toFixed(1)} ms; ` +
        `main thread ${cpu.main} of the worker's ${cpu.all} CPU ticks (${(mainShare * 100).toFixed(0)} %); ` +
        `${texts} texts in ${batches} ONNX runs (mean batch ${(texts / batches).toFixed(1)})`,
    );
    assert.equal(requests, CLIENTS * REQUESTS_PER_CLIENT);
    // Where the CPU time went says where inference ran, whatever the machine's load (event-loop
    // delays, printed above, also measure how long a busy machine keeps the process off a core).
    // ONNX runs take most of the worker's CPU time; on the main thread they would make it most of
    // that thread's too. Off it, the main thread only tokenizes, encodes and talks to Redis.
    assert.ok(cpu.all > 0, 'the worker used CPU time');
    assert.ok(mainShare < 1 / 3, `the main thread used ${cpu.main} of the worker's ${cpu.all} CPU ticks`);
    assert.ok(texts >= requests * 8, 'every text went through the batcher');
    assert.ok(texts / batches > 2, `texts were coalesced across jobs (mean batch ${texts / batches})`);
  });
});
