import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attributeFilterSchema, matchesAttributeFilter, rankingOptionsSchema, resolveRanking } from '../../shared/documents/search-ranking.js';
import { LexicalIndex } from '../../workers/index/lexical-index.js';
import { lexicalTerms } from '../../workers/index/lexical-terms.js';
import { fuseRankings } from '../../workers/index/rank-fusion.js';

describe('lexical terms', () => {
  test('identifiers stay whole and also give their parts; case folds; numbers and hex stay as written', () => {
    const terms = lexicalTerms('Start redis-server, send SIGTERM; set MAX_RETRY_COUNT to 0x1F or 128 in config.json');
    for (const t of ['redis-server', 'redis', 'server', 'sigterm', 'max_retry_count', 'max', 'retry', 'count', '0x1f', '128', 'config.json', 'json']) {
      assert.ok(terms.includes(t), `${t} in ${terms.join(' ')}`);
    }
    assert.ok(!terms.includes('to') && !terms.includes('in') && !terms.includes('or'), 'stop words dropped');
  });

  test('plain words meet across plural and verb endings; identifiers are not stemmed', () => {
    assert.deepEqual(lexicalTerms('rotate rotates rotated rotating'), ['rotat', 'rotat', 'rotat', 'rotat']);
    assert.deepEqual(lexicalTerms('keys key'), ['key', 'key']);
    assert.deepEqual(lexicalTerms("the server's logs"), ['server', 'log']);
    assert.deepEqual(lexicalTerms('SIGTERMs'), ['sigterm']);
    assert.deepEqual(lexicalTerms('x86_64'), ['x86_64', 'x86', '64']);
    // camelCase gives its parts (stemmed, being plain words); capital runs stay whole.
    assert.deepEqual(lexicalTerms('createWorkerFactory'), ['createworkerfactory', 'creat', 'worker', 'factory']);
    assert.deepEqual(lexicalTerms('SIGTERMs XMLnamespaces'), ['sigterm', 'xmlnamespac']);
  });

  test('CJK runs become overlapping character pairs', () => {
    assert.deepEqual(lexicalTerms('北京天气'), ['北京', '京天', '天气']);
  });
});

describe('lexical index', () => {
  test('the title field (the file name) tells near-duplicate documents apart, and the text still outweighs it', () => {
    const index = LexicalIndex.empty();
    index.add(1, 'You may convey verbatim copies of the Program as you receive it.', 'GPL-2');
    index.add(2, 'You may convey verbatim copies of the Program as you receive it.', 'GPL-3');
    index.add(3, 'The licence of version 3 says nothing about the weather.', 'notes.txt');
    assert.equal(index.search('Under GPL-3, may I convey verbatim copies?', 5)[0]?.label, 2);
    assert.equal(index.search('Under GPL-2, may I convey verbatim copies?', 5)[0]?.label, 1);
    // A title word alone does not lift a chunk over one whose text answers.
    assert.equal(index.search('weather in version 3 of the licence', 5)[0]?.label, 3);
    assert.equal(LexicalIndex.fromJSON(index.toJSON()).search('GPL-3 verbatim copies', 5)[0]?.label, 2, 'titles survive serialisation');
  });

  test('ranks the chunk with the exact identifier first, forgets removed chunks, and survives serialisation', () => {
    const index = LexicalIndex.empty();
    index.add(1, 'The server stops when it receives a signal from the operating system.');
    index.add(2, 'On SIGTERM the worker drains its jobs and exits with code 143.');
    index.add(3, 'Signals are delivered to the process group.');
    index.add(2, 'a second add of the same label is ignored');
    assert.equal(index.size, 3);
    assert.equal(index.search('what happens on SIGTERM?', 5)[0]?.label, 2);
    assert.deepEqual(
      index.search('SIGTERM', 5, (label) => label !== 2),
      [],
      'a filter that excludes the only match leaves nothing',
    );

    const copy = LexicalIndex.fromJSON(index.toJSON());
    assert.equal(copy.size, 3);
    assert.equal(copy.search('exit code 143', 5)[0]?.label, 2);
    copy.remove(2);
    copy.remove(99);
    assert.equal(copy.size, 2);
    assert.deepEqual(copy.search('SIGTERM', 5), []);
    assert.equal(index.search('SIGTERM', 5)[0]?.label, 2, 'the original is untouched');
  });
});

