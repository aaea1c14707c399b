import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import madge from 'madge';
import { ROOT } from '../helpers/service.js';

/**
 * Import direction is the architecture: api → shared, workers → shared, dashboards → shared,
 * api → dashboards, client → shared, scripts → shared. shared imports none of them; api and
 * workers never import each other, the client talks to the service only over HTTP and Socket.IO,
 * and the launcher and model builders start the service's processes without loading their code.
 */
const layers = ['api', 'workers', 'shared', 'dashboards', 'client'] as const;
const allowed: Record<(typeof layers)[number] | 'scripts', string[]> = {
  scripts: ['scripts', 'shared'],
  client: ['client', 'shared'],
  api: ['api', 'shared', 'dashboards'],
  workers: ['workers', 'shared'],
  shared: ['shared'],
  dashboards: ['dashboards', 'shared'],
};

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) yield* sourceFiles(full);
    else if (name.endsWith('.ts')) yield full;
  }
}

test('layers only import the layers they may', () => {
  const violations: string[] = [];
  for (const layer of Object.keys(allowed) as (keyof typeof allowed)[]) {
    for (const file of sourceFiles(path.join(ROOT, layer))) {
      const source = readFileSync(file, 'utf8');
      for (const m of source.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        const target = path.relative(ROOT, path.resolve(path.dirname(file), m[1]!)).split(path.sep)[0]!;
        if (!allowed[layer].includes(target)) violations.push(`${path.relative(ROOT, file)} imports ${m[1]} (${target})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('nothing in shared opens a connection at import time', () => {
  for (const file of sourceFiles(path.join(ROOT, 'shared'))) {
    const top = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /^(const|let|var|await|new)\b/.test(l) && /new (Redis|Queue|Worker)\(|createRedis\(/.test(l));
    assert.deepEqual(top, [], path.relative(ROOT, file));
  }
});

/**
 * An import graph read by madge, resolving `.js` specifiers to the `.ts` files as tsc does.
 * Type-only imports count: a cycle of types is still two modules that cannot be understood, or
 * moved, one without the other.
 */
function importGraph(root: string, dirs: readonly string[], opts: { followDynamicImports: boolean }) {
  return madge(
    dirs.map((dir) => path.join(root, dir)),
    {
      baseDir: root,
      fileExtensions: ['ts'],
      tsConfig: path.join(ROOT, 'tsconfig.json'),
      detectiveOptions: { ts: { skipTypeImports: false, skipAsyncImports: !opts.followDynamicImports } },
    },
  );
}
const projectDirs = [...layers, 'scripts'];

test('the import graph has no cycle', { timeout: 60_000 }, async () => {
  const graph = await importGraph(ROOT, projectDirs, { followDynamicImports: true });
  const files = Object.keys(graph.obj());
  assert.ok(files.length > 100, `madge read the project (${files.length} files)`);
  assert.ok(graph.obj()['api/main.ts']?.includes('api/app.ts'), 'madge resolves .js specifiers to .ts files');
  assert.deepEqual(graph.circular().map((cycle) => cycle.join(' → ')), []);
});

test('the cycle check finds cycles, through type-only and dynamic imports too', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-cycles-'));
  try {
    const write = (file: string, source: string) => {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), source);
    };
    write('p/a.ts', "import type { B } from './b.js';\nexport const a = (b: B) => b;\n");
    write('p/b.ts', "import { a } from './a.js';\nexport type B = number;\nexport const b = a;\n");
    write('p/c.ts', "export const c = () => import('./d.js');\n");
    write('p/d.ts', "import { c } from './c.js';\nexport const d = c;\n");
    write('p/e.ts', "import { a } from './a.js';\nexport const e = a;\n");
    const graph = await importGraph(dir, ['p'], { followDynamicImports: true });
    assert.deepEqual(graph.circular().map((cycle) => [...cycle].sort().join(' ')).sort(), ['p/a.ts p/b.ts', 'p/c.ts p/d.ts']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Production installs leave devDependencies out (`npm ci --omit=dev` in Dockerfile.api,
 * `npm prune --omit=dev` in Dockerfile.worker), so whatever the service loads at run time, and what
 * `npm start` loads before it has a model to build, must import only `dependencies`. Build-only
 * code is reached from there by dynamic import only (scripts/models/build-models.ts).
 */
test('what runs in production imports only dependencies', { timeout: 60_000 }, async () => {
  const graph = (await importGraph(ROOT, projectDirs, { followDynamicImports: false })).obj();
  const { dependencies } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const roots = Object.keys(graph).filter((f) => (layers as readonly string[]).includes(f.split('/')[0]!) || f === 'scripts/start.ts');
  const reached = new Set<string>();
  const reach = (f: string) => {
    if (reached.has(f)) return;
    reached.add(f);
    for (const next of graph[f] ?? []) reach(next);
  };
  roots.forEach(reach);
  assert.ok(reached.has('scripts/models/build-models.ts'), 'npm start reaches the model step');
  const violations: string[] = [];
  for (const file of reached) {
    for (const pkg of runtimePackageImports(readFileSync(path.join(ROOT, file), 'utf8'))) {
      if (pkg.startsWith('node:') || builtinModules.includes(pkg)) continue;
      if (!Object.hasOwn(dependencies, pkg)) violations.push(`${file} imports ${pkg}, which is not in dependencies`);
    }
  }
  assert.deepEqual(violations, []);
});

/** Packages a module loads when it runs: static and dynamic imports and re-exports, not `import type`. */
function runtimePackageImports(source: string): string[] {
  const specifiers = [
    ...source.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'";]*?from\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]!);
  return specifiers.filter((s) => !s.startsWith('.')).map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
}

test('the production import check sees runtime imports and skips type-only ones', () => {
  const source = [
    "import { a } from 'kept-a';",
    "import type { B } from 'type-only';",
    "import {\n  c,\n  type D,\n} from '@scope/kept-c/sub';",
    "import 'kept-side-effect';",
    "export { e } from 'kept-e';",
    "export type { F } from 'type-only-too';",
    "const g = await import('kept-g');",
    "import { h } from './relative.js';",
  ].join('\n');
  assert.deepEqual(runtimePackageImports(source).sort(), ['@scope/kept-c', 'kept-a', 'kept-e', 'kept-g', 'kept-side-effect']);
});

/**
 * A job type's handler lives next to its domain: one `*.handler.ts` under the `workers/<domain>/`
 * that its catalog entry names returns `JobHandler<'<type>'>`. The compiler already refuses a
 * type without a handler (the map in workers/main.ts is exhaustive); this keeps it findable.
 */
test('every job type of the catalog has its handler file in its domain folder', async () => {
  const { JOB_TYPES, jobSpec } = await import('../../shared/jobs/job-catalog.js');
  const homeless: string[] = [];
  for (const type of JOB_TYPES) {
    const dir = path.join(ROOT, 'workers', jobSpec(type).domain);
    const handlers = readdirSync(dir).filter((name) => name.endsWith('.handler.ts'));
    const found = handlers.some((name) => readFileSync(path.join(dir, name), 'utf8').includes(`JobHandler<'${type}'>`));
    if (!found) homeless.push(`${type} (no workers/${jobSpec(type).domain}/*.handler.ts returns JobHandler<'${type}'>)`);
  }
  assert.deepEqual(homeless, []);
  assert.ok(!readdirSync(path.join(ROOT, 'workers')).includes('handlers'), 'handlers live in their domain, not in a folder of their own');
});
