import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createReadStream, existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTinyDecoder } from '../../scripts/models/make-tiny-decoder.js';
import { pullModel } from '../../scripts/models/pull-model.js';
import { ROOT } from '../helpers/service.js';

/** The CLI runs as a child process; asynchronously, since the hub it talks to lives in this process. */
async function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/models/pull-model.ts', ...args], { cwd: ROOT, env });
    return { status: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { status: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Every file under dir, as paths relative to it. */
function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const rel = prefix ? `${prefix}/${name}` : name;
    return statSync(path.join(dir, name)).isDirectory() ? listFiles(path.join(dir, name), rel) : [rel];
  });
}

/**
 * A local stand-in for the Hugging Face hub: the same two routes `models:pull` uses (repo info
 * with its file list, and /resolve/main/<file>), serving a model folder in the ONNX layout.
 */
describe('npm run models:pull against a local hub', () => {
  let hub: Server;
  let endpoint: string;
  let source: string;
  const requests: string[] = [];

  before(async () => {
    source = mkdtempSync(path.join(tmpdir(), 'qi-hub-'));
    await makeTinyDecoder(source, { onnxSubdir: true });
    const files = listFiles(source);
    hub = createServer((req, res) => {
      requests.push(req.url ?? '');
      const info = req.url?.match(/^\/api\/models\/([^/]+\/[^/]+)\/revision\/main$/);
      if (info) {
        if (info[1] !== 'test-org/tiny-chat') return res.writeHead(404).end('{"error":"Repository not found"}');
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ id: info[1], siblings: [...files, 'README.md'].map((rfilename) => ({ rfilename })) }));
      }
      const file = req.url?.match(/^\/test-org\/tiny-chat\/resolve\/main\/(.+)$/)?.[1];
      if (file && files.includes(file)) {
        res.writeHead(200, { 'content-length': statSync(path.join(source, file)).size });
        return createReadStream(path.join(source, file)).pipe(res);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => hub.listen(0, '127.0.0.1', () => r()));
    endpoint = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
  });

  after(() => {
    hub?.closeAllConnections();
    hub?.close();
  });

  test('downloads the layout byte for byte into the target folder', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'qi-pulled-'));
    const { files } = await pullModel({ repo: 'test-org/tiny-chat', outDir: out, endpoint, log: () => {} });
    assert.ok(files.includes('onnx/model.onnx') && files.includes('tokenizer.json') && files.includes('generation_config.json'));
    assert.ok(!files.includes('README.md'), 'only what the runtime needs');
    for (const f of files) assert.deepEqual(readFileSync(path.join(out, f)), readFileSync(path.join(source, f)), f);
    assert.ok(!listFiles(out).some((f) => f.endsWith('.partial')));
  });

  test('the CLI pulls with HF_ENDPOINT and prints the models config entry', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'qi-pulled-cli-'));
    const r = await runCli(['test-org/tiny-chat', '--out', out], { PATH: process.env.PATH, HF_ENDPOINT: endpoint });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"format": "hf-decoder"/);
    assert.ok(existsSync(path.join(out, 'onnx', 'model.onnx')));
  });

  test('an unknown repo or a bad id fails with a readable reason and exit code 1', async () => {
    await assert.rejects(pullModel({ repo: 'test-org/missing', endpoint, log: () => {} }), /hub answered 404/);
    await assert.rejects(pullModel({ repo: '../etc/passwd', endpoint, log: () => {} }), /not a hub repo id/);
    const r = await runCli(['test-org/missing'], { PATH: process.env.PATH, HF_ENDPOINT: endpoint });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /models:pull failed: hub answered 404/);
  });

  test('a repo without the ONNX layout is refused before anything is written', async () => {
    await assert.rejects(pullModel({ repo: 'test-org/tiny-chat', onnxFile: 'onnx/model_q4.onnx', endpoint, outDir: mkdtempSync(path.join(tmpdir(), 'qi-x-')), log: () => {} }), /lacks onnx\/model_q4.onnx/);
  });
});
