// Security lines: NetworkPolicies, ingress rate limits, RBAC grants to the namespace's
// subjects, pods' ServiceAccounts, Secret rotation and sealing, and Service exposure.
// Secrets are read as metadata only (see resources.ts): no value ever reaches the probe.
import type { V1ClusterRoleBinding, V1PolicyRule, V1RoleBinding, RbacV1Subject } from '@kubernetes/client-node';
import type { Measurement, View } from './measure.js';
import { byName } from './measure.js';
import { DEFAULTS, namesOf } from './params.js';
import type { SecretMeta, Wire } from './resources.js';
import { ago, durationMs, isEmptySelector, ms, nsName, parseSelector, plural, round1, selects, verdict } from './util.js';

const DAY = 86_400_000;

function labelFilter(v: View): (labels: Record<string, string> | undefined) => boolean {
  return v.p.selector ? parseSelector(v.p.selector) : () => true;
}

function ignored(v: View, name: string | undefined): boolean {
  return (v.p.ignore ?? []).includes(name ?? '');
}

/** Pods that are (or will be) running: finished and terminating ones are left out. */
function livePods(v: View) {
  const sel = labelFilter(v);
  return v.list('pods').filter((p) => sel(p.metadata?.labels) && !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
}

export const networkPolicies: Measurement = {
  reads: () => [{ res: 'networkpolicies' }, { res: 'pods' }],
  run(v) {
    const policies = v.list('networkpolicies');
    const types = (pol: (typeof policies)[number]) => pol.spec?.policyTypes ?? ['Ingress', ...(pol.spec?.egress ? ['Egress'] : [])];
    // Default deny: selects every pod ({}), declares the direction, allows nothing in it.
    const denies = (type: 'Ingress' | 'Egress') =>
      policies.filter((pol) => {
        const rules = type === 'Ingress' ? pol.spec?.ingress : pol.spec?.egress;
        return isEmptySelector(pol.spec?.podSelector) && types(pol).includes(type) && (rules ?? []).length === 0;
      });
    const denyIngress = denies('Ingress');
    const denyEgress = denies('Egress');
    const offenders: string[] = [];
    if (denyIngress.length === 0) offenders.push(`no default-deny ingress policy (podSelector {}, policyTypes [Ingress], no ingress rules)`);
    if (v.p.requireEgress && denyEgress.length === 0) offenders.push(`no default-deny egress policy (podSelector {}, policyTypes [Egress], no egress rules)`);
    const pods = livePods(v);
    const unselected = pods.filter((pod) => !policies.some((pol) => selects(pol.spec?.podSelector, pod.metadata?.labels)));
    for (const pod of unselected) offenders.push(`pod ${pod.metadata?.name} (selected by no policy)`);
    return verdict({
      enforce: v.enforce,
      total: pods.length,
      offenders,
      label: `NetworkPolicies in ${v.namespace}`,
      ok: `default-deny ingress policy ${denyIngress[0]?.metadata?.name} in ${v.namespace}; every one of ${plural(pods.length, 'pod')} selected by a policy`,
      fields: {
        policies: policies.length,
        default_deny: denyIngress.length > 0,
        default_deny_egress: denyEgress.length > 0,
        pods: pods.length,
        pods_unselected: unselected.length,
      },
    });
  },
};

/** ingress-nginx annotations whose (lowest) values are reported as fields. */
const NGINX_LIMITS: Record<string, string> = {
  'nginx.ingress.kubernetes.io/limit-rps': 'limit_rps',
  'nginx.ingress.kubernetes.io/limit-rpm': 'limit_rpm',
  'nginx.ingress.kubernetes.io/limit-connections': 'limit_connections',
};

export const ingressRateLimit: Measurement = {
  reads: (p) => [{ res: 'ingresses', notify: byName(namesOf(p)) }],
  run(v) {
    const names = namesOf(v.p);
    const sel = labelFilter(v);
    const all = v.list('ingresses').filter((i) => (!names || names.includes(i.metadata?.name ?? '')) && sel(i.metadata?.labels));
    const missing = (names ?? []).filter((n) => !all.some((i) => i.metadata?.name === n));
    if (all.length === 0 && missing.length === 0) return { fields: { ingresses: 0 }, noData: true, message: `no Ingress in ${v.namespace}` };
    const wanted = v.p.annotations ?? DEFAULTS.rateLimitAnnotations;
    const offenders = missing.map((n) => `${n} (not found)`);
    const lowest: Record<string, number> = {};
    let limited = 0;
    for (const ing of all) {
      const ann = ing.metadata?.annotations ?? {};
      const set = wanted.filter((a) => ann[a] !== undefined && ann[a] !== '');
      if (set.length === 0) offenders.push(`${ing.metadata?.name} (none of ${wanted.map((a) => a.replace(/^.*\//, '')).join(', ')})`);
      else limited++;
      for (const [a, field] of Object.entries(NGINX_LIMITS)) {
        const n = Number(ann[a]);
        if (ann[a] !== undefined && Number.isFinite(n)) lowest[field] = Math.min(lowest[field] ?? n, n);
      }
    }
    return verdict({
      enforce: v.enforce,
      total: all.length + missing.length,
      offenders,
      label: `Ingresses in ${v.namespace} without rate limiting`,
      ok: `${plural(all.length, 'Ingress', 'Ingresses')} in ${v.namespace} rate-limited (${Object.entries(lowest).map(([k, n]) => `${k} ${n}`).join(', ')})`,
      fields: { ingresses: all.length, ingresses_limited: limited, ...lowest },
    });
  },
};

type Binding = Wire<V1RoleBinding> | Wire<V1ClusterRoleBinding>;
type Subject = Wire<RbacV1Subject>;

/** What a role grants that the checklist forbids for application identities. */
function dangerousGrants(roleName: string, rules: Wire<V1PolicyRule>[] | undefined): { clusterAdmin: boolean; wildcard: boolean; secrets: boolean; text: string[] } {
  const text: string[] = [];
  const clusterAdmin = roleName === 'cluster-admin';
  if (clusterAdmin) return { clusterAdmin, wildcard: true, secrets: true, text: ['cluster-admin'] };
  let wildcard = false;
  let secrets = false;
  for (const r of rules ?? []) {
    if (r.verbs.includes('*')) wildcard = true;
    if ((r.resources ?? []).includes('*')) wildcard = true;
    const coreGroup = (r.apiGroups ?? []).some((g) => g === '' || g === '*');
    const onSecrets = (r.resources ?? []).some((x) => x === 'secrets' || x === '*');
    if (coreGroup && onSecrets && r.verbs.some((x) => x === 'list' || x === 'watch' || x === '*')) secrets = true;
  }
  if (wildcard) text.push('wildcard verbs or resources');
  if (secrets) text.push('list/watch on secrets');
  return { clusterAdmin, wildcard, secrets, text };
}

interface Grant {
  binding: string;
  role: string;
  subjects: Subject[];
  clusterAdmin: boolean;
  wildcard: boolean;
  secrets: boolean;
  text: string[];
}

/** Every binding (namespace RoleBindings and ClusterRoleBindings) granting something dangerous to a subject `matches` accepts. */
function dangerousBindings(v: View, matches: (s: Subject, bindingNs: string | undefined) => boolean): { considered: number; grants: Grant[] } {
  const roles = new Map(v.list('roles').map((r) => [r.metadata?.name ?? '', r]));
  const clusterRoles = new Map(v.list('clusterroles').map((r) => [r.metadata?.name ?? '', r]));
  const bindings: [string, Binding][] = [
    ...v.list('rolebindings').map((b): [string, Binding] => ['RoleBinding', b]),
    ...v.list('clusterrolebindings').map((b): [string, Binding] => ['ClusterRoleBinding', b]),
  ];
  let considered = 0;
  const grants: Grant[] = [];
  for (const [kind, b] of bindings) {
    if (ignored(v, b.metadata?.name)) continue;
    const subjects = (b.subjects ?? []).filter((s) => matches(s, b.metadata?.namespace));
    if (subjects.length === 0) continue;
    considered++;
    const roleRef = b.roleRef;
    const rules = roleRef.kind === 'ClusterRole' ? clusterRoles.get(roleRef.name)?.rules : roles.get(roleRef.name)?.rules;
    const g = dangerousGrants(roleRef.name, rules);
    if (g.text.length) grants.push({ binding: `${kind} ${nsName(b.metadata)}`, role: `${roleRef.kind} ${roleRef.name}`, subjects, ...g });
  }
  return { considered, grants };
}

function describeSubject(s: Subject): string {
  return s.kind === 'ServiceAccount' ? `ServiceAccount ${s.namespace ? `${s.namespace}/` : ''}${s.name}` : `${s.kind} ${s.name}`;
}

const RBAC_READS = [{ res: 'rolebindings' }, { res: 'clusterrolebindings' }, { res: 'roles' }, { res: 'clusterroles' }] as const;

export const rbac: Measurement = {
  reads: () => [...RBAC_READS],
  run(v) {
    const ns = v.namespace;
    // The namespace's identities: its ServiceAccounts, and the groups every one of them is in.
    const groups = new Set(['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated', 'system:unauthenticated']);
    const { considered, grants } = dangerousBindings(v, (s, bindingNs) => (s.kind === 'ServiceAccount' ? (s.namespace ?? bindingNs) === ns : s.kind === 'Group' && groups.has(s.name)));
    const offenders = grants.map((g) => `${g.binding} -> ${g.role} grants ${g.text.join(' and ')} to ${g.subjects.map(describeSubject).join(', ')}`);
    return verdict({
      enforce: v.enforce,
      total: considered,
      offenders,
      label: `RBAC grants to ${ns} identities`,
      ok: `${plural(considered, 'binding')} to ${ns} identities; none grants cluster-admin, wildcards or list/watch on secrets`,
      fields: {
        bindings: considered,
        cluster_admin: grants.filter((g) => g.clusterAdmin).length,
        wildcard: grants.filter((g) => g.wildcard).length,
        secret_readers: grants.filter((g) => g.secrets).length,
      },
    });
  },
};

export const serviceAccounts: Measurement = {
  reads: () => [{ res: 'pods' }, ...RBAC_READS],
  run(v) {
    const ns = v.namespace;
    const pods = livePods(v);
    const used = new Map<string, number>();
    const offenders: string[] = [];
    let onDefault = 0;
    for (const pod of pods) {
      const sa = pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default';
      if (ignored(v, sa)) continue;
      used.set(sa, (used.get(sa) ?? 0) + 1);
      if (sa === 'default') {
        onDefault++;
        offenders.push(`pod ${pod.metadata?.name} runs as the default ServiceAccount`);
      }
    }
    const { grants } = dangerousBindings(v, (s, bindingNs) => s.kind === 'ServiceAccount' && (s.namespace ?? bindingNs) === ns && used.has(s.name));
    const privileged = new Set<string>();
    for (const g of grants) {
      for (const s of g.subjects) {
        privileged.add(s.name);
        offenders.push(`ServiceAccount ${ns}/${s.name} (${plural(used.get(s.name) ?? 0, 'pod')}): ${g.binding} -> ${g.role} grants ${g.text.join(' and ')}`);
      }
    }
    return verdict({
      enforce: v.enforce,
      total: pods.length,
      offenders,
      label: `ServiceAccounts of pods in ${ns}`,
      ok: `${plural(pods.length, 'pod')} in ${ns} run as ${plural(used.size, 'dedicated ServiceAccount')} with no wildcard or secret-listing grants`,
      fields: { pods: pods.length, pods_default_sa: onDefault, service_accounts: used.size, privileged_service_accounts: privileged.size },
    });
  },
};

/**
 * Secrets an application owns: the rest is managed by Kubernetes or tools that rotate them
 * (ServiceAccount tokens, Helm release records, cert-manager certificates).
 */
function appSecrets(v: View): SecretMeta[] {
  const sel = labelFilter(v);
  return v.list('secrets').filter((s) => {
    const m = s.metadata ?? {};
    const ann = m.annotations ?? {};
    if (ignored(v, m.name) || !sel(m.labels)) return false;
    if (ann['kubernetes.io/service-account.name'] !== undefined) return false;
    if (m.labels?.owner === 'helm' || m.name?.startsWith('sh.helm.release.')) return false;
    if (ann['cert-manager.io/certificate-name'] !== undefined) return false;
    return true;
  });
}

/** When a Secret was last written: creation, or the newest managedFields entry (an update in place, e.g. by the SealedSecrets controller). */
function lastWritten(s: SecretMeta): number | undefined {
  const times = [ms(s.metadata?.creationTimestamp), ...(s.metadata?.managedFields ?? []).map((f) => ms(f.time))].filter((t): t is number => t !== undefined);
  return times.length ? Math.max(...times) : undefined;
}

export const secretsAge: Measurement = {
  reads: () => [{ res: 'secrets' }],
  run(v) {
    const maxAge = durationMs(v.p.maxAge ?? DEFAULTS.maxAge);
    const secrets = appSecrets(v);
    if (secrets.length === 0) return { fields: { secrets: 0 }, noData: true, message: `no application Secrets in ${v.namespace}` };
    const offenders: string[] = [];
    let oldest = 0;
    for (const s of secrets) {
      const at = lastWritten(s);
      if (at === undefined) continue;
      const age = v.now - at;
      oldest = Math.max(oldest, age);
      if (age > maxAge) offenders.push(`${s.metadata?.name} (last written ${ago(age)})`);
    }
    const oldestDays = round1(oldest / DAY);
    return verdict({
      enforce: v.enforce,
      total: secrets.length,
      offenders,
      label: `Secrets in ${v.namespace} not rotated within ${v.p.maxAge ?? DEFAULTS.maxAge}`,
      ok: `${plural(secrets.length, 'Secret')} in ${v.namespace} written within ${v.p.maxAge ?? DEFAULTS.maxAge} (oldest ${oldestDays} days)`,
      fields: { secrets: secrets.length, secrets_stale: offenders.length, oldest_age_days: oldestDays },
      value: oldestDays,
    });
  },
};

/** Owners that keep a Secret's value outside the cluster: Vault Secrets Operator, External Secrets. */
const EXTERNAL_OWNER = /^(secrets\.hashicorp\.com|external-secrets\.io)\//;
/** Annotations of Vault-based tooling (Vault Agent, argocd-vault-plugin) on a Secret. */
const VAULT_ANNOTATION = /^(vault\.hashicorp\.com|avp\.kubernetes\.io)\//;

export const secretsSealed: Measurement = {
  reads: () => [{ res: 'secrets' }, { res: 'sealedsecrets' }],
  run(v) {
    const secrets = appSecrets(v);
    if (secrets.length === 0) return { fields: { secrets: 0 }, noData: true, message: `no application Secrets in ${v.namespace}` };
    const sealed = v.list('sealedsecrets');
    const sealedUids = new Set(sealed.map((s) => s.metadata?.uid));
    const sealedNames = new Set(sealed.map((s) => s.metadata?.name));
    const offenders: string[] = [];
    let nSealed = 0;
    let nExternal = 0;
    for (const s of secrets) {
      const owners = s.metadata?.ownerReferences ?? [];
      const owner = owners.find((o) => o.kind === 'SealedSecret' && o.apiVersion.startsWith('bitnami.com/'));
      if (owner) {
        if (sealedUids.has(owner.uid) || sealedNames.has(owner.name)) nSealed++;
        else offenders.push(`${s.metadata?.name} (its SealedSecret ${owner.name} does not exist)`);
      } else if (owners.some((o) => EXTERNAL_OWNER.test(o.apiVersion)) || Object.keys(s.metadata?.annotations ?? {}).some((a) => VAULT_ANNOTATION.test(a))) {
        nExternal++;
      } else {
        offenders.push(`${s.metadata?.name} (not produced by a SealedSecret or Vault)`);
      }
    }
    return verdict({
      enforce: v.enforce,
      total: secrets.length,
      offenders,
      label: `Secrets in ${v.namespace} stored in plain`,
      ok: `${plural(secrets.length, 'Secret')} in ${v.namespace}: ${nSealed} from SealedSecrets, ${nExternal} from Vault/external stores`,
      fields: { secrets: secrets.length, secrets_sealed: nSealed, secrets_external: nExternal, secrets_unmanaged: offenders.length },
      notes: v.absent('sealedsecrets') ? ['bitnami.com/v1alpha1 SealedSecrets are not served by this cluster'] : [],
    });
  },
};

export const servicesInternal: Measurement = {
  reads: () => [{ res: 'services' }],
  run(v) {
    const sel = labelFilter(v);
    const services = v.list('services').filter((s) => sel(s.metadata?.labels) && !ignored(v, s.metadata?.name));
    if (services.length === 0) return { fields: { services: 0 }, noData: true, message: `no Services in ${v.namespace}` };
    const offenders: string[] = [];
    for (const s of services) {
      const spec = s.spec ?? {};
      const type = spec.type ?? 'ClusterIP';
      const problems: string[] = [];
      if (type === 'LoadBalancer') {
        const addrs = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? i.hostname).filter((x) => x);
        problems.push(`LoadBalancer${addrs.length ? ` ${addrs.join(', ')}` : ''}`);
      } else if (type === 'NodePort') {
        problems.push(`NodePort ${(spec.ports ?? []).map((p) => p.nodePort).filter((x) => x).join(', ')}`.trim());
      }
      if (spec.externalIPs?.length) problems.push(`externalIPs ${spec.externalIPs.join(', ')}`);
      if (problems.length) offenders.push(`${s.metadata?.name} (${problems.join(', ')})`);
    }
    return verdict({
      enforce: v.enforce,
      total: services.length,
      offenders,
      label: `Services in ${v.namespace} reachable from outside the cluster`,
      ok: `${plural(services.length, 'Service')} in ${v.namespace} internal (ClusterIP, no external IPs)`,
      fields: { services: services.length, services_exposed: offenders.length },
    });
  },
};
