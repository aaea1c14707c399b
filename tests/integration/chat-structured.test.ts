import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Structured outputs (`response_format`) end to end: the official `openai` client against the
 * service running the UNTRAINED tiny model, whose words are meaningless, so the structure comes
 * from the grammar alone. Every output is checked with JSON.parse and ajv, every raw response and
 * stream chunk against OpenAI's published OpenAPI document.
 *
 * The schemas bound their strings, numbers and arrays: an untrained model has no reason to ever
 * close an unbounded string, and would run to max_tokens (finish_reason `length`, incomplete JSON).
 */

const messages = [{ role: 'user' as const, content: 'Answer in JSON.' }];

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    address: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 10 }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
      required: ['city', 'zip'],
      additionalProperties: false,
    },
  },
  required: ['name', 'age', 'address'],
  additionalProperties: false,
};

const TAGS = {
  type: 'object',
  properties: {
    tags: { type: 'array', items: { type: 'string', maxLength: 6 }, minItems: 1, maxItems: 3 },
    scores: { type: 'array', items: { type: 'number', minimum: 0, maximum: 1 }, maxItems: 4 },
  },
  required: ['tags', 'scores'],
  additionalProperties: false,
};

const VERDICT = {
  type: 'object',
  properties: {
    verdict: { enum: ['yes', 'no', 'maybe'] },
    confidence: { type: 'string', enum: ['low', 'high'] },
    ok: { type: 'boolean' },
  },
  required: ['verdict', 'confidence', 'ok'],
  additionalProperties: false,
};

const SCHEMAS = { person: PERSON, tags: TAGS, verdict: VERDICT } as const;

