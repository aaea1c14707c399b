/**
 * The vocabulary of a Hugging Face fast tokenizer (`tokenizer.json`), id by id: the token as the
 * file writes it, the exact bytes it stands for, and what kind of vocabulary it is.
 *
 * Two consumers need the bytes rather than decoded text: grammar-constrained decoding (xgrammar
 * matches grammars byte by byte, and its TokenizerInfo must see the same bytes the model's tokens
 * produce) and logprobs (OpenAI's `bytes` field, which lets a client join tokens that each hold
 * part of one UTF-8 character). Decoding one token to a string cannot give them: a byte-level
 * token may be a lone 0xE6.
 *
 * Vocabulary kinds, as xgrammar names them (and detects them, from the `decoder` section):
 *   byte_level     GPT-2 / Llama 3 / Qwen: every byte is written as one printable character
 *                  (GPT-2's bytes_to_unicode table, e.g. "Ġ" for a space);
 *   byte_fallback  SentencePiece BPE (Llama 2, Mistral): "▁" for a space, "<0x0A>" for a byte
 *                  that has no token of its own;
 *   raw            the token text is the text.
 * Added tokens (`added_tokens`: <|im_start|>, <|endoftext|>…) are never encoded that way: their
 * content is their text.
 */

export type VocabType = 'byte_level' | 'byte_fallback' | 'raw';

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

type Json = Record<string, unknown>;

const utf8 = new TextEncoder();
const lenientUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export class TokenVocabulary {
  /** Ids run from 0 to size - 1; ids without a token (holes) have an empty entry. */
  readonly size: number;
  readonly type: VocabType;
  /** The tokenizer puts a space (or "▁") before the text it encodes (SentencePiece's add_dummy_prefix). */
  readonly addPrefixSpace: boolean;
  /** Added tokens marked special (<|im_start|>, <|endoftext|>…): control tokens, not text. */
  readonly specialIds: ReadonlySet<number>;

  private readonly tokens: readonly string[];
  private readonly added: ReadonlyMap<number, AddedToken>;
  private readonly bytesCache: (Uint8Array | undefined)[];

  private constructor(tokens: string[], type: VocabType, addPrefixSpace: boolean, added: Map<number, AddedToken>) {
    this.tokens = tokens;
    this.size = tokens.length;
    this.type = type;
    this.addPrefixSpace = addPrefixSpace;
    this.added = added;
    this.specialIds = new Set([...added.values()].filter((t) => t.special).map((t) => t.id));
    this.bytesCache = new Array<Uint8Array | undefined>(tokens.length);
  }

  /** Reads the vocabulary of a parsed `tokenizer.json` (model.vocab plus added_tokens). */
  static fromTokenizerJson(json: Json, source = 'tokenizer.json'): TokenVocabulary {
    const model = json['model'];
    if (!isObject(model)) throw new Error(`${source} has no "model" section`);
    const tokens: string[] = [];
    const place = (id: unknown, token: string): void => {
      if (!Number.isInteger(id) || (id as number) < 0) throw new Error(`${source}: token ${JSON.stringify(token)} has an invalid id ${String(id)}`);
      tokens[id as number] = token;
    };
    const vocab = model['vocab'];
    if (isObject(vocab)) {
      // BPE and WordPiece: {token: id}
      for (const [token, id] of Object.entries(vocab)) place(id, token);
    } else if (Array.isArray(vocab)) {
      // Unigram: [[token, score], …], the id is the position
      vocab.forEach((entry, id) => place(id, Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : ''));
    } else {
      throw new Error(`${source}: model.vocab is neither a {token: id} map nor a [token, score] list`);
    }
    const added = new Map<number, AddedToken>();
    const addedList = json['added_tokens'];
    if (Array.isArray(addedList)) {
      for (const entry of addedList) {
        if (!isObject(entry) || typeof entry['content'] !== 'string') continue;
        place(entry['id'], entry['content']);
        added.set(entry['id'] as number, { id: entry['id'] as number, content: entry['content'], special: entry['special'] === true });
      }
    }
    for (let i = 0; i < tokens.length; i++) tokens[i] ??= '';
    return new TokenVocabulary(tokens, detectVocabType(json), detectAddPrefixSpace(json), added);
  }

  /** The token as tokenizer.json writes it ("Ġhello", "▁hello", "<0x0A>", "<|im_end|>"); '' for a hole. */
  token(id: number): string {
    return this.tokens[id] ?? '';
  }

  isAdded(id: number): boolean {
    return this.added.has(id);
  }

  /** The bytes the token stands for (its content's UTF-8 for added tokens). Do not modify. */
  tokenBytes(id: number): Uint8Array {
    if (!(id >= 0 && id < this.size)) return new Uint8Array(0);
    let bytes = this.bytesCache[id];
    if (bytes === undefined) {
      const token = this.tokens[id]!;
      bytes = this.added.has(id) ? utf8.encode(token) : decodeToken(token, this.type);
      this.bytesCache[id] = bytes;
    }
    return bytes;
  }

  /** The token's text on its own: U+FFFD where its bytes are not whole UTF-8 characters. */
  tokenText(id: number): string {
    return lenientUtf8.decode(this.tokenBytes(id));
  }

  /**
   * The token written the way this vocabulary encodes text, for tools that decode the vocabulary
   * themselves (xgrammar's TokenizerInfo). Model tokens are already in that form; added tokens
   * hold plain text, which is encoded here, so that decoding gives back their content.
   */
  encodedToken(id: number): string {
    const token = this.tokens[id] ?? '';
    if (!this.added.has(id)) return token;
    if (this.type === 'byte_level') {
      let out = '';
      for (const byte of utf8.encode(token)) out += BYTE_TO_CHAR[byte];
      return out;
    }
    if (this.type === 'byte_fallback') return token.replaceAll(' ', '\u2581');
    return token;
  }
}

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68 bytes
 * (controls, space, 0x7F-0xA0, 0xAD) take the code points from U+0100 on, in byte order.
 */
