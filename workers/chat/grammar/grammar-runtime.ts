import { LRUCache } from 'lru-cache';
import type { CompiledGrammar, GrammarCompiler, GrammarMatcher, TokenizerInfo } from '@mlc-ai/web-xgrammar';
import { TOOL_CALL_CLOSING, TOOL_CALL_SEPARATOR, toolCallOpening } from '../../../shared/chat/tool-calls.js';
import type { TokenVocabulary } from '../token-vocabulary.js';
import { GrammarError } from './grammar-error.js';
import { prepareFormat, type GrammarFormat, type PreparedFormat, type ResponseFormatLimits, type ToolCallFunction } from './response-format.js';
import { loadXGrammarInstance, type XGrammarInstance } from './xgrammar-module.js';

/**
 * Grammar-constrained decoding for one model thread, on xgrammar (the engine vLLM and SGLang use),
 * in its WebAssembly build.
 *
 * `matcher(format)` gives a sequence its own SequenceGrammar: before each sampling step the engine
 * asks it for the bitmask of allowed next tokens (the sampler sets every other logit to -Infinity),
 * and tells it the token that was sampled. Grammars compile once per distinct format: compiled
 * grammars live in a bounded LRU keyed by a hash of the canonical (key-sorted) format; a format
 * that fails to compile is remembered too, so resending it costs nothing.
 *
 * The vocabulary goes to xgrammar as tokenizer.json writes it, with its type (byte_level for
 * GPT-2-style BPE, byte_fallback for SentencePiece), so that xgrammar decodes every token to the
 * exact bytes the model's tokens produce — a byte-level token may be half a UTF-8 character, and
 * xgrammar matches bytes. Added special tokens (<|im_start|>…) go in as '' so that xgrammar
 * treats them as special and never allows them (as text they would be allowed inside JSON
 * strings, yet decoding drops them); the end-of-sequence ids are its stop tokens, allowed only
 * where the grammar is complete.
 *
 * When the compiler rejects a schema it calls abort(), which leaves its WebAssembly instance
 * unusable after a few such calls (see xgrammar-module.ts). The instance is then retired: no
 * further grammar compiles on it, the cache is emptied, the next compile loads a clean instance;
 * matchers already running on the old one finish there (matching never aborts).
 */

export interface GrammarRuntimeOptions {
  vocabulary: TokenVocabulary;
  /** Size of the model's logits row (the bitmask's length in bits); may differ from the vocabulary's. */
  vocabSize: number;
  /** Ids that end a sequence (eos, <|im_end|>…): allowed once the grammar is complete. */
  stopTokenIds: Iterable<number>;
  /** Compiled grammars kept (default 64). */
  cacheSize?: number;
  limits?: ResponseFormatLimits;
  /**
   * Most whitespace characters in a row where JSON allows any (default 16). xgrammar's default is
   * unlimited, and models that like to pad (vLLM's reports of Qwen writing newlines forever) or
   * untrained ones never reach the end.
   */
  maxJsonWhitespace?: number;
}

export interface GrammarRuntimeStats {
  /** Grammars compiled (cache misses that compiled). */
  compiled: number;
  cacheHits: number;
  /** Formats the compiler rejected. */
  rejected: number;
  /** WebAssembly instances loaded (1 + retired ones). */
  instances: number;
  cached: number;
}

/** One sequence's view of its grammar. */
export interface SequenceGrammar {
  /**
   * Bitmask of the tokens allowed next: bit (id & 31) of word (id >> 5) is 1 when id is allowed;
   * ceil(vocabSize / 32) words.
   */
  nextTokenBitmask(): Promise<Int32Array>;
  /** Advances the grammar by a sampled token; false if the grammar does not allow it. */
  accept(tokenId: number): boolean;
  /** The grammar has accepted a stop token: the output is complete. */
  readonly terminated: boolean;
  /** Frees the matcher (its WebAssembly memory). Safe to call twice. */
  dispose(): void;
}

interface Backend {
  instance: XGrammarInstance;
  info: TokenizerInfo;
  compiler: GrammarCompiler;
  retired: boolean;
}

type CacheEntry = { compiled: CompiledGrammar; backend: Backend } | { error: GrammarError };

