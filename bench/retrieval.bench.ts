/**
 * npm run bench:retrieval: retrieval quality of vector-only, lexical-only and hybrid search through
 * the real service (upload → parse → chunk → embed → index; search over HTTP), on real documents
 * available offline: this repository's README and docs, licence texts from /usr/share/common-licenses
 * (with near-duplicates such as GPL-2 beside GPL-3 as distractors), and the Shared MIME-info
 * specification PDF that Debian ships (17 pages, the kind of document issue #14 was tried on).
 *
 * Each question names the document that answers it and a phrase the answering chunk must contain.
 * A hit is a returned chunk of that document containing the phrase (case, quotes, backticks and
 * whitespace ignored). Before measuring, every phrase is checked to be in some chunk of its
 * document, so no question is unanswerable by construction. Reports hit@1, hit@5 and MRR@10 per
 * mode, and writes bench/results/retrieval-<time>.json.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { uploadDocument, waitDocumentReady } from '../tests/helpers/documents.js';
import { startPrivateRedis } from '../tests/helpers/redis.js';
import { postJson, ROOT, startService, useLiteModel, writeModelsConfig } from '../tests/helpers/service.js';

const LICENSES = '/usr/share/common-licenses';
const MIME_SPEC = '/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf';

const SOURCES: Record<string, string> = {
  readme: path.join(ROOT, 'README.md'),
  architecture: path.join(ROOT, 'docs/ARCHITECTURE.md'),
  reliability: path.join(ROOT, 'docs/RELIABILITY.md'),
  signed: path.join(ROOT, 'docs/SIGNED_REQUESTS.md'),
  'gpl-3': path.join(LICENSES, 'GPL-3'),
  'gpl-2': path.join(LICENSES, 'GPL-2'),
  'lgpl-2.1': path.join(LICENSES, 'LGPL-2.1'),
  'apache-2.0': path.join(LICENSES, 'Apache-2.0'),
  'mpl-2.0': path.join(LICENSES, 'MPL-2.0'),
  'mime-spec': MIME_SPEC,
};

/** [question, document, phrase the answering chunk contains]. Written from the documents, before any measurement. */
const QUESTIONS: [string, string, string][] = [
  // The Shared MIME-info specification (PDF).
  ['Which command must an application run after installing its MIME package XML file?', 'mime-spec', 'MUST run the update-mime-database command'],
  ['What is the default glob weight, and the maximum?', 'mime-spec', 'The default weight value is 50, and the maximum is 100'],
  ['What magic string does the binary magic file start with?', 'mime-spec', 'The file starts with the magic string "MIME-Magic'],
  ['What does __NOGLOBS__ mean in the globs2 file?', 'mime-spec', 'using __NOGLOBS__ as the pattern'],
  ['How is magic-deleteall written out in the magic file?', 'mime-spec', 'using __NOMAGIC__ as the value'],
  ['Which extended attribute can store a file’s MIME type?', 'mime-spec', 'from the user.mime_type extended attribute'],
  ['How must mime.cache files be written so that readers never see a corrupt cache?', 'mime-spec', 'Cache files have to be written atomically'],
  ['How many bytes of a file should be checked to guess whether it is text or binary?', 'mime-spec', 'Checking the first 128 bytes of the file for ASCII control characters'],
  ['Which file in a packages directory overrides all the others?', 'mime-spec', 'Override.xml takes precedence over all other files'],
  ['Which media type describes directories, sockets and device files?', 'mime-spec', 'such as directories, sockets and device files'],
  ['How does an application declare that it handles mms:// URIs?', 'mime-spec', 'x-scheme-handler/foo'],
  ['How can a program tell that a directory is a mount point?', 'mime-spec', 'Mounted directories can be detected'],
  ['In which byte order are the numbers in mime.cache stored?', 'mime-spec', 'All numbers are in network (big-endian) order'],
  ['What is on each line of the globs2 file?', 'mime-spec', 'weight, MIME type and pattern, separated by a colon'],
  // This repository's README and docs.
  ['What exit code does a process end with after SIGTERM?', 'reliability', 'SIGTERM → 143'],
  ['How long is the default shutdown grace period?', 'reliability', 'SHUTDOWN_GRACE_MS (10 s by default)'],
  ['How many lines make up the string to sign of a signed request?', 'signed', 'six lines joined with'],
  ['What body hash does a signed GET request use?', 'signed', 'An empty body (GET, DELETE) hashes the empty string'],
  ['What do managed API keys look like?', 'signed', 'Managed keys look like qik_'],
  ['How do I add a new job type?', 'architecture', 'which reverses a string on a queue of its own'],
  ['Which setting connects the service to a Redis Cluster?', 'reliability', 'REDIS_CLUSTER_NODES=host:port'],
  ['Why must QUEUE_PREFIX contain a hash tag on a Redis Cluster?', 'reliability', 'hence the hash tag'],
  ['After how many parse crashes is a document failed as poison_input?', 'readme', 'DOCUMENTS_POISON_CRASHES times (2, counted in Redis across workers)'],
  ['How does the chatbot classify Chinese and Japanese messages?', 'readme', 'nearest-example rule over character n-grams'],
  ['Which library streams multipart uploads to disk?', 'readme', 'by busboy (never held in memory)'],
  ['What does GET /readyz check?', 'readme', 'Redis answers and every model has a live worker'],
  ['How do I download a model from the Hugging Face hub?', 'readme', 'npm run models:pull -- onnx-community/Qwen2.5-0.5B-Instruct'],
  ['What happens to a chat job whose worker is killed mid-generation?', 'readme', 'the job as worker_lost within seconds'],
  // Licence texts.
  ['Who is "you" in the GPL version 3?', 'gpl-3', 'Each licensee is addressed as "you"'],
  ['Under GPL-3, how long must a written offer for the Corresponding Source stay valid?', 'gpl-3', 'written offer, valid for at least three years and valid for as long as you offer spare parts'],
  ['Under GPL-3, how long do I have to cure a violation after the copyright holder notifies me?', 'gpl-3', 'prior to 30 days after your receipt of the notice'],
  ['What is "Installation Information" for a User Product?', 'gpl-3', '"Installation Information" for a User Product means'],
  ['Under the Apache License, what happens to my patent license if I sue someone over the Work?', 'apache-2.0', 'shall terminate as of the date such litigation is filed'],
  ['What must I do with a NOTICE file when I redistribute Apache-licensed work?', 'apache-2.0', 'If the Work includes a "NOTICE" text file as part of its distribution'],
  ['Does the Apache License let me use the licensor’s trademarks?', 'apache-2.0', 'This License does not grant permission to use the trade names'],
  ['Where can litigation about the Mozilla Public License be brought?', 'mpl-2.0', 'courts of a jurisdiction where the defendant maintains its principal place of business'],
  ['What notice must source that is Incompatible With Secondary Licenses carry under MPL 2.0?', 'mpl-2.0', 'notice described in Exhibit B of this License must be attached'],
];

