import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';

/**
 * Connection bookkeeping for a graceful stop of an HTTP server. Node's own `closeIdleConnections`
 * and `closeAllConnections` destroy sockets, which drops a response still in the socket's write
 * buffer (a 5 MB embeddings answer that has "finished" but not left the machine yet); here
 * connections are ended instead, after their last response, so every answer arrives whole.
 * Socket.IO's connections (websockets, long-polling) are left to Socket.IO.
 */
export class HttpDrain {
  /** Requests in progress, by connection. */
  private readonly connections = new Map<Socket, number>();
  /** Connections Socket.IO holds (websockets, long-polling): Socket.IO closes them itself. */
  private readonly socketIo = new WeakSet<Socket>();
  private readonly responses = new Set<ServerResponse>();
  private draining = false;

  constructor(server: Server) {
    // Over HTTPS a request's socket is the TLS socket, not the TCP one under it.
    server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.connections.set(socket, 0);
      socket.once('close', () => this.connections.delete(socket));
    });
    server.on('upgrade', (_req: IncomingMessage, socket: Socket) => this.socketIo.add(socket));
  }

  /**
   * Call once Socket.IO is attached (it takes over the server's request listeners): its
   * long-polling requests are not counted as in flight (a poll waits up to pingInterval for data),
   * and their connections are left for Socket.IO to close.
   */
  watchSocketIo(server: Server, prefix = '/socket.io/'): void {
    server.prependListener('request', (req: IncomingMessage) => {
      if (req.url?.startsWith(prefix)) this.socketIo.add(req.socket);
    });
  }

  /** Call first thing for every request. */
  track(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.connections.set(socket, (this.connections.get(socket) ?? 0) + 1);
    this.responses.add(res);
    if (this.draining) res.shouldKeepAlive = false;
    res.once('close', () => {
      this.responses.delete(res);
      const left = (this.connections.get(socket) ?? 1) - 1;
      if (this.connections.has(socket)) this.connections.set(socket, left);
      if (this.draining && left === 0 && !this.socketIo.has(socket)) socket.end();
    });
  }

  /** Requests still being answered (SSE streams included). */
  get inFlight(): number {
    return this.responses.size;
  }

  /** From now on every connection closes after its last answer; idle keep-alive ones close now. */
  start(): void {
    this.draining = true;
    for (const res of this.responses) if (!res.headersSent) res.shouldKeepAlive = false;
    for (const [socket, active] of this.connections) if (active === 0 && !this.socketIo.has(socket)) socket.end();
  }

  /** Whatever is still open goes now (Socket.IO's connections included). */
  destroyAll(): void {
    for (const socket of this.connections.keys()) socket.destroy();
  }
}
