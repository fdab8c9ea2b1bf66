// The kubernetes probe against a local server speaking the Kubernetes API (test/helpers/kube-api.ts):
// every measurement's pass and fail path, errors (401, 403, unsynced cache, lost watch), watch
// drops, clean ends, BOOKMARKs and 410 relists, metadata-only Secrets, a cluster change reaching
// /readiness through subscribe() and the real scheduler, and one list+watch per resource for
// 100 checks.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { loadChecklist, loadChecklistFile } from '../../src/config/load.js';
import { buildServer } from '../../src/http/server.js';
import kubernetes from '../../src/probes/kubernetes.js';
import { openClusters, setInformerTimings } from '../../src/probes/kubernetes/informers.js';
import type { KubeParams } from '../../src/probes/kubernetes/params.js';
import { R } from '../../src/probes/kubernetes/resources.js';
import type { Observation } from '../../src/probes/types.js';
import { runOnce, Scheduler } from '../../src/scheduler.js';
import { Service } from '../../src/service.js';
import { MemoryStore } from '../../src/store/memory.js';
import { makeCtx } from '../helpers/ctx.js';
import { deployment, FakeKubeApi, job, node, pod, secret, type Plural } from '../helpers/kube-api.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(process.env.READINESS_TEST_TMPDIR || tmpdir(), 'kube-probe-'));

// Fast reconnects, so drop/relist tests take milliseconds; the watch-age bounds stay long.
setInformerTimings({ retryMinMs: 50, retryMaxMs: 500, minWatchMs: 100, absentRetryMs: 500 });

let api: FakeKubeApi;
let kubeconfig: string;

t.before(async () => {
  api = await FakeKubeApi.start();
  kubeconfig = api.writeKubeconfig(dir);
});

