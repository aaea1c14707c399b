import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ToolCallParser, parseToolCalls, type ToolCallEvent } from '../../shared/chat/tool-calls.js';

/**
 * The Hermes tool-call parser that both the worker (a reply's result) and the API (its stream)
 * run: fed in any split, the streamed events must add up to what the whole text parses to.
 */

const ids = (i: number) => `call_${i}`;

/** Feeds `text` in pieces of `size` characters; returns the events and the parser. */
function stream(text: string, size: number): { events: ToolCallEvent[]; parser: ToolCallParser } {
  const parser = new ToolCallParser(ids);
  const events: ToolCallEvent[] = [];
  for (let i = 0; i < text.length; i += size) events.push(...parser.push(text.slice(i, i + size)));
  events.push(...parser.finish());
  return { events, parser };
}

/** What a client rebuilds from the events, as OpenAI's SDK does from delta chunks. */
function reassemble(events: ToolCallEvent[]): { content: string; calls: { id: string; name: string; arguments: string }[] } {
  let content = '';
  const calls: { id: string; name: string; arguments: string }[] = [];
  for (const e of events) {
    if (e.type === 'content') content += e.text;
    else if (e.type === 'call') calls[e.index] = { id: e.id, name: e.name, arguments: '' };
    else calls[e.index]!.arguments += e.text;
  }
  return { content, calls };
}

const TEXTS = {
  one: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "nested": {"a": [1, {"b": "}"}]}}}\n</tool_call>',
  two: '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {\t"x" : 1 }  }\n</tool_call>',
  prose: 'Let me check. <tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>',
  argsFirst: '<tool_call>{"arguments": {"q": "x"}, "name": "search"}</tool_call>',
  stringArgs: '<tool_call>{"name": "f", "arguments": "{\\"q\\": 1}"}</tool_call>',
  notACall: 'a <tool_call>not json</tool_call> b',
  plain: 'Just text, with a < and a <tool but no call.\n',
  truncated: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par',
};

describe('ToolCallParser', () => {
  it('whole texts: content and calls, arguments as the model wrote them', () => {
    assert.deepEqual(parseToolCalls(TEXTS.one, ids), {
      content: '',
      toolCalls: [{ id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "nested": {"a": [1, {"b": "}"}]}}' } }],
    });
    const two = parseToolCalls(TEXTS.two, ids);
    assert.equal(two.content, '');
    assert.deepEqual(two.toolCalls.map((c) => [c.id, c.function.name, c.function.arguments]), [['call_0', 'a', '{}'], ['call_1', 'b', '{\t"x" : 1 }']]);
    assert.deepEqual(JSON.parse(two.toolCalls[1]!.function.arguments), { x: 1 });
    const prose = parseToolCalls(TEXTS.prose, ids);
    assert.equal(prose.content, 'Let me check.');
    assert.equal(prose.toolCalls[0]!.function.name, 'ping');
    assert.deepEqual(parseToolCalls(TEXTS.argsFirst, ids).toolCalls[0]!.function, { name: 'search', arguments: '{"q":"x"}' });
    assert.deepEqual(parseToolCalls(TEXTS.stringArgs, ids).toolCalls[0]!.function, { name: 'f', arguments: '{"q": 1}' });
    assert.deepEqual(parseToolCalls(TEXTS.notACall, ids), { content: 'a <tool_call>not json</tool_call> b', toolCalls: [] });
    assert.deepEqual(parseToolCalls(TEXTS.plain, ids), { content: TEXTS.plain, toolCalls: [] });
    // Cut by max_tokens: the call keeps what was written.
    assert.deepEqual(parseToolCalls(TEXTS.truncated, ids).toolCalls[0]!.function, { name: 'get_weather', arguments: '{"city": "Par' });
  });

  it('streamed in any split, the events add up to the whole text\'s result', () => {
    for (const [name, text] of Object.entries(TEXTS)) {
      const whole = parseToolCalls(text, ids);
      for (const size of [1, 2, 3, 5, 8, 13, text.length]) {
        const { events } = stream(text, size);
        const rebuilt = reassemble(events);
        assert.equal(rebuilt.content, whole.content, `${name}, pieces of ${size}`);
        assert.deepEqual(
          rebuilt.calls,
          whole.toolCalls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
          `${name}, pieces of ${size}`,
        );
      }
    }
  });

  it('a name-first call is announced before its arguments end, and its arguments stream in pieces', () => {
    const { events } = stream(TEXTS.one, 4);
    const callAt = events.findIndex((e) => e.type === 'call');
    const argumentPieces = events.filter((e) => e.type === 'arguments');
    assert.ok(callAt >= 0 && argumentPieces.length > 5, `${argumentPieces.length} pieces`);
    assert.ok(events.findIndex((e) => e.type === 'arguments') > callAt);
  });
});
