import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { CollectionInfo, DocumentStore, LogEntry } from '../../shared/documents/document-store.js';
import type { AttributeFilter, ResolvedRanking } from '../../shared/documents/search-ranking.js';
import type { Logger } from '../../shared/logger.js';
import { JobError } from '../jobs/job.error.js';
import { IndexThreadClient } from './index-client.js';
import type { HnswParams, RankedHit } from './index-thread.protocol.js';

/** The collection was deleted: nothing a retry could index into or search. */
export class CollectionGoneError extends JobError {
  readonly code = 'collection_deleted';
}

export interface ReplicaOptions {
  store: DocumentStore;
  indexDir: string;
  dims: number;
  params: HnswParams;
  efSearch: number;
  snapshotEvery: number;
  snapshotSeconds: number;
  workerId: string;
  log: Logger;
}

interface ReplicaState {
  seq: string;
  /** Labels applied since the last snapshot this process wrote or loaded. */
  sinceSnapshot: number;
  lastSnapshotAt: number;
  knownDocs: Set<string>;
  /** Each document's file name, the lexical index's title field (read once per document). */
  titles: Map<string, string>;
}

export interface IndexQuery {
  text: string;
  vector?: Float32Array;
  k: number;
  ef?: number;
  ranking: ResolvedRanking;
  filter?: Record<string, unknown>;
  attributeFilter?: AttributeFilter;
}

export interface CaughtUp {
  seq: string;
  applied: number;
  /** The collection's record, read with the log. */
  collection: CollectionInfo;
}

/** Log entries read per round trip; a shorter page is the log's end, so no empty read follows it. */
const LOG_PAGE = 64;
/** Labels fetched and sent to the index thread per message: a search waits for at most this many insertions. */
const APPLY_BATCH = 128;
const LEASE_TTL_MS = 15_000;

/**
 * This worker process's replicas of collection indexes. The durable truth is in Redis: each
 * collection's chunks (text and vector) and its log (a stream of add/delete entries, appended
 * atomically with the chunks). A replica is the last snapshot on disk plus the log replayed from the
 * snapshot's log id; before every search it replays whatever was appended since, so a search on any
 * worker sees every chunk acknowledged by any worker (read-your-writes across processes).
 *
 * Writes go through `withWriterLease`: one index writer per collection at a time across all worker
 * processes (a Redis lease, renewed while held), and only the lease holder writes snapshots.
 */
export class CollectionReplicas {
  readonly thread = new IndexThreadClient();
  private readonly states = new Map<string, ReplicaState>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per collection, the catch-up queued behind the running one and not started yet (callers join it). */
  private readonly nextCatchUp = new Map<string, { started: boolean; promise: Promise<CaughtUp> }>();

  constructor(private readonly opts: ReplicaOptions) {}

  dirOf(cid: string): string {
    return path.join(this.opts.indexDir, cid);
  }

  /**
   * Brings the replica up to the log's end; throws CollectionGoneError for a deleted collection.
   * Catch-ups of a collection run one at a time. Callers arriving while one runs share the next
   * one: it reads the log after all of them arrived, so each still sees every write acknowledged
   * before its call, and a burst of concurrent searches costs two log reads instead of one each.
   */
  catchUp(cid: string): Promise<CaughtUp> {
    const queued = this.nextCatchUp.get(cid);
    if (queued && !queued.started) return queued.promise;
    const entry = { started: false, promise: undefined as unknown as Promise<CaughtUp> };
    entry.promise = this.serialized(cid, () => {
      entry.started = true;
      if (this.nextCatchUp.get(cid) === entry) this.nextCatchUp.delete(cid);
      return this.catchUpNow(cid);
    });
    if (!entry.started) this.nextCatchUp.set(cid, entry);
    return entry.promise;
  }

  /** Searches the replica, caught up first; `vector` may be left out only for a lexical search. */
  async search(cid: string, query: IndexQuery): Promise<RankedHit[]> {
    await this.catchUp(cid);
    return this.searchCaughtUp(cid, query);
  }

