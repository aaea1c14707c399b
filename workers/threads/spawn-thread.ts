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

/**
 * Waits for a freshly spawned thread to say it is ready (its model loaded). Resolves with the ready
 * message; rejects on the thread's own load-error message, an uncaught error, or an early exit.
 */
export function waitForThreadReady<M extends { type: string }, R extends M>(
  thread: Worker,
  isReady: (msg: M) => msg is R,
  loadError: (msg: M) => string | undefined,
): Promise<R> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: M) => {
      if (isReady(msg)) return done(() => resolve(msg));
      const error = loadError(msg);
      if (error !== undefined) done(() => reject(new Error(error)));
    };
    const onError = (err: Error) => done(() => reject(err));
    const onExit = (code: number) => done(() => reject(new Error(`thread exited with code ${code} while loading`)));
    const done = (settle: () => void) => {
      thread.off('message', onMessage);
      thread.off('error', onError);
      thread.off('exit', onExit);
      settle();
    };
    thread.on('message', onMessage);
    thread.on('error', onError);
    thread.on('exit', onExit);
  });
}
