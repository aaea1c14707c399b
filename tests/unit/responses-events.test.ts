import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CreateResponseRequest } from '../../shared/api/responses-schemas.js';
import { parseToolCalls } from '../../shared/chat/tool-calls.js';
import type { JobPayload, JobResult } from '../../shared/jobs/job-catalog.js';
import { ResponseEventSequence, settledResponse, type ResponseStreamEvent } from '../../shared/responses/responses-events.js';
import { createdResponse } from '../../shared/responses/responses-request.js';

/**
 * Responses' stream events from a chat job's token stream (ResponseEventSequence): whatever the
 * tokens make (text, calls, both, nothing), the events are numbered 0…n without gaps, every item
 * is added before its deltas and done once, and the `…done` events agree with the settled response
 * that GET answers. The end-to-end shapes are checked against OpenAI's schema in
 * tests/integration/responses-api.test.ts; these are the orders a tiny untrained model rarely makes.
 */

const callId = (i: number) => `call_${i}`;
const fn = { type: 'function' as const, function: { name: 'f', parameters: { type: 'object' } } };

function response(tools: boolean) {
  const payload = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, temperature: 1, top_p: 1, top_k: 0, repetition_penalty: 1, stop: [], ...(tools ? { tools: [fn] } : {}) } satisfies JobPayload<'chat'>;
  const body = { model: 'm', input: 'hi', ...(tools ? { tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }] } : {}) } as CreateResponseRequest;
  return createdResponse('resp_1', body, payload, { background: false, store: true });
}

/** The settled response of a reply whose text is `text`, parsed as the worker parses it. */
function settle(created: ReturnType<typeof response>, text: string, parse: boolean) {
  const { content, toolCalls } = parse ? parseToolCalls(text, callId) : { content: text, toolCalls: [] };
  const result: JobResult<'chat'> = {
    model: 'm',
    message: { role: 'assistant', content, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) },
    finish_reason: toolCalls.length ? 'tool_calls' : 'stop',
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    timings: { ttft_ms: null, total_ms: 1, tokens_per_second: null },
  };
  return settledResponse(created, 'msg_1', { status: 'completed', jobId: 'j', model: 'm', result });
}

function run(tokens: string[], opts: { tools: boolean; settledFrom?: string }) {
  const created = response(opts.tools);
  const seq = new ResponseEventSequence(created, 'msg_1', callId);
  const events: ResponseStreamEvent[] = [...seq.opening()];
  tokens.forEach((t, i) => events.push(...seq.token(i, t)));
  const settled = settle(created, opts.settledFrom ?? tokens.join(''), opts.tools);
  events.push(...seq.closing(settled));
  return { events, settled };
}

/** Numbering, and per output item: added first, done last, deltas adding up to its settled text or arguments. */
function assertCoherent({ events, settled }: ReturnType<typeof run>) {
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  assert.deepEqual(events.slice(0, 2).map((e) => e.type), ['response.created', 'response.in_progress']);
  assert.equal(events.at(-1)!.type, 'response.completed');
  const indexes = [...new Set(events.filter((e) => typeof e.output_index === 'number').map((e) => e.output_index as number))];
  assert.equal(indexes.length, settled.output.length);
  for (const index of indexes) {
    const mine = events.filter((e) => e.output_index === index);
    assert.equal(mine[0]!.type, 'response.output_item.added');
    assert.equal(mine.at(-1)!.type, 'response.output_item.done');
    assert.equal(mine.filter((e) => e.type === 'response.output_item.done').length, 1);
    const item = mine.at(-1)!.item as (typeof settled.output)[number];
    assert.deepEqual(settled.output.find((o) => o.id === item.id), item);
    const deltas = mine.filter((e) => e.type.endsWith('.delta')).map((e) => e.delta).join('');
    assert.equal(deltas, item.type === 'message' ? item.content[0]!.text : item.type === 'function_call' ? item.arguments : '');
  }
}

describe('responses: stream events from a token stream', () => {
  it('plain text: one message item, one delta per token', () => {
    const r = run(['Hel', 'lo'], { tools: false });
    assertCoherent(r);
    assert.equal(r.events.filter((e) => e.type === 'response.output_text.delta').length, 2);
  });

  it('no tokens at all: the message item still opens and closes (empty text)', () => {
    const r = run([], { tools: false });
    assertCoherent(r);
    assert.deepEqual(r.events.map((e) => e.type).slice(2, 4), ['response.output_item.added', 'response.content_part.added']);
  });

  it('a token delivered again does not shift the numbering', () => {
    const created = response(false);
    const seq = new ResponseEventSequence(created, 'msg_1', callId);
    seq.opening();
    const first = seq.token(0, 'a');
    assert.deepEqual(seq.token(0, 'a'), []);
    assert.equal(seq.token(1, 'b')[0]!.sequence_number, first.at(-1)!.sequence_number + 1);
  });

  it('text, then two calls: message at 0, calls at 1 and 2, each call done before the next is added', () => {
    const text = 'Let me check. <tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n<tool_call>\n{"name": "f", "arguments": {"b": [2, 3]}}\n</tool_call>';
    const tokens = text.match(/.{1,3}/gs)!;
    const r = run(tokens, { tools: true });
    assertCoherent(r);
    assert.deepEqual(r.settled.output.map((o) => o.type), ['message', 'function_call', 'function_call']);
    const doneOf = (i: number) => r.events.findIndex((e) => e.type === 'response.output_item.done' && e.output_index === i);
    const addedOf = (i: number) => r.events.findIndex((e) => e.type === 'response.output_item.added' && e.output_index === i);
    assert.ok(doneOf(1) < addedOf(2));
    assert.ok(doneOf(0) < doneOf(2), 'closed in output order at the end');
  });

  it('text only after a call (auto): it streams into a message item added after the call, the same item the settled response lists', () => {
    const text = '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\nDone.';
    const r = run(text.match(/.{1,4}/gs)!, { tools: true });
    assertCoherent(r);
    const added = r.events.filter((e) => e.type === 'response.output_item.added').map((e) => (e.item as { type: string }).type);
    assert.deepEqual(added, ['function_call', 'message']);
  });

  it('calls the token stream did not carry (a cached answer): each item is added whole from the settled response', () => {
    const r = run([], { tools: true, settledFrom: '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>' });
    assertCoherent(r);
    assert.deepEqual(r.settled.output.map((o) => o.type), ['function_call']);
    assert.deepEqual(r.events.slice(2).map((e) => e.type), [
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
  });
});
