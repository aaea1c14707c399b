import { pipeline } from 'node:stream/promises';
import { FILE_CONTENT, fileView } from '../../shared/files/file-store.js';
import { receiveCheckedUpload } from '../documents/upload.js';
import type { FileService } from '../files/file-service.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/** OpenAI's Files API: upload (multipart, streamed), list, retrieve, content, delete. */
export function filesRoutes(deps: { files: FileService }): TableRoutes {
  const router = tableRoutes();
  const { files } = deps;

  router.post('/v1/files', async (req, res) => {
    let inspector: ReturnType<FileService['inspector']> | undefined;
    const upload = await receiveCheckedUpload(
      req,
      res,
      {
        incomingDir: files.incomingDir,
        maxBytes: files.maxBytes,
        maxBytesSetting: 'FILES_MAX_BYTES',
        expects: 'POST /v1/files takes multipart/form-data with a `file` part and a `purpose` field.',
        inspect: (fieldsSoFar) => (inspector = files.inspector(fieldsSoFar)),
      },
      // Too many lines is found while reading, like too many bytes: the rest is not read either.
      (err) => err.status === 413 || err.code === 'too_many_lines',
    );
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
