import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenVocabulary } from './token-vocabulary.js';

/**
 * Tokenizer side of a Hugging Face chat model folder: `tokenizer.json` (the fast-tokenizer file,
 * read with @huggingface/tokenizers), `tokenizer_config.json` (special tokens and, usually, the
 * Jinja `chat_template`, rendered with @huggingface/jinja), and the ids that end a reply, gathered
 * from tokenizer_config.json, generation_config.json and config.json.
 *
 * Pure JS: safe on any thread, no onnxruntime involved.
 */

export interface ChatMessage {
  role: string;
  content: string;
  /** An assistant turn's tool calls, arguments as JSON text (OpenAI's shape). */
  tool_calls?: readonly { id: string; type: 'function'; function: { name: string; arguments: string } }[];
  /** A tool turn: the call it answers. */
  tool_call_id?: string;
}

export interface ChatTemplateOptions {
  /** Open an assistant turn at the end (default true: the prompt is for generation). */
  addGenerationPrompt?: boolean;
  /** Extra variables for the template (e.g. `tools`, `documents`, `enable_thinking`). */
  extra?: Record<string, unknown>;
}

export interface ChatTokenizerOptions {
  /** Use this template instead of the folder's. */
  chatTemplate?: string;
}

/**
 * The part of @huggingface/tokenizers' Tokenizer used here. Its bundled .d.ts files use
 * extensionless relative imports, which NodeNext resolution cannot follow, so the shape is
 * declared locally (as in the sentence-transformers tokenizer).
 */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean | null }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}

type Json = Record<string, unknown>;

/** How many already-decoded ids the incremental detokenizer decodes again as context. */
const DETOKENIZER_CONTEXT = 5;

export class ChatTokenizer {
  /** Ids that end a reply: eos of every config in the folder, plus <|im_end|> / <|eot_id|> / <|end|> when present. */
  readonly stopTokenIds: ReadonlySet<number>;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly chatTemplate: string;
  /** Every id's token and bytes (for grammars and logprobs). */
  readonly vocabulary: TokenVocabulary;

  private readonly template: Template;
  private readonly specialStrings: { bos: string | null; eos: string | null; pad: string | null; unk: string | null };

  private constructor(
    private readonly tokenizer: HfTokenizer,
    readonly modelDir: string,
    chatTemplate: string,
    specials: { bos: string | null; eos: string | null; pad: string | null; unk: string | null },
    stopTokenIds: Set<number>,
    vocabulary: TokenVocabulary,
  ) {
    this.chatTemplate = chatTemplate;
    this.vocabulary = vocabulary;
    this.bosToken = specials.bos;
    this.eosToken = specials.eos;
    this.specialStrings = specials;
    this.stopTokenIds = stopTokenIds;
    try {
      this.template = new Template(chatTemplate);
    } catch (err) {
      throw new Error(`chat tokenizer: the chat template of ${modelDir} does not parse: ${(err as Error).message}`);
    }
  }

  static async load(modelDir: string, options: ChatTokenizerOptions = {}): Promise<ChatTokenizer> {
    let isDir = false;
    try {
      isDir = (await stat(modelDir)).isDirectory();
    } catch {
      throw new Error(`chat tokenizer: model folder ${modelDir} does not exist`);
    }
    if (!isDir) throw new Error(`chat tokenizer: model path ${modelDir} is not a folder`);

    const tokenizerFile = path.join(modelDir, 'tokenizer.json');
    const configFile = path.join(modelDir, 'tokenizer_config.json');
    const tokenizerJson = await readJsonObject(tokenizerFile, 'the Hugging Face fast-tokenizer file of the model');
    const tokenizerConfig = await readJsonObject(configFile, 'special tokens and the chat template');
    const generationConfig = (await readJsonObject(path.join(modelDir, 'generation_config.json'))) ?? {};
    const modelConfig = (await readJsonObject(path.join(modelDir, 'config.json'))) ?? {};

    let tokenizer: HfTokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig) as HfTokenizer;
    } catch (err) {
      throw new Error(`chat tokenizer: cannot build a tokenizer from ${tokenizerFile}: ${(err as Error).message}`);
    }

    let vocabulary: TokenVocabulary;
    try {
      vocabulary = TokenVocabulary.fromTokenizerJson(tokenizerJson, tokenizerFile);
    } catch (err) {
      throw new Error(`chat tokenizer: ${(err as Error).message}`);
    }

    const chatTemplate = options.chatTemplate ?? (await findChatTemplate(modelDir, tokenizerConfig, configFile));
    const specials = {
      bos: tokenString(tokenizerConfig['bos_token']),
      eos: tokenString(tokenizerConfig['eos_token']),
      pad: tokenString(tokenizerConfig['pad_token']),
      unk: tokenString(tokenizerConfig['unk_token']),
    };

    const stops = new Set<number>();
    const addId = (value: unknown): void => {
      for (const v of Array.isArray(value) ? value : [value]) if (Number.isInteger(v)) stops.add(v as number);
    };
    addId(generationConfig['eos_token_id']);
    addId(modelConfig['eos_token_id']);
    for (const token of [specials.eos, '<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>']) {
      if (token === null) continue;
      const id = tokenizer.token_to_id(token);
      if (id !== undefined) stops.add(id);
    }
    if (stops.size === 0) {
      throw new Error(
        `chat tokenizer: no end-of-sequence token in ${modelDir} (looked at eos_token in ${configFile}, ` +
          'eos_token_id in generation_config.json and config.json)',
      );
    }
    return new ChatTokenizer(tokenizer, modelDir, chatTemplate, specials, stops, vocabulary);
  }

  /** Ids of a text; special-token strings in it (e.g. "<|im_start|>") become their ids. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /**
   * The prompt text the chat template makes of the messages (@huggingface/jinja itself provides
   * `raise_exception`, which templates call to reject a conversation).
   */
  renderChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    return this.template.render({
      ...options.extra,
      messages: messages.map(templateMessage),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: this.specialStrings.bos ?? '',
      eos_token: this.specialStrings.eos ?? '',
      pad_token: this.specialStrings.pad ?? '',
      unk_token: this.specialStrings.unk ?? '',
    });
  }

  /**
   * Prompt ids for the messages. Like transformers' apply_chat_template, the rendered text is
   * encoded without the post-processor's special tokens: the template writes those itself.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.renderChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /**
   * A streaming decoder for one reply. `contextIds` (the prompt) are decoded along with the first
   * new tokens so that tokenizers which drop a leading space at the start of a decode do not
   * lose it; none of their text is emitted.
   */
  createDetokenizer(contextIds: readonly number[] = []): IncrementalDetokenizer {
    return new IncrementalDetokenizer((ids) => this.decode(ids), contextIds.slice(-DETOKENIZER_CONTEXT));
  }
}

