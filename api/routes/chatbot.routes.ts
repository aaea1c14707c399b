import { randomUUID } from 'node:crypto';
import { chatbotRequestSchema } from '../../shared/api/request-schemas.js';
import type { ChatbotConfig } from '../../shared/chatbot/chatbot-config.js';
import { fixedQueueTarget } from '../../shared/jobs/job-catalog.js';
import { AppError, errors } from '../../shared/errors/app-error.js';
import type { JobService } from '../jobs/job-service.js';
import { runStreamingJob, type StreamedEnd } from '../jobs/stream-runner.js';
import type { TokenRelay } from '../realtime/token-relay.js';
import { EventStream } from '../http/sse.js';
import { WORKER_LOST } from '../../shared/streams/token-stream.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * POST /v1/chatbot: one turn of the tenant's chatbot, run as a job like everything else. Whole
 * answer as JSON, or with `stream: true` server-sent events: `{"type":"token","text"}` per piece,
 * then `{"type":"result", ...}` and `[DONE]`. Socket.IO clients can follow the job named in the
 * `x-job-id` header (token events, then completed).
 */
export function chatbotRoutes(deps: { jobs: JobService; chatbot: { config: ChatbotConfig; relay: TokenRelay } | undefined; sseKeepAliveMs?: number }): TableRoutes {
  const router = tableRoutes();
  router.post('/v1/chatbot', async (req, res) => {
    const body = chatbotRequestSchema.parse(req.body);
    const tenant = req.principal!.tenant;
    const chatbot = deps.chatbot;
    // An own property only: a tenant called 'constructor' must not find Object's.
    if (!chatbot || !Object.hasOwn(chatbot.config.tenants, tenant)) throw errors.notFound('No chatbot is configured for your tenant.', 'chatbot_not_configured');
    const sessionId = body.session_id ?? randomUUID();
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let jobId = '';
    // Keep-alives only for `stream: true`: a JSON answer cannot carry them (TCP keep-alive covers it, api/main.ts).
    const stream = new EventStream(res, { keepAliveMs: body.stream ? deps.sseKeepAliveMs : undefined, jobId: () => jobId });
    let end: StreamedEnd<'chatbot'>;
    try {
      ({ end } = await runStreamingJob(
        { jobs: deps.jobs, relay: chatbot.relay },
        'chatbot',
        tenant,
        fixedQueueTarget('chatbot'),
        { user_id: body.user_id, session_id: sessionId, message: body.message, ...(body.collection ? { collection: body.collection } : {}) },
        {
          requestId: String(req.id),
          priority: 1,
          signal: abort.signal,
          onStart: (id) => {
            jobId = id;
          },
          onToken: (text) => {
            if (body.stream) stream.send({ type: 'token', text });
          },
        },
      ));
    } catch (err) {
      stream.fail(err, req.log, 'chatbot');
      return;
    }
    if (abort.signal.aborted || res.writableEnded) {
      stream.stop();
      return;
    }
    if (end.status !== 'completed') {
      const e = failure(end);
      if (!stream.opened) {
        stream.stop();
        if (jobId) res.setHeader('x-job-id', jobId);
        throw e;
      }
      stream.send(e.toBody());
    } else if (body.stream) {
      stream.send({ type: 'result', ...end.result });
    } else {
      stream.stop();
      res.setHeader('x-job-id', jobId);
      res.json(end.result);
      return;
    }
    stream.end();
  });
  return router;
}

function failure(end: Exclude<StreamedEnd, { status: 'completed' }>): AppError {
  const { message, code } = end.error ?? { message: 'failed', code: 'job_failed' };
  if (code === 'cancelled') return errors.conflict(message, 'cancelled');
  // Retryable: another worker (or this one, restarted) answers the same message.
  if (code === WORKER_LOST) return errors.unavailable(message, WORKER_LOST, 1);
  return errors.internal(`The chatbot failed: ${message}`);
}
