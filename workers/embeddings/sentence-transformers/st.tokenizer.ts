import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

import type { EmbeddingTokenizer } from '../embedding-model.js';

/**
 * Hard ceiling on sequence length. BERT-family encoders have 512 positions; `tokenizer_config.json`
 * often says more (or the "unset" sentinel 1e30), which must not reach the model.
 */
export const MAX_SUPPORTED_TOKENS = 512;

/** Short text whose tokenization reveals what the post-processor puts around a sequence. */
const PROBE_TEXT = 'a';

const TOKENIZER_JSON_REQUIRED = 'a sentence-transformers model needs its Hugging Face fast-tokenizer file';

export type Json = Record<string, unknown>;

/**
 * The part of @huggingface/tokenizers' Tokenizer used here. Its bundled .d.ts files use
 * extensionless relative imports, which NodeNext resolution cannot follow (the class comes out as
 * `any`), so the shape is declared locally.
 */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
}

/**
 * Tokenizer of a Hugging Face sentence-transformers model: reads the folder's fast-tokenizer file
 * (`tokenizer.json`, plus `tokenizer_config.json` when present) with @huggingface/tokenizers.
 *
 * Special tokens are those the file's post-processor adds (for BERT: [CLS] … [SEP]). Truncation
 * keeps them: the content is cut to `maxTokens - specials` ids and then wrapped, so the final
 * special token ([SEP]) is always present, as with sentence-transformers' own truncation.
 *
 * `maxTokens` is the smallest of: the `maxTokens` argument, `sentence_bert_config.json`
 * `max_seq_length` (what sentence-transformers itself truncates to), `tokenizer_config.json`
 * `model_max_length`, `config.json` `max_position_embeddings`, and 512.
 */
export class SentenceTransformerTokenizer implements EmbeddingTokenizer {
  readonly maxTokens: number;
  /** Id to pad rows with (the session reads the same value from the folder itself). */
  readonly padId: number;
  /** Ids the post-processor puts before / after the content of a single sequence. */
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];

  private constructor(
    private readonly tokenizer: HfTokenizer,
    maxTokens: number,
    padId: number,
    prefixIds: number[],
    suffixIds: number[],
  ) {
    this.maxTokens = maxTokens;
    this.padId = padId;
    this.prefixIds = prefixIds;
    this.suffixIds = suffixIds;
  }

  static async load(modelDir: string, maxTokens?: number): Promise<SentenceTransformerTokenizer> {
    await assertDirectory(modelDir);
    const tokenizerFile = path.join(modelDir, 'tokenizer.json');
    const tokenizerJson = await readJsonObject(tokenizerFile, TOKENIZER_JSON_REQUIRED);
    const tokenizerConfig = await readJsonObject(path.join(modelDir, 'tokenizer_config.json'));
    const sbertConfig = await readJsonObject(path.join(modelDir, 'sentence_bert_config.json'));
    const modelConfig = await readJsonObject(path.join(modelDir, 'config.json'));

    let tokenizer: HfTokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig) as HfTokenizer;
    } catch (err) {
      throw new Error(`sentence-transformers: cannot build a tokenizer from ${tokenizerFile}: ${(err as Error).message}`);
    }

    const { prefixIds, suffixIds } = detectSpecialTokens(tokenizer, tokenizerFile);
    const specials = prefixIds.length + suffixIds.length;

    const limits = [
      MAX_SUPPORTED_TOKENS,
      positiveInt(sbertConfig['max_seq_length']),
      positiveInt(tokenizerConfig['model_max_length']),
      positiveInt(modelConfig['max_position_embeddings']),
    ];
    if (maxTokens !== undefined) {
      if (!Number.isInteger(maxTokens) || maxTokens <= specials) {
        throw new Error(
          `sentence-transformers: maxTokens must be an integer above the ${specials} special tokens, got ${maxTokens}`,
        );
      }
      limits.push(maxTokens);
    }
    const effective = Math.min(...limits.filter((n): n is number => n !== undefined));
    if (effective <= specials) {
      throw new Error(`sentence-transformers: ${modelDir} allows only ${effective} tokens per text`);
    }

    return new SentenceTransformerTokenizer(
      tokenizer,
      effective,
      resolvePadId(tokenizerJson, tokenizerConfig),
      prefixIds,
      suffixIds,
    );
  }

  tokenize(texts: readonly string[]): number[][] {
    const room = this.maxTokens - this.prefixIds.length - this.suffixIds.length;
    return texts.map((text) => {
      const content = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
      if (content.length > room) content.length = room;
      return [...this.prefixIds, ...content, ...this.suffixIds];
    });
  }
}

