import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';
import { matchesAttributeFilter } from '../../shared/documents/search-ranking.js';
import type { IndexMessage, IndexReply, IndexRequest, IndexResponse } from './index-thread.protocol.js';
import { LexicalIndex } from './lexical-index.js';
import { fuseRankings, type RankedHit } from './rank-fusion.js';

/**
 * Holds every collection index this worker process has opened: per collection an HNSW index
 * (hnswlib-node, cosine) and a lexical BM25 index over the same chunks, under the same labels.
 * hnswlib's addPoint and searchKnn and MiniSearch's add and search are synchronous and take
 * milliseconds to seconds, so they run here and never on the worker's event loop (which must keep
 * renewing BullMQ locks). Both indexes change in the same request, so they always hold the same
 * chunks and share one log position and one snapshot. Requests are served
 * one at a time in arrival order; writers send points in small batches, so a search waits for at
 * most one batch, never for a whole document.
 */
interface Collection {
  index: hnswlib.HierarchicalNSW;
  lexical: LexicalIndex;
  dims: number;
  /** Id of the last log entry applied. */
  seq: string;
  labelDoc: Map<number, string>;
  docMeta: Map<string, Record<string, unknown>>;
  deleted: number;
}

interface SnapshotState {
  /**
   * 2 added the lexical index, 3 its title field (the file name); an older snapshot is ignored and
   * the replica rebuilt from the log.
   */
  version: 3;
  seq: string;
  dims: number;
  file: string;
  lexicalFile: string;
  docs: string[];
  /** Pairs of (label, index into docs) of live labels. */
  labels: number[];
  labelDocs: number[];
  metadata: Record<string, Record<string, unknown>>;
  deleted: number;
}

const port = parentPort;
if (!port) throw new Error('index-thread.ts must run inside a worker thread');
const collections = new Map<string, Collection>();
const INITIAL_CAPACITY = 1024;
/** Candidates each ranking contributes to a fusion: deep enough that a chunk ranked well by one list but low by the other still meets. */
const FUSION_DEPTH = 50;

port.on('message', (msg: IndexMessage) => {
  void handle(msg.req).then(
    (reply) => port.postMessage({ id: msg.id, ok: true, reply } satisfies IndexResponse),
    (err: Error) => port.postMessage({ id: msg.id, ok: false, message: err?.message ?? String(err) } satisfies IndexResponse),
  );
});

// Requests run strictly one after another, even those that await file I/O.
let chain: Promise<unknown> = Promise.resolve();
function handle(req: IndexRequest): Promise<IndexReply> {
  const next = chain.then(() => run(req));
  chain = next.catch(() => {});
  return next;
}

async function run(req: IndexRequest): Promise<IndexReply> {
  switch (req.op) {
    case 'open':
      return open(req);
    case 'apply': {
      const c = must(req.cid);
      const { labels, docs, texts, titles, vectors, deletes, metadata } = req;
      for (const [doc, meta] of metadata) c.docMeta.set(doc, meta);
      if (labels.length) {
        const needed = c.index.getCurrentCount() + labels.length;
        if (needed > c.index.getMaxElements()) c.index.resizeIndex(Math.max(needed, c.index.getMaxElements() * 2));
        for (let i = 0; i < labels.length; i++) {
          const label = labels[i]!;
          if (c.labelDoc.has(label)) continue; // replayed twice: already there
          c.index.addPoint(Array.from(vectors.subarray(i * c.dims, (i + 1) * c.dims)), label);
          c.lexical.add(label, texts[i]!, titles[i] ?? '');
          c.labelDoc.set(label, docs[i]!);
        }
      }
      for (const label of deletes) {
        if (!c.labelDoc.has(label)) continue;
        c.index.markDelete(label);
        c.lexical.remove(label);
        c.labelDoc.delete(label);
        c.deleted++;
      }
      c.seq = req.seq;
      return { op: 'apply', count: c.labelDoc.size };
    }
    case 'search':
      return { op: 'search', hits: search(req) };
    case 'snapshot':
      return snapshot(req.cid, req.dir);
    case 'drop': {
      collections.delete(req.cid);
      if (req.dir) await rm(req.dir, { recursive: true, force: true });
      return { op: 'drop' };
    }
    case 'stats': {
      const c = collections.get(req.cid);
      return { op: 'stats', seq: c?.seq ?? '0-0', count: c?.labelDoc.size ?? 0, lexicalCount: c?.lexical.size ?? 0, deleted: c?.deleted ?? 0, maxElements: c?.index.getMaxElements() ?? 0, open: !!c };
    }
  }
}

