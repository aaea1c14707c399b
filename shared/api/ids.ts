import { z } from 'zod';

/**
 * The one rule for names that clients choose and that end up in URLs, Redis keys and lookups:
 * tenant ids, collection names (and managed key ids, which are 12 hex characters and so follow it
 * too). 1-64 characters of letters, digits, '.', '_' and '-', starting with a letter or a digit:
 * no '/', ':' or '%' (they would be a path, a key separator or an encoding), no leading '.' or '_'
 * (so no '..' segment and no `__proto__`). Names such as `constructor` do follow the rule; code that
 * looks them up keeps per-name data in a Map or a null-prototype object, never in a plain `{}`.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const ID_RULE = '1-64 characters of [A-Za-z0-9._-], starting with a letter or a digit';

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** A zod string that follows ID_PATTERN; `what` names it in the message ("tenant ids", "collection names"). */
export function idSchema(what: string) {
  return z.string().regex(ID_PATTERN, `${what} are ${ID_RULE}`);
}

/**
 * Keys of document metadata and of search filters: 1-64 characters of [A-Za-z0-9._-], and none of
 * the names that mean something to every JavaScript object. A filter `{"__proto__": …}` would
 * otherwise be dropped silently by the object it is copied into and match everything.
 */
export const METADATA_KEY_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const METADATA_KEY_RULE = `keys are 1-64 characters of [A-Za-z0-9._-] and not ${[...RESERVED_KEYS].join(', ')}`;
export const metadataKeySchema = z
  .string()
  .regex(METADATA_KEY_PATTERN)
  .refine((k) => !RESERVED_KEYS.has(k));

/**
 * A JSON object keyed by metadataKeySchema. zod skips an own `__proto__` key without a word (it
 * cannot copy it into the plain object it builds), so it is looked for in the raw input first.
 */
export function metadataRecord<V extends z.ZodType>(value: V) {
  return z.preprocess((input, ctx) => {
    if (input !== null && typeof input === 'object' && Object.hasOwn(input, '__proto__')) {
      ctx.addIssue({ code: 'custom', message: `'__proto__' is not allowed: ${METADATA_KEY_RULE}`, path: ['__proto__'], input });
    }
    return input;
  }, z.record(metadataKeySchema, value, { error: (iss) => (iss.code === 'invalid_key' ? `'${String(iss.input)}' is not allowed: ${METADATA_KEY_RULE}` : undefined) }));
}
