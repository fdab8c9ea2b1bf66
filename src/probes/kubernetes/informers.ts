// Shared informers: one list+watch per (cluster, resource, namespace) for the whole process,
// whatever the number of checks reading it. Built on client-node's ListWatch, with what it
// leaves to the caller: knowing whether the cache is synced, reconnecting (with backoff) after
// an error, a bound on silent connections, metadata-only Secrets, and telling subscribed
// checks when what they read changed or when the cache became (un)usable.
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { formatDuration } from '../../config/duration.js';
import type { Reason } from '../../reasons.js';
import { ProbeError } from '../types.js';
import { ApiError, classifyError, clusterSource, getJson, type ClusterSource } from './client.js';
import {
  collectionPath,
  describeCollection,
  METADATA_LIST_ACCEPT,
  METADATA_WATCH_ACCEPT,
  R,
  type AnyObject,
  type ObjectOf,
  type ResourceDef,
  type ResourceName,
} from './resources.js';

/** Timings, in one place. Tests may shorten them through setInformerTimings(). */
const TIMINGS = {
  /** First retry after an error; doubles per consecutive failure up to retryMaxMs. */
  retryMinMs: 250,
  retryMaxMs: 30_000,
  /** A CRD that is not installed is looked for again this often. */
  absentRetryMs: 60_000,
  /** A list request (all pages) must finish within this. */
  listTimeoutMs: 60_000,
  /** The server ends each watch after about this long (timeoutSeconds, +0-50% jitter); the client reconnects from its resourceVersion. */
  watchTimeoutS: 300,
  /** A watch still open this long after its timeoutSeconds is presumed dead (a silently dropped connection) and replaced. */
  watchDeadSlackS: 30,
  /** A watch that ended cleanly sooner than this is restarted only after this delay: no hot loop against a proxy that closes streams at once. */
  minWatchMs: 1000,
};

export function setInformerTimings(t: Partial<typeof TIMINGS>): void {
  Object.assign(TIMINGS, t);
}

/** A check reading an informer: told on changes of objects it cares about and on cache state changes. */
export interface Subscriber {
  notify(): void;
  /** Only changes of objects passing this filter notify (default: all). */
  filter?: (obj: AnyObject) => boolean;
  /** After a lost watch, the check is notified again once its grace period is over (it turns `error` then). */
  graceMs: number;
}

/** The cache cannot be read: the check is `error` with this reason and message. */
export class CacheError extends ProbeError {}

type State =
  /** Created; the first list has not completed. */
  | 'starting'
  /** The cache holds the list plus every event since: readable. */
  | 'synced'
  /** Relisting after a 410 Gone (or a dropped resourceVersion): briefly not readable. */
  | 'resyncing'
  /** It was synced, then the watch (or a relist) failed: reconnecting; readable within a check's grace. */
  | 'lost'
  /** It never synced and the last attempt failed. */
  | 'failed'
  /** An optional custom resource the server does not serve (404): reads as empty. */
  | 'absent'
  | 'stopped';

export interface InformerStats {
  lists: number;
  watches: number;
  events: number;
  errors: number;
}

/** A client-node Watch that adds what ListWatch does not ask for (see the file comment). */
class InformerWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly def: ResourceDef,
    private readonly onStart: () => void,
  ) {
    super(def.metadataOnly ? withAccept(kc, METADATA_WATCH_ACCEPT) : kc);
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    this.onStart();
    const timeoutSeconds = Math.round(TIMINGS.watchTimeoutS * (1 + Math.random() / 2));
    const started = Date.now();
    let finished = false;
    let deadGuard: NodeJS.Timeout | undefined;
    let guardFired = false;
    const finish = (err: unknown) => {
      finished = true;
      clearTimeout(deadGuard);
      // Our own abort of a connection that outlived its timeout: resume from the resourceVersion.
      const e = guardFired ? null : err;
      if (e == null && Date.now() - started < TIMINGS.minWatchMs) {
        setTimeout(() => done(null), TIMINGS.minWatchMs).unref();
        return;
      }
      done(e);
    };
    const project = this.def.project as ((o: unknown) => unknown) | undefined;
    const controller = await super.watch(
      path,
      { ...query, allowWatchBookmarks: true, timeoutSeconds },
      (phase, obj, raw) => {
        const isObject = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
        callback(phase, isObject && project && obj ? project(obj) : obj, raw);
      },
      finish,
    );
    if (!finished) {
      deadGuard = setTimeout(() => {
        guardFired = true;
        controller.abort();
      }, (timeoutSeconds + TIMINGS.watchDeadSlackS) * 1000);
      deadGuard.unref();
    }
    return controller;
  }
}

/** The same kubeconfig, with every request asking for another representation. */
function withAccept(kc: KubeConfig, accept: string): KubeConfig {
  const o = Object.create(kc) as KubeConfig;
  o.applyToFetchOptions = async (opts) => {
    const init = await kc.applyToFetchOptions(opts);
    (init.headers as unknown as { set(k: string, v: string): void }).set('Accept', accept);
    return init;
  };
  return o;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
  kind?: string;
}

