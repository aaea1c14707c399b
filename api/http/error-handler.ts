import type { NextFunction, Request, Response } from 'express';
import { ZodError } from 'zod';
import { AppError, errors } from '../../shared/errors/app-error.js';
import { fromZod } from '../../shared/errors/zod-errors.js';
import type { Logger } from '../../shared/logger.js';
import { isRedisConnectionError } from '../../shared/redis/redis-errors.js';

/**
 * The only place errors become HTTP answers. Body-parser failures, zod failures, AppErrors and
 * anything unexpected all leave in OpenAI's error shape; unexpected ones are logged with their
 * stack and answered without it.
 */
export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const appError = toAppError(err);
    if (appError.status >= 500) (req.log ?? log).error({ err }, 'request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [k, v] of Object.entries(appError.headers)) res.setHeader(k, v);
    res.status(appError.status).json(appError.toBody());
  };
}

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof ZodError) return fromZod(err);
  const e = err as { type?: string; status?: number; statusCode?: number; message?: string; limit?: number };
  switch (e?.type) {
    case 'entity.parse.failed':
      return errors.invalidRequest(`Malformed JSON body: ${e.message ?? 'could not parse'}`, null, 'invalid_json');
    case 'entity.too.large':
      return errors.payloadTooLarge(`Request body exceeds the ${e.limit ?? ''} byte limit.`.replace('the  byte', 'the byte'));
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError(415, 'invalid_request_error', 'unsupported_media_type', e.message ?? 'unsupported encoding');
  }
  const status = e?.status ?? e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError(status, 'invalid_request_error', 'invalid_request', e.message ?? 'invalid request');
  }
  // Routes whose service does not name its store (documents, admin) still answer an outage as one.
  if (isRedisConnectionError(err)) return errors.redisUnavailable('data store');
  return errors.internal('The server had an error while processing your request.', err);
}

export { fromZod };

export function notFoundRoute(req: Request, _res: Response, next: NextFunction) {
  next(errors.notFound(`Unknown route ${req.method} ${req.path}`, 'unknown_route'));
}
