import type { ZodError } from 'zod';
import { errors, type AppError } from './app-error.js';

/** A schema failure as the 400 the API answers with (the error middleware and batch line validation share it). */
export function fromZod(err: ZodError): AppError {
  const first = err.issues[0];
  const param = first?.path.length ? first.path.join('.') : null;
  const message = err.issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `'${i.path.join('.')}': ${i.message}` : i.message))
    .join('; ');
  return errors.invalidRequest(message || 'invalid request', param);
}
