import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';

import { makeTinySentenceTransformer } from '../../scripts/models/make-tiny-sentence-transformer.js';
import {
  createSentenceTransformerSession,
  type SentenceTransformerSession,
} from '../../workers/embeddings/sentence-transformers/st.session.js';
import { SentenceTransformerTokenizer } from '../../workers/embeddings/sentence-transformers/st.tokenizer.js';

const CPU = { intraOpThreads: 1, executionProviders: ['cpu'] };

const SENTENCE = 'The quick brown fox jumps over the lazy dog.';
const OTHERS = [
  'hello',
  'A much longer sentence about dogs and cats playing in the park on a warm sunny weekend morning, with friends.',
  'Semantic search finds similar documents.',
];

let root: string;
let modelDir: string;
let vocab: Record<string, number>;
let tokenizer: SentenceTransformerTokenizer;
let session: SentenceTransformerSession;
const openSessions: SentenceTransformerSession[] = [];

async function open(dir: string, options: Parameters<typeof createSentenceTransformerSession>[1] = CPU) {
  const s = await createSentenceTransformerSession(dir, options);
  openSessions.push(s);
  return s;
}

function dot(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

function norm(a: Float32Array): number {
  return Math.sqrt(dot(a, a));
}

function cosine(a: Float32Array, b: Float32Array): number {
  return dot(a, b) / (norm(a) * norm(b));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Runs the model graph directly (no session wrapper) on one unpadded row: [seq][hidden]. */
async function rawHiddenStates(dir: string, ids: readonly number[]): Promise<Float32Array[]> {
  const raw = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
  try {
    const dims = [1, ids.length];
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), dims),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), dims),
    };
    if (raw.inputNames.includes('token_type_ids')) {
      feeds['token_type_ids'] = new ort.Tensor('int64', new BigInt64Array(ids.length), dims);
    }
    const out = (await raw.run(feeds))['last_hidden_state']!;
    assert.deepEqual(out.dims, [1, ids.length, 64]);
    const data = out.data as Float32Array;
    return Array.from({ length: ids.length }, (_, t) => data.slice(t * 64, (t + 1) * 64));
  } finally {
    await raw.release();
  }
}

function normalized(v: Float32Array): Float32Array {
  const n = norm(v);
  return v.map((x) => x / n);
}

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'st-test-'));
  modelDir = path.join(root, 'tiny');
  await makeTinySentenceTransformer(modelDir);
  const tokenizerJson = JSON.parse(await readFile(path.join(modelDir, 'tokenizer.json'), 'utf8'));
  vocab = tokenizerJson.model.vocab;
  tokenizer = await SentenceTransformerTokenizer.load(modelDir);
  session = await open(modelDir);
});

after(async () => {
  for (const s of openSessions) await s.release();
  await rm(root, { recursive: true, force: true });
});

describe('tiny sentence-transformer generator', () => {
  it('writes the Hugging Face layout byte-identically every time', async () => {
    const again = path.join(root, 'again');
    await makeTinySentenceTransformer(again);
    for (const file of [
      'model.onnx',
      'tokenizer.json',
      'tokenizer_config.json',
      'config.json',
      'modules.json',
      '1_Pooling/config.json',
    ]) {
      assert.deepEqual(await readFile(path.join(again, file)), await readFile(path.join(modelDir, file)), file);
    }
    const config = JSON.parse(await readFile(path.join(modelDir, 'config.json'), 'utf8'));
    assert.equal(config.model_type, 'bert');
    assert.equal(config.hidden_size, 64);
    assert.equal(config.num_hidden_layers, 2);
    assert.ok(Object.keys(vocab).length >= 1500, `vocab has ${Object.keys(vocab).length} entries`);
  });
});

