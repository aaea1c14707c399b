import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import OpenAI from 'openai';
import { io as connect, type Socket } from 'socket.io-client';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Tools on the chat API with the official `openai` client, against the UNTRAINED tiny model: with
 * tool_choice `required` or a named function the grammar makes every reply a well-formed call of a
 * real tool whose arguments validate against its parameters (checked here with ajv); `none` never
 * calls; calls stream as OpenAI's delta.tool_calls chunks; the history carries calls and tool
 * results back; native jobs and Socket.IO carry the calls in their result. Every raw response and
 * chunk is checked against OpenAI's published OpenAPI document.
 *
 * Parameters bound their strings and numbers: an untrained model would never close an unbounded string.
 */

const WEATHER: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 12 },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer', minimum: 1, maximum: 7 },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
    strict: true,
  },
};

const ADD: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'add',
    description: 'Adds numbers',
    parameters: {
      type: 'object',
      properties: { numbers: { type: 'array', items: { type: 'integer', minimum: -100, maximum: 100 }, minItems: 2, maxItems: 4 } },
      required: ['numbers'],
      additionalProperties: false,
    },
  },
};

const NO_ARGS: OpenAI.ChatCompletionTool = { type: 'function', function: { name: 'ping' } };

const TOOLS = [WEATHER, ADD, NO_ARGS];
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];

