import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rewriteQuery } from '../../shared/documents/query-rewrite.js';

test('rewrite_query: the request frame and stop words go, content words and identifiers stay in order', () => {
  assert.equal(rewriteQuery("I'd like to know the height of the main office building"), 'height main office building');
  assert.equal(rewriteQuery('Could you please tell me about the maxLength option of a string schema?'), 'maxLength option string schema');
  assert.equal(rewriteQuery('How do I set $PATH for v1.2 of the CLI?'), 'set $PATH v1.2 CLI');
  assert.equal(rewriteQuery('  "lighthouse keeper"  '), 'lighthouse keeper');
});

test('rewrite_query: a query of stop words only is kept as written, never emptied', () => {
  assert.equal(rewriteQuery('What is it?'), 'What is it?');
  assert.equal(rewriteQuery('the'), 'the');
});