t.teardown(async () => {
  await kubernetes.close?.();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Params as the loader would produce them (defaults applied), validated like a checklist would. */
function params(measure: KubeParams['measure'], namespace: string, extra: Partial<KubeParams> = {}): KubeParams {
  const p = { measure, namespace, kubeconfig, enforce: true, ...extra } as KubeParams;
  const problems = kubernetes.validate!(p);
  if (problems.length) throw new Error(`bad params: ${problems.join('; ')}`);
  return p;
}

function run(p: KubeParams, timeoutMs = 3000): Promise<Observation> {
  return kubernetes.run(p, makeCtx({ timeoutMs }));
}

/** Runs until the observation satisfies `ok` (the cache follows the server by a watch event). */
async function until(p: KubeParams, ok: (o: Observation) => boolean, ms = 3000): Promise<Observation> {
  const end = Date.now() + ms;
  let o = await run(p);
  while (!ok(o) && Date.now() < end) {
    await sleep(20);
    o = await run(p);
  }
  return o;
}

/** Waits until `cond` holds (server-side effects such as a reconnecting watch arrive asynchronously). */
async function eventually(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
  return cond();
}

const failing = (o: Observation) => o.failure !== undefined;
const passing = (o: Observation) => !o.failure && !o.error && !o.noData;

const ago = (ms: number) => new Date(Date.now() - ms);
const H = 3_600_000;

interface Case {
  measure: KubeParams['measure'];
  /** Measurement params besides measure/namespace/kubeconfig. */
  with?: Partial<KubeParams>;
  seed(api: FakeKubeApi, ns: string): void;
  pass: RegExp;
  passFields?: Record<string, unknown>;
  value?: number;
  break(api: FakeKubeApi, ns: string): void;
  fail: RegExp;
  failFields?: Record<string, unknown>;
}

const CASES: Case[] = [
  {
    measure: 'nodes',
    seed: (a) => {
      a.put('nodes', node('n1'));
      a.put('nodes', node('n2'));
    },
    pass: /^all 2 nodes Ready$/,
    passFields: { nodes: 2, nodes_ready: 2, nodes_not_ready: 0 },
    break: (a) => a.put('nodes', node('n2', { ready: false })),
    fail: /^nodes not Ready: n2 \(Ready False: KubeletNotReady\)$/,
    failFields: { nodes_not_ready: 1, offending: 1 },
  },
  {
    measure: 'node_usage',
    seed: (a) => {
      a.put('nodes', node('n1'));
      a.put('nodes', node('n2'));
      a.setNodeMetrics('n1', { cpu: '1', memory: '4Gi' });
      a.setNodeMetrics('n2', { cpu: '500m', memory: '2Gi' });
    },
    pass: /^2 nodes: highest cpu 25%, memory 25% of allocatable; no pressure conditions$/,
    passFields: { cpu_percent: 25, memory_percent: 25, nodes_pressure: 0 },
    value: 25,
    break: (a) => {
      a.setNodeMetrics('n1', { cpu: '3900m', memory: '4Gi' });
      a.put('nodes', node('n2', { pressure: 'MemoryPressure' }));
    },
    fail: /^nodes under pressure: n1 \(cpu 97\.5% of allocatable\), n2 \(MemoryPressure\)$/,
    failFields: { cpu_percent: 97.5, nodes_pressure: 1 },
  },
  {
    measure: 'pods',
    seed: (a, ns) => {
      a.put('pods', pod(ns, 'api-7d9'));
      a.put('pods', pod(ns, 'worker-5f2'));
      a.put('pods', pod(ns, 'migrate-x1', { phase: 'Succeeded', ready: false }));
      a.put('pods', pod(ns, 'web-new', { phase: 'Pending', ageMinutes: 1 }));
    },
    pass: /^4 pods in m-pods Running or Succeeded$/,
    passFields: { pods: 4, pods_running: 2, pods_pending: 1, restarts: 0 },
    break: (a, ns) => {
      a.put('pods', pod(ns, 'api-7d9', { waiting: 'CrashLoopBackOff', restarts: 14 }));
      a.put('pods', pod(ns, 'web-old', { phase: 'Pending', ageMinutes: 12, waiting: 'ImagePullBackOff' }));
    },
    // The 14 restarts happened between two runs: all of them within the hour.
    fail: /^pods not Running: m-pods\/api-7d9 \(CrashLoopBackOff, 14 restarts\), m-pods\/web-old \(ImagePullBackOff\) \(14 restarts in the last hour\)$/,
    failFields: { offending: 2, restarts: 14 },
  },
  {
    measure: 'pod_usage',
    seed: (a, ns) => {
      a.put('pods', pod(ns, 'api-1'));
      a.setPodMetrics(ns, 'api-1', [{ name: 'main', cpu: '100m', memory: '256Mi' }]);
    },
    pass: /^1 container: highest cpu 20%, memory 50% of the limit$/,
    passFields: { cpu_percent: 20, memory_percent: 50 },
    value: 50,
    break: (a, ns) => a.setPodMetrics(ns, 'api-1', [{ name: 'main', cpu: '100m', memory: '480Mi' }]),
    fail: /^containers near their limits: m-pod_usage\/api-1\/main \(memory 93\.8% of the 512Mi limit\)$/,
  },
  {
    measure: 'resources',
    seed: (a, ns) => {
      a.put('deployments', deployment(ns, 'api'));
      a.put('statefulsets', {
        metadata: { name: 'postgres', namespace: ns },
        spec: {
          serviceName: 'postgres',
          selector: { matchLabels: { app: 'postgres' } },
          template: { metadata: { labels: { app: 'postgres' } }, spec: { containers: [{ name: 'postgres', resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '2', memory: '2Gi' } } }] } },
        },
      });
    },
    pass: /^2 containers of 2 workloads in m-resources set requests.cpu, requests.memory, limits.cpu, limits.memory$/,
    passFields: { workloads: 2, containers: 2, containers_missing: 0 },
    break: (a, ns) => a.put('deployments', deployment(ns, 'worker', { resources: { requests: { cpu: '100m' } } })),
    fail: /^containers without requests and limits: Deployment m-resources\/worker container worker \(no requests.memory, limits.cpu, limits.memory\)$/,
  },
  {
    measure: 'hpa',
    with: { name: 'api' },
    seed: (a, ns) => {
      a.put('deployments', deployment(ns, 'api'));
      a.put('horizontalpodautoscalers', {
        metadata: { name: 'api', namespace: ns },
        spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' }, minReplicas: 2, maxReplicas: 10 },
        status: {
          currentReplicas: 3,
          desiredReplicas: 3,
          conditions: [
            { type: 'AbleToScale', status: 'True', reason: 'ReadyForNewScale' },
            { type: 'ScalingActive', status: 'True', reason: 'ValidMetricFound' },
          ],
        },
      });
    },
    pass: /^HorizontalPodAutoscaler m-hpa\/api scales Deployment m-hpa\/api between 2 and 10 replicas \(now 3\), ScalingActive$/,
    passFields: { min_replicas: 2, max_replicas: 10, scaling_active: true },
    value: 10,
    break: (a, ns) =>
      a.update('horizontalpodautoscalers', ns, 'api', (h) => {
        h.spec!.minReplicas = 1;
        h.status!.conditions = [{ type: 'ScalingActive', status: 'False', reason: 'FailedGetResourceMetric' }];
      }),
    fail: /^HorizontalPodAutoscaler m-hpa\/api: minReplicas 1 < 2, ScalingActive False: FailedGetResourceMetric$/,
    failFields: { max_replicas: 10, scaling_active: false },
  },
  {
    measure: 'pdb',
    seed: (a, ns) => {
      a.put('deployments', deployment(ns, 'api'));
      a.put('poddisruptionbudgets', {
        metadata: { name: 'api', namespace: ns },
        spec: { minAvailable: 1, selector: { matchLabels: { app: 'api' } } },
        status: { disruptionsAllowed: 1, currentHealthy: 2, desiredHealthy: 1, expectedPods: 2 },
      });
    },
    pass: /^every one of 1 Deployment in m-pdb has a PodDisruptionBudget allowing >= 1 disruption$/,
    passFields: { deployments: 1, deployments_without_pdb: 0, disruptions_allowed: 1 },
    break: (a, ns) => {
      a.update('poddisruptionbudgets', ns, 'api', (b) => {
        b.status!.disruptionsAllowed = 0;
        b.status!.currentHealthy = 1;
      });
      a.put('deployments', deployment(ns, 'worker'));
    },
    fail: /^Deployments in m-pdb without a PodDisruptionBudget allowing 1 disruption: api \(PodDisruptionBudget api allows 0 disruptions, 1\/1 healthy\), worker \(no PodDisruptionBudget selects its pods\)$/,
    failFields: { deployments_without_pdb: 1, disruptions_allowed: 0 },
  },
  {
    measure: 'network_policies',
    seed: (a, ns) => {
      a.put('networkpolicies', { metadata: { name: 'default-deny', namespace: ns }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
      a.put('networkpolicies', { metadata: { name: 'api-ingress', namespace: ns }, spec: { podSelector: { matchLabels: { app: 'api' } }, ingress: [{ _from: [{ namespaceSelector: {} }] }] } });
      a.put('pods', pod(ns, 'api-1', { labels: { app: 'api' } }));
      a.put('pods', pod(ns, 'debug', { labels: { app: 'debug' } }));
    },
    pass: /^default-deny ingress policy default-deny in m-network_policies; every one of 2 pods selected by a policy$/,
    passFields: { default_deny: true, pods_unselected: 0, policies: 2 },
    break: (a, ns) => a.remove('networkpolicies', ns, 'default-deny'),
    fail: /^NetworkPolicies in m-network_policies: no default-deny ingress policy .*, pod debug \(selected by no policy\)$/,
    failFields: { default_deny: false, pods_unselected: 1 },
  },
  {
    measure: 'ingress_rate_limit',
    seed: (a, ns) => a.put('ingresses', { metadata: { name: 'api', namespace: ns, annotations: { 'nginx.ingress.kubernetes.io/limit-rps': '10' } }, spec: { ingressClassName: 'nginx' } }),
    pass: /^1 Ingress in m-ingress_rate_limit rate-limited \(limit_rps 10\)$/,
    passFields: { ingresses: 1, ingresses_limited: 1, limit_rps: 10 },
    break: (a, ns) => a.put('ingresses', { metadata: { name: 'web', namespace: ns }, spec: { ingressClassName: 'nginx' } }),
    fail: /^Ingresses in m-ingress_rate_limit without rate limiting: web \(none of limit-rps, limit-rpm, limit-connections\)$/,
  },
  {
    measure: 'rbac',
    seed: (a, ns) => {
      a.put('clusterroles', { metadata: { name: 'cluster-admin' }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] });
      a.put('roles', { metadata: { name: 'read-pods', namespace: ns }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] });
      a.put('rolebindings', { metadata: { name: 'api-read-pods', namespace: ns }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-pods' }, subjects: [{ kind: 'ServiceAccount', name: 'api', namespace: ns }] });
      // Another namespace's admin binding is not this namespace's business.
      a.put('clusterrolebindings', { metadata: { name: 'ops-admin' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: 'ops', namespace: 'ops' }] });
    },
    pass: /^1 binding to m-rbac identities; none grants cluster-admin, wildcards or list\/watch on secrets$/,
    passFields: { bindings: 1, cluster_admin: 0, secret_readers: 0 },
    break: (a, ns) => {
      a.put('clusterrolebindings', { metadata: { name: 'oops' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: 'worker', namespace: ns }] });
      a.put('roles', { metadata: { name: 'read-pods', namespace: ns }, rules: [{ apiGroups: [''], resources: ['pods', 'secrets'], verbs: ['get', 'list', 'watch'] }] });
    },
    fail: /^RBAC grants to m-rbac identities: RoleBinding m-rbac\/api-read-pods -> Role read-pods grants list\/watch on secrets to ServiceAccount m-rbac\/api, ClusterRoleBinding oops -> ClusterRole cluster-admin grants cluster-admin to ServiceAccount m-rbac\/worker$/,
    failFields: { cluster_admin: 1, secret_readers: 2, bindings: 2 },
  },
  {
    measure: 'service_accounts',
    seed: (a, ns) => {
      a.put('pods', pod(ns, 'api-1', { serviceAccount: 'api' }));
      a.put('roles', { metadata: { name: 'read-config', namespace: ns }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }] });
      a.put('rolebindings', { metadata: { name: 'api', namespace: ns }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-config' }, subjects: [{ kind: 'ServiceAccount', name: 'api', namespace: ns }] });
    },
    pass: /^1 pod in m-service_accounts run as 1 dedicated ServiceAccount with no wildcard or secret-listing grants$/,
    passFields: { pods_default_sa: 0, privileged_service_accounts: 0 },
    break: (a, ns) => {
      a.put('pods', pod(ns, 'legacy-1', { serviceAccount: 'default' }));
      a.put('roles', { metadata: { name: 'read-config', namespace: ns }, rules: [{ apiGroups: [''], resources: ['*'], verbs: ['get'] }] });
    },
    fail: /^ServiceAccounts of pods in m-service_accounts: pod legacy-1 runs as the default ServiceAccount, ServiceAccount m-service_accounts\/api \(1 pod\): RoleBinding m-service_accounts\/api -> Role read-config grants wildcard verbs or resources$/,
    failFields: { pods_default_sa: 1, privileged_service_accounts: 1 },
  },
  {
    measure: 'secrets_age',
    seed: (a, ns) => {
      a.put('secrets', secret(ns, 'db', { daysOld: 10 }));
      // Rotated by Kubernetes itself: never counted.
      a.put('secrets', secret(ns, 'api-token', { daysOld: 400, annotations: { 'kubernetes.io/service-account.name': 'api' } }));
    },
    pass: /^1 Secret in m-secrets_age written within 90d \(oldest 10 days\)$/,
    passFields: { secrets: 1, secrets_stale: 0, oldest_age_days: 10 },
    value: 10,
    break: (a, ns) => a.put('secrets', secret(ns, 'stripe', { daysOld: 120 })),
    fail: /^Secrets in m-secrets_age not rotated within 90d: stripe \(last written 120d ago\)$/,
    failFields: { secrets_stale: 1, oldest_age_days: 120 },
  },
  {
    measure: 'secrets_sealed',
    seed: (a, ns) => {
      const ss = a.put('sealedsecrets', { metadata: { name: 'db', namespace: ns }, spec: { encryptedData: { url: 'AgBy3i4OJSWK+PiTySYZZA==' } } });
      a.put('secrets', secret(ns, 'db', { sealedBy: { name: 'db', uid: ss.metadata.uid } }));
      a.put('secrets', secret(ns, 'vault-app', { annotations: { 'vault.hashicorp.com/agent-inject': 'true' } }));
    },
    pass: /^2 Secrets in m-secrets_sealed: 1 from SealedSecrets, 1 from Vault\/external stores$/,
    passFields: { secrets_sealed: 1, secrets_external: 1, secrets_unmanaged: 0 },
    break: (a, ns) => a.put('secrets', secret(ns, 'plain')),
    fail: /^Secrets in m-secrets_sealed stored in plain: plain \(not produced by a SealedSecret or Vault\)$/,
    failFields: { secrets_unmanaged: 1 },
  },
  {
    measure: 'services_internal',
    seed: (a, ns) => {
      a.put('services', { metadata: { name: 'api', namespace: ns }, spec: { type: 'ClusterIP', ports: [{ port: 80 }] } });
      a.put('services', { metadata: { name: 'postgres', namespace: ns }, spec: { ports: [{ port: 5432 }] } });
    },
    pass: /^2 Services in m-services_internal internal \(ClusterIP, no external IPs\)$/,
    passFields: { services: 2, services_exposed: 0 },
    break: (a, ns) => a.put('services', { metadata: { name: 'postgres', namespace: ns }, spec: { type: 'LoadBalancer', ports: [{ port: 5432 }] }, status: { loadBalancer: { ingress: [{ ip: '34.1.2.3' }] } } }),
    fail: /^Services in m-services_internal reachable from outside the cluster: postgres \(LoadBalancer 34\.1\.2\.3\)$/,
  },
  {
    measure: 'env',
    with: { names: ['api'], required: ['DATABASE_URL', 'LOG_LEVEL'] },
    seed: (a, ns) => {
      a.put('configmaps', { metadata: { name: 'app-config', namespace: ns }, data: { log_level: 'info' } });
      const ss = a.put('sealedsecrets', { metadata: { name: 'db', namespace: ns }, spec: { encryptedData: { url: 'AgBy3i4OJSWK+PiTySYZZA==' } } });
      a.put('secrets', secret(ns, 'db', { sealedBy: { name: 'db', uid: ss.metadata.uid } }));
      a.put(
        'deployments',
        deployment(ns, 'api', {
          env: [
            { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'db', key: 'url' } } },
            { name: 'LOG_LEVEL', valueFrom: { configMapKeyRef: { name: 'app-config', key: 'log_level' } } },
          ],
        }),
      );
    },
    pass: /^1 Deployment in m-env: required variables set, every ConfigMap\/Secret reference resolves$/,
    passFields: { env_missing: 0, refs_broken: 0, env_unverified: 0 },
    break: (a, ns) => {
      a.put('configmaps', { metadata: { name: 'app-config', namespace: ns }, data: { level: 'info' } });
      a.update('deployments', ns, 'api', (d) => {
        d.spec!.template.spec!.containers[0]!.env!.push({ name: 'STRIPE_KEY', valueFrom: { secretKeyRef: { name: 'stripe', key: 'key' } } });
      });
    },
    fail: /^environment of Deployments in m-env: api: LOG_LEVEL -> ConfigMap app-config has no key log_level, api: STRIPE_KEY -> Secret stripe does not exist$/,
    failFields: { refs_broken: 2 },
  },
  {
    measure: 'cronjob_last_success',
    with: { name: 'postgres-backup' },
    seed: (a, ns) => {
      a.put('cronjobs', {
        metadata: { name: 'postgres-backup', namespace: ns },
        spec: { schedule: '0 2 * * *', jobTemplate: { spec: { template: { spec: { containers: [{ name: 'backup', image: 'backup:1' }] } } } } },
        status: { lastSuccessfulTime: ago(2 * H), lastScheduleTime: ago(2 * H) },
      });
    },
    pass: /^CronJob m-cronjob_last_success\/postgres-backup last succeeded 2h(\d+s)? ago$/,
    passFields: { suspended: false, last_job_failed: false },
    value: 7200,
    break: (a, ns) => {
      a.update('cronjobs', ns, 'postgres-backup', (c) => {
        c.status!.lastSuccessfulTime = ago(31 * H);
      });
      a.put('jobs', job(ns, 'postgres-backup-29001', { failed: 'BackoffLimitExceeded', cronjob: 'postgres-backup', startedMinutesAgo: 300 }));
    },
    fail: /^CronJob m-cronjob_last_success\/postgres-backup: last succeeded 1d7h(\d+s)? ago \(.*Z\), more than 25h ago, its latest Job postgres-backup-29001 failed: BackoffLimitExceeded$/,
    failFields: { last_job_failed: true },
  },
  {
    measure: 'job_complete',
    with: { cronjob: 'restore-test', maxDuration: '4h', within: '30d' },
    seed: (a, ns) => {
      a.put('jobs', job(ns, 'restore-test-1', { complete: true, cronjob: 'restore-test', startedMinutesAgo: 24 * 60, durationMinutes: 95 }));
      // Running right now: the newest finished one still counts.
      a.put('jobs', job(ns, 'restore-test-2', { active: 1, cronjob: 'restore-test', startedMinutesAgo: 3 }));
    },
    pass: /^Job m-job_complete\/restore-test-1 complete 22h25m(\d+s)? ago, took 1h35m$/,
    passFields: { complete: true, duration_seconds: 95 * 60, job: 'restore-test-1' },
    value: 95 * 60,
    break: (a, ns) => a.put('jobs', job(ns, 'restore-test-2', { complete: true, cronjob: 'restore-test', startedMinutesAgo: 5 * 60 + 10, durationMinutes: 5 * 60 + 5 })),
    fail: /^Job m-job_complete\/restore-test-2: took 5h5m, more than 4h$/,
    failFields: { complete: true, duration_seconds: 305 * 60 },
  },
  {
    measure: 'rollout',
    with: { name: 'api' },
    seed: (a, ns) => a.put('deployments', deployment(ns, 'api', { replicas: 3 })),
    pass: /^Deployment m-rollout\/api rolled out: 3\/3 updated, ready and available at generation 1$/,
    passFields: { replicas: 3, ready_replicas: 3, rolled_out: 1 },
    break: (a, ns) => a.put('deployments', deployment(ns, 'api', { replicas: 3, generation: 2, observedGeneration: 2, updated: 1, ready: 2 })),
    fail: /^Deployments in m-rollout not rolled out: api \(1\/3 updated, 2\/3 ready, 2\/3 available\)$/,
    failFields: { updated_replicas: 1, rolled_out: 0 },
  },
];

