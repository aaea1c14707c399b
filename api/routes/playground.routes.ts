import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

const PLAYGROUND_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../client/playground');

/**
 * The web playground at `/`: a static page whose script is the typed client plus a little UI
 * code, bundled by esbuild on first request (about 100 ms) and then served from memory. It uses
 * the public API with a key the user pastes in, like any other client.
 */
export function playgroundRoutes(): TableRoutes {
  const router = tableRoutes();
  let bundle: Promise<string> | undefined;
  const bundled = () =>
    (bundle ??= build({
      entryPoints: [path.join(PLAYGROUND_DIR, 'playground.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      write: false,
      logLevel: 'silent',
    })
      .then((r) => r.outputFiles[0]!.text)
      .catch((err) => {
        bundle = undefined;
        throw err;
      }));

  router.get('/', async (_req, res) => {
    res.type('html').send(await readFile(path.join(PLAYGROUND_DIR, 'index.html'), 'utf8'));
  });
  router.get('/playground.js', async (_req, res) => {
    res.type('application/javascript').setHeader('cache-control', 'no-cache').send(await bundled());
  });
  return router;
}
