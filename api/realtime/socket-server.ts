import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Redis } from 'ioredis';
import { createAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';
import { jobRoom, type ClientToServerEvents, type ServerToClientEvents, type SubscribeAck } from '../../shared/events/job-events.js';
import { AppError } from '../../shared/errors/app-error.js';
import { isStreamingQueue, queueOfJobId } from '../../shared/jobs/job-catalog.js';
import type { Logger } from '../../shared/logger.js';
import { presentedKey, type ApiKeyAuthenticator, type Principal } from '../auth/api-key.auth.js';
import type { Identity, IdentityService } from '../auth/identity.js';
import { scopeOfJobId } from '../http/route-table.js';
import type { JobService } from '../jobs/job-service.js';
import type { TokenRelay } from './token-relay.js';

interface SocketData {
  principal: Principal;
  /** Jobs this socket follows whose outcome it has not been sent yet (shutdown waits for them). */
  pending: Set<string>;
}

export type JobSocketServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/**
 * Subscriptions, across this instance's websocket clients, still waiting for their job's outcome
 * (what a graceful shutdown waits for). Long-polling clients are not counted: once the listener is
 * closed their next poll cannot connect, so they reconnect to another replica and subscribe again.
 */
export function pendingStreams(io: JobSocketServer): number {
  let n = 0;
  for (const socket of io.of('/').sockets.values()) {
    if (socket.conn.transport.name === 'websocket') n += socket.data.pending?.size ?? 0;
  }
  return n;
}

/**
 * Socket.IO on the API's port. Clients authenticate in the handshake (`auth: {token}` or the same
 * headers as REST), then subscribe to job ids of their own tenant. Events come from workers via
 * the Redis emitter; the Redis adapter makes them reach the replica that holds the socket.
 */
export function createSocketServer(deps: {
  httpServer: HttpServer | HttpsServer;
  pubClient: Redis;
  subClient: Redis;
  auth: ApiKeyAuthenticator;
  jobs: JobService;
  relay: TokenRelay;
  log: Logger;
  corsOrigins?: readonly string[];
  /** Handshakes then accept what REST accepts (API keys and JWTs), not only bootstrap keys. */
  identity?: IdentityService;
}): Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData> {
  const io = new Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>(deps.httpServer, {
    adapter: createAdapter(deps.pubClient, deps.subClient),
    cors: deps.corsOrigins?.length ? { origin: [...deps.corsOrigins] } : undefined,
    maxHttpBufferSize: 1e6,
  });

  io.use((socket, next) => {
    const token = typeof socket.handshake.auth?.token === 'string' ? socket.handshake.auth.token : presentedKey(socket.handshake.headers);
    if (!token) return next(Object.assign(new Error('missing API key'), { data: { code: 401 } }));
    const verified = deps.identity ? deps.identity.fromToken(token) : Promise.resolve(deps.auth.authenticate(token));
    // Why a credential was refused is not the client's to learn here (REST answers say it).
    const refuse = () => next(Object.assign(new Error('invalid API key'), { data: { code: 401 } }));
    verified.then((principal) => {
      if (!principal) return refuse();
      socket.data.principal = principal;
      next();
    }, refuse);
  });

  io.on('connection', (socket) => {
    const log = deps.log.child({ socket: socket.id, tenant: socket.data.principal.tenant });
    /** Token streams this socket follows, by job id. */
    const follows = new Map<string, () => void>();
    const pending = (socket.data.pending = new Set<string>());
    /**
     * Jobs whose outcome this socket was sent. An outcome reaches a socket once: the socket leaves
     * the job's room as the first one goes out (synchronously, so a second broadcast, e.g. from a
     * retry after a worker died between announcing and recording a result, finds it gone), and the
     * late-subscriber path below does not repeat an outcome the room already delivered.
     */
    const ended = new Set<string>();
    socket.onAnyOutgoing((event: string, data: { id?: unknown } | undefined) => {
      if ((event !== 'completed' && event !== 'failed') || typeof data?.id !== 'string') return;
      ended.add(data.id);
      pending.delete(data.id);
      void socket.leave(jobRoom(data.id));
    });
    socket.on('disconnect', () => {
      for (const unfollow of follows.values()) unfollow();
      follows.clear();
      pending.clear();
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
        // The scope GET /v1/jobs/:id needs for this job (api/http/route-table.ts): events carry its result too.
        const needed = scopeOfJobId(jobId);
        const scopes = (socket.data.principal as Partial<Identity>).scopes;
        if (scopes && (!needed || !scopes.includes(needed))) {
          return reply({ ok: false, error: { message: `This key does not have the '${needed ?? 'unknown'}' scope this job needs.`, code: 'insufficient_scope' } });
        }
        if (isStreamingQueue(queueOfJobId(jobId))) {
          // Chat jobs: tokens, then how the job ended, from the resumable token stream.
          follows.get(jobId)?.();
          const view = await deps.jobs.get(tenant, jobId);
          // A chat subscription replays its stream from `from`, outcome included.
          ended.delete(jobId);
          pending.add(jobId);
          const unfollow = await deps.relay.follow(jobId, from, (entry) => {
            if (entry.kind === 'token') {
              const { kind: _kind, i, ...token } = entry;
              socket.emit('token', { id: jobId, index: i, ...token });
            }
            else if (entry.status === 'completed') socket.emit('completed', { id: jobId, status: 'completed', result: entry.result });
            else socket.emit('failed', { id: jobId, status: entry.status, error: entry.error ?? { message: 'failed', code: 'job_failed' } });
          });
          follows.set(jobId, unfollow);
          return reply({ ok: true, id: jobId, status: view.status });
        }
        // Join before reading the state: an event published in between then reaches us.
        await socket.join(jobRoom(jobId));
        if (!ended.has(jobId)) pending.add(jobId);
        const view = await deps.jobs.get(tenant, jobId);
        reply({ ok: true, id: jobId, status: view.status });
        const finished = view.status === 'completed' || view.status === 'failed' || view.status === 'cancelled';
        if (finished) {
          // Leave first: from here no broadcast reaches this socket, and `ended` says whether one already did.
          void socket.leave(jobRoom(jobId));
          pending.delete(jobId);
        }
        // A late subscriber still learns how the job ended (once).
        if (!finished || ended.has(jobId)) return;
        if (view.status === 'completed') socket.emit('completed', { id: jobId, status: 'completed', result: view.result });
        else socket.emit('failed', { id: jobId, status: view.status as 'failed' | 'cancelled', error: view.error ?? { message: 'failed', code: 'job_failed' } });
      } catch (err) {
        pending.delete(jobId);
        log.warn({ err, jobId }, 'subscribe failed');
        const e = err instanceof AppError ? err : undefined;
        reply({ ok: false, error: { message: e?.message ?? 'subscribe failed', code: e?.code ?? 'internal_error' } });
      }
    });
    socket.on('unsubscribe', async (jobId, ack) => {
      if (typeof jobId === 'string') {
        follows.get(jobId)?.();
        follows.delete(jobId);
        pending.delete(jobId);
        ended.delete(jobId);
        await socket.leave(jobRoom(jobId));
      }
      if (typeof ack === 'function') ack({ ok: true });
    });
  });
  return io;
}