/** The three modes, plus hybrid with the lexical ranking weighted double: the fusion's one knob, shown for comparison (not the default). */
const MODES = {
  vector: { ranker: 'vector' },
  lexical: { ranker: 'lexical' },
  hybrid: { ranker: 'hybrid' },
  'hybrid, text ×2': { ranker: 'hybrid', hybrid_search: { embedding_weight: 1, text_weight: 2 } },
} as const;
type Mode = keyof typeof MODES;
const TOP_K = 10;

/** Case, quote marks, backticks and whitespace do not decide a match (PDF text has curly quotes and line breaks). */
const normalise = (s: string) =>
  s
    .toLowerCase()
    .replace(/[`*"'“”‘’]/g, '')
    .replace(/\s+/g, ' ')
    .trim();

async function main() {
  const started = Date.now();
  const docs = Object.entries(SOURCES).filter(([name, file]) => {
    if (existsSync(file)) return true;
    console.log(`(skipping ${name}: ${file} is not on this machine)`);
    return false;
  });
  const available = new Set(docs.map(([name]) => name));
  const questions = QUESTIONS.filter(([, doc]) => available.has(doc));

  const redis = await startPrivateRedis();
  const svc = await startService({
    redisUrl: redis.url,
    modelsConfig: writeModelsConfig([useLiteModel()]),
    env: { DOCUMENTS_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-docs-')), INDEX_DIR: mkdtempSync(path.join(os.tmpdir(), 'qi-bench-index-')), LOG_LEVEL: 'warn' },
  });
  try {
    const nameOf = new Map<string, string>();
    for (const [name, file] of docs) {
      const up = await uploadDocument(svc.baseUrl, readFileSync(file), { collection: 'bench', filename: path.basename(file) });
      if (up.status !== 202) throw new Error(`upload of ${name}: ${up.status} ${JSON.stringify(up.json)}`);
      nameOf.set(up.json.id, name);
    }
    let chunks = 0;
    for (const id of nameOf.keys()) chunks += (await waitDocumentReady(svc.baseUrl, id, undefined, 300_000)).chunks as number;
    const ingestSeconds = (Date.now() - started) / 1000;
    console.log(`ingested ${nameOf.size} documents, ${chunks} chunks, in ${ingestSeconds.toFixed(1)} s (service start included)`);

    type Hit = { document_id: string; text: string };
    const search = async (query: string, ranking: (typeof MODES)[Mode], topK = TOP_K): Promise<Hit[]> => {
      const r = await postJson(svc.baseUrl, '/v1/collections/bench/search', { query, top_k: topK, ranking_options: ranking });
      if (r.status !== 200) throw new Error(`search: ${r.status} ${r.text}`);
      return r.json.data as Hit[];
    };
    const answers = (hit: Hit, doc: string, phrase: string) => nameOf.get(hit.document_id) === doc && normalise(hit.text).includes(normalise(phrase));

    // Every phrase must be in some chunk of its document (a search for the phrase itself finds it).
    for (const [question, doc, phrase] of questions) {
      const found = await search(phrase, MODES.lexical, 100);
      if (!found.some((h) => answers(h, doc, phrase))) throw new Error(`no chunk of ${doc} contains "${phrase}" (question: ${question})`);
    }

    const results: Record<string, { hit1: number; hit5: number; mrr: number; ranks: (number | null)[] }> = {};
    for (const mode of Object.keys(MODES) as Mode[]) {
      const ranks: (number | null)[] = [];
      for (const [question, doc, phrase] of questions) {
        const hits = await search(question, MODES[mode]);
        const at = hits.findIndex((h) => answers(h, doc, phrase));
        ranks.push(at >= 0 ? at + 1 : null);
      }
      const n = ranks.length;
      results[mode] = {
        hit1: ranks.filter((r) => r === 1).length / n,
        hit5: ranks.filter((r) => r !== null && r <= 5).length / n,
        mrr: ranks.reduce<number>((s, r) => s + (r ? 1 / r : 0), 0) / n,
        ranks,
      };
    }

    console.log(`\n${questions.length} questions over ${nameOf.size} documents (${chunks} chunks), top_k ${TOP_K}\n`);
    console.log('| mode | hit@1 | hit@5 | MRR@10 |');
    console.log('|---|---|---|---|');
    for (const mode of Object.keys(MODES) as Mode[]) {
      const r = results[mode]!;
      console.log(`| ${mode} | ${r.hit1.toFixed(3)} | ${r.hit5.toFixed(3)} | ${r.mrr.toFixed(3)} |`);
    }
    const gain = results.hybrid!.hit1 - results.vector!.hit1;
    console.log(`\nhybrid hit@1 − vector hit@1 = ${gain >= 0 ? '+' : ''}${gain.toFixed(3)} (target ≥ +0.2: ${gain >= 0.2 - 1e-9 ? 'met' : 'missed'})`);
    console.log('\nper question (rank of the first answering chunk: vector / lexical / hybrid; - = not in the top 10):');
    questions.forEach(([question], i) => {
      const cell = (m: Mode) => String(results[m]!.ranks[i] ?? '-');
      console.log(`  ${cell('vector').padStart(2)} / ${cell('lexical').padStart(2)} / ${cell('hybrid').padStart(2)}  ${question}`);
    });

    const outDir = path.join(ROOT, 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, `retrieval-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify({ documents: [...nameOf.values()], chunks, top_k: TOP_K, questions: questions.map(([q, doc, phrase]) => ({ q, doc, phrase })), results, seconds: (Date.now() - started) / 1000 }, null, 2),
    );
    console.log(`\nwrote ${path.relative(ROOT, file)} (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
  } finally {
    await svc.stop();
    await redis.cleanup();
  }
}

await main();