t.test('every measurement: pass, then fail naming the offending objects', async (t) => {
  for (const c of CASES) {
    await t.test(c.measure, async (t) => {
      const ns = `m-${c.measure}`;
      c.seed(api, ns);
      const p = params(c.measure, ns, c.with);
      const ok = await until(p, passing);
      t.notOk(ok.error, `no error: ${ok.error?.message}`);
      t.notOk(ok.failure, `no failure: ${ok.failure?.message}`);
      t.match(ok.message, c.pass);
      if (c.passFields) t.match(ok.fields, c.passFields);
      if (c.value !== undefined) t.ok(Math.abs((ok.value ?? NaN) - c.value) <= 5, `value ${ok.value} ~ ${c.value}`);
      t.equal(ok.fields.offending, 0);
      c.break(api, ns);
      const bad = await until(p, (o) => failing(o) && c.fail.test(o.failure!.message));
      t.equal(bad.failure?.reason, 'condition');
      t.match(bad.failure?.message, c.fail);
      if (c.failFields) t.match(bad.fields, c.failFields);
      t.ok((bad.fields.offending as number) > 0, 'offending > 0');
      // enforce: false reports the same fields and leaves the verdict to expect:
      const soft = await run({ ...p, enforce: false });
      t.notOk(soft.failure, 'enforce: false does not fail by itself');
      t.same(soft.fields.offenders, bad.fields.offenders);
    });
  }
  // The nodes cases changed cluster-wide objects; later tests start from healthy nodes.
  api.put('nodes', node('n1'));
  api.put('nodes', node('n2'));
});

