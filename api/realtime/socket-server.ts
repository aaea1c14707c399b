import type { Server as HttpServer } from 'node:http';
import type { Redis } from 'ioredis';
import { createAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';
import { jobRoom, type ClientToServerEvents, type ServerToClientEvents, type SubscribeAck } from '../../shared/events/job-events.js';
import { AppError } from '../../shared/errors/app-error.js';
import { queueOfJobId } from '../../shared/jobs/job-catalog.js';
import type { Logger } from '../../shared/logger.js';
import { presentedKey, type ApiKeyAuthenticator, type Principal } from '../auth/api-key.auth.js';
import type { JobService } from '../jobs/job-service.js';
import type { TokenRelay } from './token-relay.js';

interface SocketData {
  principal: Principal;
}

/**
 * Socket.IO on the API's port. Clients authenticate in the handshake (`auth: {token}` or the same
 * headers as REST), then subscribe to job ids of their own tenant. Events come from workers via
 * the Redis emitter; the Redis adapter makes them reach the replica that holds the socket.
 */
export function createSocketServer(deps: {
  httpServer: HttpServer;
  pubClient: Redis;
  subClient: Redis;
  auth: ApiKeyAuthenticator;
  jobs: JobService;
  relay: TokenRelay;
  log: Logger;
  corsOrigins?: string[];
}): Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData> {
  const io = new Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>(deps.httpServer, {
    adapter: createAdapter(deps.pubClient, deps.subClient),
    cors: deps.corsOrigins?.length ? { origin: deps.corsOrigins } : undefined,
    maxHttpBufferSize: 1e6,
  });

  io.use((socket, next) => {
    const token = typeof socket.handshake.auth?.token === 'string' ? socket.handshake.auth.token : presentedKey(socket.handshake.headers);
    const principal = token ? deps.auth.authenticate(token) : undefined;
    if (!principal) return next(Object.assign(new Error(token ? 'invalid API key' : 'missing API key'), { data: { code: 401 } }));
    socket.data.principal = principal;
    next();
  });

  io.on('connection', (socket) => {
    const log = deps.log.child({ socket: socket.id, tenant: socket.data.principal.tenant });
    /** Token streams this socket follows, by job id. */
    const follows = new Map<string, () => void>();
    socket.on('disconnect', () => {
      for (const unfollow of follows.values()) unfollow();
      follows.clear();
    });
    socket.on('subscribe', async (req, ack) => {
      const reply = (r: SubscribeAck) => (typeof ack === 'function' ? ack(r) : undefined);
      const jobId = typeof req === 'string' ? req : req?.id;
      const from = typeof req === 'object' && req && Number.isInteger(req.from) && (req.from ?? 0) >= 0 ? (req.from as number) : 0;
      if (typeof jobId !== 'string' || jobId.length === 0 || jobId.length > 300) {
        return reply({ ok: false, error: { message: 'subscribe needs a job id', code: 'invalid_request' } });
      }
      try {
        const tenant = socket.data.principal.tenant;
        if ((await deps.jobs.tenantOf(jobId)) !== tenant) {
          return reply({ ok: false, error: { message: `No job with id '${jobId}'.`, code: 'job_not_found' } });
        }
        if (queueOfJobId(jobId)?.startsWith('chat.')) {
          // Chat jobs: tokens, then how the job ended, from the resumable token stream.
          follows.get(jobId)?.();
          const view = await deps.jobs.get(tenant, jobId);
          const unfollow = await deps.relay.follow(jobId, from, (entry) => {
            if (entry.kind === 'token') socket.emit('token', { id: jobId, index: entry.i, text: entry.text });
            else if (entry.status === 'completed') socket.emit('completed', { id: jobId, status: 'completed', result: entry.result });
            else socket.emit('failed', { id: jobId, status: entry.status, error: entry.error ?? { message: 'failed', code: 'job_failed' } });
          });
          follows.set(jobId, unfollow);
          return reply({ ok: true, id: jobId, status: view.status });
        }
        // Join before reading the state: an event published in between then reaches us.
        await socket.join(jobRoom(jobId));
        const view = await deps.jobs.get(tenant, jobId);
        reply({ ok: true, id: jobId, status: view.status });
        // A late subscriber still learns how the job ended.
        if (view.status === 'completed') socket.emit('completed', { id: jobId, status: 'completed', result: view.result });
        else if (view.status === 'failed' || view.status === 'cancelled') {
          socket.emit('failed', { id: jobId, status: view.status, error: view.error ?? { message: 'failed', code: 'job_failed' } });
        }
      } catch (err) {
        log.warn({ err, jobId }, 'subscribe failed');
        const e = err instanceof AppError ? err : undefined;
        reply({ ok: false, error: { message: e?.message ?? 'subscribe failed', code: e?.code ?? 'internal_error' } });
      }
    });
    socket.on('unsubscribe', async (jobId, ack) => {
      if (typeof jobId === 'string') {
        follows.get(jobId)?.();
        follows.delete(jobId);
        await socket.leave(jobRoom(jobId));
      }
      if (typeof ack === 'function') ack({ ok: true });
    });
  });
  return io;
}
