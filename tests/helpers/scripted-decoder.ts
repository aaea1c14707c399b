import { KvCache, type PrefillResult } from '../../workers/chat/decoder-session.js';
import type { EngineDecoder } from '../../workers/chat/generation-engine.js';

/**
 * A decoder whose logits spell a fixed script (whatever the prompt): the scripted token gets 10,
 * every other 0. It makes the engine produce what the random model cannot be made to (an end of
 * sequence, a stop string), and under a grammar that forbids the scripted token greedy picks the
 * lowest allowed id.
 */
export class ScriptedDecoder implements EngineDecoder {
  readonly config: { vocabSize: number; maxPositions: number };
  constructor(
    private readonly script: readonly number[],
    vocabSize: number,
  ) {
    this.config = { vocabSize, maxPositions: 512 };
  }
  private row(cache: KvCache): Float32Array {
    if (!(cache instanceof ScriptedCache)) throw new Error('ScriptedDecoder: a cache it did not make');
    const logits = new Float32Array(this.config.vocabSize);
    logits[this.script[cache.length - cache.promptLength] ?? 0] = 10;
    return logits;
  }
  async prefillBatch(prompts: readonly (readonly number[])[]): Promise<PrefillResult[]> {
    return prompts.map((p) => {
      const cache = new ScriptedCache(p.length);
      cache.length = p.length;
      return { cache, logits: this.row(cache) };
    });
  }
  async decodeStep(items: readonly { cache: KvCache }[]): Promise<Float32Array[]> {
    return items.map(({ cache }) => {
      cache.length++;
      return this.row(cache);
    });
  }
}

/** A cache of no tensors that knows where its prompt ended; its clones (n samples of one prompt) too. */
class ScriptedCache extends KvCache {
  constructor(readonly promptLength: number) {
    super(1, 1, 1);
  }

  override clone(): ScriptedCache {
    const copy = new ScriptedCache(this.promptLength);
    copy.length = this.length;
    return copy;
  }
}