t.test('secrets are only ever listed and watched as metadata', async (t) => {
  const ns = 'm-secrets-meta';
  const s = secret(ns, 'applied', { daysOld: 3 });
  s.metadata!.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"password":"aHVudGVyMg=="}}', team: 'payments' };
  api.put('secrets', s);
  const p = params('secrets_age', ns);
  await until(p, passing);
  api.put('secrets', secret(ns, 'later', { daysOld: 1 }));
  await until(p, (o) => o.fields.secrets === 2);
  t.equal(api.secretDataServed, 0, 'no Secret data ever sent to the probe');
  const secretReqs = api.requests.filter((r) => r.plural === 'secrets');
  t.ok(secretReqs.length >= 2);
  for (const r of secretReqs) t.match(r.accept, r.watch ? /as=PartialObjectMetadata;g=meta\.k8s\.io;v=v1/ : /as=PartialObjectMetadataList;g=meta\.k8s\.io;v=v1/, `${r.watch ? 'watch' : 'list'} asks for metadata`);
  // What the cache holds: metadata only, and not kubectl's copy of the applied object.
  const informer = openClusters()[0]!.informer('secrets', ns);
  for (const o of informer.list()) {
    t.same(Object.keys(o).sort(), ['apiVersion', 'kind', 'metadata']);
    t.notOk(o.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'], 'last-applied annotation dropped');
  }
  t.equal(informer.list().find((o) => o.metadata?.name === 'applied')?.metadata?.annotations?.team, 'payments', 'other annotations kept');
  t.notMatch(JSON.stringify(informer.list()), /hunter2|aHVudGVy/, 'no value anywhere in the cache');
});

