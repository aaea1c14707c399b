import { z } from 'zod';

/**
 * Request bodies of the public API. Route handlers validate with these, and later the OpenAPI
 * document is generated from them, so the contract lives in one place.
 */
const textInput = z.unknown().transform((input, ctx): string[] => {
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (typeof input === 'string') {
    return input.length === 0 ? fail('must not be an empty string') : [input];
  }
  if (!Array.isArray(input)) return fail('must be a string or an array of strings');
  if (input.length === 0) return fail('must not be an empty array');
  if (input.every((x) => typeof x === 'number') || input.every((x) => Array.isArray(x))) {
    return fail('token-id arrays are not supported; send text');
  }
  for (let i = 0; i < input.length; i++) {
    if (typeof input[i] !== 'string') return fail(`item ${i} must be a string`);
    if (input[i] === '') return fail(`item ${i} must not be an empty string`);
  }
  return input as string[];
});

export const embeddingsRequestSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    input: textInput,
    encoding_format: z.enum(['float', 'base64']).default('float'),
    dimensions: z.number().int().positive().optional(),
    user: z.string().max(256).optional(),
  })
  .strict();

export type EmbeddingsRequest = z.infer<typeof embeddingsRequestSchema>;

/** POST /v1/jobs: one variant per job type, chosen by `type`. */
export const createJobRequestSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('embedding'),
      model: z.string().min(1, 'is required'),
      input: textInput,
      dimensions: z.number().int().positive().optional(),
    })
    .strict(),
]);

export type CreateJobRequest = z.infer<typeof createJobRequestSchema>;
