import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/service.js';

/**
 * `npm start` runs ensureModels first, and Dockerfile.worker prunes devDependencies after building
 * the models. The packages that only building needs are devDependencies, so ensureModels must not
 * load them while every model is already on disk, and must say what to do when one is missing.
 * These runs hide every devDependency from the module resolver, as `npm ci --omit=dev` would.
 */
const run = promisify(execFile);
const devDependencies = Object.keys((JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);

const hideDevDependencies = `
const hidden = ${JSON.stringify(devDependencies)};
export async function resolve(specifier, context, next) {
  if (hidden.some((p) => specifier === p || specifier.startsWith(p + '/'))) {
    throw Object.assign(new Error("Cannot find package '" + specifier + "' (hidden by the test)"), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}`;
const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hideDevDependencies)}));`;

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Runs ensureModels over a models config in a child process that cannot see devDependencies. */
async function ensureModelsWithoutDevDependencies(modelsConfig: string): Promise<{ ok: boolean; output: string }> {
  const script = `
    const { loadModelRegistry } = await import(${JSON.stringify(path.join(ROOT, 'shared/models/model-registry.ts'))});
    const { ensureModels } = await import(${JSON.stringify(path.join(ROOT, 'scripts/models/build-models.ts'))});
    await ensureModels(loadModelRegistry(${JSON.stringify(modelsConfig)}).models, { log: (m) => console.log(m) });
    console.log('ENSURED');`;
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script], { cwd: ROOT, timeout: 60_000 });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('the hook really hides devDependencies (so the checks below can fail)', async () => {
  const r = await run(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', "await import('onnx-proto')"], { cwd: ROOT }).then(
    () => 'imported',
    (err: { stderr?: string }) => err.stderr ?? '',
  );
  assert.match(r, /Cannot find package 'onnx-proto' \(hidden by the test\)/);
});

test('with every model on disk, ensureModels needs no devDependency', { timeout: 90_000 }, async () => {
  // The default models, built by `npm run models:build` (the test command runs it first).
  const r = await ensureModelsWithoutDevDependencies(path.join(ROOT, 'config/models.json'));
  assert.ok(r.ok, r.output);
  assert.match(r.output, /ENSURED/);
  assert.doesNotMatch(r.output, /built|generated/, 'nothing was rebuilt');
});

test('a missing model without its build packages fails with what to do, naming the model', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-build-models-'));
  dirs.push(dir);
  const config = path.join(dir, 'models.json');
  writeFileSync(config, JSON.stringify({ models: [{ id: 'missing-chat', task: 'chat', format: 'hf-decoder', path: 'missing-chat', build: 'tiny-decoder' }] }));
  const r = await ensureModelsWithoutDevDependencies(config);
  assert.equal(r.ok, false, r.output);
  assert.match(r.output, /Building model 'missing-chat' needs packages that are installed only with devDependencies/);
  assert.match(r.output, /npm install/);
});
