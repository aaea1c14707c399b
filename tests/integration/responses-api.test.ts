import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { generateObject, generateText, jsonSchema, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { Webhook } from 'standardwebhooks';
import { startPrivateRedis } from '../helpers/redis.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import { KEYS, authHeaders, postJson, startService, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

type StreamEvent = OpenAI.Responses.ResponseStreamEvent;
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

/**
 * Function tools in Responses' flat shape. Parameters bound their strings and numbers: the
 * untrained tiny model would never close an unbounded string (the grammar keeps it to the schema).
 */
const WEATHER: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string', maxLength: 12 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['city', 'unit'],
    additionalProperties: false,
  },
  strict: true,
};
const ADD: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'add',
  description: 'Adds numbers',
  parameters: {
    type: 'object',
    properties: { numbers: { type: 'array', items: { type: 'integer', minimum: -100, maximum: 100 }, minItems: 2, maxItems: 4 } },
    required: ['numbers'],
    additionalProperties: false,
  },
  strict: true,
};
const TOOLS = [WEATHER, ADD];

describe('responses: OpenAI Responses API on chat jobs (create, stream, store and chain, background on the queue)', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: OpenAI;
  let globex: OpenAI;
  let rx: Awaited<ReturnType<typeof startReceiver>>;
  const validResponse = openAiValidator('Response');
  const validEvent = openAiValidator('ResponseStreamEvent');
  const validItems = openAiValidator('ResponseItemList');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-responses-'));
    // Room for tool definitions in the prompt and a whole structured answer.
    await makeTinyDecoder(modelDir, { maxPositions: 1024 });
    redis = await startPrivateRedis();
    rx = await startReceiver();
    svc = await startService({
      // The webhook receiver below listens on 127.0.0.1.
      env: { WEBHOOK_ALLOW_PRIVATE: '1' },
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 600, default_max_tokens: 32 },
      ]),
    });
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
    globex = new OpenAI({ apiKey: KEYS.globex, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
    await rx?.close();
    await redis?.cleanup();
  });

  /** What the server sent, without the `output_text` convenience field the SDK adds. */
  const wire = (r: OpenAI.Responses.Response) => {
    const { output_text: _t, ...rest } = r;
    return rest;
  };
  const textOf = (r: OpenAI.Responses.Response) => {
    const item = r.output[0];
    assert.ok(item?.type === 'message', JSON.stringify(r.output));
    const part = item.content[0];
    assert.ok(part?.type === 'output_text');
    return part.text;
  };
  const collect = async (stream: AsyncIterable<StreamEvent>, until?: (e: StreamEvent) => boolean) => {
    const events: StreamEvent[] = [];
    for await (const e of stream) {
      events.push(e);
      if (until?.(e)) break;
    }
    return events;
  };
  const assertValidEvents = (events: StreamEvent[]) => {
    for (const e of events) assert.deepEqual(validEvent(e), [], JSON.stringify(e).slice(0, 400));
  };
  const status = async (err: Promise<unknown>) => {
    try {
      await err;
    } catch (e) {
      if (e instanceof OpenAI.APIError) return { status: e.status, code: e.code, param: e.param };
      throw e;
    }
    assert.fail('expected an error');
  };

  test('responses.create: string input, item input and instructions; valid against OpenAI\'s schema; the same chat job as chat completions', async () => {
    const a = await client.responses.create({ model: 'tiny-chat', input: 'Say something.', max_output_tokens: 8 });
    assert.deepEqual(validResponse(wire(a)), []);
    assert.match(a.id, /^resp_/);
    assert.equal(a.object, 'response');
    assert.equal(a.status, 'incomplete');
    assert.deepEqual(a.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(a.usage?.output_tokens, 8);
    assert.equal(a.usage!.total_tokens, a.usage!.input_tokens + 8);
    assert.ok(a.output_text.length > 0);
    assert.equal(a.output_text, textOf(a));
    assert.match(a.output[0]!.id!, /^msg_/);

    // Instructions and items become the chat job's messages: the same seed gives chat completions' text.
    const instructions = 'You are a test model.';
    const b = await client.responses.create({
      model: 'tiny-chat',
      instructions,
      input: [
        { role: 'developer', content: 'Answer briefly.' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello ' }, { type: 'input_text', text: 'there' }] },
      ],
      max_output_tokens: 12,
      temperature: 0.7,
      metadata: { run: 'item-input' },
      seed: 7,
    } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.deepEqual(validResponse(wire(b)), []);
    assert.equal(b.instructions, instructions);
    assert.deepEqual(b.metadata, { run: 'item-input' });
    assert.equal(b.temperature, 0.7);
    const chat = await client.chat.completions.create({
      model: 'tiny-chat',
      messages: [
        { role: 'system', content: instructions },
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'Hello there' },
      ],
      max_tokens: 12,
      temperature: 0.7,
      seed: 7,
    });
    assert.equal(b.output_text, chat.choices[0]!.message.content);
    assert.equal(b.usage?.input_tokens, chat.usage?.prompt_tokens);
  });

  test('stream: true — every event valid and numbered 0…n, deltas add up to the final text; responses.stream() gives the final response', async () => {
    const events = await collect(await client.responses.create({ model: 'tiny-chat', input: 'Say something.', max_output_tokens: 10, stream: true }));
    assertValidEvents(events);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    assert.deepEqual(events.slice(0, 4).map((e) => e.type), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    assert.deepEqual(events.slice(-4).map((e) => e.type), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete']);
    const deltas = events.filter((e): e is OpenAI.Responses.ResponseTextDeltaEvent => e.type === 'response.output_text.delta');
    assert.ok(deltas.length >= 2, `tokens arrived as separate deltas (${deltas.length})`);
    const final = (events.at(-1) as OpenAI.Responses.ResponseIncompleteEvent).response;
    assert.deepEqual(validResponse(final), []);
    assert.equal(deltas.map((d) => d.delta).join(''), textOf(final as OpenAI.Responses.Response));
    assert.equal(final.usage?.output_tokens, 10);
    // Stored: GET answers the same response.
    const stored = await client.responses.retrieve(final.id);
    assert.deepEqual(wire(stored), final);

    const helper = client.responses.stream({ model: 'tiny-chat', input: 'Again.', max_output_tokens: 6 });
    let streamed = '';
    for await (const e of helper) if (e.type === 'response.output_text.delta') streamed += e.delta;
    const done = await helper.finalResponse();
    assert.equal(done.output_text, streamed);
    assert.equal(done.status, 'incomplete');

    // The wire format: named events, and no chat-style [DONE] marker.
    const raw = await fetch(`${svc.baseUrl}/v1/responses`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'tiny-chat', input: 'Hi', max_output_tokens: 2, stream: true }) });
    assert.match(raw.headers.get('content-type') ?? '', /text\/event-stream/);
    const body = await raw.text();
    assert.match(body, /^event: response\.created\ndata: \{/);
    assert.match(body, /event: response\.incomplete\ndata: \{[^\n]+\}\n\n$/);
    assert.doesNotMatch(body, /\[DONE\]/);
  });

  test('previous_response_id: the second response continues the first; its input_items hold the first\'s input and output, instructions are not carried over', async () => {
    const first = await client.responses.create({ model: 'tiny-chat', instructions: 'Be a test.', input: 'First question', max_output_tokens: 6 });
    const second = await client.responses.create({ model: 'tiny-chat', input: 'Second question', previous_response_id: first.id, max_output_tokens: 6 });
    assert.equal(second.previous_response_id, first.id);
    assert.equal(second.instructions, null);
    assert.ok(second.usage!.input_tokens > first.usage!.output_tokens + 4, 'the history is in the prompt');

    const page = await fetch(`${svc.baseUrl}/v1/responses/${second.id}/input_items?order=asc`, { headers: authHeaders() });
    const list = (await page.json()) as any;
    assert.deepEqual(validItems(list), []);
    assert.deepEqual(
      list.data.map((i: any) => [i.role, i.content[0].text]),
      [['user', 'First question'], ['assistant', first.output_text], ['user', 'Second question']],
    );
    assert.equal(list.data[1].id, first.output[0]!.id);
    assert.equal(list.has_more, false);

    // The official client's pages, newest first (OpenAI's default order), one item at a time.
    const newest = await client.responses.inputItems.list(second.id, { limit: 1 });
    assert.equal(newest.data.length, 1);
    assert.equal((newest.data[0] as any).content[0].text, 'Second question');
    assert.ok(newest.has_more);
    const next = await client.responses.inputItems.list(second.id, { limit: 1, after: newest.data[0]!.id! });
    assert.equal(next.data[0]!.id, first.output[0]!.id);

    // A third turn carries both earlier turns.
    const third = await client.responses.create({ model: 'tiny-chat', input: 'Third', previous_response_id: second.id, max_output_tokens: 2 });
    const all = (await (await fetch(`${svc.baseUrl}/v1/responses/${third.id}/input_items?order=asc&limit=100`, { headers: authHeaders() })).json()) as any;
    assert.equal(all.data.length, 5);
  });

  test('retrieve and delete; store: false is not kept and cannot be continued', async () => {
    const r = await client.responses.create({ model: 'tiny-chat', input: 'Keep me.', max_output_tokens: 4 });
    assert.deepEqual(wire(await client.responses.retrieve(r.id)), wire(r));
    const del = await fetch(`${svc.baseUrl}/v1/responses/${r.id}`, { method: 'DELETE', headers: authHeaders() });
    assert.deepEqual(await del.json(), { id: r.id, object: 'response', deleted: true });
    assert.equal((await status(client.responses.retrieve(r.id)))?.status, 404);
    const again = await fetch(`${svc.baseUrl}/v1/responses/${r.id}`, { method: 'DELETE', headers: authHeaders() });
    assert.equal(again.status, 404);
    assert.deepEqual(validError(await again.json()), []);

    const unstored = await client.responses.create({ model: 'tiny-chat', input: 'Forget me.', max_output_tokens: 4, store: false });
    assert.equal((unstored as unknown as { store: boolean }).store, false);
    assert.equal(unstored.status, 'incomplete');
    assert.equal((await status(client.responses.retrieve(unstored.id)))?.status, 404);
    const chained = await status(client.responses.create({ model: 'tiny-chat', input: 'x', previous_response_id: unstored.id }));
    assert.deepEqual(chained, { status: 400, code: 'previous_response_not_found', param: 'previous_response_id' });
  });

  test('background: answered `queued` at once, polled through GET to its end, stored with its usage', async () => {
    const r = await client.responses.create({ model: 'tiny-chat', input: 'In the background.', max_output_tokens: 16, background: true });
    assert.deepEqual(validResponse(wire(r)), []);
    assert.equal(r.status, 'queued');
    assert.equal(r.background, true);
    assert.deepEqual(r.output, []);
    const seen = new Set<string>();
    const final = await waitFor('background response ended', async () => {
      const now = await client.responses.retrieve(r.id);
      seen.add(now.status!);
      return now.status === 'queued' || now.status === 'in_progress' ? undefined : now;
    }, 30_000);
    assert.deepEqual(validResponse(wire(final)), []);
    assert.equal(final.status, 'incomplete');
    assert.equal(final.usage?.output_tokens, 16);
    assert.ok(final.output_text.length > 0);
    for (const s of seen) assert.ok(['queued', 'in_progress', 'incomplete'].includes(s), s);

    const refused = await postJson(svc.baseUrl, '/v1/responses', { model: 'tiny-chat', input: 'x', background: true, store: false });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.param, 'store');
  });

  test('a background response that ends announces response.<status> once, signed, with the stored response as data', async () => {
    const reg = await postJson(svc.baseUrl, '/v1/webhooks', { url: `${rx.base}/responses`, events: ['response.completed', 'response.incomplete'] }, authHeaders(KEYS.acme));
    assert.equal(reg.status, 201, reg.text);
    const r = await client.responses.create({ model: 'tiny-chat', input: 'Tell the hook.', max_output_tokens: 6, background: true });
    const mine = () => rx.at('/responses').filter((x) => (JSON.parse(x.body) as { data: { id: string } }).data.id === r.id);
    // Polling reconciles the end from every GET as well: the event still goes out once.
    const final = await waitFor('background response ended', async () => {
      const now = await client.responses.retrieve(r.id);
      return now.status === 'queued' || now.status === 'in_progress' ? undefined : now;
    }, 30_000);
    const [got] = await waitFor('response webhook', async () => (mine().length ? mine() : undefined), 30_000);
    const event = new Webhook(reg.json.secret).verify(got!.body, got!.headers as Record<string, string>) as { type: string; data: { id: string; status: string } };
    assert.equal(event.type, `response.${final.status}`);
    assert.deepEqual(event.data, wire(await client.responses.retrieve(r.id)));
    await client.responses.retrieve(r.id);
    await new Promise((done) => setTimeout(done, 500));
    assert.equal(mine().length, 1);
  });

  test('background + cancel: the running job stops and the response ends `cancelled`; only background responses can be cancelled', async () => {
    const r = await client.responses.create({ model: 'tiny-chat', input: 'A long answer.', max_output_tokens: 200, background: true });
    // Wait until it is generating: a few deltas on its event stream.
    const early = await collect(await client.responses.retrieve(r.id, { stream: true }), (e) => e.type === 'response.output_text.delta' && e.sequence_number >= 6);
    assert.equal(early.at(-1)?.type, 'response.output_text.delta');
    const cancelled = await client.responses.cancel(r.id);
    assert.deepEqual(validResponse(wire(cancelled)), []);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal((await client.responses.retrieve(r.id)).status, 'cancelled');
    assert.equal((await client.responses.cancel(r.id)).status, 'cancelled', 'cancelling again answers the response as it is');
    // Its stream ends with the terminal event, status cancelled, after fewer than 200 deltas.
    const events = await collect(await client.responses.retrieve(r.id, { stream: true }));
    assertValidEvents(events);
    const last = events.at(-1) as OpenAI.Responses.ResponseFailedEvent;
    assert.equal(last.type, 'response.failed');
    assert.equal(last.response.status, 'cancelled');
    assert.ok(events.filter((e) => e.type === 'response.output_text.delta').length < 200);

    const foreground = await client.responses.create({ model: 'tiny-chat', input: 'x', max_output_tokens: 2 });
    assert.equal((await status(client.responses.cancel(foreground.id)))?.status, 400);
  });

  test('background stream: GET ?stream=true&starting_after=N resumes mid-way with the events after N, numbered as before', async () => {
    const r = await client.responses.create({ model: 'tiny-chat', input: 'Resume me.', max_output_tokens: 40, background: true });
    const N = 9;
    // A client reads up to event N, loses its connection, and resumes from there.
    const before = await collect(await client.responses.retrieve(r.id, { stream: true }), (e) => e.sequence_number >= N);
    assert.equal(before.at(-1)!.sequence_number, N);
    const resumed = await collect(await client.responses.retrieve(r.id, { stream: true, starting_after: N }));
    assert.equal(resumed[0]!.sequence_number, N + 1);
    const joined = [...before, ...resumed];
    assertValidEvents(joined);
    assert.deepEqual(joined.map((e) => e.sequence_number), joined.map((_, i) => i));
    assert.equal(joined.at(-1)!.type, 'response.incomplete');
    // The same events as a replay from the start once it has ended.
    const replay = await collect(await client.responses.retrieve(r.id, { stream: true }));
    assert.deepEqual(replay, joined);
    const late = await collect(await client.responses.retrieve(r.id, { stream: true, starting_after: replay.length - 3 }));
    assert.deepEqual(late, replay.slice(-2));
    const final = await client.responses.retrieve(r.id);
    const deltas = joined.filter((e): e is OpenAI.Responses.ResponseTextDeltaEvent => e.type === 'response.output_text.delta');
    assert.equal(deltas.map((d) => d.delta).join(''), final.output_text);

    // background + stream in the create call: the same events, live from the queue.
    const live = await collect(await client.responses.create({ model: 'tiny-chat', input: 'Live.', max_output_tokens: 5, background: true, stream: true }));
    assertValidEvents(live);
    assert.equal((live[0] as OpenAI.Responses.ResponseCreatedEvent).response.status, 'queued');
    assert.ok(TERMINAL.has(live.at(-1)!.type));

    const foreground = await client.responses.create({ model: 'tiny-chat', input: 'x', max_output_tokens: 2 });
    assert.equal((await status(client.responses.retrieve(foreground.id, { stream: true })))?.status, 400);
  });

  test('isolation: another tenant reads, continues, streams, cancels or deletes nothing of ours', async () => {
    const r = await client.responses.create({ model: 'tiny-chat', input: 'Mine.', max_output_tokens: 200, background: true });
    assert.equal((await status(globex.responses.retrieve(r.id)))?.status, 404);
    assert.equal((await status(globex.responses.retrieve(r.id, { stream: true })))?.status, 404);
    assert.equal((await status(globex.responses.inputItems.list(r.id)))?.status, 404);
    assert.equal((await status(globex.responses.cancel(r.id)))?.status, 404);
    assert.equal((await status(globex.responses.delete(r.id)))?.status, 404);
    assert.equal((await status(globex.responses.create({ model: 'tiny-chat', input: 'x', previous_response_id: r.id })))?.code, 'previous_response_not_found');
    // Still ours, untouched.
    assert.notEqual((await client.responses.retrieve(r.id)).status, 'cancelled');
    await client.responses.cancel(r.id);
  });

  /** A function_call item of one of the tools, its arguments valid against that tool's parameters. */
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const assertValidCall = (item: OpenAI.Responses.ResponseOutputItem | undefined, tools = TOOLS): OpenAI.Responses.ResponseFunctionToolCall => {
    assert.ok(item?.type === 'function_call', JSON.stringify(item));
    assert.match(item.call_id, /^call_[0-9a-f]{24}$/);
    assert.match(item.id!, /^fc_/);
    assert.equal(item.status, 'completed');
    const fn = tools.find((t) => t.name === item.name);
    assert.ok(fn, `called a tool that exists: ${item.name}`);
    assert.ok(ajv.validate(fn.parameters!, JSON.parse(item.arguments)), `${item.name}(${item.arguments}): ${ajv.errorsText()}`);
    return item;
  };

  test('text.format json_schema and json_object: the output text parses and validates (grammar-constrained, untrained model); responses.parse with zodTextFormat', async () => {
    const schema = {
      type: 'object',
      properties: { title: { type: 'string', maxLength: 16 }, rating: { type: 'integer', minimum: 1, maximum: 5 }, tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 } },
      required: ['title', 'rating', 'tags'],
      additionalProperties: false,
    };
    for (const seed of [1, 2]) {
      const r = await client.responses.create({
        model: 'tiny-chat',
        input: 'Review a film.',
        text: { format: { type: 'json_schema', name: 'review', schema, strict: true } },
        max_output_tokens: 400,
        seed,
      } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
      assert.deepEqual(validResponse(wire(r)), []);
      assert.equal(r.status, 'completed', JSON.stringify(r.output));
      assert.deepEqual(r.text?.format, { type: 'json_schema', name: 'review', schema, strict: true });
      const value = JSON.parse(r.output_text) as unknown;
      assert.ok(ajv.validate(schema, value), `${r.output_text}: ${ajv.errorsText()}`);
    }

    const obj = await client.responses.create({ model: 'tiny-chat', input: 'Any JSON object.', text: { format: { type: 'json_object' } }, max_output_tokens: 400, seed: 3 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    if (obj.status === 'completed') {
      const value = JSON.parse(obj.output_text) as unknown;
      assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), obj.output_text);
    } else {
      // An unbounded object may not close within max_output_tokens; what was written is still a JSON object's start.
      assert.equal(obj.status, 'incomplete');
      assert.match(obj.output_text, /^\s*\{/);
    }

    const Film = z.object({ title: z.string().max(12), year: z.number().int().min(1900).max(2030), liked: z.boolean() });
    const parsed = await client.responses.parse({ model: 'tiny-chat', input: 'A film.', text: { format: zodTextFormat(Film, 'film') }, max_output_tokens: 400, seed: 4 } as never);
    assert.deepEqual(Film.parse((parsed as { output_parsed: unknown }).output_parsed), (parsed as { output_parsed: unknown }).output_parsed);
  });

  test('function tools, tool_choice required: the output is function_call items of the given tools, arguments valid against their parameters; stored and listed as such', async () => {
    const names = new Set<string>();
    for (const seed of [1, 2, 3]) {
      const r = await client.responses.create({ model: 'tiny-chat', input: 'What is the weather in Paris?', tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 400, seed } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
      assert.deepEqual(validResponse(wire(r)), [], JSON.stringify(r.output));
      assert.equal(r.status, 'completed');
      assert.equal(r.output.length, 1, 'parallel_tool_calls false: one call and no message');
      names.add(assertValidCall(r.output[0]).name);
      assert.equal(r.output_text, '');
      assert.deepEqual(r.tools, TOOLS);
      assert.equal(r.tool_choice, 'required');
      assert.equal(r.parallel_tool_calls, false);
      assert.deepEqual(wire(await client.responses.retrieve(r.id)), wire(r));
    }
    assert.ok(names.size > 1, `the model chose among the tools (${[...names].join(', ')})`);

    // A named function: exactly that one.
    const named = await client.responses.create({ model: 'tiny-chat', input: 'Add some numbers.', tools: TOOLS, tool_choice: { type: 'function', name: 'add' }, max_output_tokens: 400, seed: 5 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.equal(named.status, 'completed');
    for (const item of named.output) assert.equal(assertValidCall(item).name, 'add');

    // none: tools are shown but never called.
    const none = await client.responses.create({ model: 'tiny-chat', input: 'Hello.', tools: TOOLS, tool_choice: 'none', max_output_tokens: 8, seed: 5 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.deepEqual(none.output.map((i) => i.type), ['message']);
  });

  test('a tool round trip: function_call_output through previous_response_id, and the same history sent whole (stateless); the model then answers with text', async () => {
    const question = 'What is the weather in Paris?';
    const first = await client.responses.create({ model: 'tiny-chat', input: question, tools: TOOLS, tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 400, seed: 8 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    const call = assertValidCall(first.output[0]);
    assert.equal(call.name, 'get_weather');
    const result: OpenAI.Responses.ResponseInputItem.FunctionCallOutput = { type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 21, "sky": "clear"}' };

    const chained = await client.responses.create({ model: 'tiny-chat', previous_response_id: first.id, input: [result], tools: TOOLS, max_output_tokens: 12, seed: 8 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.deepEqual(validResponse(wire(chained)), []);
    assert.equal(chained.status, 'incomplete');
    assert.ok(chained.output_text.length > 0 || chained.output.some((i) => i.type === 'function_call'));
    // The call and its result are in the prompt (after the first prompt, tools included).
    assert.ok(chained.usage!.input_tokens > first.usage!.input_tokens + 10, `${first.usage!.input_tokens} → ${chained.usage!.input_tokens} tokens`);
    const items = (await (await fetch(`${svc.baseUrl}/v1/responses/${chained.id}/input_items?order=asc`, { headers: authHeaders() })).json()) as any;
    assert.deepEqual(validItems(items), [], JSON.stringify(items));
    assert.deepEqual(items.data.map((i: any) => i.type), ['message', 'function_call', 'function_call_output']);
    assert.equal(items.data[1].id, call.id);
    assert.equal(items.data[2].call_id, call.call_id);

    // Stateless: the whole history as input items gives the same prompt.
    const stateless = await client.responses.create({
      model: 'tiny-chat',
      input: [{ role: 'user', content: question }, { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments }, result],
      tools: TOOLS,
      max_output_tokens: 12,
      seed: 8,
      store: false,
    } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.equal(stateless.usage!.input_tokens, chained.usage!.input_tokens);
    assert.equal(stateless.output_text, chained.output_text);

    // tool_choice none after the result: a text answer.
    const answer = await client.responses.create({ model: 'tiny-chat', previous_response_id: first.id, input: [result], tools: TOOLS, tool_choice: 'none', max_output_tokens: 12, seed: 8 } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.deepEqual(answer.output.map((i) => i.type), ['message']);
    assert.ok(answer.output_text.length > 0);
  });

  test('streamed function calls: output_item.added, arguments deltas, .done, output_item.done, valid and numbered; they add up to the final response; a background replay numbers them the same', async () => {
    const body = { model: 'tiny-chat', input: 'What is the weather in Paris?', tools: TOOLS, tool_choice: 'required' as const, max_output_tokens: 400, seed: 4 };
    const whole = await client.responses.create(body as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    const events = await collect(await client.responses.create({ ...body, stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming));
    assertValidEvents(events);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const final = (events.at(-1) as OpenAI.Responses.ResponseCompletedEvent).response;
    assert.equal(events.at(-1)!.type, 'response.completed');
    assert.deepEqual(validResponse(final), []);
    assert.ok(final.output.length >= 1);
    assert.deepEqual(final.output.map((i) => i.type === 'function_call' && [i.name, i.arguments]), whole.output.map((i) => i.type === 'function_call' && [i.name, i.arguments]));
    assert.ok(!events.some((e) => e.type === 'response.output_text.delta'), 'no text besides the calls');
    for (const [index, item] of final.output.entries()) {
      const call = assertValidCall(item);
      const mine = events.filter((e) => 'output_index' in e && e.output_index === index);
      assert.deepEqual([mine[0]!.type, ...mine.slice(-3).map((e) => e.type)], ['response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done']);
      const added = mine[0] as OpenAI.Responses.ResponseOutputItemAddedEvent;
      assert.deepEqual(added.item, { ...call, arguments: '', status: 'in_progress' });
      const deltas = mine.filter((e): e is OpenAI.Responses.ResponseFunctionCallArgumentsDeltaEvent => e.type === 'response.function_call_arguments.delta');
      assert.ok(deltas.length > 1, `arguments streamed in pieces (${deltas.length})`);
      assert.ok(deltas.every((d) => d.item_id === call.id));
      assert.equal(deltas.map((d) => d.delta).join(''), call.arguments);
      const done = mine.at(-2) as OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent;
      assert.deepEqual([done.name, done.arguments], [call.name, call.arguments]);
      assert.deepEqual((mine.at(-1) as OpenAI.Responses.ResponseOutputItemDoneEvent).item, call);
      if (index > 0) assert.ok(mine[0]!.sequence_number > events.find((e) => e.type === 'response.output_item.done' && e.output_index === index - 1)!.sequence_number, 'one item done before the next');
    }
    // The SDK's stream helper assembles the same response.
    const helper = client.responses.stream(body as never);
    const assembled = await helper.finalResponse();
    assert.deepEqual(assembled.output.map((i) => i.type === 'function_call' && i.arguments), whole.output.map((i) => i.type === 'function_call' && i.arguments));

    // Background: the live stream, a replay and the stored response agree (ids and numbering come from the token stream).
    const live = await collect(await client.responses.create({ ...body, background: true, stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming));
    assertValidEvents(live);
    const id = (live[0] as OpenAI.Responses.ResponseCreatedEvent).response.id;
    const replay = await collect(await client.responses.retrieve(id, { stream: true }));
    assert.deepEqual(replay, live);
    const stored = await client.responses.retrieve(id);
    assert.deepEqual(wire(stored), (live.at(-1) as OpenAI.Responses.ResponseCompletedEvent).response);
  });

  test('logprobs: include message.output_text.logprobs with top_logprobs → output_text parts and deltas carry them, in Responses\' shape, the chat job\'s numbers', async () => {
    const body = { model: 'tiny-chat', input: 'Say something.', max_output_tokens: 8, seed: 11, top_logprobs: 3, include: ['message.output_text.logprobs'] };
    const r = await client.responses.create(body as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    assert.deepEqual(validResponse(wire(r)), []);
    assert.equal(r.top_logprobs, 3);
    const part = (r.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
    const logprobs = part.logprobs!;
    assert.equal(logprobs.length, 8);
    for (const l of logprobs) {
      assert.ok(l.logprob <= 0);
      assert.equal(l.top_logprobs.length, 3);
      assert.ok(l.top_logprobs[0]!.logprob >= l.top_logprobs[2]!.logprob);
    }
    assert.equal(Buffer.from(logprobs.flatMap((l) => l.bytes)).toString('utf8'), part.text);
    // The same job on chat completions reports the same numbers.
    const chat = await client.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 8, seed: 11, logprobs: true, top_logprobs: 3 });
    assert.deepEqual(logprobs.map((l) => [l.token, l.logprob]), chat.choices[0]!.logprobs!.content!.map((l) => [l.token, l.logprob]));

    const events = await collect(await client.responses.create({ ...body, stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming));
    assertValidEvents(events);
    const deltas = events.filter((e): e is OpenAI.Responses.ResponseTextDeltaEvent => e.type === 'response.output_text.delta');
    assert.deepEqual(deltas.flatMap((d) => d.logprobs.map((l) => l.logprob)), logprobs.map((l) => l.logprob));
    const done = events.find((e): e is OpenAI.Responses.ResponseTextDoneEvent => e.type === 'response.output_text.done')!;
    assert.deepEqual(done.logprobs, logprobs);

    // Not asked for: empty arrays, as OpenAI's schema requires the field.
    const plain = await client.responses.create({ model: 'tiny-chat', input: 'Say something.', max_output_tokens: 4 });
    assert.deepEqual(((plain.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText).logprobs, []);
  });

  test('bad or unsupported requests get a clear 400 in OpenAI\'s shape, never a silent ignore', async () => {
    const cases: [Record<string, unknown>, string | null, string][] = [
      [{ text: { format: { type: 'json_schema', name: 'not a name!', schema: { type: 'object' } } } }, 'text.format.name', 'invalid_request'],
      [{ tool_choice: 'required' }, 'tool_choice', 'invalid_request'],
      [{ tools: [WEATHER], tool_choice: { type: 'function', name: 'add' } }, 'tool_choice', 'invalid_request'],
      [{ tools: [WEATHER, WEATHER] }, 'tools[1].name', 'invalid_request'],
      [{ tools: [{ type: 'web_search' }] }, 'tools.0.type', 'invalid_request'],
      [{ tools: [WEATHER], top_logprobs: 3 }, 'top_logprobs', 'unsupported_parameter'],
      [{ include: ['reasoning.encrypted_content'] }, 'include', 'unsupported_parameter'],
      [{ input: [{ role: 'user', content: 'hi' }, { type: 'function_call_output', call_id: 'c1', output: '42' }] }, 'input', 'invalid_request'],
      [{ input: [{ role: 'user', content: 'hi' }, { type: 'item_reference', id: 'msg_1' }] }, null, 'invalid_request'],
      [{ max_output_tokens: 5000 }, 'max_output_tokens', 'max_tokens_too_large'],
      [{ input: [{ role: 'system', content: 'only a system message' }] }, 'input', 'invalid_request'],
      [{ previous_response_id: 'resp_missing' }, 'previous_response_id', 'previous_response_not_found'],
      [{ surprise: true }, null, 'invalid_request'],
    ];
    for (const [extra, param, code] of cases) {
      const r = await postJson(svc.baseUrl, '/v1/responses', { model: 'tiny-chat', input: 'hi', ...extra });
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.deepEqual(validError(r.json), [], JSON.stringify(r.json));
      assert.equal(r.json.error.code, code, JSON.stringify(r.json));
      if (param) assert.equal(r.json.error.param, param, JSON.stringify(r.json));
    }
    const model = await postJson(svc.baseUrl, '/v1/responses', { model: 'nope', input: 'hi' });
    assert.equal(model.status, 404);
  });

  test('the AI SDK\'s default OpenAI provider (it speaks Responses): generateText and streamText', async () => {
    const openai = createOpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1` });
    const whole = await generateText({ model: openai('tiny-chat'), prompt: 'Hello from the AI SDK.', maxOutputTokens: 8, maxRetries: 0 });
    assert.ok(whole.text.length > 0);
    assert.equal(whole.finishReason, 'length');
    assert.equal(whole.usage.outputTokens, 8);
    assert.match(whole.response.id, /^resp_/);

    const streamed = streamText({ model: openai('tiny-chat'), system: 'You are a test.', prompt: 'Stream please.', maxOutputTokens: 8, maxRetries: 0 });
    let pieces = 0;
    for await (const _ of streamed.textStream) pieces++;
    assert.ok(pieces >= 2, `text arrived in pieces (${pieces})`);
    assert.ok((await streamed.text).length > 0);
    assert.equal(await streamed.finishReason, 'length');
    assert.equal((await streamed.usage).outputTokens, 8);
  });

  test('the AI SDK\'s default provider: generateObject with a zod schema, and a tool round trip (forced call, executed, its result sent back, then text)', async () => {
    const openai = createOpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1` });
    const Recipe = z.object({ title: z.string().max(16), steps: z.array(z.string().max(12)).min(1).max(3), vegan: z.boolean() });
    const { object, finishReason } = await generateObject({ model: openai('tiny-chat'), schema: Recipe, prompt: 'A recipe.', maxOutputTokens: 400, maxRetries: 0, seed: 2 });
    assert.equal(finishReason, 'stop');
    assert.deepEqual(Recipe.parse(object), object);

    const Weather = z.object({ city: z.string().max(10), unit: z.enum(['celsius', 'fahrenheit']) });
    const calls: unknown[] = [];
    const first = await generateText({
      model: openai('tiny-chat'),
      prompt: 'Weather in Paris?',
      tools: {
        get_weather: tool({
          description: 'Weather in a city',
          inputSchema: jsonSchema<{ city: string; unit: string }>(z.toJSONSchema(Weather) as never),
          execute: async (input) => {
            calls.push(input);
            return { temperature: 21 };
          },
        }),
      },
      toolChoice: 'required',
      providerOptions: { openai: { parallelToolCalls: false } },
      maxOutputTokens: 400,
      maxRetries: 0,
      seed: 3,
    });
    assert.equal(calls.length, 1, JSON.stringify(first.steps.map((s) => s.finishReason)));
    assert.ok(Weather.safeParse(calls[0]).success, JSON.stringify(calls[0]));
    assert.equal(first.finishReason, 'tool-calls');
    assert.equal(first.toolResults.length, 1);
    // The call (a function_call item) and its result (function_call_output) go back; the model answers with text.
    const second = await generateText({ model: openai('tiny-chat'), messages: [{ role: 'user', content: 'Weather in Paris?' }, ...first.response.messages], maxOutputTokens: 12, maxRetries: 0, seed: 3 });
    assert.ok(second.text.length > 0);
    assert.equal(second.finishReason, 'length');
  });
});
