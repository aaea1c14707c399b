import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startRedisServer, type RedisServerHandle } from '../../scripts/lib/redis-server.js';

/** A private redis-server on a free loopback port with its own data folder, for one test file. */
export async function startPrivateRedis(opts: { appendOnly?: boolean } = {}): Promise<RedisServerHandle & { cleanup(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-redis-'));
  const handle = await startRedisServer({ port: await freePort(), dir, appendOnly: opts.appendOnly });
  return {
    ...handle,
    async cleanup() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