describe('rank fusion', () => {
  const vector = [
    { label: 10, score: 0.8 },
    { label: 11, score: 0.7 },
    { label: 12, score: 0.6 },
  ];
  const lexical = [
    { label: 12, score: 9 },
    { label: 13, score: 4 },
  ];

  const rrf = { fusion: 'rrf' } as const;
  test('hybrid rrf: reciprocal rank fusion, normalised so first in both lists scores 1', () => {
    const hits = fuseRankings(vector, lexical, resolveRanking(rrf), 10);
    // 12 is third by vector and first lexically: 1/63 + 1/61 beats 10's 1/61 alone; 11 and 13 tie
    // (second in one list each) and the lexical one goes first.
    assert.deepEqual(
      hits.map((h) => h.label),
      [12, 10, 13, 11],
    );
    assert.ok(Math.abs(hits[0]!.score - (1 / 63 + 1 / 61) / (2 / 61)) < 1e-12);
    assert.equal(hits[0]!.lexicalScore, 9);
    assert.equal(hits[1]!.lexicalScore, null);
    const both = fuseRankings([{ label: 1, score: 0.9 }], [{ label: 1, score: 3 }], resolveRanking(rrf), 5);
    assert.equal(both[0]!.score, 1);
  });

  test('rrf: weights, k and the score threshold change the order and the cut', () => {
    const textHeavy = fuseRankings(vector, lexical, resolveRanking({ ...rrf, hybrid_search: { embedding_weight: 1, text_weight: 3 } }), 10);
    assert.deepEqual(
      textHeavy.map((h) => h.label).slice(0, 2),
      [12, 13],
    );
    const vectorOnlyWeight = fuseRankings(vector, lexical, resolveRanking({ ...rrf, hybrid_search: { embedding_weight: 1, text_weight: 0 } }), 10);
    assert.deepEqual(
      vectorOnlyWeight.map((h) => h.label),
      [10, 11, 12],
    );
    const cut = fuseRankings(vector, lexical, resolveRanking({ ...rrf, score_threshold: 0.6 }), 10);
    assert.deepEqual(
      cut.map((h) => h.label),
      [12],
    );
    // A tie (each list's own first) goes to the lexical list's first.
    const tie = fuseRankings([{ label: 1, score: 0.9 }], [{ label: 2, score: 5 }], resolveRanking(rrf), 5);
    assert.deepEqual(
      tie.map((h) => h.label),
      [2, 1],
    );
  });

  // Convex fusion (the default): a chunk's score is the weighted mean of its min-max-normalised cosine and BM25.
  test('convex (default): an exact identifier only BM25 finds stays first over chunks the vector prefers', () => {
    // The vector ranks three look-alike chunks first; only chunk 7 contains the identifier, far ahead by BM25.
    const look = [
      { label: 1, score: 0.62 },
      { label: 2, score: 0.6 },
      { label: 3, score: 0.58 },
      { label: 4, score: 0.4 },
    ];
    const bm25 = [
      { label: 7, score: 14 },
      { label: 2, score: 3 },
      { label: 3, score: 2.5 },
    ];
    const cosines = new Map([[7, 0.41]]);
    const hits = fuseRankings(look, bm25, resolveRanking(undefined), 5, (label) => cosines.get(label)!);
    assert.equal(hits[0]!.label, 7, hits.map((h) => `${h.label}:${h.score.toFixed(3)}`).join(' '));
    assert.equal(hits[0]!.lexicalScore, 14);
    assert.ok(hits.every((h) => h.score >= 0 && h.score <= 1));
  });

  test('convex: a paraphrase only the vector finds still makes the top k, and the vector breaks near-ties of BM25', () => {
    // Chunk 9 shares no term with the query but is the vector's clear first; BM25 found two chunks, almost tied.
    const near = [
      { label: 9, score: 0.9 },
      { label: 5, score: 0.7 },
      { label: 6, score: 0.3 },
      { label: 8, score: 0.2 },
    ];
    const bm25 = [
      { label: 6, score: 5 },
      { label: 5, score: 4.9 },
    ];
    const hits = fuseRankings(near, bm25, resolveRanking(undefined), 3);
    assert.deepEqual(
      hits.map((h) => h.label),
      [5, 6, 9],
      'the near-tie goes to the chunk the vector prefers; the paraphrase follows the lexical matches',
    );
    assert.equal(hits[2]!.lexicalScore, null);
    // With no lexical match at all the order is the vector's, and no hit scores as a perfect match.
    const silent = fuseRankings(near, [], resolveRanking(undefined), 4);
    assert.deepEqual(
      silent.map((h) => h.label),
      [9, 5, 6, 8],
    );
    assert.ok(silent.every((h) => h.score <= 0.1 + 1e-12));
    // With the vector weighted up, the paraphrase comes first.
    const vectorHeavy = fuseRankings(near, bm25, resolveRanking({ hybrid_search: { embedding_weight: 9, text_weight: 1 } }), 3);
    assert.equal(vectorHeavy[0]!.label, 9);
    // First in both lists scores 1, and a threshold cuts on the same scale.
    assert.equal(fuseRankings([{ label: 1, score: 0.9 }, { label: 2, score: 0.1 }], [{ label: 1, score: 3 }], resolveRanking(undefined), 5)[0]!.score, 1);
    const cut = fuseRankings(near, bm25, resolveRanking({ score_threshold: 0.5 }), 10);
    assert.ok(cut.length > 0 && cut.length < 4 && cut.every((h) => h.score >= 0.5));
  });

  test('convex: a lexical-only chunk is scored with its own cosine when given, else as the vector list\'s last; z-scores are an option', () => {
    const v = [
      { label: 1, score: 0.8 },
      { label: 2, score: 0.5 },
    ];
    const l = [
      { label: 3, score: 2 },
      { label: 1, score: 1.9 },
    ];
    const equal = { hybrid_search: { embedding_weight: 1, text_weight: 1 } };
    // Without a similarity, chunk 3 counts as cosine 0.5 (the list's last): 1 wins (0.5·1 + 0.5·0.95 > 0.5·0 + 0.5·1).
    assert.equal(fuseRankings(v, l, resolveRanking(equal), 3)[0]!.label, 1);
    // Its real cosine, 0.95, puts it first.
    assert.equal(fuseRankings(v, l, resolveRanking(equal), 3, () => 0.95)[0]!.label, 3);
    const z = fuseRankings(v, l, resolveRanking({ ...equal, normalization: 'z_score' }), 3, () => 0.95);
    assert.equal(z[0]!.label, 3);
    assert.ok(z.every((h) => h.score > 0 && h.score < 1), 'z-scores through the normal CDF stay inside (0, 1)');
  });

  test('vector and lexical modes keep their own order and score scales', () => {
    const v = fuseRankings(vector, [], resolveRanking({ ranker: 'vector' }), 2);
    assert.deepEqual(
      v.map((h) => [h.label, h.score]),
      [
        [10, 0.8],
        [11, 0.7],
      ],
    );
    const l = fuseRankings([], lexical, resolveRanking({ ranker: 'lexical', score_threshold: 0.5 }), 5);
    assert.deepEqual(
      l.map((h) => [h.label, h.score]),
      [[12, 1]],
    );
  });

  test('OpenAI rankers map to modes; bad options are refused', () => {
    assert.equal(resolveRanking({ ranker: 'auto' }).mode, 'hybrid');
    assert.equal(resolveRanking({ ranker: 'default-2024-11-15' }).mode, 'hybrid');
    assert.equal(resolveRanking({ ranker: 'lexical' }).mode, 'lexical');
    assert.equal(resolveRanking(undefined).rrfK, 60);
    assert.equal(resolveRanking(undefined).fusion, 'convex');
    assert.equal(resolveRanking({ rrf_k: 10 }).fusion, 'rrf', 'rrf_k alone keeps the fusion it belongs to');
    assert.deepEqual([resolveRanking({ fusion: 'rrf' }).embeddingWeight, resolveRanking({ fusion: 'rrf' }).textWeight], [1, 1]);
    assert.equal(rankingOptionsSchema.safeParse({ fusion: 'borda' }).success, false);
    assert.equal(rankingOptionsSchema.safeParse({ normalization: 'rank' }).success, false);
    assert.equal(rankingOptionsSchema.safeParse({ ranker: 'bm42' }).success, false);
    assert.equal(rankingOptionsSchema.safeParse({ score_threshold: 1.5 }).success, false);
    assert.equal(rankingOptionsSchema.safeParse({ hybrid_search: { embedding_weight: 0, text_weight: 0 } }).success, false);
  });
});