t.test('pods: Pending beyond pendingFor, not Ready, restarts in the last hour', async (t) => {
  const ns = 'm-pods-more';
  api.put('pods', pod(ns, 'api-1', { restarts: 3, lastTerminatedMinutesAgo: 10 }));
  const p = params('pods', ns, { pendingFor: '2m', maxRestarts: 3 });
  let o = await until(p, passing);
  t.equal(o.fields.restarts_last_hour, 1, 'a termination within the hour counts at least once');
  t.match(o.message, /\(1 restart in the last hour\)$/);
  api.update('pods', ns, 'api-1', (x) => {
    x.status!.containerStatuses![0]!.restartCount = 7;
  });
  o = await until(p, failing);
  t.equal(o.fields.restarts_last_hour, 4, '7 - 3 seen an hour ago or since');
  t.match(o.failure?.message, /^pods not Running: m-pods-more\/api-1 \(4 restarts in the last hour\)/);
  api.remove('pods', ns, 'api-1');
  api.put('pods', pod(ns, 'stuck-1', { phase: 'Pending', ageMinutes: 3 }));
  api.put('pods', pod(ns, 'unready-1', { ready: false, ageMinutes: 10 }));
  o = await until(p, (x) => failing(x) && /stuck-1/.test(x.failure!.message));
  t.match(o.failure?.message, /m-pods-more\/stuck-1 \(Pending for 3m/);
  t.match(o.failure?.message, /m-pods-more\/unready-1 \(Running, not Ready for 10m/);
});

t.test('more fail paths: missing objects, named Jobs, CRD not installed, no data', async (t) => {
  const ns = 'm-misc';
  api.put('deployments', deployment(ns, 'web'));
  let o = await run(params('hpa', ns, { name: 'web' }));
  t.equal(o.failure?.message, 'Deployment m-misc/web: no HorizontalPodAutoscaler targets it');
  t.equal(o.value, undefined, 'no maxReplicas to report');
  o = await run(params('rollout', ns, { names: ['web', 'ghost'] }));
  t.match(o.failure?.message, /ghost \(not found\)/);
  o = await run(params('cronjob_last_success', ns, { name: 'nightly' }));
  t.equal(o.failure?.message, 'CronJob m-misc/nightly: not found');
  api.put('jobs', job(ns, 'migrate-42', { failed: 'BackoffLimitExceeded' }));
  o = await until(params('job_complete', ns, { name: 'migrate-42' }), (x) => /failed/.test(x.failure?.message ?? ''));
  t.match(o.failure?.message, /^Job m-misc\/migrate-42: failed: BackoffLimitExceeded$/);
  t.match(o.fields, { complete: false, failed: true });
  api.put('jobs', job(ns, 'migrate-43', { active: 1, startedMinutesAgo: 2 }));
  o = await until(params('job_complete', ns, { name: 'migrate-43' }), (x) => /not complete/.test(x.failure?.message ?? ''));
  t.match(o.failure?.message, /^Job m-misc\/migrate-43: not complete: 1 active, started 2m/);
  o = await run(params('services_internal', 'm-empty'));
  t.ok(o.noData, 'nothing to measure is no-data, never a silent pass');
  o = await run(params('ingress_rate_limit', 'm-empty'));
  t.ok(o.noData);
  // A namespace whose secrets are plain, on a cluster without the SealedSecret CRD.
  const other = await FakeKubeApi.start();
  t.teardown(() => other.close());
  other.sealedSecretsInstalled = false;
  other.put('secrets', secret('app', 'plain'));
  const p2 = { ...params('secrets_sealed', 'app'), kubeconfig: other.writeKubeconfig(dir, 'other-crd') };
  o = await until(p2, failing);
  t.match(o.failure?.message, /plain \(not produced by a SealedSecret or Vault\) \(bitnami\.com\/v1alpha1 SealedSecrets are not served by this cluster\)$/);
  o = await run({ ...p2, measure: 'node_usage' } as KubeParams);
  t.ok(o.noData, 'no nodes');
  other.put('nodes', node('n1'));
  other.metricsAvailable = false;
  o = await until({ ...p2, measure: 'node_usage' } as KubeParams, (x) => x.error !== undefined);
  t.equal(o.error?.reason, 'http-status');
  t.match(o.error?.message, /503 Service Unavailable: .*metrics-server installed/);
});

t.test('env: envFrom ConfigMaps count; keys of plain Secrets are unverifiable, a warning, not a pass or a fail', async (t) => {
  const ns = 'm-env-from';
  api.put('configmaps', { metadata: { name: 'app-config', namespace: ns }, data: { LOG_LEVEL: 'info' } });
  api.put('secrets', secret(ns, 'legacy'));
  api.put('deployments', deployment(ns, 'api', { envFrom: [{ configMapRef: { name: 'app-config' } }, { secretRef: { name: 'legacy' } }] }));
  api.put('deployments', deployment(ns, 'worker', { envFrom: [{ configMapRef: { name: 'app-config' } }, { secretRef: { name: 'gone', optional: true } }] }));
  const p = params('env', ns, { required: ['LOG_LEVEL', 'API_KEY'] });
  const o = await until(p, (x) => x.fields.deployments === 2);
  t.equal(o.fields.env_unverified, 1);
  t.equal(o.fields.env_missing, 1);
  t.equal(o.failure?.message, 'environment of Deployments in m-env-from: worker: API_KEY is not set (1 reference not verifiable without reading Secret values (not sealed): api: API_KEY (may come from envFrom Secret legacy))');
  const only = await run({ ...p, names: ['api'] });
  t.notOk(only.failure, 'unverifiable alone does not fail');
  t.match(only.message, /1 reference not verifiable/);
});

t.test('which cluster: the kubeconfig param, then $KUBECONFIG; none is unconfigured', async (t) => {
  api.put('services', { metadata: { name: 'api', namespace: 'm-source' }, spec: { type: 'ClusterIP' } });
  const { kubeconfig: _k, ...noFile } = params('services_internal', 'm-source');
  let o = await kubernetes.run(noFile as KubeParams, makeCtx({ env: { KUBECONFIG: kubeconfig } }));
  t.ok(passing(o), `$KUBECONFIG: ${o.message ?? o.error?.message}`);
  o = await kubernetes.run(noFile as KubeParams, makeCtx({ env: { HOME: dir } }));
  t.equal(o.error?.reason, 'unconfigured');
  t.match(o.error?.message, /^no Kubernetes configuration: not running in a pod, KUBECONFIG is not set/);
  o = await run({ ...params('services_internal', 'm-source'), context: 'prod' });
  t.equal(o.error?.reason, 'unconfigured');
  t.match(o.error?.message, /has no context "prod"/);
});

t.test('credentials rejected (401) and RBAC denial (403) are auth errors', async (t) => {
  const bad = join(dir, 'bad-token');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(bad, readFileSync(kubeconfig, 'utf8').replace(api.token, 'wrong-token'));
  let o = await run({ ...params('pods', 'm-auth'), kubeconfig: bad });
  t.equal(o.error?.reason, 'auth');
  t.match(o.error?.message, /^cannot list and watch pods in m-auth: 401 Unauthorized/);
  api.forbidden.add('services');
  t.teardown(() => api.forbidden.delete('services'));
  o = await run(params('services_internal', 'm-forbidden'));
  t.equal(o.error?.reason, 'auth');
  t.match(o.error?.message, /cannot list and watch services in m-forbidden: 403 Forbidden: services is forbidden: User "system:serviceaccount:readiness:readiness-exporter" cannot list resource "services"/);
});

t.test('a cache that never syncs is an error, never a pass', async (t) => {
  api.hungLists.add('statefulsets');
  t.teardown(() => api.hungLists.delete('statefulsets'));
  const started = Date.now();
  const o = await run(params('resources', 'm-hung'), 800);
  t.equal(o.error?.reason, 'timeout');
  t.match(o.error?.message, /^cache of statefulsets\.apps in m-hung not synced yet: the first list has not completed/);
  t.ok(Date.now() - started < 800, 'answers before the check timeout');
});

t.test('a dropped watch reconnects from its resourceVersion; a clean end resumes; BOOKMARKs advance it; 410 relists', async (t) => {
  const ns = 'm-watch';
  api.put('deployments', deployment(ns, 'api'));
  const p = params('rollout', ns, { name: 'api' });
  await until(p, passing);
  const lists = () => api.count({ plural: 'deployments', namespace: ns, watch: false });
  const watches = () => api.count({ plural: 'deployments', namespace: ns, watch: true });
  t.ok(await eventually(() => watches() === 1), 'one watch');
  t.equal(lists(), 1, 'one list');

  // Abrupt drop: the informer reconnects and replays what happened meanwhile, no relist.
  api.dropWatches('deployments');
  api.put('deployments', deployment(ns, 'api', { ready: 1 }));
  let o = await until(p, failing);
  t.match(o.failure?.message, /1\/2 ready/);
  t.equal(lists(), 1, 'no relist after a drop');
  t.ok(await eventually(() => watches() === 2), 'one new watch');

  // BOOKMARK then a clean end (the server's timeout): resumes from the bookmark's version.
  api.bookmark();
  await sleep(50);
  api.endWatches('deployments');
  api.put('deployments', deployment(ns, 'api'));
  o = await until(p, passing);
  t.notOk(o.failure);
  t.ok(await eventually(() => watches() === 3), 'resumed with a third watch');
  const resumed = api.requests.filter((r) => r.plural === 'deployments' && r.namespace === ns && r.watch).at(-1)!;
  t.ok(Number(resumed.query.get('resourceVersion')) > 0, `resumed at ${resumed.query.get('resourceVersion')}`);
  t.equal(resumed.query.get('allowWatchBookmarks'), 'true');
  t.equal(lists(), 1, 'still no relist');

  // 410 Gone: the history is compacted; the informer relists and sees the deletion it missed.
  api.expireWatches('deployments');
  api.remove('deployments', ns, 'api');
  o = await until(p, failing);
  t.match(o.failure?.message, /api \(not found\)/);
  t.equal(lists(), 2, 'one relist after 410');
  t.ok(await eventually(() => watches() === 4), 'the 410 arrived on the open stream; one new watch from the new list');
});

t.test('a lost watch: the last cache within watchGrace, then error; recovers when the server returns', async (t) => {
  const lost = await FakeKubeApi.start();
  t.teardown(() => lost.close());
  const kc = lost.writeKubeconfig(dir, 'lost');
  lost.put('pods', pod('app', 'api-1'));
  const p = { ...params('pods', 'app', { watchGrace: '600ms' }), kubeconfig: kc };
  await until(p, passing);
  await lost.stop();
  await sleep(100);
  let o = await run(p);
  t.ok(passing(o), 'within the grace period the cache is used');
  t.match(o.message, /\(a watch is reconnecting: cache as of /);
  o = await until(p, (x) => x.error !== undefined, 2000);
  t.equal(o.error?.reason, 'refused');
  t.match(o.error?.message, /^watch of pods in app lost \S+ ago: .*ECONNREFUSED.* \(reconnecting\)$/);
  await lost.restart();
  o = await until(p, passing, 3000);
  t.ok(passing(o), 'back once the server answers');
});

t.test('validate: measure params, selectors, durations, job selection', async (t) => {
  const v = (p: Record<string, unknown>) => kubernetes.validate!({ namespace: 'x', enforce: true, ...p } as KubeParams);
  t.same(v({ measure: 'pods', selector: 'app=api,tier in (web,api),!legacy' }), []);
  t.match(v({ measure: 'pods', name: 'api' }), [/"name" does not apply to measure pods/]);
  t.match(v({ measure: 'hpa' }), [/measure hpa needs "name"/]);
  t.match(v({ measure: 'rollout', name: 'a', names: ['b'] }), [/either "name" or "names"/]);
  t.match(v({ measure: 'job_complete' }), [/exactly one of "name"/]);
  t.match(v({ measure: 'job_complete', name: 'a', cronjob: 'b' }), [/exactly one of "name"/]);
  t.match(v({ measure: 'secrets_age', maxAge: 'ninety days' }), [/"maxAge" is "ninety days": expected a duration/]);
  t.match(v({ measure: 'pods', selector: 'app==' }), []);
  t.match(v({ measure: 'pods', selector: 'app in ()' }), [/"selector": "app in \(\)": empty value set/]);
  t.match(v({ measure: 'pods', kubeconfig: '/nonexistent/kubeconfig' }), [/kubeconfig file \/nonexistent\/kubeconfig does not exist/]);
});

/** A checklist of kubernetes checks against the fake server. */
function checklistYaml(kc: string, checks: string[]): string {
  return [
    'apiVersion: readiness/v1',
    'checklist: kube-test',
    'defaults: { interval: 1h, timeout: 5s }',
    'targets:',
    `  k8s: { namespace: app, kubeconfig: "${kc}", watchGrace: 5s }`,
    'checks:',
    ...checks,
  ].join('\n');
}

function check(id: string, withText: string, extra = ''): string {
  return [`  - id: ${id}`, `    title: ${id}`, '    section: kubernetes', '    severity: critical', '    phase: pre-deploy', '    probe: kubernetes', '    target: k8s', `    with: ${withText}`, ...(extra ? [`    ${extra}`] : [])].join('\n');
}

t.test('a cluster change reaches /readiness within 2 s through subscribe()', async (t) => {
  const srv = await FakeKubeApi.start();
  t.teardown(() => srv.close());
  const kc = srv.writeKubeconfig(dir, 'sub');
  srv.put('pods', pod('app', 'api-7d9'));
  srv.put('deployments', deployment('app', 'api'));
  const loaded = loadChecklist(
    checklistYaml(kc, [check('k8s-pods-healthy', '{ measure: pods }', 'expect: ["offending == 0"]'), check('rollout-api', '{ measure: rollout, name: api }')]),
    'kube.yaml',
    {},
  );
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => d.message).join('\n'));
  const store = new MemoryStore();
  const service = new Service({ file: 'kube.yaml', checklist: loaded.checklist, store, log, env: {}, maxJitterMs: 0 });
  const app = await buildServer({ service, log });
  t.teardown(() => app.close());
  service.start();
  t.teardown(() => service.stop(1000));
  const readiness = async () => (await app.inject('/readiness')).json() as { ready: boolean; failing: { id: string; message: string }[] };
  const deadline = Date.now() + 5000;
  while (!(await readiness()).ready && Date.now() < deadline) await sleep(20);
  t.ok((await readiness()).ready, 'ready once both checks pass (intervals are 1h: only the first run and subscribe run them)');

  const changed = Date.now();
  srv.update('pods', 'app', 'api-7d9', (x) => {
    x.status!.containerStatuses![0]!.state = { waiting: { reason: 'CrashLoopBackOff' } };
    x.status!.containerStatuses![0]!.restartCount = 14;
  });
  let body = await readiness();
  while (body.ready && Date.now() - changed < 2000) {
    await sleep(10);
    body = await readiness();
  }
  const took = Date.now() - changed;
  t.notOk(body.ready, `not ready ${took} ms after the change`);
  t.ok(took < 2000, `within 2 s (${took} ms)`);
  t.match(body.failing, [{ id: 'k8s-pods-healthy', message: 'pods not Running: app/api-7d9 (CrashLoopBackOff, 14 restarts)' }]);
  t.comment(`change -> /readiness 503 in ${took} ms`);

  // And back: the fix reaches /readiness the same way.
  const fixed = Date.now();
  srv.put('pods', pod('app', 'api-7d9'));
  while (!(await readiness()).ready && Date.now() - fixed < 2000) await sleep(10);
  t.ok((await readiness()).ready, `ready again in ${Date.now() - fixed} ms`);
});

t.test('100 checks over the same kinds open one list and one watch per kind', async (t) => {
  const srv = await FakeKubeApi.start();
  t.teardown(() => srv.close());
  const kc = srv.writeKubeconfig(dir, 'hundred');
  for (let i = 0; i < 5; i++) {
    srv.put('pods', pod('app', `api-${i}`, { labels: { app: 'api', shard: String(i) } }));
    srv.put('deployments', deployment('app', `svc-${i}`));
    srv.put('horizontalpodautoscalers', {
      metadata: { name: `svc-${i}`, namespace: 'app' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `svc-${i}` }, minReplicas: 2, maxReplicas: 6 },
      status: { desiredReplicas: 2, currentReplicas: 2, conditions: [{ type: 'ScalingActive', status: 'True' }] },
    });
    srv.put('poddisruptionbudgets', {
      metadata: { name: `svc-${i}`, namespace: 'app' },
      spec: { maxUnavailable: 1, selector: { matchLabels: { app: `svc-${i}` } } },
      status: { disruptionsAllowed: 1, currentHealthy: 2, desiredHealthy: 1, expectedPods: 2 },
    });
  }
  const checks: string[] = [];
  for (let i = 0; i < 25; i++) {
    checks.push(check(`pods-${i}`, `{ measure: pods, selector: "shard=${i % 5}" }`));
    checks.push(check(`rollout-${i}`, `{ measure: rollout, name: svc-${i % 5} }`));
    checks.push(check(`hpa-${i}`, `{ measure: hpa, name: svc-${i % 5} }`));
    checks.push(check(`pdb-${i}`, `{ measure: pdb, name: svc-${i % 5} }`));
  }
  const loaded = loadChecklist(checklistYaml(kc, checks), 'hundred.yaml', {});
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => d.message).join('\n'));
  t.equal(loaded.checklist.checks.length, 100);
  const store = new MemoryStore();
  const sched = new Scheduler(loaded.checklist, { store, log, env: {}, maxJitterMs: 0, concurrency: 16 });
  sched.start();
  t.teardown(() => sched.stop(1000));
  const deadline = Date.now() + 10_000;
  const passed = () => loaded.checklist.checks.filter((c) => store.latest(c.id)?.state === 'pass').length;
  while (passed() < 100 && Date.now() < deadline) await sleep(25);
  t.equal(passed(), 100, 'all 100 checks pass');

  // A change notifies every check reading that kind; still no new list or watch.
  srv.update('pods', 'app', 'api-0', (x) => {
    x.metadata!.labels!.touched = 'yes';
  });
  await sleep(400);
  const counts: Record<string, { lists: number; watches: number }> = {};
  for (const plural of ['pods', 'deployments', 'horizontalpodautoscalers', 'poddisruptionbudgets'] as Plural[]) {
    counts[plural] = { lists: srv.count({ plural, watch: false }), watches: srv.count({ plural, watch: true }) };
    t.same(counts[plural], { lists: 1, watches: 1 }, `${plural}: one list, one watch`);
  }
  t.equal(srv.requests.length, 8, 'nothing else was requested');
  t.comment(`requests for 100 checks: ${JSON.stringify(counts)}`);
});

