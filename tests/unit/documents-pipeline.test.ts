import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { sniffDocument } from '../../api/documents/sniff.js';
import { displayName } from '../../api/documents/upload.js';
import { UseLiteTokenizer } from '../../workers/embeddings/use-lite/use-lite.tokenizer.js';
import { Chunker } from '../../workers/documents/chunker.js';
import { htmlToText, markdownToText } from '../../workers/documents/text-extract.js';
import { encryptedPdf, textPng, zipFile } from '../helpers/documents.js';
import { USE_LITE_DIR } from '../helpers/service.js';
import { loadSentences } from '../../bench/corpus.js';

test('chunks fit the 128-token window, overlap, never cross pages, and their offsets point at their text', async () => {
  const tokenizer = await UseLiteTokenizer.load(USE_LITE_DIR);
  const chunker = new Chunker(tokenizer, { overlap: 24 });
  const pages = [
    { page: 1, text: loadSentences(60).join(' ') },
    { page: 2, text: 'A short page.' },
    { page: 3, text: `${'x'.repeat(3000)} then words ${'https://example.com/'.repeat(40)}` },
  ];
  const chunks = chunker.chunk(pages);
  assert.ok(chunks.length > 5);
  chunks.forEach((c, i) => {
    assert.equal(c.index, i);
    const page = pages.find((p) => p.page === c.page)!;
    assert.equal(page.text.slice(c.start, c.end), c.text);
    const real = tokenizer.encode(c.text).length;
    assert.ok(real <= 127, `chunk ${i} has ${real} tokens`);
    assert.equal(c.tokens, real);
  });
  const p1 = chunks.filter((c) => c.page === 1);
  for (let i = 1; i < p1.length; i++) {
    assert.ok(p1[i]!.start < p1[i - 1]!.end, 'consecutive chunks overlap');
    assert.ok(p1[i]!.start > p1[i - 1]!.start, 'and always move forward');
  }
  // Every character of a page is in some chunk (apart from whitespace between them).
  const covered = new Array(pages[0]!.text.length).fill(false);
  for (const c of p1) for (let k = c.start; k < c.end; k++) covered[k] = true;
  assert.ok(covered.every((v, k) => v || /\s/.test(pages[0]!.text[k]!)));
  assert.deepEqual(chunks.filter((c) => c.page === 2).map((c) => c.text), ['A short page.']);
  assert.ok(chunks.filter((c) => c.page === 3).length >= 3, 'a 3000-character word is cut into pieces that fit');
});

test('HTML loses scripts, styles and tags but keeps text, entities and alt text; Markdown loses its markup', () => {
  const html = '<html><head><title>T</title><script>evil()</script></head><body><h1>Title</h1><p>Fish &amp; chips &#8364;5</p><script>x</script><img alt="a cat"><p>Unclosed <script>hidden';
  const text = htmlToText(html);
  assert.equal(text, 'Title\n\nFish & chips €5\na cat\nUnclosed');
  assert.equal(markdownToText('# Head\n\nSome **bold** and [a link](http://x) and `code`.\n\n- item one\n'), 'Head\n\nSome bold and a link and code.\n\nitem one');
});

test('types come from the bytes, not the name', async () => {
  assert.equal((await sniffDocument(Buffer.from('%PDF-1.7\n...'), 12)).kind, 'pdf');
  assert.equal((await sniffDocument(encryptedPdf(), 100)).kind, 'pdf');
  assert.equal((await sniffDocument(textPng(['HI']), 100)).kind, 'png');
  assert.equal((await sniffDocument(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0]), 100)).kind, 'jpeg');
  assert.equal((await sniffDocument(Buffer.from('just some words'), 15)).kind, 'text');
  assert.equal((await sniffDocument(Buffer.from('<!DOCTYPE html><p>x</p>'), 23)).kind, 'html');
  assert.equal((await sniffDocument(Buffer.from('# Title\n\n- a\n- b\n'), 17)).kind, 'markdown');
  await assert.rejects(sniffDocument(zipFile(), 100), (e: any) => e.status === 415 && /zip/.test(e.message));
  await assert.rejects(sniffDocument(Buffer.alloc(0), 0), (e: any) => e.status === 400 && e.code === 'empty_file');
  await assert.rejects(sniffDocument(Buffer.from([0xc3, 0x28, 0x41]), 3), (e: any) => e.status === 415);
});

test('client file names are display names only', () => {
  assert.equal(displayName('../../etc/passwd'), 'passwd');
  assert.equal(displayName('..\\..\\windows\\system.ini'), 'system.ini');
  assert.equal(displayName('..'), '');
  assert.equal(displayName('a\u0000b\nc.txt'), 'abc.txt');
  assert.equal(path.basename(displayName('/abs/path/x.pdf')), 'x.pdf');
});
