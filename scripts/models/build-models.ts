/**
 * Builds every model of the models config that is built from npm packages rather than put on disk
 * by the user, when its files are missing: today the USE-Lite ONNX rebuild. Idempotent and fast
 * when nothing is missing, so `npm start` and `npm test` run it every time.
 *
 * Usage: tsx scripts/models/build-models.ts [--force]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadEnv } from '../../shared/config/env.js';
import { loadModelRegistry, type ModelConfig } from '../../shared/models/model-registry.js';
import { buildUseLite } from './build-use-lite.js';

export async function ensureModels(models: readonly ModelConfig[], opts: { force?: boolean; log?: (msg: string) => void } = {}): Promise<void> {
  const log = opts.log ?? ((m: string) => console.log(m));
  for (const model of models) {
    if (model.format !== 'use-lite') continue;
    if (!opts.force && existsSync(path.join(model.dir, 'model.onnx')) && existsSync(path.join(model.dir, 'vocab.json'))) continue;
    const started = Date.now();
    await buildUseLite(model.dir);
    log(`built ${model.id} (USE-Lite ONNX) in ${model.dir} in ${Date.now() - started} ms`);
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('build-models.ts')) {
  const env = loadEnv();
  await ensureModels(loadModelRegistry(env.MODELS_CONFIG).models, { force: process.argv.includes('--force') });
}
