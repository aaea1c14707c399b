import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * What the blob store keeps, each kind in a folder of its own under the data root:
 * `docs/<document id>/` an uploaded document and its stage files (api/documents, workers/documents),
 * `files/<file id>/` a Files API file (api/files, workers/batches).
 */
export type BlobNamespace = 'docs' | 'files';

/**
 * The one storage layer for uploaded bytes, shared by documents and files, by the API and the
 * workers. It is a folder (DOCUMENTS_DIR, "the data root") that every API and worker replica
 * mounts at the same path: one machine's disk, or a shared volume (NFS, EFS, a ReadWriteMany PVC).
 * Durability rule: a blob is visible only once complete, because everything is written elsewhere
 * (`incoming/`, or a temp name beside it) and renamed into place, which is atomic on one file
 * system; so `incoming/` must be on the same volume as the rest. Redis records point at blobs and
 * are written after them, and blobs are deleted after their records: a reader that finds a record
 * finds its blob. Ids are made by the server (uuids), never by clients, so no name can leave the root.
 */
export class BlobStore {
  constructor(readonly root: string) {}

  /** Where uploads are streamed before they are committed: same volume, so commit is a rename. */
  get incomingDir(): string {
    return path.join(this.root, 'incoming');
  }

  /** The folder of one blob (a document's keeps its stage files beside its source). */
  dir(ns: BlobNamespace, id: string): string {
    if (!/^[\w-]{1,128}$/.test(id)) throw new Error(`invalid blob id '${id}'`);
    return path.join(this.root, ns, id);
  }

  path(ns: BlobNamespace, id: string, name: string): string {
    return path.join(this.dir(ns, id), name);
  }

  /** Moves a complete file (from `incoming/` or a temp name) into place under `ns/id/name`. */
  async commit(tmpPath: string, ns: BlobNamespace, id: string, name: string): Promise<string> {
    const dir = this.dir(ns, id);
    await mkdir(dir, { recursive: true });
    const target = path.join(dir, name);
    await rename(tmpPath, target);
    return target;
  }

  /** Writes `data` as `ns/id/name`, atomically: readers see the old content or the new, never part of it. */
  async write(ns: BlobNamespace, id: string, name: string, data: string | Uint8Array): Promise<string> {
    const dir = this.dir(ns, id);
    await mkdir(dir, { recursive: true });
    const target = path.join(dir, name);
    const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, data);
    await rename(tmp, target);
    return target;
  }

  /** A temp path beside `ns/id/name`, for writers that stream: commit it with `commit`. */
  async tempFor(ns: BlobNamespace, id: string, name: string): Promise<string> {
    const dir = this.dir(ns, id);
    await mkdir(dir, { recursive: true });
    return path.join(dir, `${name}.${process.pid}.${Date.now()}.tmp`);
  }

  read(ns: BlobNamespace, id: string, name: string): ReadStream {
    return createReadStream(this.path(ns, id, name));
  }

  async size(ns: BlobNamespace, id: string, name: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(ns, id, name))).size;
    } catch {
      return undefined;
    }
  }

  /** Removes a blob's folder with everything in it; a missing one is not an error. */
  async remove(ns: BlobNamespace, id: string): Promise<void> {
    await rm(this.dir(ns, id), { recursive: true, force: true });
  }
}
