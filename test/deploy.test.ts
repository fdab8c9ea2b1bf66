// deploy/ as a cluster would take it, without a cluster: every overlay and integration is
// rendered by the machine's `kubectl kustomize`, every object validated against the Kubernetes
// and CRD schemas with unknown fields rejected (test/helpers/k8s-schemas.ts), and the references
// between objects checked. test/deploy-run.test.ts runs the rendered Deployment as a process.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';
import { validateObject, type K8sObject } from './helpers/k8s-schemas.js';
import { one, renderCached } from './helpers/kustomize.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const objects = renderCached;
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
const OVERLAYS = ['deploy/overlays/single', 'deploy/overlays/ha'] as const;
const INTEGRATIONS = ['deploy/integrations/argo-rollouts', 'deploy/integrations/flagger'] as const;

/** The GET routes the service serves, from its own OpenAPI document. */
async function getRoutes(): Promise<Set<string>> {
  const service = new Service({ file: 'x', checklist: checklistOf(makeDef(() => ({ fields: {} }))), store: new MemoryStore(), log: pino({ level: 'silent' }) });
  const app = await buildServer({ service, log: pino({ level: 'silent' }) });
  const doc = (await app.inject('/docs')).json() as { paths: Record<string, Record<string, unknown>> };
  await app.close();
  return new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
}

t.test('the kubectl on this machine renders offline with kustomize v5', async (t) => {
  const v = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  t.equal(v.status, 0, v.stderr);
  t.match(v.stdout, /Kustomize Version: v5\./);
});

for (const dir of [...OVERLAYS, ...INTEGRATIONS]) {
  t.test(`${dir}: every object is valid against its schema, no literal Secret`, async (t) => {
    const objs = objects(dir);
    t.ok(objs.length > 0);
    for (const o of objs) t.same(await validateObject(o), [], `${o.kind}/${o.metadata.name}`);
    t.notOk(
      objs.some((o) => o.kind === 'Secret'),
      'no Secret is rendered: secrets are created by the operator',
    );
  });
}

t.test('the validators reject what an API server would', async (t) => {
  const dep = structuredClone(one(objects('deploy/overlays/single'), 'Deployment'));
  dep.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true; // a typo of readOnlyRootFilesystem
  t.match((await validateObject(dep)).join('\n'), /readOnlyRootFileSystem: unknown field/);
  const dep2 = structuredClone(one(objects('deploy/overlays/single'), 'Deployment'));
  dep2.spec.replicas = 'three';
  t.match((await validateObject(dep2)).join('\n'), /replicas must be integer/);
  const sm = structuredClone(one(objects('deploy/overlays/single'), 'ServiceMonitor'));
  sm.spec.endpoints[0].interval = 30;
  t.match((await validateObject(sm)).join('\n'), /interval must be string/);
  const at = structuredClone(one(objects('deploy/integrations/argo-rollouts'), 'AnalysisTemplate', 'readiness-rollback'));
  at.spec.metrics[0].provider.web.jsonpath = at.spec.metrics[0].provider.web.jsonPath;
  t.match((await validateObject(at)).join('\n'), /additional properties \(jsonpath\)/);
  const canary = structuredClone(one(objects('deploy/integrations/flagger'), 'Canary'));
  canary.spec.analysis.webhooks[0].type = 'pre-deploy';
  t.match((await validateObject(canary)).join('\n'), /must be equal to one of the allowed values/);
});

