import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { textPdf } from '../helpers/documents.js';
import { openAiValidator } from '../helpers/openai-schema.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, ROOT, authHeaders, postJson, startService, useLiteModel, waitFor, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

type StreamEvent = OpenAI.Responses.ResponseStreamEvent;

/** A real PDF of the machine (the shared MIME database spec); a generated one where the package is absent. */
const SYSTEM_PDF = '/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf';
const BEES = 'Honeybees communicate the direction and distance of flowers to their hive mates through an intricate waggle dance.';
const LIGHTHOUSE = 'The lighthouse keeper climbed the spiral stairs every evening to light the great lamp that warned ships away from the rocks.';
const BREAD = 'Sourdough bread needs a lively starter, a long cold fermentation and a very hot oven to form its crisp, blistered crust.';
const QUESTION = 'How do honeybees tell their hive mates the direction of flowers?';

/**
 * The `file_search` tool of the Responses API (and of chat completions, as an extension) through
 * the official openai client: real files in a real vector store, the search run by the service,
 * the untrained tiny model answering extractively (`untrained: true`) and the same model generating
 * from a grounded prompt when it is not marked so. Every response and event is checked against
 * OpenAI's OpenAPI document.
 */
describe('file_search: the Responses tool and the chat completions extension', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;
  let acme: OpenAI;
  let globex: OpenAI;
  let chatOnly: OpenAI;
  let storeId: string;
  let pdfId: string;
  let txtId: string;
  const validResponse = openAiValidator('Response');
  const validEvent = openAiValidator('ResponseStreamEvent');
  const validItems = openAiValidator('ResponseItemList');
  const validCompletion = openAiValidator('CreateChatCompletionResponse');
  const validChunk = openAiValidator('CreateChatCompletionStreamResponse');

  before(async () => {
    const tinyChat = path.join(ROOT, 'models', 'tiny-chat');
    const chat = { task: 'chat', format: 'hf-decoder', path: tinyChat, threads: 1, concurrency: 4, max_tokens_limit: 256, default_max_tokens: 16 };
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      // The same weights twice: marked untrained (extractive answers) and not (the model generates).
      modelsConfig: writeModelsConfig([useLiteModel(), { id: 'tiny-chat', untrained: true, ...chat }, { id: 'tiny-gen', ...chat }]),
      env: { DOCUMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'qi-fs-')), INDEX_DIR: mkdtempSync(path.join(tmpdir(), 'qi-fs-index-')) },
    });
    const opts = { baseURL: `${svc.baseUrl}/v1`, maxRetries: 0, timeout: 180_000 };
    acme = new OpenAI({ apiKey: KEYS.acme, ...opts });
    globex = new OpenAI({ apiKey: KEYS.globex, ...opts });
    const key = await postJson(svc.baseUrl, '/v1/admin/keys', { tenant: 'acme', scopes: ['chat'], name: 'chat only' }, authHeaders(KEYS.admin));
    assert.equal(key.status, 201, JSON.stringify(key.json));
    chatOnly = new OpenAI({ apiKey: key.json.key, ...opts });

    const pdfBytes = existsSync(SYSTEM_PDF) ? readFileSync(SYSTEM_PDF) : await textPdf([LIGHTHOUSE, BREAD]);
    const pdf = await acme.files.create({ file: await toFile(pdfBytes, 'mime-spec.pdf'), purpose: 'assistants' });
    const txt = await acme.files.create({ file: await toFile(Buffer.from(`${LIGHTHOUSE}\n\n${BEES}\n\n${BREAD}\n`), 'notes.txt'), purpose: 'assistants' });
    pdfId = pdf.id;
    txtId = txt.id;
    const store = await acme.vectorStores.create({ name: 'library' });
    storeId = store.id;
    const poll = { pollIntervalMs: 250 };
    for (const [id, kind] of [
      [pdf.id, 'spec'],
      [txt.id, 'notes'],
    ] as const) {
      const f = await acme.vectorStores.files.createAndPoll(store.id, { file_id: id, attributes: { kind } }, poll);
      assert.equal(f.status, 'completed', JSON.stringify(f.last_error));
    }
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
  const tool = (extra: Partial<OpenAI.Responses.FileSearchTool> = {}): OpenAI.Responses.FileSearchTool => ({ type: 'file_search', vector_store_ids: [storeId], ...extra });
  /** The file_search_call item and the message's text part of a response that searched. */
  const parts = (r: OpenAI.Responses.Response) => {
    assert.equal(r.output.length, 2, JSON.stringify(r.output));
    const [call, message] = r.output;
    assert.ok(call?.type === 'file_search_call', JSON.stringify(call));
    assert.ok(message?.type === 'message', JSON.stringify(message));
    const text = message.content[0];
    assert.ok(text?.type === 'output_text');
    return { call, message, text };
  };
  const apiError = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      if (e instanceof OpenAI.APIError) return { status: e.status, code: e.code, param: e.param, message: e.message };
      throw e;
    }
    assert.fail('expected an error');
  };

  test('untrained model: an extractive answer with the answer in it, cited to the right file; results only with include', async () => {
    const r = await acme.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool()] });
    assert.deepEqual(validResponse(wire(r)), []);
    assert.equal(r.status, 'completed');
    const { call, text } = parts(r);
    assert.match(call.id, /^fs_/);
    assert.equal(call.status, 'completed');
    assert.deepEqual(call.queries, [QUESTION]);
    assert.equal(call.results, null, 'results are left out without include');
    assert.match(text.text, /waggle dance/);
    const citations = text.annotations.filter((a) => a.type === 'file_citation');
    assert.ok(citations.length > 0, JSON.stringify(text));
    const bees = text.text.indexOf('waggle dance');
    // The sentence's citation is the first marker after it, and it names the text file.
    const cite = citations.find((c) => c.index > bees);
    assert.ok(cite, JSON.stringify(citations));
    assert.equal(cite.file_id, txtId);
    assert.equal(cite.filename, 'notes.txt');
    assert.match(text.text.slice(cite.index), /^\[\d+\]/);
    assert.deepEqual(r.tools, [{ type: 'file_search', vector_store_ids: [storeId], filters: null }]);

    const withResults = await acme.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool({ max_num_results: 3 })], include: ['file_search_call.results'] });
    assert.deepEqual(validResponse(wire(withResults)), []);
    const results = parts(withResults).call.results!;
    assert.ok(results.length >= 1 && results.length <= 3, JSON.stringify(results));
    assert.equal(results[0]!.file_id, txtId, 'the chunk that answers ranks first');
    assert.equal(results[0]!.filename, 'notes.txt');
    assert.match(results[0]!.text!, /waggle dance/);
    assert.deepEqual(results[0]!.attributes, { kind: 'notes' });
    for (let i = 1; i < results.length; i++) assert.ok(results[i - 1]!.score! >= results[i]!.score!, 'merged best first');
  });

  test('attribute filters keep the search to the files they match', async () => {
    const r = await acme.responses.create({
      model: 'tiny-chat',
      input: QUESTION,
      tools: [tool({ filters: { type: 'eq', key: 'kind', value: 'spec' } })],
      include: ['file_search_call.results'],
    });
    assert.deepEqual(validResponse(wire(r)), []);
    const { call, text } = parts(r);
    assert.ok(call.results!.length > 0);
    assert.deepEqual(new Set(call.results!.map((x) => x.file_id)), new Set([pdfId]));
    for (const c of text.annotations) assert.ok(c.type === 'file_citation' && c.file_id === pdfId, JSON.stringify(c));
    assert.doesNotMatch(text.text, /waggle/);
  });

  test('responses.stream: file_search_call events, then the message with its annotation events; the final response as create answers', async () => {
    const stream = acme.responses.stream({ model: 'tiny-chat', input: QUESTION, tools: [tool()], include: ['file_search_call.results'] });
    const events: StreamEvent[] = [];
    for await (const e of stream) events.push(e);
    for (const e of events) assert.deepEqual(validEvent(e), [], JSON.stringify(e).slice(0, 400));
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 7), [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.file_search_call.in_progress',
      'response.file_search_call.searching',
      'response.file_search_call.completed',
      'response.output_item.done',
    ]);
    const final = await stream.finalResponse();
    assert.deepEqual(validResponse(wire(final)), []);
    const { call, message, text } = parts(final);
    for (const e of events.slice(3, 6)) assert.deepEqual([(e as { item_id: string }).item_id, (e as { output_index: number }).output_index], [call.id, 0]);
    const added = events.find((e) => e.type === 'response.output_item.added' && e.item.type === 'message');
    assert.ok(added && added.type === 'response.output_item.added' && added.output_index === 1);
    const deltas = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    assert.equal(deltas, text.text);
    assert.match(text.text, /waggle dance/);
    const annotations = events.flatMap((e) => (e.type === 'response.output_text.annotation.added' ? [e] : []));
    assert.deepEqual(annotations.map((a) => a.annotation), text.annotations);
    assert.deepEqual(annotations.map((a) => a.annotation_index), text.annotations.map((_, i) => i));
    assert.ok(annotations.every((a) => a.item_id === message.id && a.output_index === 1));
    assert.ok(text.annotations.some((a) => a.type === 'file_citation' && a.file_id === txtId));
    assert.equal(types.at(-1), 'response.completed');
  });

  test('background and stored: GET keeps the file_search_call; previous_response_id chains; input_items list it', async () => {
    const queued = await acme.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool()], background: true });
    assert.deepEqual(validResponse(wire(queued)), []);
    assert.deepEqual(queued.output, []);
    const done = await waitFor('the background response to end', async () => {
      const r = await acme.responses.retrieve(queued.id);
      return r.status === 'completed' || r.status === 'failed' ? r : undefined;
    }, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.deepEqual(validResponse(wire(done)), []);
    const { call, text } = parts(done);
    assert.match(text.text, /waggle dance/);
    assert.ok(text.annotations.some((a) => a.type === 'file_citation' && a.file_id === txtId));
    // Read again: the same stored object.
    assert.deepEqual(wire(await acme.responses.retrieve(queued.id)), wire(done));

    const next = await acme.responses.create({ model: 'tiny-chat', input: 'Who climbed the spiral stairs every evening?', tools: [tool()], previous_response_id: done.id });
    assert.deepEqual(validResponse(wire(next)), []);
    const second = parts(next);
    assert.deepEqual(second.call.queries, ['Who climbed the spiral stairs every evening?']);
    assert.match(second.text.text, /lighthouse keeper/);
    const items = await acme.responses.inputItems.list(next.id, { order: 'asc' });
    assert.deepEqual(validItems(items.data.length ? { object: 'list', data: items.data, first_id: items.data[0]!.id, last_id: items.data.at(-1)!.id, has_more: false } : {}), []);
    assert.ok(items.data.some((i) => i.type === 'file_search_call' && i.id === call.id), 'the previous turn\'s search is part of the conversation');
  });

  test('a real (not untrained) model generates from a prompt holding the chunks: the structure is right, the words are the model\'s', async () => {
    const plain = await acme.responses.create({ model: 'tiny-gen', input: QUESTION, max_output_tokens: 8 });
    const grounded = await acme.responses.create({ model: 'tiny-gen', input: QUESTION, max_output_tokens: 8, tools: [tool({ max_num_results: 2 })] });
    assert.deepEqual(validResponse(wire(grounded)), []);
    const { call, text } = parts(grounded);
    assert.equal(call.status, 'completed');
    assert.equal(grounded.usage!.output_tokens, 8, 'the model generated (an extractive answer is not cut at max_output_tokens)');
    assert.ok(grounded.usage!.input_tokens > plain.usage!.input_tokens + 20, `the chunks are in the prompt (${grounded.usage!.input_tokens} vs ${plain.usage!.input_tokens} input tokens)`);
    assert.ok(Array.isArray(text.annotations));
  });

  test("another tenant's vector store is a 404; a key without the documents scope is refused 403; a bad tool is a 400", async () => {
    const foreign = await apiError(globex.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool()] }));
    assert.equal(foreign.status, 404);
    assert.equal(foreign.code, 'vector_store_not_found');
    const scoped = await apiError(chatOnly.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool()] }));
    assert.equal(scoped.status, 403);
    assert.equal(scoped.code, 'insufficient_scope');
    assert.match(scoped.message, /documents/);
    // Without the tool the same key may chat.
    const plain = await chatOnly.responses.create({ model: 'tiny-chat', input: 'Hello', max_output_tokens: 4 });
    assert.equal(plain.output[0]!.type, 'message');
    // tool_choice 'none' turns the search off, as it turns calls off.
    const off = await acme.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool()], tool_choice: 'none', max_output_tokens: 4 });
    assert.deepEqual(validResponse(wire(off)), []);
    assert.deepEqual(off.output.map((o) => o.type), ['message']);
    const empty = await apiError(acme.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [{ type: 'file_search', vector_store_ids: [] }] }));
    assert.equal(empty.status, 400);
    const twice = await apiError(acme.responses.create({ model: 'tiny-chat', input: QUESTION, tools: [tool(), tool()] }));
    assert.equal(twice.status, 400);
    const chatForeign = await apiError(globex.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: QUESTION }], tools: [tool() as never] }));
    assert.equal(chatForeign.status, 404);
  });

  test('chat completions extension: the search adds context; the message carries file_citations, the answer its file_search_call', async () => {
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: QUESTION }];
    // Our extension: the SDK's types know function tools only.
    const tools = [tool() as unknown as OpenAI.Chat.ChatCompletionTool];
    const r = await acme.chat.completions.create({ model: 'tiny-chat', messages, tools });
    assert.deepEqual(validCompletion(r), []);
    const message = r.choices[0]!.message as typeof r.choices[0]['message'] & { file_citations: { type: string; file_id: string; filename: string; index: number }[] };
    assert.match(message.content!, /waggle dance/);
    const cite = message.file_citations.find((c) => c.index > message.content!.indexOf('waggle dance'));
    assert.ok(cite, JSON.stringify(message));
    assert.deepEqual({ type: cite.type, file_id: cite.file_id, filename: cite.filename }, { type: 'file_citation', file_id: txtId, filename: 'notes.txt' });
    const call = (r as unknown as { file_search_call: { type: string; queries: string[]; results: { file_id: string }[] } }).file_search_call;
    assert.equal(call.type, 'file_search_call');
    assert.deepEqual(call.queries, [QUESTION]);
    assert.equal(call.results[0]!.file_id, txtId);

    const stream = await acme.chat.completions.create({ model: 'tiny-chat', messages, tools, stream: true });
    let content = '';
    let streamed: { file_id: string; index: number }[] | undefined;
    for await (const chunk of stream) {
      assert.deepEqual(validChunk(chunk), [], JSON.stringify(chunk));
      const delta = chunk.choices[0]?.delta as { content?: string; file_citations?: { file_id: string; index: number }[] } | undefined;
      content += delta?.content ?? '';
      if (delta?.file_citations) streamed = delta.file_citations;
    }
    assert.equal(content, message.content);
    assert.deepEqual(streamed, message.file_citations);
  });
});
