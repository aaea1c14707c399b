import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ZodError } from 'zod';
import { ResponseEventSequence, settledResponse, type FileSearchCallItem, type ResponseObject } from '../../shared/responses/responses-events.js';
import { groundedPayload } from '../../api/vector-stores/file-search-runner.js';
import { fileCitations, fileSearchQuery, groundingMessage, mergeByScore, takeFileSearchTool, MAX_GROUNDING_CHARS } from '../../shared/documents/file-search.js';
import type { JobPayload } from '../../shared/jobs/job-catalog.js';
import { isChatModel, parseModelRegistry } from '../../shared/models/model-registry.js';

const files = [
  { file_id: 'file-a', filename: 'a.txt' },
  { file_id: 'file-b', filename: 'b.pdf' },
];

describe('file_search: citations, grounding and the chat completions extension', () => {
  test('citations are read from [n] markers at their position; markers naming no hit stay text', () => {
    const text = 'Bees dance. [2] Ships stay away. [1] Invented [7]';
    assert.deepEqual(fileCitations(text, files), [
      { type: 'file_citation', file_id: 'file-b', filename: 'b.pdf', index: text.indexOf('[2]') },
      { type: 'file_citation', file_id: 'file-a', filename: 'a.txt', index: text.indexOf('[1]') },
    ]);
    assert.deepEqual(fileCitations('no markers', files), []);
  });

  test('the query is the last user message; several stores merge best first', () => {
    assert.equal(fileSearchQuery([{ role: 'user', content: 'first' }, { role: 'assistant', content: 'x' }, { role: 'user', content: ' second ' }, { role: 'system', content: 's' }]), 'second');
    assert.equal(fileSearchQuery([{ role: 'system', content: 's' }]), '');
    assert.deepEqual(mergeByScore([[{ score: 0.2 }, { score: 0.9 }], [{ score: 0.5 }]], 2), [{ score: 0.9 }, { score: 0.5 }]);
  });

  test('grounding: numbered excerpts with file names, bounded; the caller\'s system message kept first; untrained models answer extractively', () => {
    const hit = (i: number, text: string) => ({ file_id: `file-${i}`, filename: `f${i}.txt`, score: 1, attributes: {}, text });
    const message = groundingMessage([hit(1, 'Bees\n dance.'), hit(2, 'x'.repeat(MAX_GROUNDING_CHARS))]);
    assert.match(message, /\[1\] \(file: f1\.txt\) Bees dance\./);
    assert.doesNotMatch(message, /\[2\]/, 'an excerpt past the budget is left out');
    assert.match(groundingMessage([]), /found nothing/);

    const registry = parseModelRegistry({
      models: [
        { id: 'tiny', task: 'chat', format: 'hf-decoder', path: '/x', untrained: true },
        { id: 'real', task: 'chat', format: 'hf-decoder', path: '/x' },
      ],
    }, '/');
    const payload = { model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Q?' }] } as JobPayload<'chat'>;
    const run = { query: 'Q?', results: [hit(1, 'Bees dance.')] };
    const chatModel = (id: string) => {
      const m = registry.get(id);
      assert.ok(m && isChatModel(m));
      return m;
    };
    const extractive = groundedPayload(payload, chatModel('tiny'), run);
    assert.deepEqual(extractive.extractive, { question: 'Q?', sources: [{ text: 'Bees dance.' }] });
    assert.deepEqual(extractive.messages, payload.messages);
    const generated = groundedPayload({ ...payload, model: 'real' }, chatModel('real'), run);
    assert.equal(generated.extractive, undefined);
    assert.equal(generated.messages.length, 2);
    assert.match(generated.messages[0]!.content, /^Be brief\.\n\nAnswer from these excerpts[\s\S]*\[1\] \(file: f1\.txt\) Bees dance\./);
  });

  test('chat completions: the file_search entry is taken out of tools; auto/required with no function left are dropped; a bad entry is a ZodError', () => {
    const fs = { type: 'file_search', vector_store_ids: ['vs_1'] };
    const fn = { type: 'function', function: { name: 'f' } };
    assert.deepEqual(takeFileSearchTool({ model: 'm', tools: [fn] }), { tool: undefined, rest: { model: 'm', tools: [fn] } });
    assert.deepEqual(takeFileSearchTool({ model: 'm', tools: [fs], tool_choice: 'required' }), { tool: fs, rest: { model: 'm' } });
    assert.deepEqual(takeFileSearchTool({ model: 'm', tools: [fs, fn], tool_choice: 'auto' }), { tool: fs, rest: { model: 'm', tools: [fn], tool_choice: 'auto' } });
    assert.deepEqual(takeFileSearchTool({ model: 'm', tools: [fs], tool_choice: 'none' }), { tool: undefined, rest: { model: 'm' } });
    assert.deepEqual(takeFileSearchTool({ model: 'm', tools: [fs, fn], tool_choice: 'none' }), { tool: undefined, rest: { model: 'm', tools: [fn], tool_choice: 'none' } });
    assert.throws(() => takeFileSearchTool({ tools: [{ type: 'file_search' }] }), ZodError);
    assert.throws(() => takeFileSearchTool({ tools: [fs, fs] }), ZodError);
  });

  test('events and the settled response: the file_search_call is output 0 in both, and annotations are announced before the text is done', () => {
    const call: FileSearchCallItem = { id: 'fs_1', type: 'file_search_call', status: 'completed', queries: ['Q?'], results: null };
    const created = { id: 'resp_1', status: 'in_progress', output: [], tools: [{ type: 'file_search', vector_store_ids: ['vs_1'], filters: null }], tool_choice: 'auto' } as unknown as ResponseObject;
    const events = new ResponseEventSequence(created, 'msg_1', (i) => `call_${i}`, call);
    const all = [...events.opening(), ...events.token(0, 'Bees dance. '), ...events.token(1, '[2]')];
    const settled = settledResponse(
      created,
      'msg_1',
      {
        status: 'completed',
        jobId: 'j',
        model: 'tiny',
        result: {
          model: 'tiny',
          message: { role: 'assistant', content: 'Bees dance. [2]' },
          finish_reason: 'stop',
          usage: { prompt_tokens: 0, completion_tokens: 2, total_tokens: 2 },
          timings: { ttft_ms: null, total_ms: 1, tokens_per_second: null },
        },
      },
      { call, sources: files },
    );
    all.push(...events.closing(settled));
    assert.deepEqual(settled.output.map((o) => o.type), ['file_search_call', 'message']);
    const message = settled.output[1]!;
    assert.ok(message.type === 'message');
    assert.deepEqual(message.content[0]!.annotations, [{ type: 'file_citation', file_id: 'file-b', filename: 'b.pdf', index: 12 }]);
    const types = all.map((e) => e.type);
    assert.deepEqual(types.slice(2, 7), ['response.output_item.added', 'response.file_search_call.in_progress', 'response.file_search_call.searching', 'response.file_search_call.completed', 'response.output_item.done']);
    assert.equal(all.find((e) => e.type === 'response.content_part.added')!.output_index, 1);
    assert.ok(types.indexOf('response.output_text.annotation.added') < types.indexOf('response.output_text.done'));
    assert.deepEqual(all.map((e) => e.sequence_number), all.map((_, i) => i));
    // A failed job keeps the search that ran.
    const failed = settledResponse(created, 'msg_1', { status: 'failed', jobId: 'j', model: 'tiny', error: { message: 'x', code: 'worker_lost' } }, { call, sources: files });
    assert.deepEqual(failed.output, [call]);
  });
});