/**
 * Finds the fixed ids the post-processor wraps a single sequence in, by encoding a probe text with
 * and without special tokens and locating the bare ids inside the wrapped ones.
 */
function detectSpecialTokens(tokenizer: HfTokenizer, file: string): { prefixIds: number[]; suffixIds: number[] } {
  const bare = tokenizer.encode(PROBE_TEXT, { add_special_tokens: false }).ids;
  const full = tokenizer.encode(PROBE_TEXT, { add_special_tokens: true }).ids;
  for (let start = 0; start + bare.length <= full.length; start++) {
    if (bare.every((id, i) => full[start + i] === id)) {
      return { prefixIds: full.slice(0, start), suffixIds: full.slice(start + bare.length) };
    }
  }
  throw new Error(`sentence-transformers: cannot tell which special tokens the post-processor of ${file} adds`);
}

/**
 * Pad id of a tokenizer: `padding.pad_id` of tokenizer.json, else the id of tokenizer_config's
 * `pad_token`, else of "[PAD]" / "<pad>", else 0. With masked attention and masked pooling the
 * value never reaches an output; it matters only in that it must be a valid embedding index.
 */
export function resolvePadId(tokenizerJson: Json, tokenizerConfig: Json = {}): number {
  const padding = tokenizerJson['padding'];
  if (isObject(padding) && Number.isInteger(padding['pad_id'])) return padding['pad_id'] as number;

  const configPad = tokenizerConfig['pad_token'];
  const candidates = [
    typeof configPad === 'string' ? configPad : isObject(configPad) ? configPad['content'] : undefined,
    '[PAD]',
    '<pad>',
  ].filter((t): t is string => typeof t === 'string');

  const added = Array.isArray(tokenizerJson['added_tokens']) ? (tokenizerJson['added_tokens'] as unknown[]) : [];
  const model = tokenizerJson['model'];
  const vocab = isObject(model) ? model['vocab'] : undefined;
  for (const token of candidates) {
    for (const entry of added) {
      if (isObject(entry) && entry['content'] === token && Number.isInteger(entry['id'])) return entry['id'] as number;
    }
    if (isObject(vocab) && Number.isInteger(vocab[token])) return vocab[token] as number;
    // Unigram vocabularies are [piece, score] pairs.
    if (Array.isArray(vocab)) {
      const index = vocab.findIndex((e) => Array.isArray(e) && e[0] === token);
      if (index >= 0) return index;
    }
  }
  return 0;
}

export async function assertDirectory(dir: string): Promise<void> {
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    throw new Error(`sentence-transformers: model folder ${dir} does not exist`);
  }
  if (!isDir) throw new Error(`sentence-transformers: model path ${dir} is not a folder`);
}

/**
 * Reads a JSON file. A missing file yields undefined, unless `requiredWhy` is given, in which case
 * it is an error naming the file and why it is needed.
 */
export async function readJson(file: string, requiredWhy?: string): Promise<unknown> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (requiredWhy === undefined) return undefined;
      throw new Error(`sentence-transformers: ${file} not found (${requiredWhy})`);
    }
    throw new Error(`sentence-transformers: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new Error(`sentence-transformers: ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Like `readJson`, for files holding one JSON object; a missing optional file yields {}. */
export async function readJsonObject(file: string, requiredWhy?: string): Promise<Json> {
  const value = await readJson(file, requiredWhy);
  if (value === undefined) return {};
  if (!isObject(value)) throw new Error(`sentence-transformers: ${file} does not hold a JSON object`);
  return value;
}

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A usable length limit, or undefined (missing, not a number, or a "no limit" sentinel). */
function positiveInt(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 1 && value < 1e9 ? Math.floor(value) : undefined;
}
