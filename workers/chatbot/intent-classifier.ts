import type { BotConfig } from '../../shared/chatbot/chatbot-config.js';

export interface IntentMatch {
  intent: string;
  confidence: number;
  /** Which representation decided: the embedding model, or character n-grams (see below). */
  via: 'embedding' | 'char-ngrams';
}

/**
 * Classifies a message by its nearest example utterance (cosine similarity), with a fallback
 * intent below the bot's threshold.
 *
 * English goes through the embedding model. Chinese, Japanese and Korean cannot: USE-Lite's
 * vocabulary has no Han characters, and its tokenizer folds a whole run of them into one unknown
 * token, so every Chinese sentence embeds alike. For messages in those scripts the same
 * nearest-example rule runs over hashed character 1- and 2-gram vectors instead, which separate
 * "今天北京天气怎么样" from "我的订单到哪里了" well. A multilingual embedding model in the models
 * config would make this unnecessary.
 */
export class IntentClassifier {
  private examples: Promise<{ intent: string; vector: Float32Array; grams: Map<number, number> }[]> | undefined;

  constructor(
    private readonly bot: BotConfig,
    private readonly embed: (texts: string[]) => Promise<Float32Array[]>,
  ) {}

  async classify(message: string): Promise<IntentMatch> {
    const examples = await (this.examples ??= this.prepare());
    const cjk = CJK.test(message);
    let best = { intent: this.bot.fallback_intent, score: -1 };
    if (cjk) {
      const grams = charGrams(message);
      for (const e of examples) {
        const score = gramCosine(grams, e.grams);
        if (score > best.score) best = { intent: e.intent, score };
      }
    } else {
      const [v] = await this.embed([message]);
      for (const e of examples) {
        const score = dot(v!, e.vector);
        if (score > best.score) best = { intent: e.intent, score };
      }
    }
    const confidence = Math.max(0, Math.min(1, best.score));
    return {
      intent: confidence >= this.bot.intent_threshold ? best.intent : this.bot.fallback_intent,
      confidence: Math.round(confidence * 1000) / 1000,
      via: cjk ? 'char-ngrams' : 'embedding',
    };
  }

  private async prepare() {
    const items = this.bot.intents.flatMap((i) => i.examples.map((text) => ({ intent: i.name, text })));
    const vectors = await this.embed(items.map((x) => x.text));
    return items.map((x, k) => ({ intent: x.intent, vector: vectors[k]!, grams: charGrams(x.text) }));
  }
}

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Counts of character unigrams and bigrams (letters and digits only), hashed into buckets. */
function charGrams(text: string): Map<number, number> {
  const chars = [...text.toLowerCase()].filter((c) => /[\p{L}\p{N}]/u.test(c));
  const out = new Map<number, number>();
  const add = (g: string) => {
    const h = hash(g);
    out.set(h, (out.get(h) ?? 0) + 1);
  };
  chars.forEach((c, i) => {
    add(c);
    if (i > 0) add(chars[i - 1]! + c);
  });
  return out;
}

function gramCosine(a: Map<number, number>, b: Map<number, number>): number {
  let d = 0;
  for (const [k, v] of a) d += v * (b.get(k) ?? 0);
  const norm = (m: Map<number, number>) => Math.sqrt([...m.values()].reduce((s, v) => s + v * v, 0)) || 1;
  return d / (norm(a) * norm(b));
}

/** FNV-1a into 2^20 buckets: collisions are rare enough for short utterances. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of s) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0xfffff;
}
