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
 * mode on a fixed tuning half, the held-out half and all questions, then a sweep of fusion settings
 * on the tuning half only (what the defaults were chosen from), and writes
 * bench/results/retrieval-<time>.json.
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
  // Added for issue #14's "hybrid ahead" (written from the documents before any tuning), so that
  // the fusion can be tuned on one half and measured on the other.
  ['What namespace must the elements of a MIME package XML file be in?', 'mime-spec', 'namespace URI is http://www.freedesktop.org/standards/shared-mime-info'],
  ['Should generic types like gzip get a low or a high magic priority?', 'mime-spec', 'Low numbers should be used for more generic types'],
  ['When several glob patterns of the same weight match, which one wins?', 'mime-spec', 'then the longest pattern SHOULD be used'],
  ['Are glob patterns matched case-sensitively?', 'mime-spec', 'Applications MUST match globs case-insensitively'],
  ['What magic string does the treemagic file start with?', 'mime-spec', 'MIME-TreeMagic'],
  ['Which type do all text/* types inherit from?', 'mime-spec', 'All text/* types are subclasses of text/plain'],
  ['Why are glob patterns checked before magic sniffing?', 'mime-spec', 'doing magic sniffing is very expensive'],
  ['What does the fourth field of a globs2 line hold?', 'mime-spec', 'contains a list of comma-separated flags'],
  ['Should an application trust a file because of its MIME type?', 'mime-spec', 'an application MUST NOT trust a file based simply on its MIME type'],
  ['Which generic icon is used for a type that has no generic-icon element?', 'mime-spec', 'appending "-x-generic"'],
  ['Which media type classifies the content of mountable volumes such as a blank CD?', 'mime-spec', 'The x-content type has been introduced for this purpose'],
  ['What does an empty localName mean in a root-XML rule?', 'mime-spec', 'If localName is present but empty then the document element may have any name'],
  ['How often does a worker refresh the heartbeat of a streaming job?', 'reliability', 'every STREAM_HEARTBEAT_MS (1 s'],
  ['How long can an SSE stream stay silent before it gets a keep-alive comment?', 'reliability', 'comment after SSE_KEEPALIVE_MS (15 s)'],
  ['How long is the lock of a streaming queue?', 'reliability', 'lock 5 s (STREAM_LOCK_DURATION_MS)'],
  ['What is the largest image, in pixels, an upload may declare?', 'reliability', 'DOCUMENTS_MAX_IMAGE_PIXELS (50 M)'],
  ['Why does parsing run in child processes rather than worker threads?', 'reliability', 'V8 aborts the *whole process* on some allocation failures'],
  ['How long may one parse step run before its process is killed?', 'reliability', 'DOCUMENTS_PARSE_STEP_TIMEOUT_SECONDS (120)'],
  ['Is a Redis ReplyError treated as an outage?', 'reliability', 'or a bug is not an outage and stays a 500'],
  ['Why does Socket.IO not use the sharded Redis adapter?', 'reliability', "which only speaks the classic adapter's protocol"],
  ['How much memory growth does the soak test allow?', 'reliability', 'The bound asserted is 120 MB of growth per process'],
  ['How far from the server clock may a signed request timestamp be?', 'signed', 'SIGNATURE_WINDOW_SECONDS (default 300)'],
  ['What error does a replayed nonce get?', 'signed', '401 nonce_reused'],
  ['From what message is the signing key derived?', 'signed', 'qi-request-signing-v1'],
  ['How do I open a Socket.IO connection with a key that requires signatures?', 'signed', 'get a short-lived JWT with a signed'],
  ['How can I tell from a job id which queue the job is in?', 'architecture', 'The job id carries its queue'],
  ['Which folder must not import from api or workers?', 'architecture', 'shared/ is what both sides must agree on, and imports nothing else'],
  ['What happens to a job a worker takes after its start deadline?', 'architecture', 'fails a job taken past its start deadline as expired'],
  ['How is the type of an uploaded file decided?', 'readme', 'The type comes from the bytes'],
  ['What happens when the same content is uploaded twice into one collection?', 'readme', 'Idempotent-Replayed: true'],
  ['How long does a JWT from /v1/auth/token live by default?', 'readme', 'JWT_TTL_SECONDS (default 900)'],
  ['How many tokens does USE-Lite read before it truncates?', 'readme', '512 dimensions, 128 tokens'],
  ['Which scopes can an API key have?', 'readme', 'Keys have scopes'],
  ['How do I serve a bge-small model exported with Optimum?', 'readme', 'BAAI/bge-small-en-v1.5'],
  ['Under GPL version 2, may a copyright holder exclude countries where patents restrict distribution?', 'gpl-2', 'may add an explicit geographical distribution limitation'],
  ['Under GPL-2, who grants the license to someone I redistribute the program to?', 'gpl-2', 'Each time you redistribute the Program'],
  ['Under GPL-2, what if a court order imposes conditions that contradict the license?', 'gpl-2', 'conditions are imposed on you (whether by court order'],
  ['Under the LGPL 2.1, how long may inline functions from a header file be?', 'lgpl-2.1', 'small inline functions (ten lines or less in length)'],
  ['Can I switch a copy of an LGPL 2.1 library to the ordinary GPL?', 'lgpl-2.1', 'opt to apply the terms of the ordinary GNU General Public'],
  ['Why is the LGPL called the Lesser license?', 'lgpl-2.1', 'We call this license the "Lesser" General Public License because'],
  ['Under MPL 2.0, how are my rights restored after I fix a violation?', 'mpl-2.0', 'reinstated (a) provisionally'],
  ['May I distribute a combination of MPL code and my own code under terms of my choice?', 'mpl-2.0', 'You may create and distribute a Larger Work under terms of Your choice'],
  ['What is a Larger Work in the Mozilla Public License?', 'mpl-2.0', 'means a work that combines Covered Software with other material'],
  ['Are the contributions I submit to an Apache-licensed project under the same license?', 'apache-2.0', 'any Contribution intentionally submitted for inclusion in the Work'],
  ['Does the Apache License give me a patent license?', 'apache-2.0', 'irrevocable (except as stated in this section) patent license'],
  ['May I charge for warranty support when I redistribute Apache-licensed work?', 'apache-2.0', 'You may choose to offer, and charge a fee for, acceptance of support, warranty'],
  ['Can I convey GPL-3 object code over a peer-to-peer network?', 'gpl-3', 'Convey the object code using peer-to-peer transmission'],
  ['Does putting a GPL-3 program on the same disk as other programs put them under the GPL?', 'gpl-3', 'in an aggregate does not cause this License to apply to the other'],
  ['Can a GPL-3 work be combined with code under the Affero GPL?', 'gpl-3', 'Use with the GNU Affero General Public License'],
  ['Is a GPL-3 program an effective technological measure under anti-circumvention law?', 'gpl-3', 'No covered work shall be deemed part of an effective technological measure'],
];

