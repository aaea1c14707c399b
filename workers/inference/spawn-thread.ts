import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread from a module next to the caller. Under tsx (development, tests) the
 * thread must load TypeScript too, so it registers tsx's loader before importing the entry;
 * compiled builds load the .js file directly.
 */
export function spawnThread(callerUrl: string, entryBaseName: string, workerData: unknown): Worker {
  const ext = callerUrl.endsWith('.ts') ? '.ts' : '.js';
  const entry = new URL(`./${entryBaseName}${ext}`, callerUrl);
  if (ext === '.js') return new Worker(entry, { workerData });
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
