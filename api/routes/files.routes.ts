import { unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../../shared/errors/app-error.js';
import { FILE_CONTENT, fileView } from '../../shared/files/file-store.js';
import { receiveUpload } from '../documents/upload.js';
import type { FileService } from '../files/file-service.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';
import { closeAfterAnswer } from './documents.routes.js';

/** OpenAI's Files API: upload (multipart, streamed), list, retrieve, content, delete. */
export function filesRoutes(deps: { files: FileService }): TableRoutes {
  const router = tableRoutes();
  const { files } = deps;

  router.post('/v1/files', async (req, res) => {
    const signed = req.signedBody;
    let inspector: ReturnType<FileService['inspector']> | undefined;
    let upload;
    try {
      upload = await receiveUpload(req, {
        incomingDir: files.incomingDir,
        maxBytes: files.maxBytes,
        maxBytesSetting: 'FILES_MAX_BYTES',
        expects: 'POST /v1/files takes multipart/form-data with a `file` part and a `purpose` field.',
        body: signed?.stream,
        inspect: (fieldsSoFar) => (inspector = files.inspector(fieldsSoFar)),
      });
    } catch (err) {
      signed?.discard();
      if (err instanceof AppError && (err.status === 413 || err.code === 'too_many_lines')) closeAfterAnswer(req, res);
      throw err;
    }
    if (signed) {
      // Nothing is stored before the bytes are known to be the ones signed.
      try {
        await signed.verify();
      } catch (err) {
        await unlink(upload.tmpPath).catch(() => {});
        throw err;
      }
    }
    res.json(await files.create(req.principal!.tenant, upload, inspector?.lines ?? 0));
  });

  router.get('/v1/files', async (req, res) => {
    res.json(await files.list(req.principal!.tenant, req.query));
  });

  router.get('/v1/files/:file_id', async (req, res) => {
    res.json(fileView(await files.get(req.principal!.tenant, req.params.file_id as string)));
  });

  router.get('/v1/files/:file_id/content', async (req, res) => {
    const file = await files.get(req.principal!.tenant, req.params.file_id as string);
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-length', String(file.bytes));
    res.setHeader('content-disposition', `attachment; filename="${file.filename.replace(/["\\\r\n]/g, '_')}"`);
    await pipeline(files.store.blobs.read('files', file.id, FILE_CONTENT), res);
  });

  router.delete('/v1/files/:file_id', async (req, res) => {
    res.json(await files.remove(req.principal!.tenant, req.params.file_id as string));
  });

  return router;
}
