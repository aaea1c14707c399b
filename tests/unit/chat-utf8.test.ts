import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { ChatTokenizer } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import { GenerationEngine } from '../../workers/chat/generation-engine.js';
import { GrammarRuntime } from '../../workers/chat/grammar/grammar-runtime.js';
import { Prng } from '../../workers/chat/sampler.js';

/**
 * Streamed text never splits a UTF-8 character. GPT-2's byte-level BPE has 344 tokens that are
 * not whole characters (a lone 0xF0, the middle of an emoji…); the text deltas of a stream must
 * hold such bytes back until the character is complete, so that no delta carries a U+FFFD the
 * final text does not have. The oracle is TextDecoder in streaming mode, which emits exactly the
 * complete characters of the bytes so far.
 */

let root: string;
let tokenizer: ChatTokenizer;
let decoder: DecoderSession;
let grammar: GrammarRuntime;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'chat-utf8-'));
  await makeTinyDecoder(path.join(root, 'tiny-chat'));
  tokenizer = await ChatTokenizer.load(path.join(root, 'tiny-chat'));
  decoder = await DecoderSession.open(path.join(root, 'tiny-chat'), { intraOpThreads: 1, executionProviders: ['cpu'] });
  grammar = new GrammarRuntime({ vocabulary: tokenizer.vocabulary, vocabSize: decoder.config.vocabSize, stopTokenIds: tokenizer.stopTokenIds });
});

after(async () => {
  grammar?.close();
  await decoder?.release();
  await rm(root, { recursive: true, force: true });
});

const strict = new TextDecoder('utf-8', { fatal: true });
const isPartial = (id: number): boolean => {
  try {
    strict.decode(tokenizer.vocabulary.tokenBytes(id));
    return false;
  } catch {
    return true;
  }
};

/** The complete characters of the tokens' bytes after each token (TextDecoder's streaming mode). */
function completePrefixes(ids: readonly number[]): string[] {
  const stream = new TextDecoder('utf-8');
  let text = '';
  return ids.map((id) => (text += stream.decode(tokenizer.vocabulary.tokenBytes(id), { stream: true })));
}

/**
 * After each token, the text streamed so far must be a prefix of the complete characters (nothing
 * broken ever goes out), and all of them whenever the bytes so far end on a character boundary
 * (nothing whole is held back for longer than the token that holds a partial character).
 */
function assertStreamsWholeCharacters(ids: readonly number[], deltas: readonly string[], label: string): void {
  const expected = completePrefixes(ids);
  let bytes = Buffer.alloc(0);
  deltas.forEach((_, i) => {
    bytes = Buffer.concat([bytes, tokenizer.vocabulary.tokenBytes(ids[i]!)]);
    const streamed = deltas.slice(0, i + 1).join('');
    assert.ok(expected[i]!.startsWith(streamed), `${label}, after token ${i}: ${JSON.stringify(streamed)} is not a prefix of ${JSON.stringify(expected[i])}`);
    let boundary = true;
    try {
      strict.decode(bytes);
    } catch {
      boundary = false;
    }
    if (boundary) assert.equal(streamed, expected[i], `${label}, after token ${i}`);
  });
}

describe('detokenizer', () => {
  it('CJK and emoji split over several tokens come out whole, at the token that completes them', () => {
    for (const text of ['日本語のテキスト', '👩‍👩‍👧‍👦 and 🇳🇿', 'Ελληνικά, עברית, naïve']) {
      const ids = tokenizer.encode(text);
      assert.ok(ids.some(isPartial), `${text} has split characters`);
      const detok = tokenizer.createDetokenizer();
      const deltas = ids.map((id) => detok.push(id));
      assert.equal(detok.flush(), '');
      assertStreamsWholeCharacters(ids, deltas, text);
      assert.equal(deltas.join(''), text);
    }
  });

  it('random token streams heavy in partial bytes: deltas join to the full decode; U+FFFD only where the final text has it', () => {
    const partial = [...Array(tokenizer.vocabulary.size).keys()].filter(isPartial);
    assert.equal(partial.length, 344);
    const rng = new Prng(7);
    const pick = (n: number) => Math.floor(rng.next() * n);
    for (let trial = 0; trial < 500; trial++) {
      const ids = Array.from({ length: 12 }, () => (rng.next() < 0.6 ? partial[pick(partial.length)]! : pick(50257)));
      const detok = tokenizer.createDetokenizer(tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }]));
      const deltas = ids.map((id) => detok.push(id));
      const tail = detok.flush();
      const full = tokenizer.decode(ids);
      assert.equal(deltas.join('') + tail, full, JSON.stringify(ids));
      assert.equal(full, new TextDecoder().decode(Buffer.concat(ids.map((id) => tokenizer.vocabulary.tokenBytes(id)))));
      if (!full.includes('\uFFFD')) for (const d of deltas) assert.ok(!d.includes('\uFFFD'), JSON.stringify(ids));
    }
  });
});

describe('engine stream', () => {
  it('the real model writing emoji and CJK byte by byte: deltas hold back every incomplete character', async () => {
    // A grammar makes the untrained model write multi-byte characters; GPT-2's vocabulary spells
    // most of them with partial-byte tokens.
    const ebnf = 'root ::= ("日本" | "語" | "🎉" | "👍🏽" | "é" | "Ω"){6,10}';
    const engine = new GenerationEngine(decoder, tokenizer, { grammar });
    const promptIds = tokenizer.applyChatTemplate([{ role: 'user', content: '日本語で答えてください。🎉' }]);
    const runs = await Promise.all(
      [1, 2, 3].map(
        (seed) =>
          new Promise<{ ids: number[]; deltas: string[]; text: string; finishReason: string }>((resolve, reject) => {
            const ids: number[] = [];
            const deltas: string[] = [];
            engine.submit(
              { id: `utf8-${seed}`, promptIds, temperature: 1, seed, maxTokens: 64, responseFormat: { type: 'ebnf', grammar: ebnf } },
              {
                onToken: (_i, text, id) => {
                  ids.push(id);
                  deltas.push(text);
                },
                onDone: (r) => resolve({ ids, deltas, text: r.text, finishReason: r.finishReason }),
                onError: reject,
              },
            );
          }),
      ),
    );
    let held = 0;
    for (const { ids, deltas, text, finishReason } of runs) {
      assert.equal(finishReason, 'stop');
      assert.match(text, /^(日本|語|🎉|👍🏽|é|Ω){6,10}$/u);
      assert.equal(deltas.join(''), text);
      // The end-of-sequence token comes last and adds no text.
      assert.ok(tokenizer.stopTokenIds.has(ids.at(-1)!));
      assertStreamsWholeCharacters(ids.slice(0, -1), deltas.slice(0, -1), text);
      for (const d of deltas) assert.ok(!d.includes('\uFFFD'), JSON.stringify(d));
      assert.equal(deltas.at(-1), '');
      held += ids.filter((id, i) => isPartial(id) && deltas[i] === '').length;
    }
    assert.ok(held > 0, 'some tokens were partial characters and were held back');
  });
});