describe('chat: tools and tool calls with the untrained tiny model', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: OpenAI;
  const sockets: Socket[] = [];
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validCompletion = openAiValidator('CreateChatCompletionResponse');
  const validChunk = openAiValidator('CreateChatCompletionStreamResponse');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-tools-'));
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
    for (const s of sockets) s.disconnect();
    await svc?.stop();
    await redis?.cleanup();
  });

  /** A call is of one of the tools and its arguments validate against that tool's parameters. */
  const assertValidCall = (call: OpenAI.ChatCompletionMessageToolCall, tools: OpenAI.ChatCompletionTool[] = TOOLS) => {
    assert.equal(call.type, 'function');
    assert.match(call.id, /^call_[0-9a-f]{24}$/);
    if (call.type !== 'function') return;
    const tool = tools.find((t) => t.type === 'function' && t.function.name === call.function.name);
    assert.ok(tool && tool.type === 'function', `called a tool that exists: ${call.function.name}`);
    const args = JSON.parse(call.function.arguments) as unknown;
    const schema = tool.function.parameters ?? { type: 'object', properties: {}, additionalProperties: false };
    assert.ok(ajv.validate(schema, args), `${call.function.name}(${call.function.arguments}): ${ajv.errorsText()}`);
  };

  test('tool_choice required: the reply is tool calls of the given tools, arguments valid, finish_reason tool_calls, content null', async () => {
    const names = new Set<string>();
    for (const seed of [1, 2, 3, 4]) {
      const r = await client.chat.completions.create({ model: 'tiny-chat', messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, seed, max_tokens: 400 });
      assert.deepEqual(validCompletion(r), [], JSON.stringify(r));
      const choice = r.choices[0]!;
      assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(choice.message));
      assert.equal(choice.message.content, null);
      assert.equal(choice.message.tool_calls?.length, 1, 'parallel_tool_calls false: one call');
      assertValidCall(choice.message.tool_calls![0]!);
      if (choice.message.tool_calls![0]!.type === 'function') names.add(choice.message.tool_calls![0]!.function.name);
    }
    assert.ok(names.size > 1, `the model chose among the tools (${[...names].join(', ')})`);
  });

  test('tool_choice required with parallel calls: every call is valid and ids are distinct', async () => {
    let most = 0;
    for (const seed of [5, 6, 7]) {
      const r = await client.chat.completions.create({ model: 'tiny-chat', messages, tools: TOOLS, tool_choice: 'required', seed, max_tokens: 500 });
      assert.deepEqual(validCompletion(r), []);
      const { finish_reason, message } = r.choices[0]!;
      if (finish_reason === 'length') continue; // many calls may not fit; the finished ones are checked
      assert.equal(finish_reason, 'tool_calls');
      for (const call of message.tool_calls ?? []) assertValidCall(call);
      assert.equal(new Set(message.tool_calls!.map((c) => c.id)).size, message.tool_calls!.length);
      most = Math.max(most, message.tool_calls!.length);
    }
    assert.ok(most >= 1);
  });

  test('a named function: exactly that function, arguments valid against its schema', async () => {
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({ model: 'tiny-chat', messages, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, seed, max_tokens: 400 });
      assert.deepEqual(validCompletion(r), []);
      const calls = r.choices[0]!.message.tool_calls ?? [];
      assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.type === 'function' && calls[0]!.function.name, 'get_weather');
      assertValidCall(calls[0]!);
    }
  });

  test('streamed tool calls: valid chunks in OpenAI\'s shape (id and name first, then argument pieces) that add up to the whole answer; the SDK\'s stream helper reassembles them', async () => {
    const body = { model: 'tiny-chat', messages, tools: TOOLS, tool_choice: { type: 'function' as const, function: { name: 'get_weather' } }, seed: 4, max_tokens: 400 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const calls: { id?: string; name?: string; arguments: string; pieces: number }[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      const delta = chunk.choices[0]?.delta;
      assert.ok(!delta?.content, 'no content besides the calls');
      for (const part of delta?.tool_calls ?? []) {
        const call = (calls[part.index] ??= { arguments: '', pieces: 0 });
        if (part.id) {
          assert.equal(call.id, undefined, 'the id comes once, first');
          call.id = part.id;
          call.name = part.function?.name;
          assert.equal(part.type, 'function');
        } else {
          assert.ok(call.id, 'argument pieces follow the id');
          call.arguments += part.function?.arguments ?? '';
          call.pieces++;
        }
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 1);
    const expected = whole.choices[0]!.message.tool_calls![0]!;
    assert.equal(calls[0]!.name, expected.type === 'function' ? expected.function.name : undefined);
    assert.equal(calls[0]!.arguments, expected.type === 'function' ? expected.function.arguments : undefined);
    assert.ok(calls[0]!.pieces > 1, `arguments streamed in pieces (${calls[0]!.pieces})`);

    const helper = client.chat.completions.stream({ ...body, stream: true });
    const final = await helper.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    assert.equal(call.type === 'function' && call.function.arguments, calls[0]!.arguments);
    assert.deepEqual(final.choices[0]!.message.tool_calls![0]!.type === 'function' && final.choices[0]!.message.tool_calls![0]!.function.parsed_arguments, JSON.parse(calls[0]!.arguments));
  });

  test('a round trip: the call and the tool\'s result go back in the history, and the model answers with text', async () => {
    const first = await client.chat.completions.create({ model: 'tiny-chat', messages, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, seed: 8, max_tokens: 400 });
    const assistant = first.choices[0]!.message;
    const call = assistant.tool_calls![0]!;
    const history: OpenAI.ChatCompletionMessageParam[] = [
      ...messages,
      { role: 'assistant', content: null, tool_calls: assistant.tool_calls },
      { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21, "sky": "clear"}' },
    ];
    const second = await client.chat.completions.create({ model: 'tiny-chat', messages: history, tools: TOOLS, tool_choice: 'none', seed: 8, max_tokens: 16 });
    assert.deepEqual(validCompletion(second), []);
    assert.equal(second.choices[0]!.finish_reason, 'length');
    assert.equal(second.choices[0]!.message.tool_calls, undefined);
    assert.ok((second.choices[0]!.message.content ?? '').length > 0);
    // The history was rendered: the call and the result are in the prompt.
    const withoutHistory = await client.chat.completions.create({ model: 'tiny-chat', messages, seed: 8, max_tokens: 1 });
    assert.ok(second.usage!.prompt_tokens > withoutHistory.usage!.prompt_tokens + 30, `${second.usage!.prompt_tokens} vs ${withoutHistory.usage!.prompt_tokens}`);
  });

  test('tools are rendered into the prompt by the chat template (auto), and tool_choice none leaves them out and never calls', async () => {
    const plain = await client.chat.completions.create({ model: 'tiny-chat', messages, seed: 1, max_tokens: 8 });
    const auto = await client.chat.completions.create({ model: 'tiny-chat', messages, tools: TOOLS, seed: 1, max_tokens: 8 });
    const none = await client.chat.completions.create({ model: 'tiny-chat', messages, tools: TOOLS, tool_choice: 'none', seed: 1, max_tokens: 8 });
    for (const r of [auto, none]) assert.deepEqual(validCompletion(r), []);
    assert.ok(auto.usage!.prompt_tokens > plain.usage!.prompt_tokens + 100, 'the tool definitions are in the prompt');
    assert.equal(none.usage!.prompt_tokens, plain.usage!.prompt_tokens);
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
    assert.equal(none.choices[0]!.message.content, plain.choices[0]!.message.content);
  });

  test('native chat job with tool_choice required: the job result and the Socket.IO completed event carry the calls', async () => {
    const s = connect(svc.baseUrl, { auth: { token: KEYS.acme }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    const tokens: string[] = [];
    s.on('token', (e: { text: string }) => tokens.push(e.text));
    const done = new Promise<any>((resolve) => s.once('completed', resolve));
    const r = await postJson(svc.baseUrl, '/v1/jobs', { type: 'chat', model: 'tiny-chat', messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, seed: 3, max_tokens: 400 });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const id = r.json.id as string;
    assert.equal((await s.timeout(5000).emitWithAck('subscribe', id)).ok, true);
    const end = await done;
    assert.equal(end.result.finish_reason, 'tool_calls');
    assert.equal(end.result.message.content, '');
    assert.equal(end.result.message.tool_calls.length, 1);
    assertValidCall(end.result.message.tool_calls[0]);
    // Token events carry the model's own text: the call in its template's syntax.
    assert.match(tokens.join(''), /^<tool_call>\n\{"name": "[a-z_]+", "arguments": /);
    const view = (await (await fetch(`${svc.baseUrl}/v1/jobs/${encodeURIComponent(id)}`, { headers: authHeaders() })).json()) as any;
    assert.deepEqual(view.result.message.tool_calls, end.result.message.tool_calls);
  });

  test('inconsistent tool settings and bad schemas get a 400 in OpenAI\'s shape naming the field', async () => {
    const post = async (body: Record<string, unknown>) => {
      const res = await fetch(`${svc.baseUrl}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'tiny-chat', messages, max_tokens: 8, ...body }) });
      const json = (await res.json()) as { error: { code: string; param: string | null; message: string } };
      assert.deepEqual(validError(json), []);
      return { status: res.status, error: json.error };
    };
    let r = await post({ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } });
    assert.equal(r.status, 400);
    assert.equal(r.error.param, 'tool_choice');
    assert.match(r.error.message, /nope/);
    r = await post({ tool_choice: 'required' });
    assert.equal(r.status, 400);
    assert.equal(r.error.param, 'tool_choice');
    r = await post({ tools: [WEATHER, WEATHER] });
    assert.equal(r.status, 400);
    r = await post({ messages: [...messages, { role: 'tool', content: 'x' }] });
    assert.equal(r.status, 400);
    assert.match(r.error.message, /tool_call_id/);
    r = await post({ messages: [...messages, { role: 'assistant', content: null }] });
    assert.equal(r.status, 400);
    r = await post({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'strnig' } } } } }], tool_choice: 'required' });
    assert.equal(r.status, 400);
    assert.equal(r.error.code, 'invalid_function_parameters');
    assert.equal(r.error.param, 'tools');
  });
});