describe('attribute filters', () => {
  const meta = { team: 'ops', year: 2024, public: true };
  test('comparison and compound filters over metadata', () => {
    const cases: [unknown, boolean][] = [
      [{ type: 'eq', key: 'team', value: 'ops' }, true],
      [{ type: 'ne', key: 'team', value: 'ops' }, false],
      [{ type: 'gte', key: 'year', value: 2024 }, true],
      [{ type: 'lt', key: 'year', value: 2024 }, false],
      [{ type: 'gt', key: 'team', value: 5 }, false],
      [{ type: 'in', key: 'team', value: ['dev', 'ops'] }, true],
      [{ type: 'nin', key: 'team', value: ['dev', 'ops'] }, false],
      [{ type: 'eq', key: 'missing', value: 'x' }, false],
      [{ type: 'ne', key: 'missing', value: 'x' }, true],
      [{ type: 'eq', key: 'constructor', value: 'x' }, false],
      [{ type: 'nin', key: '__proto__', value: ['x'] }, true],
      [{ type: 'and', filters: [{ type: 'eq', key: 'public', value: true }, { type: 'gt', key: 'year', value: 2020 }] }, true],
      [{ type: 'or', filters: [{ type: 'eq', key: 'team', value: 'dev' }, { type: 'and', filters: [{ type: 'eq', key: 'year', value: 1999 }] }] }, false],
    ];
    for (const [raw, expected] of cases) {
      const filter = attributeFilterSchema.parse(raw);
      assert.equal(matchesAttributeFilter(meta, filter), expected, JSON.stringify(raw));
    }
    assert.equal(attributeFilterSchema.safeParse({ type: 'like', key: 'team', value: 'o%' }).success, false);
  });
});
