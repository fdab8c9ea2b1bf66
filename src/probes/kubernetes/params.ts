// The `kubernetes` kind's parameters (a check's `with:` merged over its target), which of
// them each measurement takes, and their defaults. Like postgres, measurement-specific params
// carry no schema `default`: validate() rejects params a measurement does not take, and a
// schema default would put every one of them on every check.
import { Type, type Static } from '@sinclair/typebox';

export const MEASURES = [
  'nodes',
  'node_usage',
  'pods',
  'pod_usage',
  'resources',
  'hpa',
  'pdb',
  'network_policies',
  'ingress_rate_limit',
  'rbac',
  'service_accounts',
  'secrets_age',
  'secrets_sealed',
  'services_internal',
  'env',
  'cronjob_last_success',
  'job_complete',
  'rollout',
] as const;
export type Measure = (typeof MEASURES)[number];

export const RESOURCE_KEYS = ['requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory'] as const;

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const OBJECT_NAME = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';
const Duration = (description: string) => Type.String({ minLength: 1, description, 'x-hint': 'a duration such as 30s, 5m, 25h, 90d' });
const Percent = (description: string) => Type.Number({ exclusiveMinimum: 0, maximum: 1000, description });
const Name = (description: string) => Type.String({ pattern: OBJECT_NAME, 'x-hint': 'a Kubernetes object name (lower-case letters, digits, - and .)', description });

export const params = Type.Object(
  {
    measure: Type.Unsafe<Measure>({ type: 'string', enum: [...MEASURES], description: `What to measure: ${MEASURES.join(' | ')}.` }),
    namespace: Type.String({
      pattern: DNS_LABEL,
      default: 'default',
      'x-hint': 'a namespace name (lower-case letters, digits and -)',
      description: 'Namespace of the objects measured (ignored by nodes and node_usage). Usually set once on the target.',
    }),
    kubeconfig: Type.Optional(Type.String({ minLength: 1, description: 'Path of a kubeconfig file (default: $KUBECONFIG, else the pod service account, else ~/.kube/config).' })),
    context: Type.Optional(Type.String({ minLength: 1, description: 'kubeconfig context to use instead of the current one (e.g. the staging cluster).' })),
    watchGrace: Type.Optional(Duration('How long a lost watch may reconnect while the check still reads the last cache (default 15s); after that the check is `error`.')),
    enforce: Type.Boolean({
      default: true,
      description: "The measurement's own rule fails the check, naming the offending objects. false: only fields are reported and expect: decides.",
    }),
    name: Type.Optional(Name('The object measured: Deployment (rollout, hpa, env, pdb, resources), CronJob (cronjob_last_success), Job (job_complete), Ingress.')),
    names: Type.Optional(Type.Array(Type.String({ pattern: OBJECT_NAME }), { minItems: 1, description: 'Several objects, as name (not together with name).' })),
    selector: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Label selector (`app=api,tier!=batch`, `env in (prod,staging)`, `!legacy`) restricting the objects measured.',
      }),
    ),
    ignore: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Names of objects to leave out (services_internal: Services meant to be public; rbac: bindings; secrets_*: Secrets; service_accounts: ServiceAccounts).' })),
    pendingFor: Type.Optional(Duration('pods: a pod Pending (or Running but not Ready) longer than this is unhealthy (default 5m).')),
    maxRestarts: Type.Optional(Type.Integer({ minimum: 0, description: 'pods: a pod with more container restarts than this in the last hour is unhealthy (default: not enforced; see restarts_last_hour).' })),
    maxCpuPercent: Type.Optional(Percent('node_usage: of allocatable (default 90); pod_usage: of the container limit (default 70).')),
    maxMemoryPercent: Type.Optional(Percent('node_usage: of allocatable (default 90); pod_usage: of the container limit (default 80).')),
    require: Type.Optional(
      Type.Array(Type.Unsafe<(typeof RESOURCE_KEYS)[number]>({ type: 'string', enum: [...RESOURCE_KEYS] }), {
        minItems: 1,
        description: `resources: which of ${RESOURCE_KEYS.join(', ')} every container must set (default all four).`,
      }),
    ),
    minReplicas: Type.Optional(Type.Integer({ minimum: 1, description: 'hpa: lowest acceptable minReplicas (default 2).' })),
    minDisruptionsAllowed: Type.Optional(Type.Integer({ minimum: 0, description: 'pdb: lowest acceptable status.disruptionsAllowed (default 1).' })),
    requireEgress: Type.Optional(Type.Boolean({ description: 'network_policies: also require a default-deny egress policy (default false).' })),
    annotations: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'ingress_rate_limit: annotations of which at least one must be set (default nginx.ingress.kubernetes.io/limit-rps, -rpm, -connections).',
      }),
    ),
    maxAge: Type.Optional(Duration('secrets_age: oldest acceptable time since a Secret was last written (default 90d).')),
    required: Type.Optional(Type.Array(Type.String({ pattern: '^[-._a-zA-Z][-._a-zA-Z0-9]*$' }), { minItems: 1, description: 'env: environment variable names each Deployment must define.' })),
    within: Type.Optional(Duration('cronjob_last_success: the last success must be this recent (default 25h). job_complete: the Job must have completed this recently (default: any time).')),
    cronjob: Type.Optional(Name('job_complete: measure the newest finished Job created by this CronJob (instead of name).')),
    maxDuration: Type.Optional(Duration('job_complete: the Job must have run no longer than this (e.g. 4h, the RTO).')),
  },
  { additionalProperties: false },
);

