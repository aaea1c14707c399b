import { randomUUID } from 'node:crypto';
import { chatbotRequestSchema } from '../../shared/api/request-schemas.js';
import { CHATBOT_MAX_QUEUE, CHATBOT_QUEUE, type ChatbotConfig } from '../../shared/chatbot/chatbot-config.js';
import { AppError, errors } from '../../shared/errors/app-error.js';
import type { JobService } from '../jobs/job-service.js';
import { runStreamingJob, type StreamedEnd } from '../jobs/stream-runner.js';
import type { TokenRelay } from '../realtime/token-relay.js';
import { endEventStream, openEventStream, sendEvent } from '../http/sse.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/**
 * POST /v1/chatbot: one turn of the tenant's chatbot, run as a job like everything else. Whole
 * answer as JSON, or with `stream: true` server-sent events: `{"type":"token","text"}` per piece,
 * then `{"type":"result", ...}` and `[DONE]`. Socket.IO clients can follow the job named in the
 * `x-job-id` header (token events, then completed).
 */
export function chatbotRoutes(deps: { jobs: JobService; chatbot: { config: ChatbotConfig; relay: TokenRelay } | undefined }): TableRoutes {
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
    const { end } = await runStreamingJob(
      { jobs: deps.jobs, relay: chatbot.relay },
      'chatbot',
      tenant,
      { id: 'chatbot', queueName: CHATBOT_QUEUE, max_queue: CHATBOT_MAX_QUEUE },
      { user_id: body.user_id, session_id: sessionId, message: body.message, ...(body.collection ? { collection: body.collection } : {}) },
      {
        requestId: String(req.id),
        priority: 1,
        signal: abort.signal,
        onStart: (id) => {
          jobId = id;
        },
        onToken: (text) => {
          if (!body.stream) return;
          openEventStream(res, jobId);
          sendEvent(res, { type: 'token', text });
        },
      },
    );
    if (abort.signal.aborted || res.writableEnded) return;
    if (end.status !== 'completed') {
      const e = failure(end);
      if (!res.headersSent) throw e;
      sendEvent(res, e.toBody());
    } else if (body.stream) {
      openEventStream(res, jobId);
      sendEvent(res, { type: 'result', ...(end.result as object) });
    } else {
      res.setHeader('x-job-id', jobId);
      res.json(end.result);
      return;
    }
    endEventStream(res);
  });
  return router;
}

function failure(end: StreamedEnd): AppError {
  const { message, code } = end.error ?? { message: 'failed', code: 'job_failed' };
  return code === 'cancelled' ? errors.conflict(message, 'cancelled') : errors.internal(`The chatbot failed: ${message}`);
}