describe('SentenceTransformerTokenizer', () => {
  it('wraps texts in [CLS] … [SEP] with WordPiece ids, lowercased', () => {
    const [ids] = tokenizer.tokenize(['The CAT, ran!']);
    const expected = ['[CLS]', 'the', 'cat', ',', 'ran', '!', '[SEP]'].map((t) => vocab[t]);
    assert.deepEqual(ids, expected);
    assert.deepEqual(tokenizer.tokenize(['']), [[vocab['[CLS]'], vocab['[SEP]']]]);
    assert.equal(tokenizer.padId, vocab['[PAD]']);
  });

  it('splits unknown words into ## pieces', () => {
    const [ids] = tokenizer.tokenize(['xyzzy']);
    const tokens = ids!.slice(1, -1).map((id) => Object.keys(vocab).find((t) => vocab[t] === id));
    assert.ok(tokens.length > 1);
    assert.ok(tokens.slice(1).every((t) => t?.startsWith('##')), tokens.join(' '));
  });

  it('truncates to maxTokens and keeps the final [SEP]', async () => {
    const short = await SentenceTransformerTokenizer.load(modelDir, 6);
    assert.equal(short.maxTokens, 6);
    const [full] = tokenizer.tokenize([SENTENCE]);
    const [cut] = short.tokenize([SENTENCE]);
    assert.ok(full!.length > 6);
    assert.equal(cut!.length, 6);
    assert.deepEqual(cut, [...full!.slice(0, 5), vocab['[SEP]']]);
    // Texts that fit are untouched.
    assert.deepEqual(short.tokenize(['hello']), tokenizer.tokenize(['hello']));
  });

  it('takes its default limit from the model files and never exceeds it', async () => {
    // sentence_bert_config max_seq_length 128 and max_position_embeddings 128 win over model_max_length 512.
    assert.equal(tokenizer.maxTokens, 128);
    const [long] = tokenizer.tokenize([Array.from({ length: 300 }, () => 'word').join(' ')]);
    assert.equal(long!.length, 128);
    assert.equal(long!.at(-1), vocab['[SEP]']);
    assert.equal((await SentenceTransformerTokenizer.load(modelDir, 4096)).maxTokens, 128);
    await assert.rejects(SentenceTransformerTokenizer.load(modelDir, 2), /maxTokens/);
  });
});

describe('createSentenceTransformerSession', () => {
  it('returns unit-length vectors of the model width', async () => {
    assert.equal(session.dimensions, 64);
    assert.deepEqual(session.pooling, ['mean']);
    assert.equal(session.modelNormalizes, true);
    const vectors = await session.embed(tokenizer.tokenize([SENTENCE, ...OTHERS]));
    assert.equal(vectors.length, 1 + OTHERS.length);
    for (const v of vectors) {
      assert.equal(v.length, 64);
      assert.ok(Math.abs(norm(v) - 1) < 1e-5, `norm ${norm(v)}`);
    }
    // Different texts get clearly different vectors.
    assert.ok(cosine(vectors[0]!, vectors[1]!) < 0.99);
    assert.deepEqual(await session.embed([]), []);
  });

  it('is deterministic across loads and regenerated models', async () => {
    const rows = tokenizer.tokenize([SENTENCE, ...OTHERS]);
    const first = await session.embed(rows);
    const second = await (await open(modelDir)).embed(rows);
    const regenerated = await (await open(path.join(root, 'again'))).embed(rows);
    assert.deepEqual(second, first);
    assert.deepEqual(regenerated, first);
  });

  it('gives a sentence the same vector alone and inside a padded batch', async () => {
    const [alone] = await session.embed(tokenizer.tokenize([SENTENCE]));
    const batch = await session.embed(tokenizer.tokenize([OTHERS[1]!, SENTENCE, OTHERS[0]!]));
    assert.ok(tokenizer.tokenize([OTHERS[1]!])[0]!.length > tokenizer.tokenize([SENTENCE])[0]!.length);
    assert.ok(cosine(alone!, batch[1]!) >= 0.99999, `cosine ${cosine(alone!, batch[1]!)}`);
    const [hello] = await session.embed(tokenizer.tokenize([OTHERS[0]!]));
    assert.ok(cosine(hello!, batch[2]!) >= 0.99999, `cosine ${cosine(hello!, batch[2]!)}`);
  });

  it('mean-pools last_hidden_state exactly like an independent computation', async () => {
    const [ids] = tokenizer.tokenize([SENTENCE]);
    const states = await rawHiddenStates(modelDir, ids!);
    const mean = new Float32Array(64);
    for (const row of states) for (let h = 0; h < 64; h++) mean[h] = mean[h]! + row[h]! / states.length;

    const [pooled] = await session.embed([ids!]);
    assert.ok(cosine(pooled!, normalized(mean)) >= 0.99999);
    assert.ok(maxAbsDiff(pooled!, normalized(mean)) < 1e-5);

    const raw = await open(modelDir, { ...CPU, normalize: false });
    const [unnormalized] = await raw.embed([ids!]);
    assert.ok(maxAbsDiff(unnormalized!, mean) < 1e-5);
  });

  it('supports cls and max pooling from 1_Pooling/config.json', async () => {
    const [ids] = tokenizer.tokenize([SENTENCE]);
    for (const pooling of ['cls', 'max'] as const) {
      const dir = path.join(root, `pool-${pooling}`);
      await makeTinySentenceTransformer(dir, { pooling });
      const s = await open(dir);
      assert.deepEqual(s.pooling, [pooling]);
      const states = await rawHiddenStates(dir, ids!);
      const expected =
        pooling === 'cls'
          ? states[0]!
          : Float32Array.from({ length: 64 }, (_, h) => Math.max(...states.map((row) => row[h]!)));
      const [alone] = await s.embed([ids!]);
      const batch = await s.embed(tokenizer.tokenize([OTHERS[1]!, SENTENCE]));
      assert.ok(maxAbsDiff(alone!, normalized(expected)) < 1e-5, pooling);
      assert.ok(cosine(alone!, batch[1]!) >= 0.99999, pooling);
    }
  });

  it('feeds token_type_ids only when the graph declares it', async () => {
    const dir = path.join(root, 'no-token-types');
    await makeTinySentenceTransformer(dir, { tokenTypeIds: false });
    const probe = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
    assert.deepEqual(probe.inputNames, ['input_ids', 'attention_mask']);
    await probe.release();

    const without = await open(dir);
    assert.equal(without.usesTokenTypeIds, false);
    assert.equal(session.usesTokenTypeIds, true);

    // Both graphs use token type 0 everywhere and share weights, so they must agree.
    const rows = tokenizer.tokenize([SENTENCE, ...OTHERS]);
    const a = await session.embed(rows);
    const b = await without.embed(rows);
    a.forEach((v, i) => assert.ok(cosine(v, b[i]!) >= 0.99999, `row ${i}`));
  });

  it('finds the graph under onnx/model.onnx', async () => {
    const dir = path.join(root, 'onnx-subdir');
    await makeTinySentenceTransformer(dir, { onnxSubdir: true });
    const s = await open(dir);
    assert.equal(s.modelPath, path.join(dir, 'onnx', 'model.onnx'));
    const rows = tokenizer.tokenize([SENTENCE]);
    assert.deepEqual(await s.embed(rows), await session.embed(rows));
  });

  it('falls back to the CPU when an accelerator provider cannot start', async () => {
    const s = await open(modelDir, { intraOpThreads: 1, executionProviders: ['cuda', 'cpu'] });
    if (s.providerFallback !== undefined) assert.deepEqual(s.executionProviders, ['cpu']);
    const rows = tokenizer.tokenize([SENTENCE]);
    const [v] = await s.embed(rows);
    const [reference] = await session.embed(rows);
    assert.ok(cosine(v!, reference!) >= 0.9999);
  });
});