/**
 * The fixed split: questions at even positions of QUESTIONS (0, 2, 4, ...) are the tuning half, the
 * others the held-out half. Alternating keeps both halves spread over every document. The fusion's
 * defaults (shared/documents/search-ranking.ts) are chosen from the sweep below, which is measured
 * on the tuning half only; the held-out half is reported for the three modes and never swept.
 */
const isTuning = (position: number) => position % 2 === 0;

/** The three modes as a caller gets them: hybrid with no options is the service's default fusion. */
const MODES = {
  vector: { ranker: 'vector' },
  lexical: { ranker: 'lexical' },
  hybrid: { ranker: 'hybrid' },
} as const;
type Mode = keyof typeof MODES;

/** Fusion settings swept on the tuning half (every one a request option, so the sweep runs through the real service). */
const SWEEP: [string, Record<string, unknown>][] = [
  ...([60, 20, 5] as const).flatMap((k) =>
    ([[1, 1], [1, 2], [1, 4]] as const).map(([e, t]): [string, Record<string, unknown>] => [`rrf k=${k}, ${e}:${t}`, { fusion: 'rrf', rrf_k: k, hybrid_search: { embedding_weight: e, text_weight: t } }]),
  ),
  ...(['min_max', 'z_score'] as const).flatMap((normalization) =>
    ([[1, 1], [2, 3], [1, 2], [1, 3], [1, 4], [1, 6], [1, 9], [1, 14], [1, 19]] as const).map(([e, t]): [string, Record<string, unknown>] => [
      `convex ${normalization}, ${e}:${t}`,
      { fusion: 'convex', normalization, hybrid_search: { embedding_weight: e, text_weight: t } },
    ]),
  ),
];
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
    const search = async (query: string, ranking: Record<string, unknown>, topK = TOP_K): Promise<Hit[]> => {
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

    type Scores = { hit1: number; hit5: number; mrr: number };
    const score = (ranks: (number | null)[]): Scores => ({
      hit1: ranks.filter((r) => r === 1).length / ranks.length,
      hit5: ranks.filter((r) => r !== null && r <= 5).length / ranks.length,
      mrr: ranks.reduce<number>((sum, r) => sum + (r ? 1 / r : 0), 0) / ranks.length,
    });
    const rankOf = async (ranking: Record<string, unknown>, [question, doc, phrase]: [string, string, string]) => {
      const hits = await search(question, ranking);
      const at = hits.findIndex((h) => answers(h, doc, phrase));
      return at >= 0 ? at + 1 : null;
    };
    const halves = {
      tuning: questions.flatMap((q, i) => (isTuning(QUESTIONS.indexOf(q)) ? [i] : [])),
      'held-out': questions.flatMap((q, i) => (isTuning(QUESTIONS.indexOf(q)) ? [] : [i])),
      all: questions.map((_, i) => i),
    };
    type Half = keyof typeof halves;

    const ranks: Record<Mode, (number | null)[]> = { vector: [], lexical: [], hybrid: [] };
    for (const mode of Object.keys(MODES) as Mode[]) for (const q of questions) ranks[mode].push(await rankOf(MODES[mode], q));
    const results = Object.fromEntries(
      (Object.keys(MODES) as Mode[]).map((mode) => [mode, Object.fromEntries((Object.keys(halves) as Half[]).map((half) => [half, score(halves[half].map((i) => ranks[mode][i]!))]))]),
    ) as Record<Mode, Record<Half, Scores>>;

    // The sweep: tuning half only.
    const tuningQuestions = halves.tuning.map((i) => questions[i]!);
    const sweep: { name: string; ranking: Record<string, unknown>; tuning: Scores }[] = [];
    for (const [name, options] of SWEEP) {
      const ranking = { ranker: 'hybrid', ...options };
      const r: (number | null)[] = [];
      for (const q of tuningQuestions) r.push(await rankOf(ranking, q));
      sweep.push({ name, ranking, tuning: score(r) });
    }

    console.log(`\n${questions.length} questions (tuning ${halves.tuning.length}, held-out ${halves['held-out'].length}) over ${nameOf.size} documents (${chunks} chunks), top_k ${TOP_K}\n`);
    console.log('| mode | tuning hit@1 | tuning MRR@10 | held-out hit@1 | held-out hit@5 | held-out MRR@10 | all hit@1 | all hit@5 | all MRR@10 |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const mode of Object.keys(MODES) as Mode[]) {
      const r = results[mode];
      const f = (x: number) => x.toFixed(3);
      console.log(`| ${mode} | ${f(r.tuning.hit1)} | ${f(r.tuning.mrr)} | ${f(r['held-out'].hit1)} | ${f(r['held-out'].hit5)} | ${f(r['held-out'].mrr)} | ${f(r.all.hit1)} | ${f(r.all.hit5)} | ${f(r.all.mrr)} |`);
    }
    const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
    for (const half of Object.keys(halves) as Half[]) {
      const h = results.hybrid[half].hit1;
      const overVector = h - results.vector[half].hit1;
      const overLexical = h - results.lexical[half].hit1;
      const met = overVector >= 0.2 - 1e-9 && overLexical > 0;
      console.log(`${half}: hybrid hit@1 − vector ${signed(overVector)}, − lexical ${signed(overLexical)} (target ≥ +0.2 over vector and ahead of both: ${met ? 'met' : 'missed'})`);
    }
    console.log('\nfusion sweep, tuning half only (hit@1 / hit@5 / MRR@10):');
    for (const s of [...sweep].sort((a, b) => b.tuning.hit1 - a.tuning.hit1 || b.tuning.mrr - a.tuning.mrr)) {
      console.log(`  ${s.tuning.hit1.toFixed(3)} / ${s.tuning.hit5.toFixed(3)} / ${s.tuning.mrr.toFixed(3)}  ${s.name}`);
    }
    console.log('\nper question (rank of the first answering chunk: vector / lexical / hybrid; - = not in the top 10; H = held-out):');
    questions.forEach((q, i) => {
      const cell = (m: Mode) => String(ranks[m][i] ?? '-');
      console.log(`  ${cell('vector').padStart(2)} / ${cell('lexical').padStart(2)} / ${cell('hybrid').padStart(2)} ${isTuning(QUESTIONS.indexOf(q)) ? ' ' : 'H'} ${q[0]}`);
    });

    const outDir = path.join(ROOT, 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, `retrieval-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify(
        {
          documents: [...nameOf.values()],
          chunks,
          top_k: TOP_K,
          questions: questions.map((q, i) => ({ q: q[0], doc: q[1], phrase: q[2], half: isTuning(QUESTIONS.indexOf(q)) ? 'tuning' : 'held-out', ranks: { vector: ranks.vector[i], lexical: ranks.lexical[i], hybrid: ranks.hybrid[i] } })),
          results,
          sweep,
          seconds: (Date.now() - started) / 1000,
        },
        null,
        2,
      ),
    );
    console.log(`\nwrote ${path.relative(ROOT, file)} (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
  } finally {
    await svc.stop();
    await redis.cleanup();
  }
}

await main();
