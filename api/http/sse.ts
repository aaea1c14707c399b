import type { Response } from 'express';

/**
 * Server-sent events as the streaming endpoints write them. The stream opens with the first event,
 * not before: a job that fails before producing anything still gets a plain HTTP error status.
 */
export function openEventStream(res: Response, jobId: string): void {
  if (res.headersSent) return;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-job-id': jobId });
}

export function sendEvent(res: Response, data: unknown): void {
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

/** OpenAI's end-of-stream marker, then the end of the response. */
export function endEventStream(res: Response): void {
  res.write('data: [DONE]\n\n');
  res.end();
}
