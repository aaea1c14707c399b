/**
 * Throughput of the USE-Lite ONNX session by batch size and intra-op thread count.
 *
 *   tsx bench/use-lite-batch-sizes.ts [modelDir]     (default: models/use-lite, built if missing)
 *
 * Reports session load time, latency of one sentence and of 32 mixed-length sentences (both
 * including tokenization), and texts/s at batch sizes 1..64 with 1 and 2 intra-op threads.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildUseLite } from '../scripts/models/build-use-lite.js';
import { createUseLiteSession } from '../workers/embeddings/use-lite/use-lite.session.js';
import { UseLiteTokenizer } from '../workers/embeddings/use-lite/use-lite.tokenizer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Ordinary English sentences of mixed length (3 to ~60 words). */
const SENTENCES = [
  'The cat sat on the mat.',
  'It is raining again.',
  'Please close the door when you leave.',
  'A man is playing a guitar on the street corner while people walk past.',
  'The quarterly report shows revenue growth of twelve percent compared with the same period last year.',
  'Where did you put my keys?',
  'She has been learning to play the piano since she was six years old, and now she performs in concerts.',
  'The train to Edinburgh was delayed by forty minutes because of a signal failure near York.',
  'I love this song.',
  'Scientists have discovered a new species of frog in the rainforests of Ecuador, which they believe is closely related to a group thought to be extinct.',
  'Can you recommend a good Italian restaurant nearby?',
  'The committee will meet on Thursday to discuss the budget for next year.',
  'He forgot his umbrella at the office.',
  'After the storm passed, the children ran outside to splash in the puddles and look for rainbows.',
  'The new smartphone has a larger screen, a faster processor and a camera that works well in low light.',
  'Water boils at one hundred degrees Celsius at sea level.',
  'Our flight leaves at seven in the morning, so we should get to the airport by five.',
  'The museum is closed on Mondays.',
  'Despite the heavy traffic, the ambulance reached the hospital in under ten minutes, and the patient was treated immediately.',
  'My grandmother grows tomatoes, beans and courgettes in her small garden behind the house.',
  'The stock market fell sharply today.',
  'Reading before bed helps me relax.',
  'The software update fixed several security vulnerabilities and improved battery life on older devices.',
  'They walked along the beach at sunset.',
  'To apply for the position, send your CV and a short cover letter to the address below before the end of the month.',
  'The library has thousands of books on history, science and art.',
  'Someone is strumming a guitar.',
  'The chef prepared a delicious meal using only local ingredients from the market.',
  'I think we should take the bus instead of driving, because parking in the city centre is expensive and hard to find.',
  'Turn left at the next junction.',
  'The football match ended in a draw after extra time, and the home team won on penalties.',
  'Climate change is expected to increase the frequency of extreme weather events such as floods, droughts and heatwaves across many regions of the world.',
  'Do you want tea or coffee?',
  'The teacher asked the students to write an essay about their favourite book.',
  'Our neighbours are building an extension to their kitchen, so there has been a lot of noise in the mornings.',
  'The price of petrol has risen again this week.',
  'He apologised for being late and explained that his car had broken down on the motorway.',
  'Bees play an important role in pollinating many of the crops we eat.',
  'The hotel room was clean and comfortable, but the walls were thin and we could hear the people next door talking late into the night.',
  'Let me know if you need any help.',
  'The city council approved plans for a new cycle lane along the river.',
  'She opened the letter with trembling hands.',
  'A good night of sleep improves memory, mood and concentration, according to several recent studies.',
  'The company announced that it would hire two hundred new engineers over the next year to expand its research division.',
  'Birds were singing in the trees.',
  'Please remember to back up your files before installing the update.',
  'The old bridge was replaced because engineers found cracks in its supporting pillars during a routine inspection last spring.',
  'We are going camping in the mountains this weekend.',
  'The film received excellent reviews from critics, although audiences were divided about its ambiguous ending.',
  'How much does a return ticket cost?',
  'Vaccines have prevented millions of deaths from infectious diseases over the past century.',
  'He spent the afternoon fixing his bicycle in the garage.',
  'When the power went out, we lit candles and played board games until it came back on around midnight.',
  'The restaurant only accepts card payments.',
  'Learning a second language can be difficult at first, but regular practice and conversation with native speakers make a big difference.',
  'The dog barked at the postman.',
  'Tickets for the concert sold out within minutes of going on sale.',
  'The report recommends that the government invest more in public transport, renewable energy and affordable housing over the next decade.',
  'I will call you back in five minutes.',
  'The volcano erupted for the first time in three hundred years, forcing thousands of residents to leave their homes.',
  'The children built a sandcastle with towers and a moat.',
  'The meeting has been moved to the larger conference room on the second floor.',
  'Running every morning has helped him lose weight and sleep better.',
  'Astronomers observed a distant galaxy whose light took more than ten billion years to reach the Earth.',
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const modelDir = path.resolve(process.argv[2] ?? path.join(ROOT, 'models', 'use-lite'));
  if (!existsSync(path.join(modelDir, 'model.onnx'))) await buildUseLite(modelDir);
  const tokenizerStart = performance.now();
  const tokenizer = await UseLiteTokenizer.load(modelDir);
  console.log(`tokenizer load ${(performance.now() - tokenizerStart).toFixed(0)} ms`);
  const tokenCounts = tokenizer.tokenize(SENTENCES).map((ids) => ids.length);
  console.log(
    `${SENTENCES.length} sentences, tokens min ${Math.min(...tokenCounts)} / median ${median(tokenCounts)} / max ${Math.max(...tokenCounts)}`,
  );

  for (const threads of [1, 2]) {
    const loadStart = performance.now();
    const session = await createUseLiteSession(modelDir, { intraOpThreads: threads, executionProviders: ['cpu'] });
    const loadMs = performance.now() - loadStart;

    const embedTexts = async (texts: string[]): Promise<void> => {
      await session.embed(tokenizer.tokenize(texts));
    };
    // Warm up every shape class once.
    for (let i = 0; i < 3; i++) await embedTexts(SENTENCES);

    const timeIt = async (texts: string[], runs: number): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await embedTexts(texts);
        times.push(performance.now() - t0);
      }
      return median(times);
    };
    const one = await timeIt([SENTENCES[3]!], 50);
    const thirtyTwo = await timeIt(SENTENCES.slice(0, 32), 20);
    console.log(
      `\nintraOpThreads=${threads}: session load ${loadMs.toFixed(0)} ms, 1 sentence ${one.toFixed(2)} ms, 32 mixed sentences ${thirtyTwo.toFixed(1)} ms`,
    );

    for (const batchSize of [1, 4, 8, 16, 32, 64]) {
      // Consecutive windows over the corpus, so every batch has a realistic mix of lengths.
      const total = Math.max(256, batchSize * 8);
      const t0 = performance.now();
      for (let done = 0; done < total; done += batchSize) {
        const batch: string[] = [];
        for (let i = 0; i < batchSize; i++) batch.push(SENTENCES[(done + i) % SENTENCES.length]!);
        await embedTexts(batch);
      }
      const seconds = (performance.now() - t0) / 1000;
      console.log(`  batch ${String(batchSize).padStart(2)}: ${(total / seconds).toFixed(0).padStart(5)} texts/s`);
    }
    await session.release();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