/** The shipped checklist's kubernetes rows (COVERAGE.md): each must pass on a healthy cluster and fail on a broken one. */
const SHIPPED = [
  'secrets-rotated',
  'env-validated',
  'backup-job-succeeded',
  'k8s-nodes-ready',
  'k8s-node-pressure',
  'k8s-pods-healthy',
  'k8s-resources-set',
  'k8s-hpa-api',
  'k8s-hpa-worker',
  'k8s-pdb',
  'k8s-network-policies',
  'k8s-ingress-rate-limit',
  'k8s-rbac-no-cluster-admin',
  'k8s-serviceaccounts-least-privilege',
  'secrets-sealed',
  'k8s-services-internal',
  'restore-tested',
  'rto-restore-duration',
  'predeploy-backup-fresh',
  'staging-healthy',
  'migrate-job-complete',
  'rollout-api',
  'rollout-worker',
  'rollout-web',
];

const NS = 'offgridflow';
const APPS = ['offgridflow-api', 'offgridflow-worker', 'offgridflow-web'];

/** The objects of deploy/base/rbac.yaml, put into the fake cluster: the exporter's own grants must not trip the app's checks. */
function putShippedRbac(srv: FakeKubeApi): void {
  for (const doc of YAML.parseAllDocuments(readFileSync('deploy/base/rbac.yaml', 'utf8'))) {
    const o = doc.toJS() as { kind: string };
    if (o.kind === 'ClusterRole') srv.put('clusterroles', o as never);
    else if (o.kind === 'ClusterRoleBinding') srv.put('clusterrolebindings', o as never);
    else if (o.kind === 'RoleBinding') srv.put('rolebindings', o as never);
  }
}

