import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { build, stop as stopEsbuild, type Plugin } from 'esbuild';
import type { Logger } from '../../shared/logger.js';
import { ParseFailure, TransientParseFailure, parseFailure } from './parse-failure.error.js';
import type { FromParseProcess, ParsedPage, ParseRequest, ParseStats, ToParseProcess } from './parse-process.protocol.js';


/** What the pool needs of the crash marks (workers/documents/crash-marks.ts). */
export interface StepMarks {
  begin(docId: string, stage: string): Promise<number>;
  end(docId: string, stage: string): Promise<void>;
  clear(docId: string, stage: string): Promise<void>;
}

/** A parse request as the pool takes it: the process's request, for a document rather than a request id. */
export interface ParseJob extends Omit<ParseRequest, 'id'> {
  docId: string;
}

export interface ParseOutcome {
  pages: ParsedPage[];
  stats: ParseStats;
}

export interface ParsePoolOptions {
  /** Parse processes kept at most. */
  processes: number;
  ocrThreads: number;
  /** `--max-old-space-size` of each process. */
  maxHeapMb: number;
  /** A process whose resident memory passes this after a parse is replaced once idle. */
  recycleMb: number;
  /** A step running longer is killed with its process (and counts as a crash). */
  stepTimeoutMs: number;
  /** Crashes after which a document fails as `poison_input`. */
  poisonCrashes: number;
  marks: StepMarks;
  log: Logger;
}

const STAGE = 'parse';

/** The parse process's code: a file to fork, or a bundle to feed node on standard input. */
type Entry = { file: string } | { code: string };
/** Times a document is moved to a fresh process because another document crashed the one it was on. */
const MAX_RESUBMITS = 3;

interface Request {
  id: number;
  job: ParseJob;
  onProgress: (done: number, total: number) => void;
  resolve: (o: ParseOutcome) => void;
  reject: (e: Error) => void;
  /** Answered already (or abandoned after an abort): later messages only tidy up. */
  settled: boolean;
  resubmits: number;
  /** Redis mark operations of this request, in order (a step's end before the next step's begin). */
  marks: Promise<unknown>;
  /** The mark as the last `begin` answered it, this step included. */
  lastMark: number;
}

interface Runner {
  child: ChildProcess;
  requests: Map<number, Request>;
  /** The step running now; a process runs one at a time (its FairGate), so this names the culprit of a crash. */
  step?: { req: Request; what: string; started: boolean; timer?: NodeJS.Timeout };
  retiring: boolean;
  exited: boolean;
  killedFor?: string;
}

/**
 * Parse processes of a worker (workers/documents/parse-process.ts), started on first use and
 * replaced after they die. A request goes to the process with the fewest requests; inside it,
 * steps of different tenants take turns.
 *
 * Crash handling: before each step the document's crash mark in Redis is raised, and lowered when
 * the step ends. When a process dies, the document whose step was running keeps its raised mark;
 * once it has crashed `poisonCrashes` times (on this worker or any other, counted in Redis) it
 * fails as `poison_input`, and before that its attempt fails as retryable. The other documents the
 * process held did nothing wrong: they are started again on a fresh process, in the same attempt.
 * A step that hangs is killed after `stepTimeoutMs` and counts as a crash.
 */
export class ParsePool {
  private runners: Runner[] = [];
  private nextId = 1;
  private closed = false;
  private entry?: Promise<Entry>;
  private resolvedEntry?: Entry;

  constructor(private readonly opts: ParsePoolOptions) {}

