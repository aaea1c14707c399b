import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, authHeaders, postJson, startService, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

type StreamEvent = OpenAI.Responses.ResponseStreamEvent;
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

describe('responses: OpenAI Responses API on chat jobs (create, stream, store and chain, background on the queue)', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let client: OpenAI;
  let globex: OpenAI;
  const validResponse = openAiValidator('Response');
  const validEvent = openAiValidator('ResponseStreamEvent');
  const validItems = openAiValidator('ResponseItemList');
  const validError = openAiValidator('ErrorResponse');

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-responses-'));
    await makeTinyDecoder(modelDir, { maxPositions: 256 });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 200, default_max_tokens: 32 },
      ]),
    });
    client = new OpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
    globex = new OpenAI({ apiKey: KEYS.globex, baseURL: `${svc.baseUrl}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await svc?.stop();
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

  test('bad or unsupported requests get a clear 400 in OpenAI\'s shape, never a silent ignore', async () => {
    const cases: [Record<string, unknown>, string | null, string][] = [
      [{ text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object' } } } }, 'text.format', 'unsupported_parameter'],
      [{ tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }] }, 'tools', 'unsupported_parameter'],
      [{ tool_choice: 'required' }, 'tool_choice', 'unsupported_parameter'],
      [{ top_logprobs: 3 }, 'top_logprobs', 'unsupported_parameter'],
      [{ input: [{ role: 'user', content: 'hi' }, { type: 'function_call_output', call_id: 'c1', output: '42' }] }, 'input[1]', 'unsupported_parameter'],
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
});