/** OffGridFlow's production and staging namespaces, healthy, or with one fault per shipped check. */
function seedOffgridflow(srv: FakeKubeApi, broken: boolean): void {
  const b = broken;
  putShippedRbac(srv);
  srv.put('clusterroles', { metadata: { name: 'cluster-admin' }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] });
  // k8s-nodes-ready, k8s-node-pressure
  srv.put('nodes', node('n1', { pressure: b ? 'MemoryPressure' : undefined }));
  srv.put('nodes', node('n2', { ready: !b }));
  srv.setNodeMetrics('n1', { cpu: '1500m', memory: '6Gi' });
  srv.setNodeMetrics('n2', { cpu: '800m', memory: '5Gi' });
  // Secrets (sealed) and configuration: secrets-rotated, secrets-sealed, env-validated
  const ss = srv.put('sealedsecrets', { metadata: { name: 'offgridflow-secrets', namespace: NS }, spec: { encryptedData: { 'database-url': 'AgA1', 'redis-url': 'AgA2' } } });
  srv.put('secrets', secret(NS, 'offgridflow-secrets', { daysOld: b ? 120 : 12, sealedBy: { name: 'offgridflow-secrets', uid: ss.metadata.uid } }));
  if (b) srv.put('secrets', secret(NS, 'stripe-live', { daysOld: 3 }));
  srv.put('configmaps', { metadata: { name: 'offgridflow-config', namespace: NS }, data: b ? { 'log-level': 'info' } : { 'log-level': 'info', 'feature-flags': 'x' } });
  const env = [
    { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'offgridflow-secrets', key: 'database-url' } } },
    { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: 'offgridflow-secrets', key: 'redis-url' } } },
    { name: 'FEATURE_FLAGS', valueFrom: { configMapKeyRef: { name: 'offgridflow-config', key: 'feature-flags' } } },
  ];
  // Workloads: rollouts, resources, pods, service accounts
  for (const app of APPS) {
    const broke = b && app === 'offgridflow-web';
    srv.put(
      'deployments',
      deployment(NS, app, {
        replicas: 2,
        ...(b && { ready: 1 }),
        ...(app !== 'offgridflow-web' && { env }),
        ...(broke && { resources: { requests: { cpu: '100m' } } }),
      }),
    );
    for (const i of [1, 2]) {
      srv.put(
        'pods',
        pod(NS, `${app}-7d9f-${i}`, {
          labels: { app },
          serviceAccount: broke ? 'default' : app,
          ...(b && app === 'offgridflow-api' && i === 1 && { waiting: 'CrashLoopBackOff', restarts: 14 }),
        }),
      );
    }
    srv.put('roles', { metadata: { name: app, namespace: NS }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }] });
    srv.put('rolebindings', { metadata: { name: app, namespace: NS }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: app }, subjects: [{ kind: 'ServiceAccount', name: app, namespace: NS }] });
    // k8s-pdb
    if (!(b && app === 'offgridflow-web')) {
      srv.put('poddisruptionbudgets', {
        metadata: { name: app, namespace: NS },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app } } },
        status: { disruptionsAllowed: 1, currentHealthy: 2, desiredHealthy: 1, expectedPods: 2 },
      });
    }
  }
  if (b) {
    srv.put('clusterrolebindings', { metadata: { name: 'worker-admin' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: 'offgridflow-worker', namespace: NS }] });
  }
  // k8s-hpa-api, k8s-hpa-worker
  for (const app of ['offgridflow-api', 'offgridflow-worker']) {
    srv.put('horizontalpodautoscalers', {
      metadata: { name: app, namespace: NS },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: app }, minReplicas: b && app === 'offgridflow-api' ? 1 : 2, maxReplicas: 10 },
      status: { currentReplicas: 2, desiredReplicas: 2, conditions: [{ type: 'ScalingActive', status: b && app === 'offgridflow-worker' ? 'False' : 'True', reason: 'ValidMetricFound' }] },
    });
  }
  // k8s-network-policies, k8s-ingress-rate-limit, k8s-services-internal
  if (!b) srv.put('networkpolicies', { metadata: { name: 'default-deny', namespace: NS }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
  srv.put('networkpolicies', { metadata: { name: 'api-from-ingress', namespace: NS }, spec: { podSelector: { matchLabels: { app: 'offgridflow-api' } }, ingress: [{}] } });
  srv.put('ingresses', { metadata: { name: 'offgridflow-ingress', namespace: NS, annotations: b ? {} : { 'nginx.ingress.kubernetes.io/limit-rps': '20' } }, spec: { ingressClassName: 'nginx' } });
  for (const svc of ['offgridflow-api', 'offgridflow-web', 'postgres', 'redis']) {
    srv.put('services', { metadata: { name: svc, namespace: NS }, spec: b && svc === 'postgres' ? { type: 'LoadBalancer' } : { type: 'ClusterIP' } });
  }
  // backup-job-succeeded, predeploy-backup-fresh, restore-tested, rto-restore-duration, migrate-job-complete
  srv.put('cronjobs', {
    metadata: { name: 'postgres-backup', namespace: NS },
    spec: { schedule: '0 2 * * *', jobTemplate: { spec: { template: { spec: { containers: [{ name: 'backup', image: 'backup:1' }] } } } } },
    status: { lastSuccessfulTime: ago((b ? 30 : 3) * H) },
  });
  srv.put('jobs', job(NS, 'postgres-backup-manual', { complete: true, cronjob: 'postgres-backup', startedMinutesAgo: b ? 180 : 25, durationMinutes: 4 }));
  srv.put('jobs', job(NS, 'postgres-restore-test-29100', { complete: true, cronjob: 'postgres-restore-test', startedMinutesAgo: (b ? 40 : 5) * 24 * 60, durationMinutes: b ? 300 : 90 }));
  srv.put('jobs', job(NS, 'migrate-job', b ? { failed: 'BackoffLimitExceeded' } : { complete: true, durationMinutes: 1 }));
  // staging-healthy
  for (const app of APPS) srv.put('deployments', deployment('offgridflow-staging', app, { replicas: 1, ...(b && app === 'offgridflow-web' && { ready: 0 }) }));
}

t.test('the shipped checklist: every kubernetes row passes on a healthy cluster and fails on a broken one', async (t) => {
  for (const broken of [false, true]) {
    const srv = await FakeKubeApi.start();
    seedOffgridflow(srv, broken);
    const kc = srv.writeKubeconfig(dir, `shipped-${broken}`);
    const env = { KUBECONFIG: kc };
    const loaded = await loadChecklistFile('probes/offgridflow.yaml', env);
    if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => d.message).join('\n'));
    const ids = loaded.checklist.checks.filter((c) => c.kind === 'kubernetes').map((c) => c.id);
    t.same([...ids].sort(), [...SHIPPED].sort(), 'the shipped kubernetes rows');
    const views = await runOnce(loaded.checklist, { store: new MemoryStore(), log, env, only: ids });
    for (const v of views) {
      t.equal(v.state, broken ? 'fail' : 'pass', `${broken ? 'broken' : 'healthy'} ${v.def.id}: ${v.message}`);
    }
    t.equal(srv.secretDataServed, 0, 'no Secret value served');
    await kubernetes.close?.();
    await srv.close();
  }
});

