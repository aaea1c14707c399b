/**
 * npm run models:pull -- <hub repo id> [--out DIR] [--onnx onnx/model.onnx]
 *
 * Downloads a chat model in Hugging Face's ONNX layout (as Optimum and the "onnx-community"
 * repos publish them: config.json, generation_config.json, tokenizer.json, tokenizer_config.json
 * and onnx/model.onnx with its external data file, if any) into models/<owner>/<name>, then
 * prints the models config entry to add. Needs a machine that reaches the hub (HF_ENDPOINT,
 * default https://huggingface.co; HF_TOKEN for gated repos).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { loadEnv } from '../../shared/config/env.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REQUIRED = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
const OPTIONAL = ['generation_config.json', 'special_tokens_map.json'];

export interface PullOptions {
  repo: string;
  outDir?: string;
  /** Which graph to fetch; default: onnx/model.onnx, else model.onnx. */
  onnxFile?: string;
  endpoint: string;
  token?: string;
  log?: (msg: string) => void;
}

export async function pullModel(opts: PullOptions): Promise<{ dir: string; files: string[] }> {
  const log = opts.log ?? ((m: string) => console.log(m));
  if (!/^[\w.-]+\/[\w.-]+$/.test(opts.repo)) throw new Error(`"${opts.repo}" is not a hub repo id (owner/name)`);
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const base = opts.endpoint.replace(/\/$/, '');
  const info = await fetch(`${base}/api/models/${opts.repo}/revision/main`, { headers });
  if (!info.ok) throw new Error(`hub answered ${info.status} for ${opts.repo}${info.status === 401 ? ' (gated repo? set HF_TOKEN)' : ''}`);
  const siblings = new Set(((await info.json()) as { siblings?: { rfilename: string }[] }).siblings?.map((s) => s.rfilename) ?? []);
  const onnx = opts.onnxFile ?? (siblings.has('onnx/model.onnx') ? 'onnx/model.onnx' : 'model.onnx');
  const missing = [...REQUIRED, onnx].filter((f) => !siblings.has(f));
  if (missing.length) throw new Error(`${opts.repo} lacks ${missing.join(', ')}: it is not in the Hugging Face ONNX layout`);
  const files = [...REQUIRED, ...OPTIONAL.filter((f) => siblings.has(f)), onnx, ...[`${onnx}_data`, `${onnx}.data`].filter((f) => siblings.has(f))];
  const dir = opts.outDir ?? path.join(ROOT, 'models', ...opts.repo.split('/'));
  for (const file of files) {
    const target = path.join(dir, file);
    await mkdir(path.dirname(target), { recursive: true });
    const res = await fetch(`${base}/${opts.repo}/resolve/main/${file}`, { headers });
    if (!res.ok || !res.body) throw new Error(`download of ${file} failed: ${res.status}`);
    const size = Number(res.headers.get('content-length') ?? 0);
    // Download beside the target and rename at the end: an interrupted pull leaves no half file.
    const partial = `${target}.partial`;
    try {
      await pipeline(Readable.fromWeb(res.body as never), createWriteStream(partial));
      await rename(partial, target);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    log(`  ${file}${size ? ` (${(size / 1e6).toFixed(1)} MB)` : ''}`);
  }
  return { dir, files };
}

if (process.argv[1]?.endsWith('pull-model.ts')) {
  const args = process.argv.slice(2);
  const repo = args.find((a) => !a.startsWith('--'));
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!repo) {
    console.error('usage: npm run models:pull -- <owner/name> [--out DIR] [--onnx onnx/model.onnx]');
    process.exit(2);
  }
  const env = loadEnv();
  try {
    console.log(`pulling ${repo} from ${env.HF_ENDPOINT}`);
    const { dir } = await pullModel({ repo, outDir: flag('--out'), onnxFile: flag('--onnx'), endpoint: env.HF_ENDPOINT, token: env.HF_TOKEN });
    console.log(`\nadd to ${env.MODELS_CONFIG}:\n${JSON.stringify({ id: repo, task: 'chat', format: 'hf-decoder', path: path.relative(path.dirname(path.resolve(env.MODELS_CONFIG)), dir), threads: 2, concurrency: 8 }, null, 2)}`);
  } catch (err) {
    console.error(`models:pull failed: ${(err as Error).message}`);
    process.exit(1);
  }
}