describe('chat: structured outputs (response_format) with the untrained tiny model', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: OpenAI;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validCompletion = openAiValidator('CreateChatCompletionResponse');
  const validChunk = openAiValidator('CreateChatCompletionStreamResponse');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-structured-'));
    await makeTinyDecoder(modelDir, { maxPositions: 1024 });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 600, default_max_tokens: 400 },
      ]),
    });
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const schemaFormat = (name: string, schema: object) => ({ type: 'json_schema' as const, json_schema: { name, schema: schema as Record<string, unknown>, strict: true } });

  test('json_schema: nested objects, arrays, enums and required properties; every output parses and validates (3 schemas × 2 seeds)', async () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const validate = ajv.compile(schema);
      for (const seed of [1, 2]) {
        const r = await client.chat.completions.create({ model: 'tiny-chat', messages, seed, temperature: 1, max_tokens: 400, response_format: schemaFormat(name, schema) });
        assert.deepEqual(validCompletion(r), [], JSON.stringify(r));
        const choice = r.choices[0]!;
        assert.equal(choice.finish_reason, 'stop', `${name}/${seed}: ${choice.message.content}`);
        const value = JSON.parse(choice.message.content ?? '') as unknown;
        assert.ok(validate(value), `${name}/${seed}: ${ajv.errorsText(validate.errors)}: ${choice.message.content}`);
      }
    }
  });

  test('json_schema streamed: every chunk is valid, and the chunks add up to the same JSON as the whole answer', async () => {
    const body = { model: 'tiny-chat', messages, seed: 5, temperature: 1, max_tokens: 400, response_format: schemaFormat('person', PERSON) };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'stop');
    assert.equal(text, whole.choices[0]!.message.content);
    assert.ok(ajv.validate(PERSON, JSON.parse(text)), text);
  });

  test('json_object: the answer is the start of a JSON object, and a whole one when it stops', async () => {
    // An object of any shape may hold unbounded strings, which an untrained model rarely closes:
    // most answers end with `length` (the engine test tests/unit/chat-grammar.test.ts checks the
    // prefixes); whatever ends with `stop` must parse as an object.
    for (const seed of [1, 2]) {
      const r = await client.chat.completions.create({ model: 'tiny-chat', messages, seed, max_tokens: 64, response_format: { type: 'json_object' } });
      assert.deepEqual(validCompletion(r), []);
      const content = r.choices[0]!.message.content ?? '';
      assert.match(content, /^\s*\{/);
      if (r.choices[0]!.finish_reason === 'length') {
        assert.equal(r.usage!.completion_tokens, 64);
        continue;
      }
      assert.equal(r.choices[0]!.finish_reason, 'stop');
      const value = JSON.parse(content) as unknown;
      assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), content);
    }
  });

  test('chat.completions.parse with zodResponseFormat returns the parsed, typed object', async () => {
    const Weather = z.object({
      city: z.string().max(10),
      unit: z.enum(['celsius', 'fahrenheit']),
      days: z.array(z.object({ day: z.number().int().min(1).max(7), rain: z.boolean() })).max(3),
    });
    const r = await client.chat.completions.parse({
      model: 'tiny-chat',
      messages,
      seed: 3,
      max_tokens: 400,
      response_format: zodResponseFormat(Weather, 'weather'),
    });
    const message = r.choices[0]!.message;
    assert.equal(r.choices[0]!.finish_reason, 'stop', message.content ?? '');
    assert.ok(message.parsed, 'the SDK parsed the answer');
    assert.deepEqual(Weather.parse(message.parsed), message.parsed);
    assert.ok(['celsius', 'fahrenheit'].includes(message.parsed.unit));
  });

  test('native chat job (POST /v1/jobs) carries response_format; its result validates', async () => {
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, seed: 2, max_tokens: 400, response_format: schemaFormat('verdict', VERDICT) });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const id = r.json.id as string;
    const job = await waitFor('the chat job', async () => {
      const j = (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as { status: string; result?: { message: { content: string }; finish_reason: string } };
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    });
    assert.equal(job.status, 'completed', JSON.stringify(job));
    assert.equal(job.result!.finish_reason, 'stop');
    assert.ok(ajv.validate(VERDICT, JSON.parse(job.result!.message.content)), job.result!.message.content);
  });

  test('a schema that is not valid JSON Schema, or that the grammar engine cannot compile, gets a 400 in OpenAI\'s shape, streamed or not', async () => {
    const bad = { model: 'tiny-chat', messages, max_tokens: 20 };
    const cases: { schema: Record<string, unknown>; code: string; message: RegExp }[] = [
      { schema: { type: 'object', properties: { a: { type: 'strnig' } } }, code: 'invalid_response_format', message: /not valid JSON Schema/ },
      { schema: { type: 'object', required: 'a' }, code: 'invalid_response_format', message: /not valid JSON Schema/ },
      { schema: { type: 'integer', minimum: 5, maximum: 1 }, code: 'invalid_response_format', message: /cannot compile/ },
    ];
    for (const { schema, code, message } of cases) {
      for (const stream of [false, true]) {
        const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, {
          method: 'POST',
          headers: authHeaders(),
          body: JSON.stringify({ ...bad, stream, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } }),
        });
        const json = (await res.json()) as { error: { code: string; param: string; message: string } };
        assert.equal(res.status, 400, JSON.stringify(json));
        assert.deepEqual(validError(json), []);
        assert.equal(json.error.code, code, JSON.stringify(json));
        assert.equal(json.error.param, 'response_format');
        assert.match(json.error.message, message);
      }
    }
    // Shape errors never reach a worker: the request schema refuses them.
    await assert.rejects(
      client.chat.completions.create({ ...bad, response_format: { type: 'json_schema', json_schema: { name: 'has space', schema: {} } } } as never),
      (err: unknown) => err instanceof OpenAI.BadRequestError,
    );
    // The service still answers afterwards.
    const ok = await client.chat.completions.create({ ...bad, response_format: schemaFormat('verdict', VERDICT), max_tokens: 100, seed: 1 });
    assert.equal(ok.choices[0]!.finish_reason, 'stop');
  });
});
