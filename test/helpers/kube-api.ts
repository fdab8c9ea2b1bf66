// A small local HTTP server speaking the Kubernetes API for the resources the `kubernetes`
// probe reads: lists (resourceVersion, limit/continue pages, metadata-only negotiation), watch
// streams (ADDED/MODIFIED/DELETED, BOOKMARK, a 410 Gone ERROR event that forces a relist,
// replay from a resourceVersion), metrics.k8s.io, a custom resource (SealedSecret), bearer
// token auth with 401/403 answers, and controls to drop, end or expire watches. Every request
// is recorded so tests can count lists and watches. Objects are typed with client-node's
// models, so the compiler checks their shapes.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type {
  NodeMetric,
  PodMetric,
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1CronJob,
  V1Deployment,
  V1EnvFromSource,
  V1EnvVar,
  V1Ingress,
  V1Job,
  V1NetworkPolicy,
  V1Node,
  V1ObjectMeta,
  V1Pod,
  V1PodDisruptionBudget,
  V1ResourceRequirements,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1StatefulSet,
  V1Status,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';

/** bitnami.com/v1alpha1 SealedSecret: a CRD, so client-node has no model for it. */
export interface SealedSecretObject {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: { encryptedData: Record<string, string>; template?: { metadata?: V1ObjectMeta; type?: string } };
}

/** Resource plural -> the model type of its objects. */
export interface Kinds {
  nodes: V1Node;
  pods: V1Pod;
  services: V1Service;
  configmaps: V1ConfigMap;
  secrets: V1Secret;
  deployments: V1Deployment;
  statefulsets: V1StatefulSet;
  jobs: V1Job;
  cronjobs: V1CronJob;
  horizontalpodautoscalers: V2HorizontalPodAutoscaler;
  poddisruptionbudgets: V1PodDisruptionBudget;
  networkpolicies: V1NetworkPolicy;
  ingresses: V1Ingress;
  roles: V1Role;
  rolebindings: V1RoleBinding;
  clusterroles: V1ClusterRole;
  clusterrolebindings: V1ClusterRoleBinding;
  sealedsecrets: SealedSecretObject;
}
export type Plural = keyof Kinds;

interface TypeInfo {
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
}

export const TYPES: Record<Plural, TypeInfo> = {
  nodes: { group: '', version: 'v1', kind: 'Node', namespaced: false },
  pods: { group: '', version: 'v1', kind: 'Pod', namespaced: true },
  services: { group: '', version: 'v1', kind: 'Service', namespaced: true },
  configmaps: { group: '', version: 'v1', kind: 'ConfigMap', namespaced: true },
  secrets: { group: '', version: 'v1', kind: 'Secret', namespaced: true },
  deployments: { group: 'apps', version: 'v1', kind: 'Deployment', namespaced: true },
  statefulsets: { group: 'apps', version: 'v1', kind: 'StatefulSet', namespaced: true },
  jobs: { group: 'batch', version: 'v1', kind: 'Job', namespaced: true },
  cronjobs: { group: 'batch', version: 'v1', kind: 'CronJob', namespaced: true },
  horizontalpodautoscalers: { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler', namespaced: true },
  poddisruptionbudgets: { group: 'policy', version: 'v1', kind: 'PodDisruptionBudget', namespaced: true },
  networkpolicies: { group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy', namespaced: true },
  ingresses: { group: 'networking.k8s.io', version: 'v1', kind: 'Ingress', namespaced: true },
  roles: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'Role', namespaced: true },
  rolebindings: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'RoleBinding', namespaced: true },
  clusterroles: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole', namespaced: false },
  clusterrolebindings: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', namespaced: false },
  sealedsecrets: { group: 'bitnami.com', version: 'v1alpha1', kind: 'SealedSecret', namespaced: true },
};

/** One request the server received. */
export interface Recorded {
  method: string;
  path: string;
  /** The resource plural, or `metrics` for metrics.k8s.io, or undefined for an unknown path. */
  plural?: string;
  namespace?: string;
  watch: boolean;
  query: URLSearchParams;
  accept: string;
  status: number;
}

