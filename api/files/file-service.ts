import { unlink } from 'node:fs/promises';
import { z } from 'zod';
import { errors } from '../../shared/errors/app-error.js';
import { FILE_CONTENT, fileView, newFileId, UPLOAD_PURPOSES, type FileRecord, type FileStore, type FileView } from '../../shared/files/file-store.js';
import type { ReceivedUpload, UploadInspector } from '../documents/upload.js';
import { JsonlInspector } from './jsonl-inspector.js';

/** OpenAI's bounds on `expires_after[seconds]`: one hour to thirty days. */
const EXPIRES_AFTER_MIN_S = 3600;
const EXPIRES_AFTER_MAX_S = 30 * 86_400;

export const listFilesQuerySchema = z
  .object({
    purpose: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
    after: z.string().optional(),
    order: z.enum(['asc', 'desc']).default('desc'),
  })
  .strict();

/**
 * The Files API over the blob store and the file records (shared/files/file-store.ts): uploads are
 * streamed to the data root's `incoming/` (api/documents/upload.ts, with its limits), checked, and
 * committed under `files/<id>/` before their record exists.
 */
export class FileService {
  constructor(
    readonly store: FileStore,
    private readonly limits: { maxBytes: number; maxBatchLines: number },
  ) {}

  get incomingDir(): string {
    return this.store.blobs.incomingDir;
  }

  get maxBytes(): number {
    return this.limits.maxBytes;
  }

  /** The per-upload inspector: JSONL line counting for batch input files. */
  inspector(fieldsSoFar: Record<string, string>): UploadInspector & { lines: number } {
    return new JsonlInspector(this.limits.maxBatchLines, fieldsSoFar.purpose);
  }

  async create(tenant: string, upload: ReceivedUpload, lines: number): Promise<FileView> {
    try {
      const purpose = upload.fields.purpose;
      if (!purpose) throw errors.invalidRequest("'purpose' is required.", 'purpose');
      if (!(UPLOAD_PURPOSES as readonly string[]).includes(purpose)) {
        throw errors.invalidRequest(`'purpose' must be one of ${UPLOAD_PURPOSES.map((p) => `'${p}'`).join(', ')}.`, 'purpose');
      }
      const createdAt = Math.floor(Date.now() / 1000);
      const expiresAt = this.expiresAt(upload.fields, createdAt);
      const record: FileRecord = {
        id: newFileId(),
        tenant,
        filename: upload.filename || 'upload',
        purpose: purpose as FileRecord['purpose'],
        bytes: upload.bytes,
        created_at: createdAt,
        expires_at: expiresAt,
        lines: purpose === 'batch' ? lines : null,
      };
      await this.store.blobs.commit(upload.tmpPath, 'files', record.id, FILE_CONTENT);
      try {
        await this.store.create(record);
      } catch (err) {
        await this.store.blobs.remove('files', record.id).catch(() => {});
        throw err;
      }
      return fileView(record);
    } catch (err) {
      await unlink(upload.tmpPath).catch(() => {});
      throw err;
    }
  }

  async get(tenant: string, id: string): Promise<FileRecord> {
    const r = await this.store.get(tenant, id);
    // Another tenant's file is reported exactly like one that does not exist.
    if (!r) throw errors.notFound(`No file with id '${id}'.`, 'file_not_found', 'file_id');
    return r;
  }

  async remove(tenant: string, id: string): Promise<{ id: string; object: 'file'; deleted: true }> {
    const r = await this.get(tenant, id);
    await this.store.remove(r);
    return { id, object: 'file', deleted: true };
  }

  async list(tenant: string, query: unknown) {
    const q = listFilesQuerySchema.parse(query);
    const { data, hasMore } = await this.store.list(tenant, q);
    const views = data.map(fileView);
    return { object: 'list' as const, data: views, first_id: views[0]?.id ?? null, last_id: views.at(-1)?.id ?? null, has_more: hasMore };
  }

  /** `expires_after[anchor]` (only `created_at`) and `expires_after[seconds]`, as OpenAI takes them. */
  private expiresAt(fields: Record<string, string>, createdAt: number): number | null {
    const anchor = fields['expires_after[anchor]'];
    const seconds = fields['expires_after[seconds]'];
    if (anchor === undefined && seconds === undefined) return null;
    if (anchor !== 'created_at') throw errors.invalidRequest("'expires_after[anchor]' must be 'created_at'.", 'expires_after[anchor]');
    const n = Number(seconds);
    if (!Number.isInteger(n) || n < EXPIRES_AFTER_MIN_S || n > EXPIRES_AFTER_MAX_S) {
      throw errors.invalidRequest(`'expires_after[seconds]' must be a whole number of seconds from ${EXPIRES_AFTER_MIN_S} to ${EXPIRES_AFTER_MAX_S}.`, 'expires_after[seconds]');
    }
    return createdAt + n;
  }
}