export class SharedInformer<T = AnyObject> {
  /** `pods in offgridflow`: for messages. */
  readonly what: string;
  readonly stats: InformerStats = { lists: 0, watches: 0, events: 0, errors: 0 };
  // client-node types objects with Date timestamps; the cache holds wire JSON (AnyObject).
  readonly #lw: ListWatch<KubernetesObject>;
  readonly #subs = new Set<Subscriber>();
  readonly #waiters = new Set<() => void>();
  readonly #graceTimers = new Set<NodeJS.Timeout>();
  #state: State = 'starting';
  #lastError: { reason: Reason; message: string } | undefined;
  #lostSince = 0;
  #failures = 0;
  #errorsSeen = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #createdAt = Date.now();

  constructor(
    private readonly kc: KubeConfig,
    private readonly def: ResourceDef,
    private readonly namespace: string | undefined,
  ) {
    this.what = describeCollection(def, namespace);
    const path = collectionPath(def, namespace);
    const watch = new InformerWatch(kc, def, () => this.stats.watches++);
    this.#lw = new ListWatch<KubernetesObject>(path, watch, async () => (await this.#list(path)) as unknown as { items: KubernetesObject[] }, false);
    const changed = (obj: KubernetesObject) => this.#changed(obj as unknown as AnyObject);
    this.#lw.on('add', changed);
    this.#lw.on('update', changed);
    this.#lw.on('delete', changed);
    this.#lw.on('error', (err: unknown) => this.#onError(err));
    void this.#start();
  }

  get state(): State {
    return this.#state;
  }

  /** Every object in the cache (this informer's namespace only). */
  list(): T[] {
    return this.#state === 'absent' ? [] : (this.#lw.list() as unknown as T[]);
  }

  /** The resource is an optional CRD the server does not serve. */
  get absent(): boolean {
    return this.#state === 'absent';
  }

  subscribe(sub: Subscriber): () => void {
    this.#subs.add(sub);
    return () => this.#subs.delete(sub);
  }

