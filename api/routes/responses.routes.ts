import type { Request, Response } from 'express';
import { createResponseRequestSchema, listInputItemsQuerySchema, retrieveResponseQuerySchema } from '../../shared/api/responses-schemas.js';
import { EventStream } from '../http/sse.js';
import { failure as chatJobFailure } from './chat.routes.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';
import type { ResponseService } from '../responses/response-service.js';
import { errorEvent, type ResponseStreamEvent } from '../../shared/responses/responses-events.js';

/**
 * OpenAI's Responses API (api/responses/): create (whole, streamed, or in the background on the
 * queue), retrieve (or stream a background response from any event on), cancel, delete, and list
 * a response's input items. Streams are server-sent events with `event:` names, as OpenAI's.
 */
export function responsesRoutes(deps: { responses: ResponseService; sseKeepAliveMs?: number }): TableRoutes {
  const router = tableRoutes();
  const { responses } = deps;

  router.post('/v1/responses', async (req, res) => {
    const body = createResponseRequestSchema.parse(req.body);
    const tenant = req.principal!.tenant;
    const requestId = String(req.id);
    const prepared = await responses.prepare(tenant, body, requestId);
    if (body.background) {
      const created = await responses.startBackground(tenant, prepared, requestId);
      if (!body.stream) {
        res.json(created);
        return;
      }
      // Streamed from the job's token stream, like a later GET ?stream=true: closing it leaves the job running.
      await streamEvents(req, res, deps.sseKeepAliveMs, (send, signal) => responses.replay(tenant, created.id, -1, send, signal));
      return;
    }
    if (!body.stream) {
      const { response, outcome } = await responses.run(tenant, prepared, { requestId });
      if (outcome.jobId) res.setHeader('x-job-id', outcome.jobId);
      // A job that failed is an HTTP error, as on chat completions (the stored response says failed too).
      if (outcome.status !== 'completed') throw chatJobFailure(outcome);
      res.json(response);
      return;
    }
    // Closing this stream cancels the job, as on chat completions.
    await streamEvents(req, res, deps.sseKeepAliveMs, (send, signal) => responses.stream(tenant, prepared, send, { requestId, signal }));
  });

  router.get('/v1/responses/:id', async (req, res) => {
    const q = retrieveResponseQuerySchema.parse(req.query);
    const tenant = req.principal!.tenant;
    const id = req.params.id as string;
    if (q.stream !== 'true') {
      res.json((await responses.retrieve(tenant, id)).response);
      return;
    }
    await streamEvents(req, res, deps.sseKeepAliveMs, (send, signal) => responses.replay(tenant, id, q.starting_after ?? -1, send, signal));
  });

  router.delete('/v1/responses/:id', async (req, res) => {
    res.json(await responses.delete(req.principal!.tenant, req.params.id as string));
  });

  router.post('/v1/responses/:id/cancel', async (req, res) => {
    res.json(await responses.cancel(req.principal!.tenant, req.params.id as string));
  });

  router.get('/v1/responses/:id/input_items', async (req, res) => {
    const q = listInputItemsQuerySchema.parse(req.query);
    res.json(await responses.inputItems(req.principal!.tenant, req.params.id as string, q));
  });

  return router;
}

/**
 * Writes a Responses event stream: each event named by its type. A failure before the first event
 * is a plain HTTP error; after it, OpenAI's `error` event ends the stream.
 */
async function streamEvents(
  req: Request,
  res: Response,
  keepAliveMs: number | undefined,
  produce: (send: (e: ResponseStreamEvent) => void, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const stream = new EventStream(res, { keepAliveMs });
  let last = -1;
  const send = (e: ResponseStreamEvent) => {
    if (res.writableEnded || res.destroyed) return;
    last = e.sequence_number;
    stream.send(e, e.type);
  };
  try {
    await produce(send, abort.signal);
  } catch (err) {
    stream.fail(err, req.log, 'responses', (e) => ({ event: 'error', data: errorEvent(last + 1, { code: e.code, message: e.message, param: e.param }) }));
    return;
  }
  if (abort.signal.aborted || res.writableEnded) {
    stream.stop();
    return;
  }
  stream.end({ done: false });
}