  /**
   * Searches the replica as it is: for a caller that has caught it up itself since its request
   * arrived (the search handler does so while the query is being embedded).
   */
  async searchCaughtUp(cid: string, query: IndexQuery): Promise<RankedHit[]> {
    const { text, vector, k, ef, ranking, filter, attributeFilter } = query;
    const r = await this.thread.request({ op: 'search', cid, text, vector, k, ef: ef ?? this.opts.efSearch, ranking, filter, attributeFilter });
    return r.hits;
  }

  /**
   * Runs `fn` as the collection's only writer: waits for the lease (another worker may hold it),
   * renews it while `fn` runs, and afterwards snapshots if enough changed.
   */
  async withWriterLease<T>(cid: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const key = this.opts.store.keys.writer(cid);
    const token = `${this.opts.workerId}:${randomUUID()}`;
    const deadline = Date.now() + 10 * 60_000;
    while (!(await this.opts.store.acquireLease(key, token, LEASE_TTL_MS))) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      if (Date.now() > deadline) throw new Error('timed out waiting for the collection writer lease');
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 150));
    }
    const renew = setInterval(() => void this.opts.store.renewLease(key, token, LEASE_TTL_MS).catch(() => {}), LEASE_TTL_MS / 3);
    try {
      const result = await fn();
      await this.catchUp(cid);
      await this.maybeSnapshot(cid, false);
      return result;
    } finally {
      clearInterval(renew);
      await this.opts.store.releaseLease(key, token).catch(() => {});
    }
  }

  /** Snapshots a collection this process holds the writer lease of (or, on shutdown, can get it for). */
  private maybeSnapshot(cid: string, force: boolean): Promise<void> {
    return this.serialized(cid, async () => {
      const s = this.states.get(cid);
      if (!s || s.sinceSnapshot === 0) return;
      const due = s.sinceSnapshot >= this.opts.snapshotEvery || (Date.now() - s.lastSnapshotAt) / 1000 >= this.opts.snapshotSeconds;
      if (!due && !force) return;
      const r = await this.thread.request({ op: 'snapshot', cid, dir: this.dirOf(cid) });
      s.sinceSnapshot = 0;
      s.lastSnapshotAt = Date.now();
      this.opts.log.info({ cid, seq: r.seq, count: r.count, ms: Math.round(r.ms) }, 'index snapshot written');
    });
  }

  /** On shutdown: snapshot every replica with unsaved changes whose lease is free. */
  async flush(): Promise<void> {
    for (const [cid, s] of this.states) {
      if (s.sinceSnapshot === 0) continue;
      const key = this.opts.store.keys.writer(cid);
      const token = `${this.opts.workerId}:flush`;
      if (!(await this.opts.store.acquireLease(key, token, LEASE_TTL_MS).catch(() => false))) continue;
      try {
        await this.catchUp(cid).catch(() => {});
        await this.maybeSnapshot(cid, true);
      } catch (err) {
        this.opts.log.warn({ err, cid }, 'snapshot on shutdown failed');
      } finally {
        await this.opts.store.releaseLease(key, token).catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    await this.thread.close();
  }

  private async catchUpNow(cid: string): Promise<CaughtUp> {
    const { store } = this.opts;
    let s = this.states.get(cid);
    // The record and the first page of the log in one round trip (a search's only read when nothing changed).
    const first = await store.collectionAndLog(cid, s?.seq ?? '0-0', LOG_PAGE);
    if (!first.info) {
      if (this.states.delete(cid)) this.opts.log.info({ cid }, 'collection deleted: replica dropped');
      await this.thread.request({ op: 'drop', cid, dir: this.dirOf(cid) });
      throw new CollectionGoneError('The collection was deleted.');
    }
    let firstPage: LogEntry[] | undefined = first.entries;
    if (!s) {
      const opened = await this.thread.request({ op: 'open', cid, dims: this.opts.dims, params: this.opts.params, dir: this.dirOf(cid) });
      s = { seq: opened.seq, sinceSnapshot: 0, lastSnapshotAt: Date.now(), knownDocs: new Set(), titles: new Map() };
      this.states.set(cid, s);
      this.opts.log.info({ cid, seq: opened.seq, count: opened.count, fromSnapshot: opened.fromSnapshot }, 'collection index opened');
      // A snapshot starts the replica later in the log than the page read above.
      if (opened.seq !== '0-0') firstPage = undefined;
    }
    let applied = 0;
    for (;;) {
      const entries = firstPage ?? (await store.readLog(cid, s.seq, LOG_PAGE));
      firstPage = undefined;
      if (entries.length === 0) break;
      let labels: number[] = [];
      let deletes: number[] = [];
      let changedMeta: string[] = [];
      const flush = async (seq: string) => {
        const fetched = labels.length ? await store.chunkEntries(cid, labels) : [];
        const live = labels.flatMap((l, i) => (fetched[i] ? [{ label: l, ...fetched[i]! }] : []));
        const vectors = new Float32Array(live.length * this.opts.dims);
        live.forEach((c, i) => vectors.set(c.vector, i * this.opts.dims));
        const newDocs = [...new Set([...live.map((c) => c.doc).filter((d) => !s!.knownDocs.has(d)), ...changedMeta])];
        changedMeta = [];
        const metadata = await this.metadataOf(newDocs);
        await this.loadTitles(s!.titles, live.map((c) => c.doc));
        for (const d of newDocs) s!.knownDocs.add(d);
        await this.thread.request(
          { op: 'apply', cid, seq, labels: live.map((c) => c.label), docs: live.map((c) => c.doc), texts: live.map((c) => c.text), titles: live.map((c) => s!.titles.get(c.doc) ?? ''), vectors, deletes, metadata },
          [vectors.buffer],
        );
        s!.seq = seq;
        s!.sinceSnapshot += live.length + deletes.length;
        applied += live.length + deletes.length;
        labels = [];
        deletes = [];
      };
      for (const e of entries) {
        if (e.op === 'add') {
          const before = s.seq;
          for (let l = e.from; l < e.to; l++) {
            labels.push(l);
            // Part of an entry: the replica's position stays before it until the whole entry is in.
            if (labels.length >= APPLY_BATCH) await flush(before);
          }
        } else if (e.op === 'meta') {
          changedMeta.push(e.doc);
        } else {
          for (const [from, to] of e.ranges) for (let l = from; l < to; l++) deletes.push(l);
        }
        if (labels.length || deletes.length || changedMeta.length) await flush(e.id);
        else s.seq = e.id;
      }
      if (entries.length < LOG_PAGE) break;
    }
    return { seq: s.seq, applied, collection: first.info };
  }

  private async loadTitles(titles: Map<string, string>, docs: string[]): Promise<void> {
    const missing = [...new Set(docs)].filter((d) => !titles.has(d));
    if (missing.length === 0) return;
    const pipe = this.opts.store.redis.pipeline();
    for (const d of missing) pipe.hget(this.opts.store.keys.document(d), 'filename');
    const res = (await pipe.exec()) ?? [];
    missing.forEach((d, i) => titles.set(d, (res[i]?.[1] as string | null) ?? ''));
  }

  private async metadataOf(docs: string[]): Promise<[string, Record<string, unknown>][]> {
    if (docs.length === 0) return [];
    const pipe = this.opts.store.redis.pipeline();
    for (const d of docs) pipe.hget(this.opts.store.keys.document(d), 'metadata');
    const res = (await pipe.exec()) ?? [];
    return docs.map((d, i) => [d, JSON.parse((res[i]?.[1] as string | null) || '{}') as Record<string, unknown>]);
  }

  private serialized<T>(cid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(cid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => {});
    this.locks.set(cid, settled);
    void settled.then(() => {
      if (this.locks.get(cid) === settled) this.locks.delete(cid);
    });
    return next;
  }
}