  parse(job: ParseJob, opts: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<ParseOutcome> {
    if (this.closed) return Promise.reject(new TransientParseFailure('parse_pool_closed', 'the worker is shutting down'));
    return new Promise<ParseOutcome>((resolve, reject) => {
      const req: Request = {
        id: this.nextId++,
        job,
        onProgress: opts.onProgress ?? (() => {}),
        resolve,
        reject,
        settled: false,
        resubmits: 0,
        marks: Promise.resolve(),
        lastMark: 0,
      };
      const signal = opts.signal;
      if (signal) {
        const onAbort = () => {
          if (req.settled) return;
          req.settled = true;
          // The process stops at its next step boundary; its remaining messages only tidy up.
          const runner = this.runners.find((r) => r.requests.has(req.id));
          if (runner) this.send(runner, { type: 'cancel', id: req.id });
          reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? 'aborted')));
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
      }
      this.prepareEntry().then(
        () => this.dispatch(req),
        (err: Error) => this.settle(req, new TransientParseFailure('parse_failed', `The parse process could not be prepared: ${err.message}`)),
      );
    });
  }

  /** Process ids of the live parse processes (for metrics and tests). */
  get pids(): number[] {
    return this.runners.flatMap((r) => (r.child.pid ? [r.child.pid] : []));
  }

  async close(): Promise<void> {
    this.closed = true;
    const runners = this.runners;
    this.runners = [];
    await Promise.allSettled(
      runners.map(async (r) => {
        // Killed by us, not by its document: a running step leaves no mark.
        const step = r.step;
        r.step = undefined;
        if (step?.timer) clearTimeout(step.timer);
        r.exited = true;
        const gone = r.child.exitCode !== null || r.child.signalCode !== null ? Promise.resolve() : new Promise((done) => r.child.once('exit', done));
        r.child.kill('SIGKILL');
        if (step?.started) await this.opts.marks.end(step.req.job.docId, STAGE).catch(() => {});
        for (const req of r.requests.values()) this.settle(req, new TransientParseFailure('parse_pool_closed', 'the worker is shutting down'));
        r.requests.clear();
        await gone;
      }),
    );
  }

  /**
   * The parse process's code. Compiled, it is parse-process.js. Under tsx (development, tests, the
   * worker image) it is bundled once by esbuild (this repository's modules inlined, packages left as
   * imports resolved from here) and run by plain node from its standard input: run through tsx's
   * loader instead, pdf.js alone costs the process ~400 MB more (its large modules transformed,
   * their source maps parsed) and seconds of start-up after every crash.
   */
  private prepareEntry(): Promise<Entry> {
    this.entry ??= (async (): Promise<Entry> => {
      const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
      const source = fileURLToPath(new URL(`./parse-process${ext}`, import.meta.url));
      if (ext === '.js') return { file: source };
      const out = await build({ entryPoints: [source], bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, logLevel: 'silent', plugins: [packagesFromHere] }).finally(
        // esbuild keeps a service process for later builds; this worker makes no other.
        () => stopEsbuild(),
      );
      return { code: out.outputFiles[0]!.text };
    })().then((entry) => (this.resolvedEntry = entry));
    this.entry.catch(() => (this.entry = undefined));
    return this.entry;
  }

  private dispatch(req: Request): void {
    if (this.closed) return this.settle(req, new TransientParseFailure('parse_pool_closed', 'the worker is shutting down'));
    const runner = this.pick();
    runner.requests.set(req.id, req);
    this.hold(runner);
    const { job } = req;
    this.send(runner, {
      type: 'parse',
      request: { id: req.id, tenant: job.tenant, kind: job.kind, path: job.path, workDir: job.workDir, ocr: job.ocr, limits: job.limits },
    });
  }

  private pick(): Runner {
    const live = this.runners.filter((r) => !r.retiring && !r.exited);
    if (live.length < this.opts.processes) return this.spawn();
    return live.reduce((a, b) => (b.requests.size < a.requests.size ? b : a));
  }

  private spawn(): Runner {
    // dispatch() runs only once prepareEntry() has resolved.
    const entry = this.resolvedEntry!;
    // The role names the process in `ps` (its script is its standard input).
    const settings = JSON.stringify({ role: 'parse-process', ocrThreads: this.opts.ocrThreads });
    const heap = `--max-old-space-size=${this.opts.maxHeapMb}`;
    let child: ChildProcess;
    if ('file' in entry) {
      child = fork(entry.file, [settings], { execArgv: [heap], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    } else {
      child = spawn(process.execPath, [heap, '--input-type=module', '-', settings], { serialization: 'advanced', stdio: ['pipe', 'inherit', 'inherit', 'ipc'] });
      child.stdin!.on('error', () => {}); // a process that dies at once is reported by 'exit'
      child.stdin!.end(entry.code);
    }
    const runner: Runner = { child, requests: new Map(), retiring: false, exited: false };
    this.runners.push(runner);
    child.on('message', (msg: FromParseProcess) => this.onMessage(runner, msg));
    child.once('exit', (code, signal) => this.onExit(runner, code, signal));
    child.on('error', (err) => {
      this.opts.log.warn({ err, pid: child.pid }, 'parse process error');
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    this.hold(runner);
    return runner;
  }

  /** The process (its exit is news) and its IPC channel keep the event loop alive exactly while it has requests. */
  private hold(runner: Runner): void {
    const channel = runner.child.channel as { ref?: () => void; unref?: () => void } | undefined;
    if (runner.requests.size > 0) {
      runner.child.ref();
      channel?.ref?.();
    } else {
      runner.child.unref();
      channel?.unref?.();
    }
  }

  private send(runner: Runner, msg: ToParseProcess): void {
    if (runner.exited || !runner.child.connected) return;
    runner.child.send(msg, (err) => {
      if (err) this.opts.log.debug({ err, pid: runner.child.pid }, 'parse process message not delivered');
    });
  }

  private onMessage(runner: Runner, msg: FromParseProcess): void {
    const req = runner.requests.get(msg.id);
    if (!req) return;
    const { docId } = req.job;
    switch (msg.type) {
      case 'step': {
        const step: NonNullable<Runner['step']> = { req, what: msg.what, started: false };
        runner.step = step;
        req.marks = req.marks.then(async () => {
          let mark: number;
          try {
            mark = await this.opts.marks.begin(docId, STAGE);
          } catch (err) {
            return this.send(runner, { type: 'step-refuse', id: req.id, code: 'parse_failed', message: `Redis did not record the step: ${(err as Error).message}`, permanent: false });
          }
          if (runner.exited || runner.step !== step) {
            // The process died before the step started: not this document's doing.
            await this.opts.marks.end(docId, STAGE).catch(() => {});
            return;
          }
          req.lastMark = mark;
          if (mark > this.opts.poisonCrashes) {
            await this.opts.marks.end(docId, STAGE).catch(() => {});
            return this.send(runner, { type: 'step-refuse', id: req.id, code: 'poison_input', message: poisonMessage(mark - 1), permanent: true });
          }
          step.started = true;
          step.timer = setTimeout(() => {
            runner.killedFor = `its step "${step.what}" ran longer than ${this.opts.stepTimeoutMs / 1000} s (DOCUMENTS_PARSE_STEP_TIMEOUT_SECONDS)`;
            this.opts.log.warn({ pid: runner.child.pid, documentId: docId, step: step.what }, 'parse step timed out: killing its process');
            runner.child.kill('SIGKILL');
          }, this.opts.stepTimeoutMs);
          step.timer.unref();
          this.send(runner, { type: 'step-go', id: req.id });
        });
        return;
      }
      case 'step-done': {
        const step = runner.step;
        if (step?.req === req) {
          if (step.timer) clearTimeout(step.timer);
          runner.step = undefined;
        }
        req.marks = req.marks.then(() => this.opts.marks.end(docId, STAGE)).catch((err) => this.opts.log.warn({ err, documentId: docId }, 'crash mark not lowered'));
        return;
      }
      case 'progress':
        if (!req.settled) req.onProgress(msg.pages_done, msg.pages_total);
        return;
      case 'result':
      case 'error': {
        runner.requests.delete(req.id);
        this.hold(runner);
        if (!req.settled) {
          // The stage ended with an answer of its own: its earlier crashes no longer matter. The
          // answer waits for the mark to be cleared, so whoever reads the mark next sees it gone.
          const outcome = msg.type === 'result' ? { pages: msg.pages, stats: msg.stats } : parseFailure(msg.code, msg.message, msg.permanent);
          req.marks = req.marks
            .then(() => this.opts.marks.clear(docId, STAGE))
            .catch((err) => this.opts.log.warn({ err, documentId: docId }, 'crash mark not cleared'))
            .then(() => this.settle(req, outcome));
        }
        if (msg.rss > this.opts.recycleMb * 1024 * 1024 && !runner.retiring) {
          // Native allocators rarely give memory back: a process that grew is replaced, not reused.
          this.opts.log.info({ pid: runner.child.pid, rssMb: Math.round(msg.rss / 1048576) }, 'parse process grew past DOCUMENTS_PARSE_RECYCLE_MB: replacing it');
          runner.retiring = true;
        }
        if (runner.retiring && runner.requests.size === 0) runner.child.kill('SIGTERM');
        return;
      }
    }
  }

  private onExit(runner: Runner, code: number | null, signal: NodeJS.Signals | null): void {
    if (runner.exited) return;
    runner.exited = true;
    this.runners = this.runners.filter((r) => r !== runner);
    const step = runner.step;
    runner.step = undefined;
    if (step?.timer) clearTimeout(step.timer);
    const culprit = step?.started ? step.req : undefined;
    const reason = runner.killedFor ?? describeExit(code, signal);
    if (runner.requests.size > 0 || !runner.retiring) {
      this.opts.log.warn({ pid: runner.child.pid, code, signal, documentId: culprit?.job.docId, step: step?.what, held: runner.requests.size }, 'parse process died');
    }
    for (const req of runner.requests.values()) {
      if (req.settled) continue;
      if (req === culprit) {
        // Its raised mark stays in Redis: that is the crash, counted across attempts and workers.
        const crashes = req.lastMark;
        this.settle(
          req,
          crashes >= this.opts.poisonCrashes
            ? new ParseFailure('poison_input', poisonMessage(crashes, reason))
            : new TransientParseFailure('parse_crashed', `The parse process died while reading this document (${reason}); it will be retried.`),
        );
      } else if (this.closed || req.resubmits >= MAX_RESUBMITS) {
        this.settle(req, new TransientParseFailure('parse_crashed', `The parse process died (${reason}) while another document was being read.`));
      } else {
        req.resubmits++;
        this.dispatch(req);
      }
    }
    runner.requests.clear();
  }

  private settle(req: Request, outcome: ParseOutcome | Error): void {
    if (req.settled) return;
    req.settled = true;
    if (outcome instanceof Error) req.reject(outcome);
    else req.resolve(outcome);
  }
}

/** Packages stay imports, resolved from this folder, so the bundle runs from a temporary folder. */
const packagesFromHere: Plugin = {
  name: 'packages-from-here',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => ({ path: args.path.startsWith('node:') ? args.path : import.meta.resolve(args.path), external: true }));
  },
};

function poisonMessage(crashes: number, reason?: string): string {
  const last = reason ? ` (last: ${reason})` : '';
  return `The document crashed or hung its parse process ${crashes} time${crashes === 1 ? '' : 's'}${last}; it is not tried again (DOCUMENTS_POISON_CRASHES).`;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === 'SIGABRT') return 'aborted by SIGABRT, typically out of memory';
  if (signal === 'SIGKILL') return 'killed by SIGKILL, typically the kernel out of memory';
  if (signal) return `killed by ${signal}`;
  return `exit code ${code}`;
}
