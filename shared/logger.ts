import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Fixed redaction paths: keys must never reach a log line, whichever way they were sent.
 * `censor` keeps the field so a reader sees that a credential was present.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.apiKey',
  '*.api_key',
  '*.password',
  '*.secret',
  '*.token',
  'config.API_KEYS',
  'config.ADMIN_API_KEY',
];

export function createLogger(opts: { level: string; name: string; destination?: NodeJS.WritableStream }): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid, svc: opts.name },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
}
