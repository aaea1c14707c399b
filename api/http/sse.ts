import type { Response } from 'express';
import type { Logger } from '../../shared/logger.js';
import type { AppError } from '../../shared/errors/app-error.js';
import { toAppError } from './error-handler.js';

/**
 * Server-sent events as the streaming endpoints write them. The stream opens with its first
 * event, not before: a job that fails quickly, before producing anything, still gets a plain HTTP
 * error status. But a stream never stays silent for longer than `keepAliveMs`: proxies and load
 * balancers close connections that are idle for a minute or so (nginx's proxy_read_timeout is 60
 * s), and a client cannot tell a queued job from a dead server. So after `keepAliveMs` without a
 * write, the stream opens if it has not yet (200, headers) and gets a `: keep-alive` comment,
 * which SSE clients ignore; a job that fails after that is reported as an error event.
 */
export class EventStream {
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: Response,
    private readonly opts: { keepAliveMs?: number; jobId?: () => string } = {},
  ) {
    if (opts.keepAliveMs) {
      this.timer = setTimeout(() => this.keepAlive(), opts.keepAliveMs);
      res.once('close', () => this.stop());
    }
  }

  /** Whether the status line and headers have gone out (a failure must then be sent as an event). */
  get opened(): boolean {
    return this.res.headersSent;
  }

  open(): void {
    if (this.res.headersSent) return;
    const jobId = this.opts.jobId?.();
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx would otherwise buffer the stream (and its keep-alive comments) into silence.
      'x-accel-buffering': 'no',
      ...(jobId ? { 'x-job-id': jobId } : {}),
    });
  }

  /** One event; with `event`, a named one (`event:` line), as the Responses API's typed events are. */
  send(data: unknown, event?: string): void {
    this.open();
    this.res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
    this.timer?.refresh();
  }

  /**
   * The end of the response, after OpenAI's end-of-stream marker `data: [DONE]` unless `done` is
   * false (Responses streams end with their terminal event, not the marker).
   */
  end(opts: { done?: boolean } = {}): void {
    this.stop();
    this.open();
    if (opts.done ?? true) this.res.write('data: [DONE]\n\n');
    this.res.end();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /**
   * A failure while streaming: rethrown while nothing has gone out (the error middleware then
   * answers with a plain status), otherwise sent as an error event that ends the stream (in
   * OpenAI's chat shape, or as `format` makes it).
   */
  fail(err: unknown, log: Logger, what: string, format?: (e: AppError) => { event: string; data: unknown }): void {
    if (!this.opened) {
      this.stop();
      throw err;
    }
    const e = toAppError(err);
    if (e.status >= 500) log.error({ err }, `${what} stream failed after it opened`);
    if (format) {
      // A stream with typed events reports the error as one of its own events.
      const { event, data } = format(e);
      this.send(data, event);
      this.end({ done: false });
      return;
    }
    this.send(e.toBody());
    this.end();
  }

  private keepAlive(): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    this.open();
    this.res.write(': keep-alive\n\n');
    this.timer?.refresh();
  }
}
