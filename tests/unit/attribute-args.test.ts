import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eqFilter, parseAttributes, parseAttributeValue, splitPairs } from '../../client/attribute-args.js';
import { attributeFilterSchema, matchesAttributeFilter } from '../../shared/documents/search-ranking.js';

/** The key=value pairs of `qi vector-stores --attr/--filter` and the playground's panel. */
describe('attribute pairs', () => {
  test('values are typed as OpenAI attribute scalars; quotes keep a string', () => {
    assert.deepEqual(
      ['notes', '2024', '-1.5', 'true', 'false', '"007"', '""', '1e3', '12abc', ''].map(parseAttributeValue),
      ['notes', 2024, -1.5, true, false, '007', '', '1e3', '12abc', ''],
    );
  });

  test('pairs become attributes; the value may hold "="; a pair without a key is refused by name', () => {
    assert.deepEqual(parseAttributes(['kind=notes', ' year = 2024 ', 'expr=a=b', 'empty=']), { kind: 'notes', year: 2024, expr: 'a=b', empty: '' });
    assert.throws(() => parseAttributes(['kind']), /"kind" is not key=value/);
    assert.throws(() => parseAttributes(['=x']), /"=x" is not key=value/);
  });

  test('filters: none, one eq, or eqs joined by and; each is a valid OpenAI filter that matches what the pairs set', () => {
    assert.equal(eqFilter([]), undefined);
    assert.deepEqual(eqFilter(['kind=notes']), { type: 'eq', key: 'kind', value: 'notes' });
    const both = eqFilter(splitPairs('kind=notes, year=2024,'))!;
    assert.deepEqual(both, { type: 'and', filters: [{ type: 'eq', key: 'kind', value: 'notes' }, { type: 'eq', key: 'year', value: 2024 }] });
    assert.ok(attributeFilterSchema.safeParse(both).success);
    const attributes = parseAttributes(splitPairs('kind=notes, year=2024'));
    assert.ok(matchesAttributeFilter(attributes, both));
    assert.ok(!matchesAttributeFilter({ ...attributes, year: '2024' }, both), 'a string year does not equal the number');
  });
});