/** Vector and/or lexical candidates under the filters, fused as the ranking says (rank-fusion.ts). */
function search(req: Extract<IndexRequest, { op: 'search' }>): RankedHit[] {
  const c = collections.get(req.cid);
  if (!c || c.labelDoc.size === 0) return [];
  const { mode } = req.ranking;
  let allow: ((label: number) => boolean) | undefined;
  const equality = Object.entries(req.filter ?? {});
  if (equality.length || req.attributeFilter) {
    const allowed = new Set<string>();
    for (const [doc, meta] of c.docMeta) {
      if (!equality.every(([key, v]) => meta[key] === v)) continue;
      if (req.attributeFilter && !matchesAttributeFilter(meta, req.attributeFilter)) continue;
      allowed.add(doc);
    }
    if (allowed.size === 0) return [];
    allow = (label) => allowed.has(c.labelDoc.get(label) ?? '');
  }
  const depth = Math.min(mode === 'hybrid' ? Math.max(req.k, FUSION_DEPTH) : req.k, c.labelDoc.size);
  let vectorHits: { label: number; score: number }[] = [];
  const query = req.vector ? Array.from(req.vector) : undefined;
  if (mode !== 'lexical') {
    if (!query) throw new Error(`a ${mode} search needs the query's vector`);
    // A filter hides part of the graph: look wider so k allowed neighbours are still found.
    c.index.setEf(Math.max(req.ef, depth, allow ? depth * 4 : 0));
    const res = c.index.searchKnn(query, depth, allow);
    vectorHits = res.neighbors.map((label, i) => ({ label, score: 1 - res.distances[i]! }));
  }
  const lexicalHits = mode === 'vector' ? [] : c.lexical.search(req.text, depth, allow);
  const vectorScores = new Map(vectorHits.map((h) => [h.label, h.score]));
  const similarity = query ? (label: number) => cosine(query, c.index.getPoint(label)) : undefined;
  return fuseRankings(vectorHits, lexicalHits, req.ranking, req.k, similarity).map((h) => ({
    ...h,
    // Chunks only the lexical list found still get their similarity, so callers can judge relevance the same way for every hit.
    vectorScore: vectorScores.get(h.label) ?? similarity?.(h.label) ?? null,
  }));
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

function must(cid: string): Collection {
  const c = collections.get(cid);
  if (!c) throw new Error(`index ${cid} is not open`);
  return c;
}

async function open(req: Extract<IndexRequest, { op: 'open' }>): Promise<IndexReply> {
  const existing = collections.get(req.cid);
  if (existing) return { op: 'open', seq: existing.seq, count: existing.labelDoc.size, fromSnapshot: false };
  const fresh = (): Collection => {
    const index = new hnswlib.HierarchicalNSW('cosine', req.dims);
    index.initIndex({ maxElements: INITIAL_CAPACITY, m: req.params.m, efConstruction: req.params.efConstruction, randomSeed: 100 });
    return { index, lexical: LexicalIndex.empty(), dims: req.dims, seq: '0-0', labelDoc: new Map(), docMeta: new Map(), deleted: 0 };
  };
  let c: Collection | undefined;
  try {
    const state = JSON.parse(await readFile(path.join(req.dir, 'state.json'), 'utf8')) as SnapshotState;
    if (state.version === 3 && state.dims === req.dims) {
      const index = new hnswlib.HierarchicalNSW('cosine', req.dims);
      await index.readIndex(path.join(req.dir, state.file));
      const lexical = LexicalIndex.fromJSON(await readFile(path.join(req.dir, state.lexicalFile), 'utf8'));
      const labelDoc = new Map<number, string>();
      state.labels.forEach((label, i) => labelDoc.set(label, state.docs[state.labelDocs[i]!]!));
      c = { index, lexical, dims: req.dims, seq: state.seq, labelDoc, docMeta: new Map(Object.entries(state.metadata)), deleted: state.deleted };
    }
  } catch {
    // No snapshot (or an unreadable one): the replica is rebuilt from the whole log instead.
  }
  const fromSnapshot = !!c;
  c ??= fresh();
  collections.set(req.cid, c);
  return { op: 'open', seq: c.seq, count: c.labelDoc.size, fromSnapshot };
}

/**
 * Writes the indexes and their state next to each other: the HNSW and lexical files under new names
 * first, then state.json (naming those files and the log id they include) by an atomic rename. A
 * crash at any point leaves the previous snapshot readable; older index files are removed afterwards.
 */
async function snapshot(cid: string, dir: string): Promise<IndexReply> {
  const c = must(cid);
  const started = performance.now();
  await mkdir(dir, { recursive: true });
  const stamp = `${Date.now()}-${c.seq.replace(/[^0-9-]/g, '')}`;
  const file = `index-${stamp}.hnsw`;
  const lexicalFile = `lexical-${stamp}.json`;
  await c.index.writeIndex(path.join(dir, file));
  await writeFile(path.join(dir, lexicalFile), c.lexical.toJSON());
  const docs: string[] = [];
  const docIndex = new Map<string, number>();
  const labels: number[] = [];
  const labelDocs: number[] = [];
  for (const [label, doc] of c.labelDoc) {
    let i = docIndex.get(doc);
    if (i === undefined) {
      i = docs.length;
      docs.push(doc);
      docIndex.set(doc, i);
    }
    labels.push(label);
    labelDocs.push(i);
  }
  const metadata: Record<string, Record<string, unknown>> = {};
  for (const d of docs) metadata[d] = c.docMeta.get(d) ?? {};
  const state: SnapshotState = { version: 3, seq: c.seq, dims: c.dims, file, lexicalFile, docs, labels, labelDocs, metadata, deleted: c.deleted };
  const tmp = path.join(dir, `state.json.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, path.join(dir, 'state.json'));
  // The previous file stays one round, for a reader that read the old state.json a moment ago.
  const names = await readdir(dir);
  for (const [prefix, current] of [['index-', file], ['lexical-', lexicalFile]] as const) {
    const older = names.filter((n) => n.startsWith(prefix) && n !== current).sort((a, b) => fileTime(b) - fileTime(a));
    for (const name of older.slice(1)) await rm(path.join(dir, name), { force: true });
  }
  return { op: 'snapshot', seq: c.seq, count: c.labelDoc.size, ms: performance.now() - started, file };
}

function fileTime(name: string): number {
  return Number(name.split('-')[1] ?? 0);
}
