/**
 * One error taxonomy for the whole service. Every HTTP error answer is built from an AppError by
 * the single error middleware, in OpenAI's shape: {error:{message, type, code, param}}.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable'
  | 'timeout_error';

export interface AppErrorBody {
  message: string;
  type: ErrorType;
  code: string | null;
  param: string | null;
}

export class AppError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly code: string;
  readonly param: string | null;
  /** Extra response headers, e.g. Retry-After on 429. */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    type: ErrorType,
    code: string,
    message: string,
    opts: { param?: string | null; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }

  toBody(): { error: AppErrorBody } {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param } };
  }
}

export const errors = {
  invalidRequest: (message: string, param: string | null = null, code = 'invalid_request') =>
    new AppError(400, 'invalid_request_error', code, message, { param }),
  unprocessable: (message: string, param: string | null = null, code = 'unprocessable_entity') =>
    new AppError(422, 'invalid_request_error', code, message, { param }),
  unauthorized: (message: string, code = 'invalid_api_key') => new AppError(401, 'authentication_error', code, message),
  forbidden: (message: string, code = 'forbidden') => new AppError(403, 'permission_error', code, message),
  notFound: (message: string, code = 'not_found', param: string | null = null) =>
    new AppError(404, 'not_found_error', code, message, { param }),
  modelNotFound: (model: string) =>
    new AppError(404, 'invalid_request_error', 'model_not_found', `The model '${model}' does not exist or you do not have access to it.`, {
      param: 'model',
    }),
  conflict: (message: string, code = 'conflict') => new AppError(409, 'conflict_error', code, message),
  payloadTooLarge: (message: string) => new AppError(413, 'invalid_request_error', 'payload_too_large', message),
  tooManyRequests: (message: string, retryAfterSeconds: number, code = 'queue_full') =>
    new AppError(429, 'rate_limit_error', code, message, { headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) } }),
  unavailable: (message: string, code = 'service_unavailable', retryAfterSeconds = 1) =>
    new AppError(503, 'service_unavailable', code, message, { headers: { 'Retry-After': String(retryAfterSeconds) } }),
  /** Redis could not be reached (shared/redis/redis-errors.ts): unavailable for a while, not broken. */
  redisUnavailable: (store = 'job store') => errors.unavailable(`The ${store} (Redis) is unreachable; retry shortly.`, 'redis_unavailable', 2),
  timeout: (message: string) => new AppError(504, 'timeout_error', 'timeout', message),
  internal: (message = 'internal error', cause?: unknown) => new AppError(500, 'server_error', 'internal_error', message, { cause }),
};