/**
 * Turns a stream of token ids into text deltas. Byte-level tokens can split one UTF-8 character
 * (an emoji is often 2–4 tokens), and decoding such a prefix ends in U+FFFD; so each step
 * decodes a short window — a few ids already emitted, as context, plus the ids not yet emitted —
 * and emits only when the window's text grew and does not end in U+FFFD. `flush()` emits what is
 * left, invalid bytes included, at the end of the reply.
 */
export class IncrementalDetokenizer {
  private readonly ids: number[];
  /** ids[prefix, read) were emitted already and serve as context; ids[read, …) are pending. */
  private prefix = 0;
  private read: number;
  private emitted = '';

  constructor(
    private readonly decodeIds: (ids: number[]) => string,
    contextIds: readonly number[] = [],
  ) {
    this.ids = [...contextIds];
    this.read = this.ids.length;
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.emitted;
  }

  /** Adds one id; returns the text that became stable (often '', never a broken character). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.decodeIds(this.ids.slice(this.prefix, this.read));
    const after = this.decodeIds(this.ids.slice(this.prefix));
    if (after.length <= before.length || after.endsWith('\uFFFD')) return '';
    const delta = after.slice(before.length);
    this.prefix = this.read;
    this.read = this.ids.length;
    this.emitted += delta;
    return delta;
  }

  /** Emits whatever is still pending, even if it is not valid UTF-8 (as U+FFFD). */
  flush(): string {
    if (this.read === this.ids.length) return '';
    const before = this.decodeIds(this.ids.slice(this.prefix, this.read));
    const after = this.decodeIds(this.ids.slice(this.prefix));
    this.prefix = this.read;
    this.read = this.ids.length;
    const delta = after.length > before.length ? after.slice(before.length) : '';
    this.emitted += delta;
    return delta;
  }
}

/**
 * A message as Hugging Face templates expect it: as transformers and vLLM pass them, tool calls'
 * arguments are objects (templates write them with `| tojson`; a JSON string would come out
 * quoted twice). Arguments that are not a JSON object stay the text they are.
 */
function templateMessage(m: ChatMessage): Json {
  const out: Json = { role: m.role, content: m.content };
  if (m.tool_calls?.length) {
    out['tool_calls'] = m.tool_calls.map((call) => ({
      id: call.id,
      type: call.type,
      function: { name: call.function.name, arguments: parseArguments(call.function.arguments) },
    }));
  }
  if (m.tool_call_id !== undefined) out['tool_call_id'] = m.tool_call_id;
  return out;
}

function parseArguments(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : text;
  } catch {
    return text;
  }
}

async function findChatTemplate(modelDir: string, tokenizerConfig: Json, configFile: string): Promise<string> {
  const fromConfig = tokenizerConfig['chat_template'];
  if (typeof fromConfig === 'string' && fromConfig.length > 0) return fromConfig;
  // Some tokenizers ship several named templates: [{name, template}, …]; 'default' is the chat one.
  if (Array.isArray(fromConfig)) {
    const named = fromConfig.filter(isObject);
    const chosen = named.find((t) => t['name'] === 'default') ?? named[0];
    if (chosen && typeof chosen['template'] === 'string') return chosen['template'];
  }
  const jinjaFile = path.join(modelDir, 'chat_template.jinja');
  try {
    return await readFile(jinjaFile, 'utf8');
  } catch {
    // newer transformers write chat_template.jinja; older ones chat_template.json
  }
  const jsonFile = path.join(modelDir, 'chat_template.json');
  const json = await readJsonObject(jsonFile);
  if (json && typeof json['chat_template'] === 'string') return json['chat_template'];
  throw new Error(`chat tokenizer: no chat template in ${modelDir} (looked in ${configFile}, ${jinjaFile} and ${jsonFile})`);
}

/** A special token written as a string or as an AddedToken object ({content}). */
function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value['content'] === 'string') return value['content'];
  return null;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a JSON object; a missing file is undefined, or an error naming it when `requiredFor` is given. */
async function readJsonObject(file: string, requiredFor: string): Promise<Json>;
async function readJsonObject(file: string): Promise<Json | undefined>;
async function readJsonObject(file: string, requiredFor?: string): Promise<Json | undefined> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (requiredFor === undefined) return undefined;
      throw new Error(`chat tokenizer: ${file} not found (needed for ${requiredFor})`);
    }
    throw new Error(`chat tokenizer: cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new Error(`chat tokenizer: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new Error(`chat tokenizer: ${file} does not hold a JSON object`);
  return value;
}
