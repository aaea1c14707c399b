import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chatbotConfigSchema } from '../../shared/chatbot/chatbot-config.js';
import { parseModelRegistry } from '../../shared/models/model-registry.js';
import { answersExtractively } from '../../workers/chatbot/chatbot.handler.js';
import { extractiveAnswer, splitSentences } from '../../workers/chatbot/extractive-answer.js';

const MANUAL = [
  {
    text: 'Device manual.\n\nTo reset the device, hold the power button for ten seconds until the light blinks twice.\nA reset keeps your photos.\n\nThe battery lasts about two days.',
  },
  { text: 'Charging takes three hours with the supplied cable. The light turns green when the battery is full.' },
  { text: 'Error E4711 means the memory card is full: delete some photos and the camera resumes recording.' },
];

describe('extractive answers', () => {
  test('the sentences that answer the question, in document order, cited by source number', () => {
    const a = extractiveAnswer('How do I reset the device?', MANUAL);
    // "A reset keeps your photos." shares only "reset": too weak a match beside the answer to be kept.
    assert.equal(a.text, 'To reset the device, hold the power button for ten seconds until the light blinks twice. [1]');
    assert.deepEqual(a.cited, [0]);
    const photos = extractiveAnswer('Does a reset keep my photos?', MANUAL);
    assert.equal(photos.text, 'A reset keeps your photos. [1]');
  });

  test('an exact identifier picks its sentence even from a lower-ranked source; citations number the sources', () => {
    const a = extractiveAnswer('What does E4711 mean?', MANUAL);
    assert.equal(a.text, 'Error E4711 means the memory card is full: delete some photos and the camera resumes recording. [3]');
    assert.deepEqual(a.cited, [2]);
  });

  test('sentences from several sources each end their run with their own citation', () => {
    const a = extractiveAnswer('How long does the battery last and how long does charging take?', MANUAL, { maxSentences: 2 });
    assert.match(a.text, /^The battery lasts about two days\. \[1\] Charging takes three hours with the supplied cable\. \[2\]$/);
    assert.deepEqual(a.cited, [0, 1]);
  });

  test('limits: at most maxSentences, within maxChars; with no shared term, the best chunk’s first sentence stands in', () => {
    const many = [{ text: Array.from({ length: 10 }, (_, i) => `Reset step ${i} of the device reset procedure.`).join(' ') }];
    assert.equal(extractiveAnswer('device reset', many, { maxSentences: 2 }).cited.length, 2);
    const long = extractiveAnswer('device reset', many, { maxSentences: 10, maxChars: 100 });
    assert.ok(long.text.length <= 100 + 4, long.text);
    const none = extractiveAnswer('quantum chromodynamics', MANUAL);
    assert.equal(none.text, 'Device manual. [1]');
    assert.deepEqual(extractiveAnswer('anything', []), { text: '', cited: [] });
  });

  test('a sentence repeated by overlapping chunks is used once', () => {
    const a = extractiveAnswer('reset the device', [MANUAL[0]!, { text: 'To reset the device, hold the power button for ten seconds until the light blinks twice.' }]);
    assert.equal((a.text.match(/hold the power button/g) ?? []).length, 1);
  });

  test('sentence splitting: wrapped PDF lines join, paragraphs, short lines and CJK punctuation end sentences', () => {
    assert.deepEqual(splitSentences('The update-mime-database command is provided by the freedesktop.org shared\ndatabase. It scans all the XML files.\n\nHeading\nNext paragraph.'), [
      'The update-mime-database command is provided by the freedesktop.org shared database.',
      'It scans all the XML files.',
      'Heading',
      'Next paragraph.',
    ]);
    assert.deepEqual(splitSentences('按住电源键十秒。指示灯闪烁两次。'), ['按住电源键十秒。', '指示灯闪烁两次。']);
  });
});

describe('when answers are extractive', () => {
  const bot = (answer_mode?: string) =>
    chatbotConfigSchema.parse({ tenants: { t: { embedding_model: 'use-lite', chat_model: 'tiny-chat', intents: [{ name: 'x', examples: ['x'] }], ...(answer_mode ? { answer_mode } : {}) } } }).tenants.t!;

  test('auto follows the models config’s untrained flag; a bot may force either mode', () => {
    const registry = parseModelRegistry(
      { models: [{ id: 'tiny-chat', task: 'chat', format: 'hf-decoder', path: 'x', untrained: true }, { id: 'real-chat', task: 'chat', format: 'hf-decoder', path: 'y' }] },
      '/tmp',
    );
    const untrained = new Set(registry.models.filter((m) => 'untrained' in m && m.untrained).map((m) => m.id));
    assert.deepEqual([...untrained], ['tiny-chat']);
    assert.equal(answersExtractively(bot(), untrained), true);
    assert.equal(answersExtractively({ ...bot(), chat_model: 'real-chat' }, untrained), false);
    assert.equal(answersExtractively(bot('generative'), untrained), false);
    assert.equal(answersExtractively({ ...bot('extractive'), chat_model: 'real-chat' }, untrained), true);
    assert.equal(chatbotConfigSchema.safeParse({ tenants: { t: { ...bot(), answer_mode: 'poetic' } } }).success, false);
  });
});