  /**
   * Resolves when the cache may be read by a check allowing `graceMs` of watch outage; waits
   * (until `deadline`, epoch ms) while it is syncing; throws CacheError otherwise.
   */
  async ready(graceMs: number, deadline: number, signal: AbortSignal): Promise<{ staleMs?: number }> {
    for (;;) {
      const now = Date.now();
      switch (this.#state) {
        case 'synced':
        case 'absent':
          return {};
        case 'lost': {
          const down = now - this.#lostSince;
          if (down <= graceMs) return { staleMs: down };
          const e = this.#lastError!;
          throw new CacheError(e.reason, `watch of ${this.what} lost ${formatDuration(down)} ago: ${e.message} (reconnecting)`);
        }
        case 'failed': {
          const e = this.#lastError!;
          throw new CacheError(e.reason, `cannot list and watch ${this.what}: ${e.message} (retrying)`);
        }
        case 'stopped':
          throw new CacheError('error', `the informer for ${this.what} was closed`);
        case 'starting':
        case 'resyncing': {
          if (now >= deadline || signal.aborted) {
            const since = formatDuration(now - this.#createdAt);
            throw new CacheError(
              'timeout',
              this.#state === 'starting'
                ? `cache of ${this.what} not synced yet: the first list has not completed (informer started ${since} ago)`
                : `cache of ${this.what} is being rebuilt (relist after an expired resourceVersion) and did not finish in time`,
            );
          }
          await this.#waitForChange(deadline - now, signal);
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.#setState('stopped');
    clearTimeout(this.#retryTimer);
    this.#clearGrace();
    this.#subs.clear();
    await this.#lw.stop();
  }

  #waitForChange(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  async #start(): Promise<void> {
    if (this.#state === 'stopped') return;
    const errorsBefore = this.#errorsSeen;
    try {
      await this.#lw.start();
    } catch (err) {
      this.#onError(err);
      return;
    }
    // The list (if one was needed) is applied and the watch answered 200.
    if (errorsBefore === this.#errorsSeen && this.#lw.latestResourceVersion() !== '') this.#setSynced();
  }

  /** ListWatch's list function: every page, metadata-only for Secrets, trimmed by the resource's projection. */
  async #list(path: string): Promise<{ metadata: { resourceVersion: string }; items: AnyObject[] }> {
    this.stats.lists++;
    if (this.#state === 'synced') this.#setState('resyncing');
    const items: AnyObject[] = [];
    let resourceVersion: string | undefined;
    let cont: string | undefined;
    const signal = AbortSignal.timeout(TIMINGS.listTimeoutMs);
    const project = this.def.project as ((o: unknown) => AnyObject) | undefined;
    do {
      const q = `?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`;
      const page = await getJson<ListPage>(this.kc, path + q, { signal, ...(this.def.metadataOnly && { accept: METADATA_LIST_ACCEPT }) });
      if (!page || !Array.isArray(page.items)) throw new ProbeError('protocol', `list of ${this.what}: the answer has no items (kind ${page?.kind ?? 'unknown'})`);
      for (const it of page.items) items.push(project ? project(it) : (it as AnyObject));
      resourceVersion ??= page.metadata?.resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    if (!resourceVersion) throw new ProbeError('protocol', `list of ${this.what}: the answer has no resourceVersion, so it cannot be watched`);
    const errorsBefore = this.#errorsSeen;
    // ListWatch applies the list right after this promise resolves (a microtask): by the
    // next macrotask the cache holds it.
    setImmediate(() => {
      if (this.#state !== 'stopped' && errorsBefore === this.#errorsSeen && this.#lw.latestResourceVersion() !== '') this.#setSynced();
    });
    return { metadata: { resourceVersion }, items };
  }

  #changed(obj: AnyObject): void {
    this.stats.events++;
    for (const s of this.#subs) if (!s.filter || s.filter(obj)) s.notify();
  }

  #onError(err: unknown): void {
    if (this.#state === 'stopped') return;
    this.#errorsSeen++;
    this.stats.errors++;
    if (this.def.optional && err instanceof ApiError && err.statusCode === 404) {
      this.#lastError = undefined;
      this.#setState('absent');
      this.#retry(TIMINGS.absentRetryMs);
      return;
    }
    this.#lastError = classifyError(err);
    this.#failures++;
    if (this.#state === 'synced' || this.#state === 'resyncing') {
      this.#lostSince = Date.now();
      for (const s of this.#subs) {
        const t = setTimeout(() => s.notify(), s.graceMs + 20);
        t.unref();
        this.#graceTimers.add(t);
      }
      this.#setState('lost');
    } else if (this.#state !== 'lost') {
      this.#setState('failed');
    } else {
      this.#wake();
    }
    this.#retry(Math.min(TIMINGS.retryMaxMs, TIMINGS.retryMinMs * 2 ** (this.#failures - 1)));
  }

  #retry(ms: number): void {
    if (this.#retryTimer || this.#state === 'stopped') return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#start();
    }, ms);
    this.#retryTimer.unref();
  }

  #setSynced(): void {
    this.#failures = 0;
    this.#lastError = undefined;
    this.#clearGrace();
    this.#setState('synced');
  }

  #setState(s: State): void {
    const changed = s !== this.#state;
    this.#state = s;
    this.#wake();
    if (changed && s !== 'stopped') for (const sub of this.#subs) sub.notify();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  #clearGrace(): void {
    for (const t of this.#graceTimers) clearTimeout(t);
    this.#graceTimers.clear();
  }
}

/** One API server (one kubeconfig + context) and the informers opened on it. */
export class Cluster {
  readonly #informers = new Map<string, SharedInformer<unknown>>();

  constructor(
    readonly kc: KubeConfig,
    readonly source: ClusterSource,
  ) {}

  /** The shared informer of a resource in a namespace (ignored for cluster-scoped resources), created on first use. */
  informer<K extends ResourceName>(res: K, namespace: string): SharedInformer<ObjectOf<K>> {
    const def = R[res] as ResourceDef;
    const ns = def.namespaced ? namespace : undefined;
    const key = `${def.plural}.${def.group}/${ns ?? ''}`;
    let inf = this.#informers.get(key);
    if (!inf) {
      inf = new SharedInformer<unknown>(this.kc, def, ns);
      this.#informers.set(key, inf);
    }
    return inf as SharedInformer<ObjectOf<K>>;
  }

  /** Every informer of this cluster with its counters (for diagnostics and tests). */
  informers(): { what: string; state: string; stats: InformerStats }[] {
    return [...this.#informers.values()].map((i) => ({ what: i.what, state: i.state, stats: { ...i.stats } }));
  }

  async close(): Promise<void> {
    const all = [...this.#informers.values()];
    this.#informers.clear();
    await Promise.allSettled(all.map((i) => i.stop()));
  }
}

const clusters = new Map<string, Cluster>();

/** The cluster a check talks to, loaded once per distinct kubeconfig + context. */
export function clusterFor(p: { kubeconfig?: string; context?: string }, env: NodeJS.ProcessEnv): Cluster {
  const source = clusterSource(p, env);
  let c = clusters.get(source.key);
  if (!c) {
    let kc: KubeConfig;
    try {
      kc = source.load();
    } catch (err) {
      if (err instanceof ProbeError) throw err;
      throw new ProbeError('error', `cannot load ${source.label}: ${(err as Error).message.split('\n')[0]}`);
    }
    c = new Cluster(kc, source);
    clusters.set(source.key, c);
  }
  return c;
}

/** Every cluster in use (diagnostics and tests). */
export function openClusters(): Cluster[] {
  return [...clusters.values()];
}

/** Stops every informer and forgets every cluster: on reload and shutdown. */
export async function closeClusters(): Promise<void> {
  const all = [...clusters.values()];
  clusters.clear();
  await Promise.allSettled(all.map((c) => c.close()));
}
