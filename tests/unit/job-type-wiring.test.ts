import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { buildOpenApiDocument } from '../../api/http/openapi.js';
import { ROUTES, type RouteSpec, type ScopeResolver } from '../../api/http/route-table.js';
import { jobSubmitters } from '../../api/routes/job-submitters.js';
import { JOB_TYPES, SUBMITTABLE_JOB_TYPES, jobSpec, makeJobId, modelQueueName, type JobType } from '../../shared/jobs/job-catalog.js';
import { createJobRequestSchema, jobRequestComponentId } from '../../shared/jobs/job-requests.js';
import { ROOT } from '../helpers/service.js';

/**
 * What docs/ARCHITECTURE.md ("How to add a job type") promises: everything outside the catalog
 * entry, the handler and its test follows from the catalog, or the build refuses it. These checks
 * read the real wiring (the worker's handler map, the OpenAPI document, the route table's access
 * resolvers, the API's submitters), so a type the catalog gains is checked here without edits.
 */
const sorted = (xs: readonly string[]) => [...xs].sort();
const resolver = (method: string, p: string): ScopeResolver => {
  const r = (ROUTES as readonly RouteSpec[]).find((x) => x.method === method && x.path === p)!;
  assert.ok(r.access.kind === 'tenant' && typeof r.access.scope === 'object', `${method} ${p} resolves its scope`);
  return r.access.scope;
};
const queueOf = (type: JobType) => {
  const q = jobSpec(type).queue;
  return 'name' in q ? q.name : modelQueueName(type, 'some-model');
};

test("the worker's handler map (workers/main.ts) has exactly the catalog's job types, and the compiler holds it to them", { timeout: 180_000 }, () => {
  // The map is built inside the worker's composition root, so its keys are read from its type, as tsc sees it.
  const config = ts.parseJsonConfigFileContent(ts.readConfigFile(path.join(ROOT, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, ROOT);
  const file = path.join(ROOT, 'workers/main.ts');
  const program = ts.createProgram([file], { ...config.options, noEmit: true });
  const source = program.getSourceFile(file)!;
  const maps: { satisfies: string; keys: string[] }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && node.name.getText(source) === 'handlers' && node.initializer && ts.isSatisfiesExpression(node.initializer)) {
      const keys = program.getTypeChecker().getTypeAtLocation(node.initializer.expression).getProperties().map((p) => p.name);
      maps.push({ satisfies: node.initializer.type.getText(source), keys });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  assert.equal(maps.length, 1, 'workers/main.ts declares one `handlers` map, with `satisfies`');
  assert.equal(maps[0]!.satisfies, 'JobHandlers', 'the map is held to JobHandlers ({ [K in JobType]: JobHandler<K> }), so a missing type does not compile');
  assert.deepEqual(sorted(maps[0]!.keys), sorted(JOB_TYPES));
});

test('every submittable job type is a variant of the /v1/jobs request in the OpenAPI document, and no other type is', () => {
  assert.ok(SUBMITTABLE_JOB_TYPES.length > 0);
  const doc = buildOpenApiDocument();
  const schemas = (doc.components as { schemas: Record<string, any> }).schemas;
  const body = (doc.paths['/v1/jobs'] as any).post.requestBody.content['application/json'].schema;
  assert.equal(body.$ref, '#/components/schemas/CreateJobRequest');
  const union = schemas.CreateJobRequest;
  const refs = SUBMITTABLE_JOB_TYPES.map((t) => `#/components/schemas/${jobRequestComponentId(t)}`);
  assert.deepEqual(sorted(union.oneOf.map((v: { $ref: string }) => v.$ref)), sorted(refs));
  assert.equal(union.discriminator.propertyName, 'type');
  for (const type of SUBMITTABLE_JOB_TYPES) {
    const variant = schemas[jobRequestComponentId(type)];
    assert.deepEqual(variant.properties.type.enum, [type], type);
    assert.ok(variant.required.includes('type'), type);
    assert.ok('timeout' in variant.properties, `${type} has the common timeout`);
    assert.equal(union.discriminator.mapping[type], `#/components/schemas/${jobRequestComponentId(type)}`);
  }
  // The route validates with the same union: a type without `submit` is refused by the schema too.
  for (const type of JOB_TYPES.filter((t) => !SUBMITTABLE_JOB_TYPES.includes(t as never))) {
    assert.ok(!(type in union.discriminator.mapping), `${type} is internal`);
    assert.equal(createJobRequestSchema.safeParse({ type, model: 'm' }).success, false, type);
  }
});

test("the access resolvers know every job type's scope: submitting a submittable one, reading and cancelling any", () => {
  const submit = resolver('POST', '/v1/jobs');
  for (const type of SUBMITTABLE_JOB_TYPES) {
    assert.ok(jobSpec(type).scope, `${type} can be submitted, so its catalog entry names a scope`);
    assert.equal(submit.resolve({ params: {}, body: { type } }), jobSpec(type).scope, type);
  }
  for (const type of JOB_TYPES.filter((t) => !SUBMITTABLE_JOB_TYPES.includes(t as never))) {
    assert.throws(() => submit.resolve({ params: {}, body: { type } }), /'type' must be one of/, `${type} cannot be submitted`);
  }
  for (const method of ['GET', 'DELETE']) {
    const byId = resolver(method, '/v1/jobs/:id');
    for (const type of JOB_TYPES) {
      const params = { id: makeJobId(queueOf(type), '00000000-0000-4000-8000-000000000000') };
      const scope = jobSpec(type).scope;
      if (scope) assert.equal(byId.resolve({ params, body: undefined }), scope, `${method} ${type}`);
      // A type with `scope: null` (webhook deliveries) is not reachable here: answered like a missing job.
      else assert.throws(() => byId.resolve({ params, body: undefined }), /No job with id/, `${method} ${type}`);
    }
  }
  // The access matrix sends each resolver's cases: together they cover every scope a job type needs.
  const needed = new Set(JOB_TYPES.flatMap((t) => jobSpec(t).scope ?? []));
  assert.deepEqual(new Set(resolver('GET', '/v1/jobs/:id').cases.map((c) => c.scope)), needed);
  assert.deepEqual(new Set(submit.cases.map((c) => c.scope)), new Set(SUBMITTABLE_JOB_TYPES.map((t) => jobSpec(t).scope)));
});

test('the API has a submitter for every submittable type', () => {
  // Built with no services: only its keys are read, nothing is called.
  assert.deepEqual(sorted(Object.keys(jobSubmitters({} as never))), sorted(SUBMITTABLE_JOB_TYPES));
});