/** A stored object: JSON (dates are strings), as the real server keeps it. */
type Stored = { metadata: { name: string; namespace?: string; resourceVersion: string; uid: string } & Record<string, unknown> } & Record<string, unknown>;

interface Watcher {
  plural: Plural;
  namespace: string | undefined;
  res: ServerResponse;
  metadataOnly: boolean;
  bookmarks: boolean;
}

interface Event {
  rv: number;
  plural: Plural;
  namespace: string | undefined;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Stored;
}

const META_AS = /as=PartialObjectMetadata(List)?;g=meta\.k8s\.io;v=v1/;

export class FakeKubeApi {
  readonly token = `test-token-${randomUUID()}`;
  readonly requests: Recorded[] = [];
  /** Secrets sent with their data (a full list or watch of secrets): the probe must keep this at 0. */
  secretDataServed = 0;
  /** Whether the SealedSecret CRD is "installed" (else its paths answer 404). */
  sealedSecretsInstalled = true;
  /** Plurals answering 403 Forbidden. */
  readonly forbidden = new Set<Plural>();
  /** Plurals whose lists never answer (a hung API server). */
  readonly hungLists = new Set<Plural>();
  metricsAvailable = true;
  readonly #objects = new Map<Plural, Map<string, Stored>>();
  readonly #log: Event[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<Socket>();
  readonly #hung = new Set<ServerResponse>();
  readonly #nodeMetrics = new Map<string, NodeMetric>();
  readonly #podMetrics = new Map<string, PodMetric>();
  #rv = 1000;
  #compactedRv = 0;
  #server: Server;
  #port = 0;

  private constructor() {
    this.#server = this.#makeServer();
  }