export class GrammarRuntime {
  readonly vocabSize: number;
  private readonly vocabulary: TokenVocabulary;
  private readonly stopTokenIds: number[];
  private readonly limits: ResponseFormatLimits;
  private readonly maxJsonWhitespace: number;
  private backendPromise: Promise<Backend> | undefined;
  private readonly cache: LRUCache<string, CacheEntry>;
  /** Compiles in progress, so that concurrent requests for one format share it. */
  private readonly pending = new Map<string, Promise<CacheEntry>>();
  private readonly counters = { compiled: 0, cacheHits: 0, rejected: 0, instances: 0 };
  private closed = false;

  constructor(options: GrammarRuntimeOptions) {
    if (!Number.isInteger(options.vocabSize) || options.vocabSize < 1) throw new RangeError(`vocabSize must be a positive integer, got ${options.vocabSize}`);
    this.vocabulary = options.vocabulary;
    this.vocabSize = options.vocabSize;
    this.stopTokenIds = [...new Set(options.stopTokenIds)].filter((id) => id >= 0 && id < options.vocabSize);
    if (this.stopTokenIds.length === 0) throw new RangeError('a grammar needs at least one stop token id inside the vocabulary');
    this.limits = options.limits ?? {};
    this.maxJsonWhitespace = options.maxJsonWhitespace ?? 16;
    this.cache = new LRUCache<string, CacheEntry>({
      max: options.cacheSize ?? 64,
      dispose: (entry) => {
        // Not at once: a matcher() that already took this entry may still be creating its matcher
        // (a chain of microtasks); a macrotask later every such chain has finished. Matchers keep
        // their own reference to the grammar, so freeing the handle does not affect them.
        if ('compiled' in entry) setImmediate(() => entry.compiled.dispose());
      },
    });
  }

  get stats(): GrammarRuntimeStats {
    return { ...this.counters, cached: this.cache.size };
  }

  /** Loads xgrammar and builds the tokenizer info now rather than on the first constrained request (~0.2 s). */
  async warm(): Promise<void> {
    await this.backend();
  }

  /**
   * Checks a format without compiling it (synchronous, cheap: shape, size, JSON Schema
   * meta-schema) and returns it with its cache key. Throws GrammarError.
   */
  prepare(format: GrammarFormat): PreparedFormat {
    return prepareFormat(format, this.limits);
  }

  /**
   * A matcher for a format, compiling its grammar unless cached. Throws GrammarError when the
   * format is invalid or unsupported (the request's fault) or xgrammar cannot load. Compiling
   * blocks the thread (tens to hundreds of milliseconds for a 50k vocabulary: xgrammar
   * precomputes token masks per grammar position); a cached grammar costs well under 1 ms.
   */
  async matcher(format: GrammarFormat | PreparedFormat): Promise<SequenceGrammar> {
    if (this.closed) throw new GrammarError('grammar_unavailable', 'the grammar runtime is closed');
    const prepared = 'key' in format ? format : prepareFormat(format, this.limits);
    const entry = await this.compiled(prepared);
    if ('error' in entry) throw entry.error;
    return this.createMatcher(entry.compiled, entry.backend);
  }

  /** Frees the compiled grammars and the compiler; matchers still running keep working. */
  close(): void {
    this.closed = true;
    this.cache.clear();
    void this.backendPromise?.then(
      (b) => {
        b.compiler.dispose();
        b.info.dispose();
      },
      () => {},
    );
    this.backendPromise = undefined;
  }

  // -------------------------------------------------------------------------------------------

  private async compiled(prepared: PreparedFormat): Promise<CacheEntry> {
    const cached = this.cache.get(prepared.key);
    if (cached !== undefined && !('compiled' in cached && cached.backend.retired)) {
      this.counters.cacheHits++;
      return cached;
    }
    let pending = this.pending.get(prepared.key);
    if (pending === undefined) {
      pending = this.compile(prepared).finally(() => this.pending.delete(prepared.key));
      this.pending.set(prepared.key, pending);
    } else {
      this.counters.cacheHits++;
    }
    return pending;
  }

