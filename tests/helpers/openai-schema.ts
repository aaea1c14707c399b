import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ROOT } from './service.js';

/**
 * Validates our OpenAI-compatible answers against OpenAI's published OpenAPI document
 * (shared/reference beside the checkout). OpenAPI 3.0-style `nullable: true` is rewritten into a
 * JSON Schema type union first; the document's own formats (float, unixtime) are not checked.
 */
const RELATIVE = path.join('shared', 'reference', 'openai-openapi.json');

/**
 * The spec lives in shared/ beside the checkout. A fresh clone of a local checkout (as the
 * first-run check makes) has no shared/ beside it, so its origin's neighbour is tried too.
 */
function findSpec(): string | undefined {
  const candidates = [process.env.OPENAI_OPENAPI_SPEC, path.resolve(ROOT, '..', RELATIVE)];
  const origin = spawnSync('git', ['config', '--get', 'remote.origin.url'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  if (origin && path.isAbsolute(origin)) candidates.push(path.resolve(origin, '..', RELATIVE));
  return candidates.find((c): c is string => !!c && existsSync(c));
}

function rewriteNullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteNullable);
  if (!node || typeof node !== 'object') return node;
  const obj: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) obj[k] = rewriteNullable(v);
  if (obj.nullable === true) {
    delete obj.nullable;
    // An enum must list null too, or it rejects the null that the type now allows.
    if (Array.isArray(obj.enum) && !obj.enum.includes(null)) obj.enum = [...obj.enum, null];
    if (typeof obj.type === 'string') obj.type = [obj.type, 'null'];
    else if (Array.isArray(obj.type)) obj.type = [...obj.type, 'null'];
    else if (obj.$ref || obj.allOf || obj.oneOf || obj.anyOf) return { anyOf: [obj, { type: 'null' }] };
  }
  return obj;
}

let ajv: Ajv2020 | undefined;

export function openAiValidator(schemaName: string): (data: unknown) => string[] {
  if (!ajv) {
    const file = findSpec();
    if (!file) {
      throw new Error(`OpenAI's OpenAPI document was not found (looked beside the checkout for ${RELATIVE}); set OPENAI_OPENAPI_SPEC to its path`);
    }
    const spec = JSON.parse(readFileSync(file, 'utf8')) as { components: unknown };
    ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema({ $id: 'openai', components: rewriteNullable(spec.components) });
  }
  const validate = ajv.getSchema(`openai#/components/schemas/${schemaName}`);
  if (!validate) throw new Error(`no schema ${schemaName} in the OpenAI document`);
  return (data) => {
    const ok = validate(data);
    return ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  };
}
