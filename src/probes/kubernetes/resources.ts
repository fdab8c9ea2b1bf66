// The Kubernetes resources the `kubernetes` probe reads, one entry each: where the API serves
// it and what of each object is kept in the informer cache. deploy/base/rbac.yaml grants exactly
// these (get/list/watch), plus metrics.k8s.io, which is read by a plain GET per run.
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1CronJob,
  V1Deployment,
  V1Ingress,
  V1Job,
  V1NetworkPolicy,
  V1Node,
  V1ObjectMeta,
  V1Pod,
  V1PodDisruptionBudget,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1StatefulSet,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';

/**
 * An API type as it arrives on the wire: JSON, so every Date of the generated model is an
 * RFC 3339 string. The cache holds parsed JSON, never the generated classes.
 */
export type Wire<T> = T extends Date ? string : T extends (infer U)[] ? Wire<U>[] : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;

/** What a metadata-only list or watch of Secrets returns (PartialObjectMetadata): no data, no type. */
export interface SecretMeta {
  apiVersion?: string;
  kind?: string;
  metadata?: Wire<V1ObjectMeta>;
}

/** bitnami.com/v1alpha1 SealedSecret (no generated model: it is a custom resource). */
export interface SealedSecret {
  apiVersion?: string;
  kind?: string;
  metadata?: Wire<V1ObjectMeta>;
  spec?: {
    /** Key -> ciphertext. The probe keeps the key names only. */
    encryptedData?: Record<string, string>;
    template?: { metadata?: Wire<V1ObjectMeta>; type?: string; data?: Record<string, string> };
  };
}

export interface ResourceDef<T = unknown> {
  /** Plural resource name, as RBAC and the URL path spell it. */
  plural: string;
  /** API group ('' for the core group). */
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
  /**
   * A custom resource whose CRD may not be installed: a 404 on list means "none exist" (the
   * check sees an empty cache and a note), retried slowly in case the CRD appears.
   */
  optional?: boolean;
  /** List and watch with `Accept: ...;as=PartialObjectMetadata...`: the server never sends data. */
  metadataOnly?: boolean;
  /** Trims each object before it is cached (applied to list items and watch events alike). */
  project?: (obj: T) => T;
  /** Compile-time only: the cached object type. */
  readonly _type?: T;
}

/** `kubectl apply` stores the whole applied object here; for a Secret that includes its data. */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Metadata only, whatever the server sent: even with the metadata-only Accept header, a server
 * (or proxy) that ignores it would send data; and a Secret created by `kubectl apply` carries
 * its previous contents, values included, in the last-applied annotation. Neither is kept.
 * managedFields are reduced to their timestamps (the rotation time is read from them).
 */
function secretMetadata(obj: SecretMeta): SecretMeta {
  const meta = { ...(obj.metadata ?? {}) };
  if (meta.annotations && LAST_APPLIED in meta.annotations) {
    const { [LAST_APPLIED]: _dropped, ...rest } = meta.annotations;
    meta.annotations = rest;
  }
  if (meta.managedFields) meta.managedFields = meta.managedFields.map((m) => ({ ...(m.time !== undefined && { time: m.time }), ...(m.operation !== undefined && { operation: m.operation }) }));
  return { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: meta };
}

/** Key names are all the env measurement needs; values (maybe large) are not kept. */
function keysOnly(data: Record<string, string> | undefined): Record<string, string> | undefined {
  return data && Object.fromEntries(Object.keys(data).map((k) => [k, '']));
}

function dropLastApplied<T extends { metadata?: Wire<V1ObjectMeta> }>(obj: T): T {
  const ann = obj.metadata?.annotations;
  if (!ann || !(LAST_APPLIED in ann)) return obj;
  const { [LAST_APPLIED]: _dropped, ...rest } = ann;
  return { ...obj, metadata: { ...obj.metadata, annotations: rest } };
}

const def = <T>(d: ResourceDef<T>): ResourceDef<T> => d;

