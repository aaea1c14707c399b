import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/service.js';

/**
 * Import direction is the architecture: api → shared, workers → shared, dashboards → shared,
 * api → dashboards, client → shared. shared imports none of them; api and workers never import
 * each other, and the client talks to the service only over HTTP and Socket.IO.
 */
const layers = ['api', 'workers', 'shared', 'dashboards', 'client'] as const;
const allowed: Record<(typeof layers)[number], string[]> = {
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
  for (const layer of layers) {
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
