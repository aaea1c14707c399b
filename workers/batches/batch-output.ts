import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { outputLine } from '../../shared/batches/batch-lines.js';
import type { BatchLine, BatchRecord, LineOutcome } from '../../shared/batches/batch-store.js';
import { FILE_CONTENT, newFileId, type FileRecord } from '../../shared/files/file-store.js';
import type { BatchDeps } from './batch-runtime.js';

const CHUNK = 500;

/**
 * Writes a batch's output and error files (purpose `batch_output`) from its recorded outcomes, in
 * line order, and returns their ids (null for an empty one). Their ids are reserved in the batch
 * record first (HSETNX), so a finalize that crashed and runs again rewrites the same files instead
 * of leaving orphans; each file is written beside its place and renamed in (the blob store's rule).
 */
export async function writeBatchOutputs(deps: Pick<BatchDeps, 'batches' | 'files'>, b: BatchRecord): Promise<{ output_file_id: string | null; error_file_id: string | null }> {
  const { batches, files } = deps;
  const redis = batches.redis;
  await redis.hsetnx(batches.key(b.id), 'pending_output_id', newFileId());
  await redis.hsetnx(batches.key(b.id), 'pending_error_id', newFileId());
  const [outId, errId] = (await redis.hmget(batches.key(b.id), 'pending_output_id', 'pending_error_id')) as [string, string];
  const outTmp = await files.blobs.tempFor('files', outId, FILE_CONTENT);
  const errTmp = await files.blobs.tempFor('files', errId, FILE_CONTENT);
  const out = createWriteStream(outTmp);
  const err = createWriteStream(errTmp);
  let outBytes = 0;
  let errBytes = 0;
  const write = async (stream: typeof out, text: string) => {
    if (!stream.write(`${text}\n`)) await once(stream, 'drain');
    return Buffer.byteLength(text) + 1;
  };
  for (let from = 0; from < b.total; from += CHUNK) {
    const idx = Array.from({ length: Math.min(CHUNK, b.total - from) }, (_, i) => String(from + i));
    const [outcomes, lines] = await Promise.all([redis.hmget(batches.outKey(b.id), ...idx), redis.hmget(batches.linesKey(b.id), ...idx)]);
    for (let i = 0; i < idx.length; i++) {
      const raw = outcomes[i];
      // Unanswered (a cancelled batch's lines that never ran): in neither file.
      if (!raw) continue;
      const outcome = JSON.parse(raw) as LineOutcome;
      const line = lines[i] ? (JSON.parse(lines[i]!) as BatchLine) : undefined;
      const customId = line?.custom_id ?? (outcome.ok ? null : (outcome.custom_id ?? null));
      const text = outputLine(b.id, from + i, customId, line, outcome);
      if (outcome.ok) outBytes += await write(out, text);
      else errBytes += await write(err, text);
    }
  }
  await Promise.all([new Promise((r) => out.end(r)), new Promise((r) => err.end(r))]);
  const now = Math.floor(Date.now() / 1000);
  const commit = async (id: string, tmp: string, bytes: number, kind: 'output' | 'errors') => {
    const record: FileRecord = { id, tenant: b.tenant, filename: `${b.id}_${kind}.jsonl`, purpose: 'batch_output', bytes, created_at: now, expires_at: null, lines: null };
    await files.blobs.commit(tmp, 'files', id, FILE_CONTENT);
    await files.create(record);
    return id;
  };
  const output_file_id = outBytes > 0 ? await commit(outId, outTmp, outBytes, 'output') : null;
  const error_file_id = errBytes > 0 ? await commit(errId, errTmp, errBytes, 'errors') : null;
  if (!output_file_id) await files.blobs.remove('files', outId);
  if (!error_file_id) await files.blobs.remove('files', errId);
  return { output_file_id, error_file_id };
}
