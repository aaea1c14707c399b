import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import {
  composeProblems,
  crossReferenceProblems,
  kustomizationProblems,
  loadK8sDir,
  nginxProblems,
  schemaProblems,
  type K8sDoc,
} from '../helpers/deploy-checks.js';
import { ROOT } from '../helpers/service.js';

/**
 * Offline validation of everything under deploy/ and of docker-compose.yml with its Prometheus
 * and Grafana files. Each check is also shown a broken copy, so a check that passes everything
 * is caught.
 */
const K8S_DIR = path.join(ROOT, 'deploy', 'k8s');
const NAMESPACE = 'queue-inference';
const read = (...p: string[]) => readFileSync(path.join(ROOT, ...p), 'utf8');
const clone = <T>(x: T): T => structuredClone(x);

describe('Kubernetes manifests (deploy/k8s)', () => {
  const { docs, kustomization, problems: loadProblems } = loadK8sDir(K8S_DIR);
  const named = (kind: string, name: string) => {
    const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(d, `${kind}/${name} exists`);
    return d;
  };
  const allProblems = (set: K8sDoc[]) => [...set.flatMap(schemaProblems), ...crossReferenceProblems(set, { namespace: NAMESPACE })];

  test('parse, and the kustomization lists every manifest', () => {
    assert.deepEqual(loadProblems, []);
    assert.deepEqual(kustomizationProblems(kustomization, readdirSync(K8S_DIR)), []);
  });

  test('has the objects the service needs', () => {
    const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    for (const k of [
      `Namespace/${NAMESPACE}`,
      'Secret/queue-inference-keys',
      'ConfigMap/queue-inference-models',
      'Deployment/api',
      'Service/api',
      'HorizontalPodAutoscaler/api',
      'PodDisruptionBudget/api',
      'Deployment/worker-use-lite',
      'ScaledObject/worker-use-lite',
      'PodDisruptionBudget/worker-use-lite',
      'StatefulSet/redis',
      'Service/redis',
    ]) {
      assert.ok(kinds.includes(k), `${k} is defined (have: ${kinds.join(', ')})`);
    }
    const secret = named('Secret', 'queue-inference-keys');
    assert.deepEqual(Object.keys(secret.stringData ?? {}).sort(), ['ADMIN_API_KEY', 'API_KEYS']);
  });

  test('every object is valid against its Kubernetes / KEDA schema', () => {
    assert.deepEqual(docs.flatMap(schemaProblems), []);
  });

  test('references between objects hold (selectors, ports, probes, secrets, KEDA wait list)', () => {
    assert.deepEqual(crossReferenceProblems(docs, { namespace: NAMESPACE }), []);
    const so = named('ScaledObject', 'worker-use-lite');
    assert.equal(so.spec.triggers[0].metadata.listName, 'qi:embedding.use-lite:wait');
  });

  test('the schema check rejects broken objects', () => {
    const withDoc = (kind: string, name: string, mutate: (d: any) => void) => docs.map((d) => (d.kind === kind && d.metadata.name === name ? (() => { const c = clone(d); mutate(c); return c; })() : d));
    const cases: [string, K8sDoc[], RegExp][] = [
      ['containerPort as a string', withDoc('Deployment', 'api', (d) => (d.spec.template.spec.containers[0].ports[0].containerPort = 'http')), /containerPort must be integer/],
      ['Deployment without selector', withDoc('Deployment', 'api', (d) => delete d.spec.selector), /required property '?selector/],
      ['ScaledObject without scaleTargetRef', withDoc('ScaledObject', 'worker-use-lite', (d) => delete d.spec.scaleTargetRef), /scaleTargetRef/],
      ['HPA with a bad target type', withDoc('HorizontalPodAutoscaler', 'api', (d) => (d.spec.metrics[0].resource.target.averageUtilization = 'seventy')), /must be integer/],
      ['unknown kind', [...docs, { apiVersion: 'v1', kind: 'Pood', metadata: { name: 'x', namespace: NAMESPACE }, file: 'x.yaml' }], /no schema for v1\/Pood/],
    ];
    for (const [what, set, expected] of cases) {
      const found = set.flatMap(schemaProblems);
      assert.ok(found.some((p) => expected.test(p)), `${what}: expected a problem matching ${expected}, got ${JSON.stringify(found)}`);
    }
  });

  test('the cross-reference check rejects broken wiring', () => {
    const withDoc = (kind: string, name: string, mutate: (d: any) => void) => docs.map((d) => (d.kind === kind && d.metadata.name === name ? (() => { const c = clone(d); mutate(c); return c; })() : d));
    const cases: [string, K8sDoc[], RegExp][] = [
      ['KEDA watching the wrong list', withDoc('ScaledObject', 'worker-use-lite', (d) => (d.spec.triggers[0].metadata.listName = 'qi:embedding.use-lite')), /not the BullMQ wait list/],
      ['KEDA listLength as a number', withDoc('ScaledObject', 'worker-use-lite', (d) => (d.spec.triggers[0].metadata.listLength = 50)), /metadata.listLength must be a string/],
      ['KEDA scaling to zero', withDoc('ScaledObject', 'worker-use-lite', (d) => (d.spec.minReplicaCount = 0)), /minReplicaCount/],
      ['Service selecting nothing', withDoc('Service', 'api', (d) => (d.spec.selector['app.kubernetes.io/component'] = 'apii')), /selector matches no pod template/],
      ['API ready on /healthz', withDoc('Deployment', 'api', (d) => (d.spec.template.spec.containers[0].readinessProbe.httpGet.path = '/healthz')), /readinessProbe must be GET \/readyz/],
      ['worker probed on the wrong port', withDoc('Deployment', 'worker-use-lite', (d) => (d.spec.template.spec.containers[0].livenessProbe.httpGet.port = 3000)), /port 3000 is not a port/],
      ['a secret key that does not exist', withDoc('Deployment', 'api', (d) => (d.spec.template.spec.containers[0].env.find((e: any) => e.name === 'ADMIN_API_KEY').valueFrom.secretKeyRef.key = 'ADMIN')), /has no key ADMIN/],
      ['Redis without AOF', withDoc('StatefulSet', 'redis', (d) => (d.spec.template.spec.containers[0].args = ['redis-server'])), /appendonly/],
      ['models config that does not parse', withDoc('ConfigMap', 'queue-inference-models', (d) => (d.data['models.json'] = '{"models":[{"id":"x"}]}')), /not a valid models config/],
    ];
    for (const [what, set, expected] of cases) {
      const found = allProblems(set);
      assert.ok(found.some((p) => expected.test(p)), `${what}: expected a problem matching ${expected}, got ${JSON.stringify(found)}`);
    }
  });
});

describe('docker-compose.yml, Prometheus and Grafana files', () => {
  const compose = parse(read('docker-compose.yml'));

  test('docker-compose.yml is valid against the compose-spec schema and its references exist', () => {
    assert.deepEqual(composeProblems(compose, ROOT), []);
    for (const s of ['redis', 'api', 'worker', 'prometheus', 'grafana']) assert.ok(compose.services[s], `service ${s}`);
  });

  test('the compose check rejects broken files', () => {
    const cases: [string, (c: any) => void, RegExp][] = [
      ['an unknown healthcheck field', (c) => (c.services.redis.healthcheck.tset = ['CMD', 'true']), /compose schema: \/services\/redis\/healthcheck .*additional/],
      ['an undeclared named volume', (c) => delete c.volumes['grafana-data'], /volume grafana-data is not declared/],
      ['a missing bind-mount source', (c) => (c.services.prometheus.volumes[0] = './dashboards/prometheus/missing.yml:/etc/prometheus/prometheus.yml:ro'), /bind mount source .* does not exist/],
      ['depends_on an unknown service', (c) => (c.services.grafana.depends_on = { prometheuss: { condition: 'service_healthy' } }), /depends_on prometheuss/],
      ['a service with neither image nor build', (c) => delete c.services.grafana.image, /neither image nor build/],
      ['two services on one host port', (c) => (c.services.grafana.ports = ['3000:3000']), /host port 3000 is already published/],
    ];
    for (const [what, mutate, expected] of cases) {
      const broken = clone(compose);
      mutate(broken);
      const found = composeProblems(broken, ROOT);
      assert.ok(found.some((p) => expected.test(p)), `${what}: expected a problem matching ${expected}, got ${JSON.stringify(found)}`);
    }
  });

  test('Prometheus scrapes the API with the admin key and every worker on :9464', () => {
    const prom = parse(read('dashboards', 'prometheus', 'prometheus.yml'));
    const job = (name: string) => prom.scrape_configs.find((j: any) => j.job_name === name);
    const api = job('api');
    assert.equal(api.metrics_path, '/metrics');
    assert.equal(api.authorization.type, 'Bearer');
    // The compose service writes the admin key to exactly that file before starting Prometheus.
    const promCommand = [compose.services.prometheus.command].flat().join(' ');
    assert.ok(promCommand.includes(api.authorization.credentials_file), 'compose writes the credentials file Prometheus reads');
    assert.match(promCommand, /\$\$ADMIN_API_KEY/);
    assert.equal(api.dns_sd_configs[0].port, 3000);
    const worker = job('worker');
    assert.equal(worker.dns_sd_configs[0].port, 9464);
    assert.equal(String(compose.services.worker.environment.WORKER_METRICS_PORT), '9464');
    assert.ok(compose.services.prometheus.volumes.some((v: string) => v.startsWith('./dashboards/prometheus/prometheus.yml:')));
  });

  test('Grafana provisioning loads the datasource and the dashboard the compose file mounts', () => {
    const ds = parse(read('dashboards', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'));
    const providers = parse(read('dashboards', 'grafana', 'provisioning', 'dashboards', 'queue-inference.yml'));
    const uid = ds.datasources[0].uid;
    assert.equal(ds.datasources[0].type, 'prometheus');
    assert.equal(ds.datasources[0].url, 'http://prometheus:9090');
    const mount = compose.services.grafana.volumes.find((v: string) => v.startsWith('./dashboards/grafana/inference.json:'));
    assert.ok(mount, 'compose mounts the dashboard');
    assert.equal(path.posix.dirname(mount.split(':')[1]), providers.providers[0].options.path);
    assert.ok(compose.services.grafana.volumes.includes('./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro'));

    const dash = JSON.parse(read('dashboards', 'grafana', 'inference.json'));
    const panels = dash.panels.filter((p: any) => p.type !== 'row');
    const ids = dash.panels.map((p: any) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of panels) {
      assert.equal(p.datasource.uid, uid, `panel "${p.title}" uses the provisioned datasource`);
      assert.ok(p.targets.length > 0 && p.targets.every((t: any) => t.expr && t.datasource.uid === uid), `panel "${p.title}" has queries`);
      assert.ok(p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the grid`);
    }
    const exprs = panels.flatMap((p: any) => p.targets.map((t: any) => t.expr)).join('\n');
    for (const metric of [
      'http_requests_total',
      'http_request_duration_seconds_bucket',
      'queue_jobs',
      'embedding_batch_size_bucket',
      'nodejs_eventloop_lag_p99_seconds',
      'worker_nodejs_eventloop_lag_p99_seconds',
      'request_queue_time_seconds_bucket',
      'request_run_seconds_bucket',
      'worker_jobs_finished_total',
      'time_to_first_token_seconds_bucket',
      'inter_token_latency_seconds_bucket',
    ]) {
      assert.ok(exprs.includes(metric), `the dashboard queries ${metric}`);
    }
    assert.match(exprs, /status=~"5\.\."/, 'an errors panel');
  });

  test('deploy/nginx/nginx.conf balances the API with ip_hash and passes WebSocket upgrades', () => {
    assert.deepEqual(nginxProblems(read('deploy', 'nginx', 'nginx.conf')), []);
    const good = read('deploy', 'nginx', 'nginx.conf');
    assert.ok(nginxProblems(good.replace('ip_hash;', '')).some((p) => /ip_hash/.test(p)));
    assert.ok(nginxProblems(good.replace('keepalive 64;', 'keepalive 64')).some((p) => /not terminated/.test(p)));
    assert.ok(nginxProblems(good.replace('proxy_http_version 1.1;', 'proxy_http_version 1.1')).some((p) => /"proxy_http_version" takes/.test(p)));
    assert.ok(nginxProblems(good.replace(/proxy_set_header Upgrade \$http_upgrade;/g, '')).some((p) => /Upgrade/.test(p)));
    assert.ok(nginxProblems(`${good}\n}`).some((p) => /unexpected \}/.test(p)));
  });
});
