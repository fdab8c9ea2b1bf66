// kubernetes: the cluster, workload, security and rollout lines of the checklist, read from
// the Kubernetes API through shared informers. `measure` picks what is measured (nodes, pods,
// resources, hpa, pdb, network_policies, rbac, secrets_age, rollout, ...).
//
// Every check reads informer caches, never the API directly: one list+watch per resource and
// namespace serves every check of the process, so the API server sees the same load for 5
// checks or 500, and subscribe() re-runs a check as soon as an object it reads changes. A
// cache that has not synced, or whose watch is lost for longer than the check's watchGrace,
// makes the check `error`, never `pass`. Secrets are listed and watched as metadata only.
// Node and pod usage come from metrics.k8s.io, which has no watch: a GET per run.
// The helpers live in src/probes/kubernetes/; the client and informers (with
// @kubernetes/client-node) load when the first check of this kind runs or subscribes.
import { existsSync } from 'node:fs';
import { parseDuration } from '../config/duration.js';
import { nodes, nodeUsage, pods, podUsage } from './kubernetes/cluster.js';
import type { SharedInformer } from './kubernetes/informers.js';
import type { Measurement, View } from './kubernetes/measure.js';
import { COMMON, DEFAULTS, MEASURE_PARAMS, params, type KubeParams, type Measure } from './kubernetes/params.js';
import type { ResourceName } from './kubernetes/resources.js';
import { kubeconfigOrigin, kubeconfigSecrets, NO_KUBECONFIG } from './kubernetes/source.js';
import { ingressRateLimit, networkPolicies, rbac, secretsAge, secretsSealed, serviceAccounts, servicesInternal } from './kubernetes/security.js';
import { ago, durationMs, parseSelector } from './kubernetes/util.js';
import { cronjobLastSuccess, env, hpa, jobComplete, pdb, resources, rollout } from './kubernetes/workloads.js';
import { lazy } from './lazy.js';
import { defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';

/** The API client and the informers, with @kubernetes/client-node: loaded by the first run or subscription. */
const kube = lazy(async () => {
  const [client, informers] = await Promise.all([import('./kubernetes/client.js'), import('./kubernetes/informers.js')]);
  return { ...client, ...informers };
});
/** Set once `kube` loaded: close() has clusters to stop only then. */
let kubeLoaded: Awaited<ReturnType<typeof kube>> | undefined;

const MEASUREMENTS: Record<Measure, Measurement> = {
  nodes,
  node_usage: nodeUsage,
  pods,
  pod_usage: podUsage,
  resources,
  hpa,
  pdb,
  network_policies: networkPolicies,
  ingress_rate_limit: ingressRateLimit,
  rbac,
  service_accounts: serviceAccounts,
  secrets_age: secretsAge,
  secrets_sealed: secretsSealed,
  services_internal: servicesInternal,
  env,
  cronjob_last_success: cronjobLastSuccess,
  job_complete: jobComplete,
  rollout,
};

const DURATION_PARAMS = ['watchGrace', 'pendingFor', 'maxAge', 'within', 'maxDuration'] as const;

/** A check is given this much less than its timeout to wait for a cache, so it reports why itself. */
const SYNC_MARGIN_MS = 250;

/** Exceptions that are bugs in the probe, not answers from the cluster: left to the harness (which logs them). */
function isBug(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError;
}

async function measure(p: KubeParams, ctx: ProbeContext, { clusterFor, getJson }: Awaited<ReturnType<typeof kube>>): Promise<Observation> {
  const m = MEASUREMENTS[p.measure];
  const cluster = clusterFor(p, ctx.env);
  const graceMs = durationMs(p.watchGrace ?? DEFAULTS.watchGrace);
  const deadline = Date.now() + Math.max(0, ctx.timeoutMs - SYNC_MARGIN_MS);
  const informers = new Map<ResourceName, SharedInformer<unknown>>(m.reads(p).map((r) => [r.res, cluster.informer(r.res, p.namespace)]));
  const ready = await Promise.all([...informers.values()].map((i) => i.ready(graceMs, deadline, ctx.signal)));
  const staleMs = Math.max(0, ...ready.map((r) => r.staleMs ?? 0));
  const view: View = {
    p,
    namespace: p.namespace,
    now: Date.now(),
    enforce: p.enforce,
    ctx,
    list: (res) => {
      const inf = informers.get(res);
      if (!inf) throw new TypeError(`measure ${p.measure} reads ${res} without declaring it in reads()`);
      return inf.list() as never;
    },
    absent: (res) => informers.get(res)?.absent ?? false,
    getJson: (path) => getJson(cluster.kc, path, { signal: ctx.signal, ...(ctx.stillOwner && { stillOwner: ctx.stillOwner }) }),
  };
  const obs = await m.run(view);
  if (staleMs > 0) {
    // Within the grace period the last cache is used; say so.
    const note = ` (a watch is reconnecting: cache as of ${ago(staleMs)})`;
    if (obs.failure) obs.failure.message += note;
    else obs.message = (obs.message ?? 'ok') + note;
  }
  return obs;
}

export default defineProbe({
  kind: 'kubernetes',
  description:
    'Reads the Kubernetes API through shared informers: nodes, pods, requests/limits, HPA, PDB, NetworkPolicies, ingress rate limits, RBAC, ServiceAccounts, Secret rotation and sealing, Service exposure, env references, CronJobs, Jobs, rollouts; node/pod usage from metrics.k8s.io.',
  params,
  fields: {
    total: { type: 'number', description: 'Objects the measurement considered (pods, nodes, containers, bindings, ...).' },
    offending: { type: 'number', description: "Objects breaking the measurement's rule; they are named in the message. The default value." },
    offenders: { type: 'any', description: 'The offending objects with why, as a list: len(offenders).' },
    nodes: { type: 'number', description: 'nodes, node_usage: nodes considered.' },
    nodes_ready: { type: 'number', description: 'nodes: nodes whose Ready condition is True.' },
    nodes_not_ready: { type: 'number', description: 'nodes: nodes not Ready (the value).' },
    nodes_pressure: { type: 'number', description: 'nodes, node_usage: nodes with MemoryPressure, DiskPressure or PIDPressure True.' },
    nodes_unschedulable: { type: 'number', description: 'nodes: cordoned nodes.' },
    cpu_percent: { type: 'number', description: 'node_usage: highest node CPU use, % of allocatable; pod_usage: highest container CPU use, % of its limit.' },
    memory_percent: { type: 'number', description: 'node_usage: highest node memory use, % of allocatable; pod_usage: highest container memory use, % of its limit.' },
    pods: { type: 'number', description: 'pods, network_policies, service_accounts: pods considered.' },
    pods_running: { type: 'number', description: 'pods: pods in phase Running.' },
    pods_pending: { type: 'number', description: 'pods: pods in phase Pending (within pendingFor or not).' },
    restarts: { type: 'number', description: 'pods: container restarts, all time.' },
    restarts_last_hour: { type: 'number', description: 'pods: container restarts in the last hour (at least; exact once the exporter has watched for an hour).' },
    containers: { type: 'number', description: 'resources, pod_usage: containers considered.' },
    containers_unlimited: { type: 'number', description: 'pod_usage: containers without a cpu or memory limit (not measured).' },
    workloads: { type: 'number', description: 'resources: Deployments and StatefulSets considered.' },
    containers_missing: { type: 'number', description: 'resources: containers missing a required request or limit.' },
    min_replicas: { type: 'number', description: 'hpa: spec.minReplicas.' },
    max_replicas: { type: 'number', description: "hpa: spec.maxReplicas (the value: the postgres connection_headroom check's replicas)." },
    current_replicas: { type: 'number', description: 'hpa: status.currentReplicas.' },
    desired_replicas: { type: 'number', description: 'hpa: status.desiredReplicas.' },
    scaling_active: { type: 'boolean', description: 'hpa: the ScalingActive condition is True.' },
    able_to_scale: { type: 'boolean', description: 'hpa: the AbleToScale condition is True.' },
    deployments: { type: 'number', description: 'pdb, env, rollout: Deployments considered.' },
    deployments_without_pdb: { type: 'number', description: 'pdb: Deployments no PodDisruptionBudget selects.' },
    disruptions_allowed: { type: 'number', description: 'pdb: lowest status.disruptionsAllowed among the matching budgets.' },
    policies: { type: 'number', description: 'network_policies: NetworkPolicies in the namespace.' },
    default_deny: { type: 'boolean', description: 'network_policies: a default-deny ingress policy exists.' },
    default_deny_egress: { type: 'boolean', description: 'network_policies: a default-deny egress policy exists.' },
    pods_unselected: { type: 'number', description: 'network_policies: pods no policy selects.' },
    ingresses: { type: 'number', description: 'ingress_rate_limit: Ingresses considered.' },
    ingresses_limited: { type: 'number', description: 'ingress_rate_limit: Ingresses with a rate-limit annotation.' },
    limit_rps: { type: 'number', description: 'ingress_rate_limit: lowest nginx limit-rps set.' },
    limit_rpm: { type: 'number', description: 'ingress_rate_limit: lowest nginx limit-rpm set.' },
    limit_connections: { type: 'number', description: 'ingress_rate_limit: lowest nginx limit-connections set.' },
    bindings: { type: 'number', description: "rbac: RoleBindings and ClusterRoleBindings naming the namespace's identities." },
    cluster_admin: { type: 'number', description: 'rbac: bindings granting cluster-admin.' },
    wildcard: { type: 'number', description: 'rbac: bindings granting "*" verbs or resources.' },
    secret_readers: { type: 'number', description: 'rbac: bindings granting list or watch on secrets.' },
    pods_default_sa: { type: 'number', description: 'service_accounts: pods running as the default ServiceAccount.' },
    service_accounts: { type: 'number', description: 'service_accounts: ServiceAccounts used by pods.' },
    privileged_service_accounts: { type: 'number', description: 'service_accounts: used ServiceAccounts with wildcard, cluster-admin or secret-listing grants.' },
    secrets: { type: 'number', description: 'secrets_age, secrets_sealed: application Secrets considered.' },
    secrets_stale: { type: 'number', description: 'secrets_age: Secrets last written longer than maxAge ago.' },
    oldest_age_days: { type: 'number', unit: 'days', description: 'secrets_age: days since the least recently written Secret was written (the value): oldest_age_days <= 90d.' },
    secrets_sealed: { type: 'number', description: 'secrets_sealed: Secrets produced by an existing SealedSecret.' },
    secrets_external: { type: 'number', description: 'secrets_sealed: Secrets produced by Vault Secrets Operator or External Secrets, or carrying Vault annotations.' },
    secrets_unmanaged: { type: 'number', description: 'secrets_sealed: plain Secrets (the value).' },
    services: { type: 'number', description: 'services_internal: Services considered.' },
    services_exposed: { type: 'number', description: 'services_internal: LoadBalancer or NodePort Services, or with externalIPs.' },
    env_missing: { type: 'number', description: 'env: required variables not defined.' },
    refs_broken: { type: 'number', description: 'env: references to a missing ConfigMap/Secret or key.' },
    env_unverified: { type: 'number', description: 'env: references to keys of plain Secrets, which cannot be checked without reading values.' },
    age_seconds: { type: 'number', unit: 's', description: 'cronjob_last_success: seconds since the last success (the value); job_complete: since the Job finished.' },
    last_success: { type: 'string', description: 'cronjob_last_success: status.lastSuccessfulTime (RFC 3339).' },
    suspended: { type: 'boolean', description: 'cronjob_last_success: the CronJob is suspended.' },
    active: { type: 'number', description: 'cronjob_last_success, job_complete: Jobs (pods) running now.' },
    last_job_failed: { type: 'boolean', description: 'cronjob_last_success: its newest finished Job failed.' },
    job: { type: 'string', description: 'job_complete: name of the Job measured.' },
    complete: { type: 'boolean', description: 'job_complete: the Complete condition is True.' },
    failed: { type: 'boolean', description: 'job_complete: the Failed condition is True.' },
    succeeded: { type: 'number', description: 'job_complete: succeeded pods.' },
    duration_seconds: { type: 'number', unit: 's', description: 'job_complete: from start to finish (the value): duration_seconds <= 4h.' },
    rolled_out: { type: 'number', description: 'rollout: Deployments completely rolled out.' },
    version: { type: 'string', description: "rollout (one Deployment): its first container's image tag (or short digest)." },
    image: { type: 'string', description: "rollout (one Deployment): its first container's image." },
    rolled_out_at: { type: 'number', description: 'rollout (one Deployment): Unix time its rollout completed (Progressing: NewReplicaSetAvailable).' },
    replicas: { type: 'number', description: 'rollout: desired replicas (sum).' },
    updated_replicas: { type: 'number', description: 'rollout: replicas at the current template (sum).' },
    ready_replicas: { type: 'number', description: 'rollout: ready replicas (sum).' },
    available_replicas: { type: 'number', description: 'rollout: available replicas (sum).' },
  },

  // No configuration at all is `unconfigured` at load (a named file that cannot be read is an error at run time).
  missingConfig: (p, env) =>
    kubeconfigOrigin(p, env) ? [] : [{ variable: 'KUBECONFIG', alternative: "a pod's service account, or ~/.kube/config", message: NO_KUBECONFIG }],
  secrets: kubeconfigSecrets,

  validate(p) {
    const errors: string[] = [];
    const spec = MEASURE_PARAMS[p.measure];
    if (!spec) return errors; // the schema's enum already reported it
    const takes = [...(spec.required ?? []), ...spec.optional];
    const allowed = new Set<string>([...COMMON, ...takes]);
    for (const k of spec.required ?? []) if (p[k] === undefined) errors.push(`measure ${p.measure} needs "${k}"`);
    for (const k of Object.keys(p)) {
      if (!allowed.has(k)) errors.push(`"${k}" does not apply to measure ${p.measure}; it takes ${takes.map((x) => `"${x}"`).join(', ') || 'no other parameters'}`);
    }
    if (p.name !== undefined && p.names !== undefined) errors.push('set either "name" or "names", not both');
    if (p.measure === 'job_complete' && [p.name, p.cronjob, p.selector].filter((x) => x !== undefined).length !== 1) {
      errors.push('measure job_complete needs exactly one of "name" (a Job), "cronjob" (its newest finished Job) or "selector"');
    }
    for (const k of DURATION_PARAMS) {
      const d = p[k];
      if (d !== undefined && !(parseDuration(d)! > 0)) errors.push(`"${k}" is ${JSON.stringify(d)}: expected a duration such as 30s, 5m, 25h, 90d`);
    }
    if (p.selector !== undefined) {
      try {
        parseSelector(p.selector);
      } catch (err) {
        errors.push(`"selector": ${(err as Error).message}`);
      }
    }
    if (p.kubeconfig !== undefined && !existsSync(p.kubeconfig)) errors.push(`kubeconfig file ${p.kubeconfig} does not exist`);
    return errors;
  },

  load: kube,

  async run(p, ctx): Promise<Observation> {
    const k = (kubeLoaded = await kube());
    try {
      return await measure(p, ctx, k);
    } catch (err) {
      if (isBug(err)) throw err;
      const { reason, message } = k.classifyError(err);
      const where = err instanceof k.ApiError || err instanceof ProbeError ? '' : 'Kubernetes API: ';
      return { fields: {}, error: { reason, message: where + message } };
    }
  },

  subscribe(p, notify, ctx) {
    let unsubscribe: (() => void)[] = [];
    let cancelled = false;
    const graceMs = durationMs(p.watchGrace ?? DEFAULTS.watchGrace);
    // The client loads in the background; the check's first run (its interval) does not wait for it.
    void kube().then(
      (k) => {
        kubeLoaded = k;
        if (cancelled) return;
        try {
          const cluster = k.clusterFor(p, ctx.env);
          unsubscribe = MEASUREMENTS[p.measure]
            .reads(p)
            .map((r) => cluster.informer(r.res, p.namespace).subscribe({ notify, graceMs, ...(r.notify && { filter: r.notify }) }));
        } catch (err) {
          ctx.log.warn({ err, check: ctx.checkId }, 'subscribe failed: the check runs on its interval only');
        }
      },
      (err: unknown) => ctx.log.error({ err, check: ctx.checkId }, 'cannot load the Kubernetes client: the check runs on its interval only'),
    );
    return () => {
      cancelled = true;
      for (const u of unsubscribe) u();
    };
  },

  async close() {
    await kubeLoaded?.closeClusters();
  },
});