export type KubeParams = Static<typeof params>;
type ParamName = keyof KubeParams;

/** Params every measurement takes. */
export const COMMON: readonly ParamName[] = ['measure', 'namespace', 'kubeconfig', 'context', 'watchGrace', 'enforce'];

/** What each measurement takes besides the common params. */
export const MEASURE_PARAMS: Record<Measure, { required?: readonly ParamName[]; optional: readonly ParamName[] }> = {
  nodes: { optional: ['selector'] },
  node_usage: { optional: ['selector', 'maxCpuPercent', 'maxMemoryPercent'] },
  pods: { optional: ['selector', 'pendingFor', 'maxRestarts'] },
  pod_usage: { optional: ['selector', 'maxCpuPercent', 'maxMemoryPercent'] },
  resources: { optional: ['name', 'names', 'selector', 'require'] },
  hpa: { required: ['name'], optional: ['minReplicas'] },
  pdb: { optional: ['name', 'names', 'selector', 'minDisruptionsAllowed'] },
  network_policies: { optional: ['selector', 'requireEgress'] },
  ingress_rate_limit: { optional: ['name', 'names', 'selector', 'annotations'] },
  rbac: { optional: ['ignore'] },
  service_accounts: { optional: ['selector', 'ignore'] },
  secrets_age: { optional: ['selector', 'ignore', 'maxAge'] },
  secrets_sealed: { optional: ['selector', 'ignore'] },
  services_internal: { optional: ['selector', 'ignore'] },
  env: { optional: ['name', 'names', 'selector', 'required'] },
  cronjob_last_success: { required: ['name'], optional: ['within'] },
  job_complete: { optional: ['name', 'cronjob', 'selector', 'within', 'maxDuration'] },
  rollout: { optional: ['name', 'names', 'selector'] },
};

export const DEFAULTS = {
  watchGrace: '15s',
  pendingFor: '5m',
  nodeCpuPercent: 90,
  nodeMemoryPercent: 90,
  podCpuPercent: 70,
  podMemoryPercent: 80,
  minReplicas: 2,
  minDisruptionsAllowed: 1,
  rateLimitAnnotations: ['nginx.ingress.kubernetes.io/limit-rps', 'nginx.ingress.kubernetes.io/limit-rpm', 'nginx.ingress.kubernetes.io/limit-connections'],
  maxAge: '90d',
  cronjobWithin: '25h',
} as const;

/** The names a check measures (name or names), or undefined for "all". */
export function namesOf(p: KubeParams): string[] | undefined {
  if (p.names) return p.names;
  return p.name !== undefined ? [p.name] : undefined;
}
