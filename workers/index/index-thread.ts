import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';
import type { IndexMessage, IndexReply, IndexRequest, IndexResponse } from './index-thread.protocol.js';

/**
 * Holds every HNSW index (hnswlib-node, cosine) this worker process has opened, one per collection.
 * hnswlib's addPoint and searchKnn are synchronous and take milliseconds to seconds, so they run here
 * and never on the worker's event loop (which must keep renewing BullMQ locks). Requests are served
 * one at a time in arrival order; writers send points in small batches, so a search waits for at
 * most one batch, never for a whole document.
 */
interface Collection {
  index: hnswlib.HierarchicalNSW;
  dims: number;
  /** Id of the last log entry applied. */
  seq: string;
  labelDoc: Map<number, string>;
  docMeta: Map<string, Record<string, unknown>>;
  deleted: number;
}

interface SnapshotState {
  version: 1;
  seq: string;
  dims: number;
  file: string;
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
      const { labels, docs, vectors, deletes, metadata } = req;
      for (const [doc, meta] of metadata) c.docMeta.set(doc, meta);
      if (labels.length) {
        const needed = c.index.getCurrentCount() + labels.length;
        if (needed > c.index.getMaxElements()) c.index.resizeIndex(Math.max(needed, c.index.getMaxElements() * 2));
        for (let i = 0; i < labels.length; i++) {
          const label = labels[i]!;
          if (c.labelDoc.has(label)) continue; // replayed twice: already there
          c.index.addPoint(Array.from(vectors.subarray(i * c.dims, (i + 1) * c.dims)), label);
          c.labelDoc.set(label, docs[i]!);
        }
      }
      for (const label of deletes) {
        if (!c.labelDoc.has(label)) continue;
        c.index.markDelete(label);
        c.labelDoc.delete(label);
        c.deleted++;
      }
      c.seq = req.seq;
      return { op: 'apply', count: c.labelDoc.size };
    }
    case 'search': {
      const c = collections.get(req.cid);
      if (!c || c.labelDoc.size === 0) return { op: 'search', labels: [], distances: [] };
      const k = Math.min(req.k, c.labelDoc.size);
      let filterFn: ((label: number) => boolean) | undefined;
      let ef = req.ef;
      if (req.filter && Object.keys(req.filter).length) {
        const entries = Object.entries(req.filter);
        const allowed = new Set<string>();
        for (const [doc, meta] of c.docMeta) if (entries.every(([key, v]) => meta[key] === v)) allowed.add(doc);
        if (allowed.size === 0) return { op: 'search', labels: [], distances: [] };
        filterFn = (label) => allowed.has(c.labelDoc.get(label) ?? '');
        // A filter hides part of the graph: look wider so k allowed neighbours are still found.
        ef = Math.max(ef, k * 4);
      }
      c.index.setEf(Math.max(ef, k));
      const res = c.index.searchKnn(Array.from(req.vector), k, filterFn);
      return { op: 'search', labels: res.neighbors, distances: res.distances };
    }
    case 'snapshot':
      return snapshot(req.cid, req.dir);
    case 'drop': {
      collections.delete(req.cid);
      if (req.dir) await rm(req.dir, { recursive: true, force: true });
      return { op: 'drop' };
    }
    case 'stats': {
      const c = collections.get(req.cid);
      return { op: 'stats', seq: c?.seq ?? '0-0', count: c?.labelDoc.size ?? 0, deleted: c?.deleted ?? 0, maxElements: c?.index.getMaxElements() ?? 0, open: !!c };
    }
  }
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
    return { index, dims: req.dims, seq: '0-0', labelDoc: new Map(), docMeta: new Map(), deleted: 0 };
  };
  let c: Collection | undefined;
  try {
    const state = JSON.parse(await readFile(path.join(req.dir, 'state.json'), 'utf8')) as SnapshotState;
    if (state.version === 1 && state.dims === req.dims) {
      const index = new hnswlib.HierarchicalNSW('cosine', req.dims);
      await index.readIndex(path.join(req.dir, state.file));
      const labelDoc = new Map<number, string>();
      state.labels.forEach((label, i) => labelDoc.set(label, state.docs[state.labelDocs[i]!]!));
      c = { index, dims: req.dims, seq: state.seq, labelDoc, docMeta: new Map(Object.entries(state.metadata)), deleted: state.deleted };
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
 * Writes the index and its state next to each other: the index file under a new name first, then
 * state.json (naming that file and the log id it includes) by an atomic rename. A crash at any point
 * leaves the previous snapshot readable; older index files are removed afterwards.
 */
async function snapshot(cid: string, dir: string): Promise<IndexReply> {
  const c = must(cid);
  const started = performance.now();
  await mkdir(dir, { recursive: true });
  const file = `index-${Date.now()}-${c.seq.replace(/[^0-9-]/g, '')}.hnsw`;
  await c.index.writeIndex(path.join(dir, file));
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
  const state: SnapshotState = { version: 1, seq: c.seq, dims: c.dims, file, docs, labels, labelDocs, metadata, deleted: c.deleted };
  const tmp = path.join(dir, `state.json.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, path.join(dir, 'state.json'));
  // The previous file stays one round, for a reader that read the old state.json a moment ago.
  const older = (await readdir(dir)).filter((n) => n.startsWith('index-') && n !== file).sort((a, b) => fileTime(b) - fileTime(a));
  for (const name of older.slice(1)) await rm(path.join(dir, name), { force: true });
  return { op: 'snapshot', seq: c.seq, count: c.labelDoc.size, ms: performance.now() - started, file };
}

function fileTime(name: string): number {
  return Number(name.split('-')[1] ?? 0);
}