for (const dir of OVERLAYS) {
  t.test(`${dir}: the objects refer to each other correctly`, async (t) => {
    const objs = objects(dir);
    const dep = one(objs, 'Deployment', 'readiness-exporter');
    const pod = dep.spec.template;
    const podLabels = pod.metadata.labels as Record<string, string>;
    const [container] = pod.spec.containers;
    t.ok(selects(dep.spec.selector.matchLabels, podLabels), 'the Deployment selects its own pods');

    const svc = one(objs, 'Service', 'readiness-exporter');
    t.ok(selects(svc.spec.selector, podLabels), 'the Service selects the Deployment\'s pods');
    const portNames = new Set(container.ports.map((p: { name: string }) => p.name));
    for (const p of svc.spec.ports) t.ok(portNames.has(p.targetPort) || container.ports.some((c: { containerPort: number }) => c.containerPort === p.targetPort), `Service targetPort ${p.targetPort} is a container port`);

    const sm = one(objs, 'ServiceMonitor', 'readiness-exporter');
    t.ok(selects(sm.spec.selector.matchLabels, svc.metadata.labels), 'the ServiceMonitor selects the Service');
    t.ok(sm.spec.namespaceSelector.matchNames.includes(svc.metadata.namespace), 'in the Service\'s namespace');
    for (const ep of sm.spec.endpoints) t.ok(svc.spec.ports.some((p: { name: string }) => p.name === ep.port), `ServiceMonitor port ${ep.port} exists on the Service`);
    // The shipped alerts select the job by name (docs/alerts.md): the operator's job label is the Service name.
    t.match(svc.metadata.name, /readiness/);

    const sa = one(objs, 'ServiceAccount', pod.spec.serviceAccountName);
    t.equal(sa.metadata.namespace, dep.metadata.namespace, 'the ServiceAccount is in the Deployment\'s namespace');
    const bindings = objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') as (K8sObject & { subjects: { kind: string; name: string; namespace: string }[]; roleRef: { kind: string; name: string } })[];
    t.ok(bindings.length >= 4);
    for (const b of bindings) {
      t.ok(
        b.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === sa.metadata.name && s.namespace === sa.metadata.namespace),
        `${b.kind} ${b.metadata.namespace ?? ''}/${b.metadata.name} binds the Deployment's ServiceAccount`,
      );
      t.ok(objs.some((o) => o.kind === b.roleRef.kind && o.metadata.name === b.roleRef.name), `its ${b.roleRef.kind} ${b.roleRef.name} is rendered`);
    }

    // The checklist: the ConfigMap key, at the volume's mount path, is the file the container reads.
    const env = new Map<string, string>(container.env.filter((e: { value?: string }) => e.value !== undefined).map((e: { name: string; value: string }) => [e.name, e.value]));
    const vol = pod.spec.volumes.find((v: { configMap?: { name: string } }) => v.configMap?.name.startsWith('readiness-checklist'));
    const cm = one(objs, 'ConfigMap', vol.configMap.name);
    t.match(cm.metadata.name, /^readiness-checklist-[a-z0-9]{10}$/, 'hash-suffixed: a changed checklist rolls the pods');
    const mount = container.volumeMounts.find((m: { name: string }) => m.name === vol.name);
    const keys = Object.keys(cm.data);
    t.same(keys, ['checklist.yaml']);
    t.equal(env.get('READINESS_CONFIG'), `${mount.mountPath}/${keys[0]}`, 'READINESS_CONFIG is the mounted key');
    t.equal(cm.data['checklist.yaml'], readFileSync('probes/offgridflow.yaml', 'utf8'), 'the ConfigMap holds the shipped checklist');
    for (const ef of container.envFrom) if (ef.configMapRef) one(objs, 'ConfigMap', ef.configMapRef.name);

    // The PrometheusRule is the plain rules file.
    const rule = one(objs, 'PrometheusRule', 'readiness-exporter');
    t.same(rule.spec.groups, (YAML.parse(readFileSync('alerts/readiness.rules.yml', 'utf8')) as { groups: unknown }).groups, 'PrometheusRule groups equal alerts/readiness.rules.yml');
    t.equal(rule.metadata.namespace, dep.metadata.namespace);

    // Probes hit routes that exist, on a port the container has.
    const routes = await getRoutes();
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const p = container[kind];
      t.ok(p?.httpGet, `${kind} is an HTTP probe`);
      t.ok(routes.has(`GET ${p.httpGet.path}`), `${kind} ${p.httpGet.path} is a route`);
      t.ok(portNames.has(p.httpGet.port), `${kind} port ${p.httpGet.port} is a container port`);
    }
    t.equal(container.livenessProbe.httpGet.path, '/healthz');
    t.equal(container.readinessProbe.httpGet.path, '/readyz', 'readiness is "this replica can answer", not /readiness');

    // The image tag is the package version.
    t.equal(container.image, `readiness-exporter:${pkg.version}`);

    // Restricted securityContext, resources.
    t.match(pod.spec.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    t.match(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    t.notOk(container.securityContext.capabilities.add);
    for (const r of ['cpu', 'memory']) {
      t.ok(container.resources.requests[r], `${r} request`);
      t.ok(container.resources.limits[r], `${r} limit`);
    }
    const ns = one(objs, 'Namespace', dep.metadata.namespace);
    t.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');

    // PDB and NetworkPolicy select the pods; the policy opens the http port and the egress the checks need.
    const pdb = one(objs, 'PodDisruptionBudget', 'readiness-exporter');
    t.ok(selects(pdb.spec.selector.matchLabels, podLabels), 'the PDB selects the pods');
    const np = one(objs, 'NetworkPolicy', 'readiness-exporter');
    t.ok(selects(np.spec.podSelector.matchLabels, podLabels), 'the NetworkPolicy selects the pods');
    t.same(np.spec.policyTypes, ['Ingress', 'Egress']);
    for (const rule of np.spec.ingress) for (const p of rule.ports) t.ok(portNames.has(p.port), `ingress port ${p.port} is the container's`);
    const egressPorts = new Set(np.spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port)));
    for (const p of [53, 443, 6443, 5432, 6379, 9090, 9093]) t.ok(egressPorts.has(p), `egress to port ${p}`);
    t.equal(one(objs, 'Service', 'readiness-exporter').spec.ports[0].port, container.ports[0].containerPort);
  });
}