  static async start(): Promise<FakeKubeApi> {
    const api = new FakeKubeApi();
    await api.#listen(0);
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Writes a kubeconfig for this server (plain http needs insecure-skip-tls-verify in client-node). */
  writeKubeconfig(dir: string, name = 'kubeconfig'): string {
    const file = join(dir, name);
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${this.url}`,
        '    insecure-skip-tls-verify: true',
        'users:',
        '- name: probe',
        '  user:',
        `    token: ${this.token}`,
        'contexts:',
        '- name: fake',
        '  context: { cluster: fake, user: probe }',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return file;
  }

  // ── objects ─────────────────────────────────────────────────────────────────────────────

  /** Adds or replaces an object (ADDED or MODIFIED to watchers); returns its stored form. */
  put<K extends Plural>(plural: K, obj: Kinds[K]): Stored {
    const t = TYPES[plural];
    const o = JSON.parse(JSON.stringify(obj)) as Stored;
    o.apiVersion ??= t.group ? `${t.group}/${t.version}` : t.version;
    o.kind ??= t.kind;
    const m = o.metadata;
    if (!m?.name) throw new Error('put: metadata.name is required');
    if (t.namespaced) m.namespace ??= 'default';
    else delete m.namespace;
    const key = `${m.namespace ?? ''}/${m.name}`;
    const store = this.#store(plural);
    const prev = store.get(key);
    m.uid = (m.uid as string | undefined) ?? (prev?.metadata.uid as string | undefined) ?? randomUUID();
    m.creationTimestamp ??= prev?.metadata.creationTimestamp ?? new Date().toISOString();
    m.resourceVersion = String(++this.#rv);
    store.set(key, o);
    this.#emit({ rv: this.#rv, plural, namespace: m.namespace, type: prev ? 'MODIFIED' : 'ADDED', object: o });
    return o;
  }

  /** Changes a stored object in place (a status update): MODIFIED to watchers. */
  update<K extends Plural>(plural: K, namespace: string | undefined, name: string, change: (o: Kinds[K]) => void): void {
    const cur = this.#store(plural).get(`${TYPES[plural].namespaced ? (namespace ?? 'default') : ''}/${name}`);
    if (!cur) throw new Error(`update: no ${plural} ${namespace}/${name}`);
    const copy = JSON.parse(JSON.stringify(cur)) as Kinds[K];
    change(copy);
    this.put(plural, copy);
  }

  /** Deletes an object (DELETED to watchers). */
  remove(plural: Plural, namespace: string | undefined, name: string): void {
    const key = `${TYPES[plural].namespaced ? (namespace ?? 'default') : ''}/${name}`;
    const store = this.#store(plural);
    const cur = store.get(key);
    if (!cur) return;
    store.delete(key);
    const gone = { ...cur, metadata: { ...cur.metadata, resourceVersion: String(++this.#rv) } };
    this.#emit({ rv: this.#rv, plural, namespace: cur.metadata.namespace, type: 'DELETED', object: gone });
  }

  setNodeMetrics(name: string, usage: { cpu: string; memory: string }): void {
    this.#nodeMetrics.set(name, { metadata: { name, selfLink: '', creationTimestamp: new Date().toISOString() }, timestamp: new Date().toISOString(), window: '30s', usage });
  }

  setPodMetrics(namespace: string, name: string, containers: { name: string; cpu: string; memory: string }[]): void {
    this.#podMetrics.set(`${namespace}/${name}`, {
      metadata: { name, namespace, selfLink: '', creationTimestamp: new Date().toISOString() },
      timestamp: new Date().toISOString(),
      window: '30s',
      containers: containers.map((c) => ({ name: c.name, usage: { cpu: c.cpu, memory: c.memory } })),
    });
  }

  // ── watch controls ──────────────────────────────────────────────────────────────────────

  /** Open watch streams (optionally of one resource). */
  watchers(plural?: Plural): number {
    return [...this.#watchers].filter((w) => !plural || w.plural === plural).length;
  }

  /** Sends a BOOKMARK with the current resourceVersion to watchers that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const t = TYPES[w.plural];
      write(w.res, { type: 'BOOKMARK', object: { kind: t.kind, apiVersion: t.group ? `${t.group}/${t.version}` : t.version, metadata: { resourceVersion: String(this.#rv) } } });
    }
  }

  /** Cuts watch connections abruptly (a network failure, a proxy reset). */
  dropWatches(plural?: Plural): void {
    for (const w of [...this.#watchers]) {
      if (plural && w.plural !== plural) continue;
      this.#watchers.delete(w);
      w.res.socket?.destroy();
    }
  }

  /** Ends watch streams cleanly (the server's own timeout): clients resume from their resourceVersion. */
  endWatches(plural?: Plural): void {
    for (const w of [...this.#watchers]) {
      if (plural && w.plural !== plural) continue;
      this.#watchers.delete(w);
      w.res.end();
    }
  }

  /**
   * Compacts the history (every resourceVersion so far is too old to watch from) and ends
   * open watches with a `410 Gone` ERROR event, as an API server whose watch cache moved on.
   */
  expireWatches(plural?: Plural): void {
    this.#compactedRv = this.#rv;
    for (const w of [...this.#watchers]) {
      if (plural && w.plural !== plural) continue;
      this.#watchers.delete(w);
      write(w.res, { type: 'ERROR', object: gone(this.#rv) });
      w.res.end();
    }
  }

  // ── requests ────────────────────────────────────────────────────────────────────────────

  /** Requests received, filtered: `count({ plural: 'pods', watch: true })`. */
  count(f: { plural?: string; watch?: boolean; namespace?: string; status?: number } = {}): number {
    return this.requests.filter(
      (r) => (f.plural === undefined || r.plural === f.plural) && (f.watch === undefined || r.watch === f.watch) && (f.namespace === undefined || r.namespace === f.namespace) && (f.status === undefined || r.status === f.status),
    ).length;
  }

  /** Stops listening and cuts every connection: clients now get ECONNREFUSED. */
  async stop(): Promise<void> {
    this.#watchers.clear();
    for (const r of this.#hung) r.destroy();
    this.#hung.clear();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Listens again on the same port after stop(). */
  async restart(): Promise<void> {
    this.#server = this.#makeServer();
    await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    if (this.#server.listening) await this.stop();
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────

  #store(plural: Plural): Map<string, Stored> {
    let s = this.#objects.get(plural);
    if (!s) {
      s = new Map();
      this.#objects.set(plural, s);
    }
    return s;
  }

  #listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        const a = this.#server.address();
        if (a && typeof a === 'object') this.#port = a.port;
        resolve();
      });
    });
  }

  #makeServer(): Server {
    const server = createServer((req, res) => this.#handle(req, res));
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    return server;
  }

  #emit(e: Event): void {
    this.#log.push(e);
    for (const w of this.#watchers) {
      if (w.plural !== e.plural || (w.namespace !== undefined && w.namespace !== e.namespace)) continue;
      this.#send(w, e);
    }
  }

  #send(w: Watcher, e: Event): void {
    if (w.plural === 'secrets' && !w.metadataOnly) this.secretDataServed++;
    write(w.res, { type: e.type, object: w.metadataOnly ? partial(e.object) : e.object });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    const watch = q.get('watch') === 'true' || q.get('watch') === '1';
    const accept = String(req.headers.accept ?? '');
    const route = parsePath(url.pathname);
    const rec: Recorded = { method: req.method ?? 'GET', path: url.pathname, watch, query: q, accept, status: 0, ...route };
    this.requests.push(rec);
    const reply = (status: number, body: unknown) => {
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`) return reply(401, status(401, 'Unauthorized', 'Unauthorized'));
    if (req.method !== 'GET') return reply(405, status(405, 'MethodNotAllowed', 'the fake API server is read-only'));

    if (route.plural === 'metrics') return this.#metrics(route, reply);
    const plural = route.plural as Plural | undefined;
    const t = plural && TYPES[plural];
    if (!plural || !t || (plural === 'sealedsecrets' && !this.sealedSecretsInstalled) || (!t.namespaced && route.namespace)) {
      return reply(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    }
    if (this.forbidden.has(plural)) {
      const verb = watch ? 'watch' : 'list';
      const where = route.namespace ? ` in the namespace "${route.namespace}"` : ' at the cluster scope';
      return reply(403, status(403, 'Forbidden', `${plural}${t.group ? `.${t.group}` : ''} is forbidden: User "system:serviceaccount:readiness:readiness-exporter" cannot ${verb} resource "${plural}" in API group "${t.group}"${where}`));
    }
    const metadataOnly = META_AS.test(accept);
    if (watch) return this.#watch(plural, route.namespace, q, metadataOnly, rec, res);
    if (this.hungLists.has(plural)) {
      rec.status = -1;
      this.#hung.add(res);
      return;
    }
    const items = [...this.#store(plural).values()]
      .filter((o) => route.namespace === undefined || o.metadata.namespace === route.namespace)
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    const limit = Number(q.get('limit') ?? 0);
    const offset = Number(q.get('continue') ?? 0);
    const page = limit > 0 ? items.slice(offset, offset + limit) : items;
    const more = limit > 0 && offset + limit < items.length;
    if (plural === 'secrets' && !metadataOnly) this.secretDataServed += page.length;
    const metadata = { resourceVersion: String(this.#rv), ...(more && { continue: String(offset + limit) }) };
    if (metadataOnly) {
      return reply(200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items: page.map(partial) });
    }
    return reply(200, { kind: `${t.kind}List`, apiVersion: t.group ? `${t.group}/${t.version}` : t.version, metadata, items: page });
  }

  #watch(plural: Plural, namespace: string | undefined, q: URLSearchParams, metadataOnly: boolean, rec: Recorded, res: ServerResponse): void {
    rec.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const from = q.get('resourceVersion') ?? '';
    const w: Watcher = { plural, namespace, res, metadataOnly, bookmarks: q.get('allowWatchBookmarks') === 'true' };
    if (from !== '' && from !== '0' && Number(from) < this.#compactedRv) {
      write(res, { type: 'ERROR', object: gone(Number(from)) });
      res.end();
      return;
    }
    if (from === '' || from === '0') {
      for (const o of this.#store(plural).values()) {
        if (namespace === undefined || o.metadata.namespace === namespace) this.#send(w, { rv: 0, plural, namespace: o.metadata.namespace, type: 'ADDED', object: o });
      }
    } else {
      for (const e of this.#log) {
        if (e.rv > Number(from) && e.plural === plural && (namespace === undefined || e.namespace === namespace)) this.#send(w, e);
      }
    }
    this.#watchers.add(w);
    res.on('close', () => this.#watchers.delete(w));
  }

  #metrics(route: { namespace?: string; resource?: string }, reply: (s: number, b: unknown) => void): void {
    if (!this.metricsAvailable) return reply(503, status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'));
    if (route.resource === 'nodes') {
      return reply(200, { kind: 'NodeMetricsList', apiVersion: 'metrics.k8s.io/v1beta1', metadata: {}, items: [...this.#nodeMetrics.values()] });
    }
    if (route.resource === 'pods') {
      const items = [...this.#podMetrics.values()].filter((m) => route.namespace === undefined || m.metadata.namespace === route.namespace);
      return reply(200, { kind: 'PodMetricsList', apiVersion: 'metrics.k8s.io/v1beta1', metadata: {}, items });
    }
    reply(404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }
}

function write(res: ServerResponse, event: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(event)}\n`);
}

function status(code: number, reason: string, message: string): V1Status {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code };
}

function gone(rv: number): V1Status {
  return status(410, 'Expired', `too old resource version: ${rv}`);
}

/** The metadata-only form of an object. */
function partial(o: Stored): Record<string, unknown> {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

/** `/api/v1/namespaces/ns/pods` -> { plural: pods, namespace: ns }; metrics.k8s.io -> { plural: metrics, resource }. */
function parsePath(path: string): { plural?: string; namespace?: string; resource?: string } {
  const core = /^\/api\/v1(?:\/namespaces\/([^/]+))?\/([^/]+)$/.exec(path);
  const grouped = /^\/apis\/([^/]+)\/([^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)$/.exec(path);
  if (core) return { plural: core[2], ...(core[1] && { namespace: decodeURIComponent(core[1]) }) };
  if (!grouped) return {};
  const [, group, version, ns, res] = grouped;
  const namespace = ns ? { namespace: decodeURIComponent(ns) } : {};
  if (group === 'metrics.k8s.io') return { plural: 'metrics', resource: res, ...namespace };
  const plural = (Object.keys(TYPES) as Plural[]).find((p) => p === res && TYPES[p].group === group && TYPES[p].version === version);
  return { ...(plural && { plural }), ...namespace };
}

// ── object builders (the shapes the tests need most, typed by client-node's models) ──────

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

export function node(name: string, o: { ready?: boolean; pressure?: 'MemoryPressure' | 'DiskPressure' | 'PIDPressure'; cpu?: string; memory?: string } = {}): V1Node {
  const conds = ['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({ type, status: o.pressure === type ? 'True' : 'False' }));
  return {
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: {
      allocatable: { cpu: o.cpu ?? '4', memory: o.memory ?? '16Gi' },
      conditions: [...conds, { type: 'Ready', status: o.ready === false ? 'False' : 'True', reason: o.ready === false ? 'KubeletNotReady' : 'KubeletReady' }],
    },
  };
}

export interface PodOpts {
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  waiting?: string;
  restarts?: number;
  ready?: boolean;
  labels?: Record<string, string>;
  serviceAccount?: string;
  ageMinutes?: number;
  limits?: Record<string, string>;
  lastTerminatedMinutesAgo?: number;
}

export function pod(namespace: string, name: string, o: PodOpts = {}): V1Pod {
  const phase = o.phase ?? 'Running';
  const ready = o.ready ?? (phase === 'Running' && !o.waiting);
  return {
    metadata: { name, namespace, labels: o.labels ?? { app: name.replace(/-[a-z0-9]+$/, '') }, creationTimestamp: minutesAgo(o.ageMinutes ?? 60) },
    spec: {
      serviceAccountName: o.serviceAccount ?? 'app',
      containers: [{ name: 'main', image: 'registry.example/app:1', resources: { limits: o.limits ?? { cpu: '500m', memory: '512Mi' } } }],
    },
    status: {
      phase,
      startTime: minutesAgo(o.ageMinutes ?? 60),
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: minutesAgo(o.ageMinutes ?? 60) }],
      containerStatuses: [
        {
          name: 'main',
          image: 'registry.example/app:1',
          imageID: '',
          ready,
          restartCount: o.restarts ?? 0,
          state: o.waiting ? { waiting: { reason: o.waiting } } : phase === 'Running' ? { running: { startedAt: minutesAgo(5) } } : {},
          ...(o.lastTerminatedMinutesAgo !== undefined && { lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: minutesAgo(o.lastTerminatedMinutesAgo) } } }),
        },
      ],
    },
  };
}

export interface DeploymentOpts {
  replicas?: number;
  ready?: number;
  updated?: number;
  available?: number;
  generation?: number;
  observedGeneration?: number;
  labels?: Record<string, string>;
  resources?: V1ResourceRequirements;
  env?: V1EnvVar[];
  envFrom?: V1EnvFromSource[];
}

export function deployment(namespace: string, name: string, o: DeploymentOpts = {}): V1Deployment {
  const replicas = o.replicas ?? 2;
  const labels = o.labels ?? { app: name };
  return {
    metadata: { name, namespace, generation: o.generation ?? 1, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: name,
          containers: [
            {
              name,
              image: `registry.example/${name}:1`,
              resources: o.resources ?? { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
              ...(o.env && { env: o.env }),
              ...(o.envFrom && { envFrom: o.envFrom }),
            },
          ],
        },
      },
    },
    status: {
      observedGeneration: o.observedGeneration ?? o.generation ?? 1,
      replicas: o.updated ?? replicas,
      updatedReplicas: o.updated ?? replicas,
      readyReplicas: o.ready ?? replicas,
      availableReplicas: o.available ?? o.ready ?? replicas,
      conditions: [{ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }],
    },
  };
}

export function secret(namespace: string, name: string, o: { daysOld?: number; sealedBy?: { name: string; uid: string }; annotations?: Record<string, string>; labels?: Record<string, string> } = {}): V1Secret {
  return {
    metadata: {
      name,
      namespace,
      creationTimestamp: new Date(Date.now() - (o.daysOld ?? 10) * 86_400_000),
      ...(o.annotations && { annotations: o.annotations }),
      ...(o.labels && { labels: o.labels }),
      ...(o.sealedBy && { ownerReferences: [{ apiVersion: 'bitnami.com/v1alpha1', kind: 'SealedSecret', name: o.sealedBy.name, uid: o.sealedBy.uid, controller: true }] }),
    },
    type: 'Opaque',
    // A value that must never reach the probe.
    data: { password: Buffer.from('hunter2-do-not-read').toString('base64') },
  };
}

export function job(namespace: string, name: string, o: { complete?: boolean; failed?: string; active?: number; startedMinutesAgo?: number; durationMinutes?: number; cronjob?: string; labels?: Record<string, string> } = {}): V1Job {
  const start = minutesAgo(o.startedMinutesAgo ?? 30);
  const end = new Date(start.getTime() + (o.durationMinutes ?? 5) * 60_000);
  const conditions = o.complete ? [{ type: 'Complete', status: 'True', lastTransitionTime: end }] : o.failed ? [{ type: 'Failed', status: 'True', reason: o.failed, lastTransitionTime: end }] : [];
  return {
    metadata: {
      name,
      namespace,
      ...(o.labels && { labels: o.labels }),
      ...(o.cronjob && { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: o.cronjob, uid: `uid-${o.cronjob}`, controller: true }] }),
    },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'job', image: 'registry.example/job:1' }] } } },
    status: {
      startTime: start,
      ...(o.complete && { completionTime: end, succeeded: 1 }),
      ...(o.failed && { failed: 1 }),
      ...(o.active && { active: o.active }),
      conditions,
    },
  };
}
