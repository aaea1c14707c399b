import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

/**
 * Loads xgrammar's WebAssembly build (@mlc-ai/web-xgrammar) as a fresh, private instance.
 *
 * The package's lib/index.js is a UMD bundle that its package.json marks as an ES module, so
 * neither `import` (no exports, it writes globalThis.xgrammar and expects CommonJS `require` and
 * `__filename`) nor `require` (refused: "type": "module") loads it as it is. The documented
 * workaround sets globalThis.require and globalThis.__filename, then imports it once. Here it is
 * instead wrapped the way Node's own CommonJS loader wraps a file, a function of
 * (exports, module, require, __filename, console), for three reasons:
 *
 *   1. Every call makes a NEW instance with its own WebAssembly memory. The grammar compiler
 *      reports an unsupported schema by calling abort(), which leaves that memory's stack
 *      unwound (after ~20 aborts it reads out of bounds and the thread dies silently). A caller
 *      can therefore drop a tainted instance and load a clean one; an ES module import would be
 *      cached for the life of the thread, and its memory with it.
 *   2. No thread-wide `require` / `__filename` globals, which change how other UMD code in the
 *      same thread detects CommonJS.
 *   3. The bundle's console is ours: the compiler prints its reason ("[FATAL] …: Unsupported type
 *      \"foo\"") to console.error just before it aborts, so capturing it turns an opaque
 *      "Aborted()" into a readable error, and keeps it off the worker's stderr.
 *
 * Nothing here is shared between threads: each model thread loads its own instance.
 */

export type XGrammarApi = Pick<typeof XGrammar, 'Grammar' | 'GrammarCompiler' | 'CompiledGrammar' | 'GrammarMatcher' | 'TokenizerInfo'>;

export interface XGrammarInstance {
  readonly api: XGrammarApi;
  /** Returns and clears what the WebAssembly code printed (newest last, at most 32 lines). */
  takeOutput(): string[];
}

const requireHere = createRequire(import.meta.url);
let libraryPath: string | undefined;
let factory: ((...args: unknown[]) => void) | undefined;

const MAX_LINES = 32;

export function loadXGrammarInstance(): XGrammarInstance {
  libraryPath ??= requireHere.resolve('@mlc-ai/web-xgrammar');
  // The source is compiled once per thread; each call runs it again for a new instance.
  factory ??= new Function('exports', 'module', 'require', '__filename', 'console', readFileSync(libraryPath, 'utf8')) as (
    ...args: unknown[]
  ) => void;
  const lines: string[] = [];
  const capture = (...args: unknown[]): void => {
    lines.push(args.map(String).join(' '));
    if (lines.length > MAX_LINES) lines.shift();
  };
  const sandboxConsole = { ...console, log: capture, info: capture, warn: capture, error: capture, debug: capture };
  const exports: Record<string, unknown> = {};
  factory.call(globalThis, exports, { exports }, createRequire(libraryPath), libraryPath, sandboxConsole);
  for (const name of ['Grammar', 'GrammarCompiler', 'CompiledGrammar', 'GrammarMatcher', 'TokenizerInfo'] as const) {
    if (typeof exports[name] !== 'function') throw new Error(`@mlc-ai/web-xgrammar did not define ${name}: unsupported package version`);
  }
  return {
    api: exports as unknown as XGrammarApi,
    takeOutput: () => lines.splice(0, lines.length),
  };
}
