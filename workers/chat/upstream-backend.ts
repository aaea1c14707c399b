import OpenAI from 'openai';
import type { UpstreamModelConfig } from '../../shared/models/model-registry.js';
import type { ChatBackend } from './chat-backend.js';
import { UpstreamError } from './upstream.error.js';
import { UpstreamTimeoutError } from './upstream-timeout.error.js';

/**
 * Chat through an OpenAI-compatible upstream (vLLM, Ollama, OpenAI, another instance of this
 * service). Its stream feeds the same token events as a local model. `timeout_ms` bounds the
 * wait for the first token and then for each next one, so a stalled upstream fails in bounded
 * time and the API can hand the request to the model's fallback.
 */
export function createUpstreamBackend(model: UpstreamModelConfig, apiKey: string | undefined): ChatBackend {
  const client = new OpenAI({ baseURL: model.base_url, apiKey: apiKey ?? 'none', maxRetries: 0, timeout: model.timeout_ms });
  return {
    async generate(_jobId, payload, { signal, onToken }) {
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort(signal.reason);
      signal.addEventListener('abort', onOuterAbort, { once: true });
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          timedOut = true;
          abort.abort(new Error('upstream timeout'));
        }, model.timeout_ms);
      };
      let text = '';
      let completionTokens = 0;
      let promptTokens = 0;
      let finish: string | null = null;
      try {
        arm();
        const stream = await client.chat.completions.create(
          {
            model: model.upstream_model ?? model.id,
            messages: payload.messages,
            max_tokens: payload.max_tokens,
            temperature: payload.temperature,
            top_p: payload.top_p,
            ...(payload.seed === undefined ? {} : { seed: payload.seed }),
            ...(payload.stop.length ? { stop: payload.stop } : {}),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal: abort.signal },
        );
        for await (const chunk of stream) {
          arm();
          const choice = chunk.choices?.[0];
          const delta = choice?.delta?.content;
          if (typeof delta === 'string' && delta.length > 0) {
            text += delta;
            completionTokens++;
            onToken(delta, {});
          }
          if (choice?.finish_reason) finish = choice.finish_reason;
          if (chunk.usage) {
            promptTokens = chunk.usage.prompt_tokens;
            completionTokens = chunk.usage.completion_tokens;
          }
        }
      } catch (err) {
        if (signal.aborted) return { text, finishReason: 'cancelled', promptTokens, completionTokens };
        if (timedOut) throw new UpstreamTimeoutError(`upstream ${model.base_url} did not answer within ${model.timeout_ms} ms`);
        throw new UpstreamError(`upstream ${model.base_url} failed: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
        signal.removeEventListener('abort', onOuterAbort);
      }
      if (finish === null) throw new UpstreamError(`upstream ${model.base_url} ended its stream without a finish reason`);
      return { text, finishReason: finish === 'length' ? 'length' : 'stop', promptTokens, completionTokens };
    },
    async close() {},
  };
}