  private async compile(prepared: PreparedFormat): Promise<CacheEntry> {
    const backend = await this.backend();
    backend.instance.takeOutput();
    let entry: CacheEntry;
    try {
      const compiled = await this.compileOn(backend, prepared);
      this.counters.compiled++;
      entry = { compiled, backend };
    } catch (err) {
      const printed = backend.instance.takeOutput();
      if (err instanceof WebAssembly.RuntimeError) this.retire(backend);
      else if (!(err instanceof Error)) throw err;
      this.counters.rejected++;
      entry = { error: compileError(prepared.format, printed, err as Error) };
    }
    this.cache.set(prepared.key, entry);
    return entry;
  }

  private async compileOn(backend: Backend, { format, canonical }: PreparedFormat): Promise<CompiledGrammar> {
    const { compiler } = backend;
    const ws = this.maxJsonWhitespace;
    switch (format.type) {
      case 'json_object':
        // Any object (not the builtin JSON grammar, which allows any value at the top).
        return compiler.compileJSONSchema('{"type":"object"}', true, -1, undefined, false, ws);
      case 'json_schema':
        // strict (OpenAI's Structured Outputs): no properties or items beyond the schema's.
        // Otherwise JSON Schema's own rule: whatever the schema does not forbid is allowed.
        return compiler.compileGrammar(await this.jsonSchemaEbnf(backend, canonical, format.strict === true), 'root');
      case 'ebnf':
        return compiler.compileGrammar(format.grammar, format.rootRule ?? 'root');
      case 'structural_tag':
        return compiler.compileStructuralTag(canonical);
      case 'tool_calls':
        return compiler.compileStructuralTag(await this.toolCallTag(backend, format.functions, format.parallel));
    }
  }

  /**
   * The structural tag of a reply made only of tool calls: one tag per function whose opening
   * names it, so the name is always one of the tools and the arguments follow that function's
   * schema. Each schema becomes its own grammar first (rather than a json_schema element of the
   * tag) so that the whitespace limit applies inside arguments too, and in strict mode: arguments
   * never carry properties the function does not declare.
   */
  private async toolCallTag(backend: Backend, functions: readonly ToolCallFunction[], parallel: boolean): Promise<string> {
    const tags = [];
    for (const fn of functions) {
      const grammar = await this.jsonSchemaEbnf(backend, JSON.stringify(fn.parameters), true);
      tags.push({ type: 'tag', begin: toolCallOpening(fn.name), content: { type: 'grammar', grammar }, end: TOOL_CALL_CLOSING });
    }
    return JSON.stringify({
      type: 'structural_tag',
      format: { type: 'tags_with_separator', tags, separator: TOOL_CALL_SEPARATOR, at_least_one: true, stop_after_first: !parallel },
    });
  }

  /**
   * A JSON schema's grammar as EBNF, with a fix for this xgrammar build: the characters of strings
   * with maxLength/minLength are `[^"\\\r\n]`, which lets raw control characters (a tab, U+0002)
   * into a string, and JSON.parse then refuses the output. Unbounded strings already exclude
   * \0-\x1f; bounded ones get the same class here.
   */
  private async jsonSchemaEbnf(backend: Backend, schema: string, strict: boolean): Promise<string> {
    const grammar = await backend.instance.api.Grammar.fromJSONSchema(schema, true, undefined, undefined, strict, this.maxJsonWhitespace);
    try {
      return grammar.toString().replaceAll(String.raw`[^\"\\\r\n]`, String.raw`[^\0-\x1f\"\\\r\n]`);
    } finally {
      grammar.dispose();
    }
  }

  private async createMatcher(compiled: CompiledGrammar, backend: Backend): Promise<SequenceGrammar> {
    // createGrammarMatcher reads the vocabulary size through compiled.tokenizerInfo(), which
    // wraps a NEW C++ TokenizerInfo that nobody frees (a small leak per request); a view whose
    // tokenizerInfo() returns the backend's own avoids it.
    const view = Object.create(compiled) as CompiledGrammar;
    view.tokenizerInfo = () => backend.info;
    const matcher = await backend.instance.api.GrammarMatcher.createGrammarMatcher(view, this.stopTokenIds);
    return new XGrammarSequence(matcher);
  }