t.test('overlay single: one replica, one writer, the embedded store on the PVC', async (t) => {
  const objs = objects('deploy/overlays/single');
  const dep = one(objs, 'Deployment', 'readiness-exporter');
  t.equal(dep.spec.replicas, 1);
  t.equal(dep.spec.strategy.type, 'Recreate');
  const data = dep.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'data');
  t.same(Object.keys(data).sort(), ['name', 'persistentVolumeClaim']);
  one(objs, 'PersistentVolumeClaim', data.persistentVolumeClaim.claimName);
  const c = dep.spec.template.spec.containers[0];
  const dataMount = c.volumeMounts.find((m: { name: string }) => m.name === 'data');
  t.equal(c.env.find((e: { name: string }) => e.name === 'READINESS_DATA_DIR').value, dataMount.mountPath);
  t.notOk(c.env.some((e: { name: string }) => e.name === 'READINESS_DATABASE_URL'));
});

t.test('overlay ha: three replicas on PostgreSQL, one per node, rolling with no loss of capacity', async (t) => {
  const objs = objects('deploy/overlays/ha');
  const dep = one(objs, 'Deployment', 'readiness-exporter');
  t.equal(dep.spec.replicas, 3);
  t.same(dep.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  const db = dep.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'READINESS_DATABASE_URL');
  t.ok(db?.valueFrom?.secretKeyRef, 'READINESS_DATABASE_URL comes from a Secret');
  t.notOk(db.valueFrom.secretKeyRef.optional, 'and is required: no silent fallback to three embedded stores');
  const anti = dep.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
  t.equal(anti[0].topologyKey, 'kubernetes.io/hostname');
  t.ok(selects(anti[0].labelSelector.matchLabels, dep.spec.template.metadata.labels), 'the anti-affinity selects the replicas themselves');
  const pdb = one(objs, 'PodDisruptionBudget', 'readiness-exporter');
  t.equal(pdb.spec.maxUnavailable, 1);
});

t.test('integrations point at the rendered Service and at routes that exist', async (t) => {
  const svc = one(objects('deploy/overlays/ha'), 'Service', 'readiness-exporter');
  const base = `http://${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local:${svc.spec.ports[0].port}`;
  const routes = await getRoutes();
  const ats = objects('deploy/integrations/argo-rollouts');
  t.same(ats.map((o) => o.metadata.name).sort(), ['readiness-deploy-mark', 'readiness-rollback', 'readiness-verify']);
  for (const at of ats as (K8sObject & Record<string, any>)[]) { // eslint-disable-line @typescript-eslint/no-explicit-any
    t.equal(at.spec.args.find((a: { name: string }) => a.name === 'readiness-url').value, base, `${at.metadata.name}: readiness-url`);
    for (const m of at.spec.metrics) {
      const url = new URL(m.provider.web.url.replace('{{args.readiness-url}}', base));
      t.ok(routes.has(`${m.provider.web.method ?? 'GET'} ${url.pathname}`), `${at.metadata.name}/${m.name}: ${m.provider.web.method ?? 'GET'} ${url.pathname}`);
    }
  }
  const canary = one(objects('deploy/integrations/flagger'), 'Canary');
  t.same(canary.spec.analysis.webhooks.map((w: { type: string }) => w.type), ['pre-rollout', 'confirm-promotion', 'rollback']);
  for (const w of canary.spec.analysis.webhooks) {
    const url = new URL(w.url);
    t.equal(url.origin, new URL(base).origin, `${w.name} goes to the Service`);
    t.ok(routes.has(`POST ${url.pathname}`), `${w.name}: Flagger POSTs ${url.pathname}`);
  }
});