t.test('deploy/base/rbac.yaml grants list/watch on exactly what the probe reads', async (t) => {
  const granted = new Set<string>();
  for (const doc of YAML.parseAllDocuments(readFileSync('deploy/base/rbac.yaml', 'utf8'))) {
    const o = doc.toJS() as { kind: string; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    for (const r of o.rules ?? []) {
      t.ok(r.verbs.every((v) => v === 'list' || v === 'watch'), `read-only verbs: ${r.verbs.join(', ')}`);
      for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) granted.add(`${g}/${res}:${v}`);
    }
  }
  const needed = new Set<string>(['metrics.k8s.io/nodes:list', 'metrics.k8s.io/pods:list']);
  for (const d of Object.values(R)) for (const v of ['list', 'watch']) needed.add(`${d.group}/${d.plural}:${v}`);
  t.same([...granted].sort(), [...needed].sort());
});

t.test('HA: a metrics.k8s.io request asks the lease question right before it is sent', async (t) => {
  api.put('nodes', node('n1'));
  api.setNodeMetrics('n1', { cpu: '1', memory: '4Gi' });
  const p = params('node_usage', 'ha-gate');
  await until(p, passing); // the nodes informer is synced: the run's only request is the metrics GET
  const before = api.count({ plural: 'metrics' });
  const kept = await kubernetes.run(p, { ...makeCtx({ timeoutMs: 3000 }), stillOwner: () => true });
  t.notOk(kept.error, 'with the lease kept the measurement runs');
  t.equal(api.count({ plural: 'metrics' }), before + 1, 'and asks metrics.k8s.io once');
  const lost = await kubernetes.run(p, { ...makeCtx({ timeoutMs: 3000 }), stillOwner: () => false });
  t.match(lost.error?.message, /lease was lost/, 'with the lease lost the run says so');
  t.equal(api.count({ plural: 'metrics' }), before + 1, 'and sends no request');
});
