import * as ort from 'onnxruntime-node';

export interface OrtSessionSettings {
  intraOpThreads: number;
  /** Execution providers in order of preference ('cpu', 'cuda'); CPU is always the last resort. */
  executionProviders: string[];
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session actually runs on. */
  provider: string;
  /** Why the preferred providers were skipped, when they were. */
  fallback?: string;
}

/**
 * The one place model sessions are opened, so every format gets the same options and the same
 * provider fallback: a provider that cannot start (CUDA without a GPU, or without onnxruntime's
 * CUDA libraries) falls through to the next, and CPU ends the list.
 *
 * Spinning is off: by default onnxruntime's intra-op threads busy-wait between operators, which
 * on a small machine burns the cores that the API, Redis and the worker's own main thread need
 * (measured on 2 cores: the pipeline served noticeably fewer texts/s with spinning on).
 */
export async function openOrtSession(modelPath: string, settings: OrtSessionSettings): Promise<OpenedSession> {
  const preferred = settings.executionProviders.map((p) => p.toLowerCase());
  const candidates = [...new Set([...preferred, 'cpu'])];
  const failures: string[] = [];
  for (const provider of candidates) {
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        intraOpNumThreads: settings.intraOpThreads,
        interOpNumThreads: 1,
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      return { session, provider, ...(failures.length ? { fallback: failures.join('; ') } : {}) };
    } catch (err) {
      failures.push(`${provider}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot load ${modelPath}: ${failures.join('; ')}`);
}
