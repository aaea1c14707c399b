import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startRedisServer, type RedisServerHandle } from '../../scripts/lib/redis-server.js';

export interface RedisClusterHandle {
  /** `host:port,host:port,...`: the value of REDIS_CLUSTER_NODES. */
  nodes: string;
  servers: RedisServerHandle[];
  cleanup(): Promise<void>;
}

/**
 * A private Redis Cluster for one test file: `count` masters (no replicas) started from
 * `redis-server --cluster-enabled yes` on free loopback ports, joined with
 * `redis-cli --cluster create`, and waited for until every node says cluster_state:ok.
 */
export async function startRedisCluster(count = 3): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(path.join(tmpdir(), 'qi-redis-cluster-'));
  const servers: RedisServerHandle[] = [];
  const cleanup = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const nodeDir = path.join(dir, `node-${i}`);
      servers.push(
        await startRedisServer({
          port,
          dir: nodeDir,
          extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '5000'],
        }),
      );
    }
    const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed (${create.status}): ${create.stdout}\n${create.stderr}`);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const states = servers.map((s) => spawnSync('redis-cli', ['-p', String(s.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout);
      if (states.every((info) => /cluster_state:ok/.test(info) && /cluster_slots_assigned:16384/.test(info))) break;
      if (Date.now() > deadline) throw new Error(`cluster not ok: ${states.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { nodes: addresses.join(','), servers, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The redis-cli command line of one node, for assertions on where keys live. */
export function clusterCli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
}