  private backend(): Promise<Backend> {
    if (this.backendPromise === undefined) {
      const loading = this.loadBackend();
      this.backendPromise = loading;
      // A failed load is not cached: the next request tries again.
      loading.catch(() => {
        if (this.backendPromise === loading) this.backendPromise = undefined;
      });
    }
    return this.backendPromise;
  }

  private async loadBackend(): Promise<Backend> {
    let instance: XGrammarInstance | undefined;
    try {
      instance = loadXGrammarInstance();
      const { TokenizerInfo, GrammarCompiler } = instance.api;
      const encoded = Array.from({ length: this.vocabSize }, (_, id) => this.encodedToken(id));
      const info = await TokenizerInfo.createTokenizerInfo(
        encoded,
        this.vocabulary.type,
        this.vocabulary.addPrefixSpace,
        this.vocabSize,
        this.stopTokenIds,
      );
      // xgrammar's own cache is unbounded; ours (the LRU above) is not, so it is switched off.
      const compiler = await GrammarCompiler.createGrammarCompiler(info, false);
      this.counters.instances++;
      return { instance, info, compiler, retired: false };
    } catch (err) {
      const printed = instance?.takeOutput().join('\n');
      throw new GrammarError('grammar_unavailable', `xgrammar failed to load: ${(err as Error).message}${printed ? ` (${printed})` : ''}`, { cause: err });
    }
  }

  private encodedToken(id: number): string {
    const v = this.vocabulary;
    if (id >= v.size) return ''; // logits beyond the tokenizer's vocabulary (padding): never allowed
    if (this.stopTokenIds.includes(id)) return v.token(id);
    if (v.specialIds.has(id)) return '';
    return v.encodedToken(id);
  }

  private retire(backend: Backend): void {
    if (backend.retired) return;
    backend.retired = true;
    if (this.backendPromise !== undefined) {
      void this.backendPromise.then((current) => {
        if (current === backend) this.backendPromise = undefined;
      });
    }
    // Grammars compiled on the retired instance stay valid for matchers that already hold them,
    // but new matchers start from a clean instance. Errors stay cached: they do not depend on it.
    for (const [key, entry] of this.cache.entries()) if ('compiled' in entry && entry.backend === backend) this.cache.delete(key);
  }
}

class XGrammarSequence implements SequenceGrammar {
  private disposed = false;

  constructor(private readonly matcher: GrammarMatcher) {}

  nextTokenBitmask(): Promise<Int32Array> {
    return this.matcher.getNextTokenBitmask();
  }

  accept(tokenId: number): boolean {
    return this.matcher.acceptToken(tokenId);
  }

  get terminated(): boolean {
    return this.matcher.isTerminated();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.matcher.dispose();
  }
}

/** A readable reason from xgrammar's "[FATAL] /path/file.cc:123: reason" line. */
function compileError(format: GrammarFormat, printed: string[], err: Error): GrammarError {
  const fatal = printed
    .map((line) => /\[FATAL\]\s*(?:\S+:\d+:\s*)?(.*)$/s.exec(line)?.[1]?.trim())
    // "Check failed: (<C++ condition>) is false: <reason>": the reason is what a user can act on.
    .map((reason) => reason?.replace(/^Check failed: .* is false:\s*/s, ''))
    .filter((reason): reason is string => reason !== undefined && reason !== '');
  const reason = fatal.at(-1) ?? err.message;
  const what =
    format.type === 'json_schema' || format.type === 'json_object'
      ? 'the JSON schema'
      : format.type === 'ebnf'
        ? 'the EBNF grammar'
        : format.type === 'tool_calls'
          ? "the tools' parameters"
          : 'the structural tag';
  // A construct the compiler lacks, or a schema/grammar that is wrong in itself (a parse error,
  // a contradiction such as minimum > maximum, a $ref to nowhere).
  const code = /not supported|unsupported/i.test(reason) ? 'unsupported_response_format' : 'invalid_response_format';
  // No `cause`: the error is cached, and a WebAssembly error's unformatted stack trace keeps the
  // functions of its (retired) instance, and so the instance's whole memory, alive.
  return new GrammarError(code, `cannot compile ${what} into a grammar: ${reason}`, { param: format.type === 'tool_calls' ? 'tools' : 'response_format' });
}