describe('missing files', () => {
  it('names the missing model folder', async () => {
    const missing = path.join(root, 'does-not-exist');
    await assert.rejects(SentenceTransformerTokenizer.load(missing), (err: Error) => {
      assert.match(err.message, /does-not-exist/);
      assert.match(err.message, /does not exist/);
      return true;
    });
    await assert.rejects(createSentenceTransformerSession(missing, CPU), /does-not-exist.*does not exist/);
  });

  it('names tokenizer.json when it is missing', async () => {
    const dir = path.join(root, 'no-tokenizer');
    await makeTinySentenceTransformer(dir);
    await rm(path.join(dir, 'tokenizer.json'));
    await assert.rejects(SentenceTransformerTokenizer.load(dir), (err: Error) => {
      assert.ok(err.message.includes(path.join(dir, 'tokenizer.json')), err.message);
      assert.match(err.message, /not found/);
      return true;
    });
    await assert.rejects(createSentenceTransformerSession(dir, CPU), /tokenizer\.json not found/);
  });

  it('names model.onnx when it is missing', async () => {
    const dir = path.join(root, 'no-model');
    await mkdir(dir);
    await writeFile(path.join(dir, 'tokenizer.json'), await readFile(path.join(modelDir, 'tokenizer.json')));
    await assert.rejects(createSentenceTransformerSession(dir, CPU), /model\.onnx not found/);
  });

  it('rejects a corrupt tokenizer.json with the file name', async () => {
    const dir = path.join(root, 'bad-tokenizer');
    await mkdir(dir);
    await writeFile(path.join(dir, 'tokenizer.json'), '{ not json');
    await assert.rejects(SentenceTransformerTokenizer.load(dir), /tokenizer\.json is not valid JSON/);
  });
});