const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
})();

const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch.codePointAt(0)!, b]));

function decodeToken(token: string, type: VocabType): Uint8Array {
  if (type === 'byte_level') {
    const bytes = new Uint8Array(token.length);
    let n = 0;
    for (const ch of token) {
      const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
      // A character outside the table means the token is not byte-level encoded after all
      // (xgrammar makes the same call and keeps such a token as it is).
      if (b === undefined) return utf8.encode(token);
      bytes[n++] = b;
    }
    return bytes.subarray(0, n);
  }
  if (type === 'byte_fallback') {
    const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (hex) return Uint8Array.of(parseInt(hex[1]!, 16));
    return utf8.encode(token.replaceAll('\u2581', ' '));
  }
  return utf8.encode(token);
}

/** xgrammar's rule: a ByteLevel decoder makes byte_level, a ByteFallback one byte_fallback, anything else raw. */
function detectVocabType(json: Json): VocabType {
  const decoder = json['decoder'];
  if (!isObject(decoder)) return 'raw';
  const decoders = decoder['type'] === 'Sequence' && Array.isArray(decoder['decoders']) ? decoder['decoders'] : [decoder];
  for (const d of decoders) {
    if (!isObject(d)) continue;
    if (d['type'] === 'ByteLevel') return 'byte_level';
    if (d['type'] === 'ByteFallback') return 'byte_fallback';
  }
  return 'raw';
}

/** A Prepend("▁") normalizer, or a Metaspace pre-tokenizer that prepends (xgrammar's rule too). */
function detectAddPrefixSpace(json: Json): boolean {
  const normalizer = json['normalizer'];
  if (isObject(normalizer)) {
    const list = normalizer['type'] === 'Sequence' && Array.isArray(normalizer['normalizers']) ? normalizer['normalizers'] : [normalizer];
    if (list.some((n) => isObject(n) && n['type'] === 'Prepend' && n['prepend'] === '\u2581')) return true;
  }
  const pre = json['pre_tokenizer'];
  if (isObject(pre)) {
    const list = pre['type'] === 'Sequence' && Array.isArray(pre['pretokenizers']) ? pre['pretokenizers'] : [pre];
    return list.some((p) => isObject(p) && p['type'] === 'Metaspace' && (p['prepend_scheme'] === 'always' || p['prepend_scheme'] === 'first'));
  }
  return false;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