export const R = {
  nodes: def<Wire<V1Node>>({ plural: 'nodes', group: '', version: 'v1', kind: 'Node', namespaced: false }),
  pods: def<Wire<V1Pod>>({ plural: 'pods', group: '', version: 'v1', kind: 'Pod', namespaced: true, project: dropLastApplied }),
  services: def<Wire<V1Service>>({ plural: 'services', group: '', version: 'v1', kind: 'Service', namespaced: true, project: dropLastApplied }),
  configmaps: def<Wire<V1ConfigMap>>({
    plural: 'configmaps',
    group: '',
    version: 'v1',
    kind: 'ConfigMap',
    namespaced: true,
    project: (cm) => {
      const o = dropLastApplied(cm);
      return { ...o, data: keysOnly(o.data), binaryData: keysOnly(o.binaryData) };
    },
  }),
  secrets: def<SecretMeta>({ plural: 'secrets', group: '', version: 'v1', kind: 'Secret', namespaced: true, metadataOnly: true, project: secretMetadata }),
  deployments: def<Wire<V1Deployment>>({ plural: 'deployments', group: 'apps', version: 'v1', kind: 'Deployment', namespaced: true, project: dropLastApplied }),
  statefulsets: def<Wire<V1StatefulSet>>({ plural: 'statefulsets', group: 'apps', version: 'v1', kind: 'StatefulSet', namespaced: true, project: dropLastApplied }),
  jobs: def<Wire<V1Job>>({ plural: 'jobs', group: 'batch', version: 'v1', kind: 'Job', namespaced: true, project: dropLastApplied }),
  cronjobs: def<Wire<V1CronJob>>({ plural: 'cronjobs', group: 'batch', version: 'v1', kind: 'CronJob', namespaced: true, project: dropLastApplied }),
  hpas: def<Wire<V2HorizontalPodAutoscaler>>({ plural: 'horizontalpodautoscalers', group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler', namespaced: true }),
  pdbs: def<Wire<V1PodDisruptionBudget>>({ plural: 'poddisruptionbudgets', group: 'policy', version: 'v1', kind: 'PodDisruptionBudget', namespaced: true }),
  networkpolicies: def<Wire<V1NetworkPolicy>>({ plural: 'networkpolicies', group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy', namespaced: true }),
  ingresses: def<Wire<V1Ingress>>({ plural: 'ingresses', group: 'networking.k8s.io', version: 'v1', kind: 'Ingress', namespaced: true }),
  roles: def<Wire<V1Role>>({ plural: 'roles', group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'Role', namespaced: true }),
  rolebindings: def<Wire<V1RoleBinding>>({ plural: 'rolebindings', group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'RoleBinding', namespaced: true }),
  clusterroles: def<Wire<V1ClusterRole>>({ plural: 'clusterroles', group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole', namespaced: false }),
  clusterrolebindings: def<Wire<V1ClusterRoleBinding>>({ plural: 'clusterrolebindings', group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', namespaced: false }),
  sealedsecrets: def<SealedSecret>({
    plural: 'sealedsecrets',
    group: 'bitnami.com',
    version: 'v1alpha1',
    kind: 'SealedSecret',
    namespaced: true,
    optional: true,
    project: (s) => ({ ...dropLastApplied(s), spec: { encryptedData: keysOnly(s.spec?.encryptedData), template: { ...s.spec?.template, data: keysOnly(s.spec?.template?.data) } } }),
  }),
} as const;

export type ResourceName = keyof typeof R;
/** The cached object type of a resource. */
export type ObjectOf<K extends ResourceName> = NonNullable<(typeof R)[K]['_type']>;

/** URL path of a resource's collection: `/api/v1/namespaces/ns/pods`, `/apis/apps/v1/deployments`. */
export function collectionPath(d: ResourceDef, namespace: string | undefined): string {
  const base = d.group === '' ? `/api/${d.version}` : `/apis/${d.group}/${d.version}`;
  return d.namespaced && namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${d.plural}` : `${base}/${d.plural}`;
}

/** `pods in offgridflow`, `nodes`: for messages. */
export function describeCollection(d: ResourceDef, namespace: string | undefined): string {
  const what = d.group === '' ? d.plural : `${d.plural}.${d.group}`;
  return d.namespaced && namespace ? `${what} in ${namespace}` : what;
}

/** Accept headers of the metadata-only protocol: the list form for lists, the object form for watch streams. */
export const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
export const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

/** Any cached object, as the informer machinery and notify filters see it. */
export interface AnyObject {
  apiVersion?: string;
  kind?: string;
  metadata?: Wire<V1ObjectMeta>;
}
