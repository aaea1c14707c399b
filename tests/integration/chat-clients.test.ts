import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, jsonSchema, tool } from 'ai';
import { z } from 'zod';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { KEYS, startService, writeModelsConfig, type ServiceHandle } from '../helpers/service.js';

/**
 * Structured outputs and tools through the clients people build agents with: LangChain
 * (`bindTools` then a tool message, `withStructuredOutput`) and the Vercel AI SDK on its chat
 * provider (`generateObject` with zod, a tool round trip), against the untrained tiny model. The
 * grammar makes the structure right; the words are meaningless. Schemas bound their strings, which
 * an untrained model would otherwise never close.
 */

const WEATHER_PARAMS = z.object({ city: z.string().max(10), unit: z.enum(['celsius', 'fahrenheit']) });

describe('chat: LangChain and the AI SDK with tools and structured outputs', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let svc: ServiceHandle;

  before(async () => {
    const modelDir = mkdtempSync(path.join(tmpdir(), 'qi-clients-'));
    await makeTinyDecoder(modelDir, { maxPositions: 1024 });
    redis = await startPrivateRedis();
    svc = await startService({
      redisUrl: redis.url,
      modelsConfig: writeModelsConfig([
        { id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: modelDir, threads: 1, concurrency: 8, max_tokens_limit: 600, default_max_tokens: 400 },
      ]),
    });
  });

  after(async () => {
    await svc?.stop();
    await redis?.cleanup();
  });

  const langchain = () =>
    new ChatOpenAI({ model: 'tiny-chat', apiKey: KEYS.acme, configuration: { baseURL: `${svc.baseUrl}/v1` }, maxRetries: 0, maxTokens: 400, temperature: 1 });

  test('LangChain: bindTools with a required call, then the tool message back, and the model answers', async () => {
    const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: z.toJSONSchema(WEATHER_PARAMS) } };
    const model = langchain().bindTools([weather], { tool_choice: 'required', parallel_tool_calls: false });
    const question = new HumanMessage('Weather in Paris?');
    const reply = await model.invoke([question]);
    assert.equal(reply.tool_calls?.length, 1, JSON.stringify(reply));
    const call = reply.tool_calls![0]!;
    assert.equal(call.name, 'get_weather');
    assert.ok(WEATHER_PARAMS.safeParse(call.args).success, JSON.stringify(call.args));
    assert.match(call.id ?? '', /^call_/);

    const answer = await langchain().invoke([question, new AIMessage({ content: '', tool_calls: reply.tool_calls! }), new ToolMessage({ tool_call_id: call.id!, content: '21 degrees' })], {
      max_tokens: 12,
    } as never);
    assert.equal(typeof answer.content, 'string');
    assert.ok((answer.content as string).length > 0);
    assert.equal(answer.tool_calls?.length ?? 0, 0);
  });

  test('LangChain: withStructuredOutput returns an object of the zod schema', async () => {
    const Person = z.object({ name: z.string().max(12), age: z.number().int().min(0).max(120), tags: z.array(z.enum(['a', 'b', 'c'])).max(3) });
    const structured = langchain().withStructuredOutput(Person, { name: 'person', method: 'jsonSchema', strict: true });
    const person = await structured.invoke('Describe a person.');
    assert.deepEqual(Person.parse(person), person);
  });

  test('AI SDK: generateObject with a zod schema on openai.chat()', async () => {
    const provider = createOpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1` });
    const Recipe = z.object({ title: z.string().max(16), steps: z.array(z.string().max(12)).min(1).max(3), vegan: z.boolean() });
    // Seed 2 once wrote a raw U+0002 inside a bounded string (xgrammar's maxLength strings allowed
    // control characters; see jsonSchemaEbnf in grammar-runtime.ts), which JSON.parse refuses.
    const { object, finishReason } = await generateObject({ model: provider.chat('tiny-chat'), schema: Recipe, prompt: 'A recipe.', maxOutputTokens: 400, maxRetries: 0, seed: 2 });
    assert.equal(finishReason, 'stop');
    assert.deepEqual(Recipe.parse(object), object);
  });

  test('AI SDK: a tool round trip (forced call, executed, its result sent back, then text)', async () => {
    const provider = createOpenAI({ apiKey: KEYS.acme, baseURL: `${svc.baseUrl}/v1` });
    const calls: unknown[] = [];
    const first = await generateText({
      model: provider.chat('tiny-chat'),
      prompt: 'Weather in Paris?',
      tools: {
        get_weather: tool({
          description: 'Weather in a city',
          inputSchema: jsonSchema<{ city: string; unit: string }>(z.toJSONSchema(WEATHER_PARAMS) as never),
          execute: async (input) => {
            calls.push(input);
            return { temperature: 21 };
          },
        }),
      },
      toolChoice: 'required',
      // One call is asked for, not hoped for: with parallel calls allowed the sampler may emit two.
      providerOptions: { openai: { parallelToolCalls: false } },
      maxOutputTokens: 400,
      maxRetries: 0,
      seed: 3,
    });
    assert.equal(calls.length, 1, JSON.stringify(first.steps.map((s) => s.finishReason)));
    assert.ok(WEATHER_PARAMS.safeParse(calls[0]).success, JSON.stringify(calls[0]));
    assert.equal(first.toolResults.length, 1);
    // The call and its result go back; the model answers with text.
    const second = await generateText({ model: provider.chat('tiny-chat'), messages: first.response.messages.length ? [{ role: 'user', content: 'Weather in Paris?' }, ...first.response.messages] : [], maxOutputTokens: 12, maxRetries: 0, seed: 3 });
    assert.ok(second.text.length > 0);
    assert.equal(second.finishReason, 'length');
  });
});
