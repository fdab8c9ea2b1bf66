// The running service: the loaded checklist, its scheduler, the store, reloads and shutdown.
// The HTTP layer and the metrics read everything through this object.
import type { Logger } from 'pino';
import { loadChecklistFile } from './config/load.js';
import { randomUUID } from 'node:crypto';
import { formatDiagnostic, type CheckDef, type Checklist, type Diagnostic } from './config/types.js';
import type { MetricsSource } from './metrics.js';
import { closeProbeKinds } from './probes/index.js';
import type { Ownership } from './ha.js';
import { Scheduler, type SchedulerStats } from './scheduler.js';
import { rollbackCauses, type CheckView } from './state.js';
import type { CheckStatus, Deployment, Store, StoreHealth } from './store/types.js';
import { VERSION } from './version.js';

export interface ServiceOptions {
  file: string;
  checklist: Checklist;
  store: Store;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  concurrency?: number;
  maxJitterMs?: number;
  /** HA: which checks this replica runs (PgLeases); without it, this replica runs them all. */
  ownership?: Ownership & { readonly replicaId: string; owned(): string[]; start(checks: readonly string[]): Promise<void>; stop(): Promise<void> };
}

/** Where the replica is in its life: /readyz answers 200 only while `running`. */
export type Lifecycle = 'starting' | 'running' | 'stopping';

export type ReloadResult = { ok: true; checks: number } | { ok: false; diagnostics: Diagnostic[] };

export class Service implements MetricsSource {
  readonly version = VERSION;
  #scheduler: Scheduler;
  #reloads = { success: 0, failure: 0, lastSuccessful: true, lastSuccessAt: Date.now() };
  readonly #stats: SchedulerStats = { skipped: 0, lagSeconds: 0, maxLagSeconds: 0, running: 0, queued: 0, storeErrors: 0 };
  #lifecycle: Lifecycle = 'starting';

  constructor(readonly opts: ServiceOptions) {
    this.#scheduler = this.#makeScheduler(opts.checklist);
  }

  #makeScheduler(checklist: Checklist): Scheduler {
    const { store, log, env, concurrency, maxJitterMs, ownership } = this.opts;
    return new Scheduler(checklist, {
      store,
      log,
      stats: this.#stats,
      onStatus: (def, status) => this.#markDeployment(def, status),
      ...(ownership && { ownership }),
      ...(env && { env }),
      ...(concurrency !== undefined && { concurrency }),
      ...(maxJitterMs !== undefined && { maxJitterMs }),
    });
  }

  async start(): Promise<void> {
    await this.opts.ownership?.start(this.checklist().checks.map((c) => c.id));
    this.#scheduler.start();
    // A SIGTERM that arrived while starting has already moved the replica to `stopping`.
    if (this.#lifecycle === 'starting') this.#lifecycle = 'running';
    this.opts.log.info({ checklist: this.checklist().name, checks: this.checklist().checks.length }, 'scheduler started');
  }

  /** starting until start() has restored state and begun scheduling; stopping from SIGTERM on. */
  get lifecycle(): Lifecycle {
    return this.#lifecycle;
  }

  /** SIGTERM arrived: /readyz turns 503 at once, even before stop() gets its turn. */
  markStopping(): void {
    this.#lifecycle = 'stopping';
  }

  get scheduler(): Scheduler {
    return this.#scheduler;
  }

  checklist(): Checklist {
    return this.#scheduler.checklist;
  }

  views(now = Date.now()): CheckView[] {
    const open = this.deploymentWindow(now).open;
    const views = this.#scheduler.views(now);
    // Monitor-phase checks gate only inside the window after the latest deployment.
    for (const v of views) if (v.def.phase === 'monitor') v.gating = v.def.gate && open;
    return views;
  }

  /** The latest deployment and whether its monitoring window is open now. */
  deploymentWindow(now = Date.now()): { deployment?: Deployment; open: boolean; endsAt?: number } {
    const deployment = this.opts.store.deployments(1)[0];
    if (!deployment) return { open: false };
    const endsAt = deployment.at + this.checklist().monitorWindowMs;
    return { deployment, open: now >= deployment.at && now < endsAt, endsAt };
  }

  schedulerStats(): SchedulerStats {
    return this.#stats;
  }

  storeHealth(): StoreHealth {
    return this.opts.store.health();
  }

  /** Whether a gating monitor-phase check cannot show it is healthy inside the window after the latest deployment. */
  rollbackRecommended(views: CheckView[] = this.views()): boolean {
    return this.rollbackCauses(views).length > 0;
  }

  /** Pass the views a caller already has, so its verdict and this one describe one instant. */
  rollbackCauses(views: CheckView[] = this.views()): CheckView[] {
    // views() makes monitor checks gating only while the window is open: that is the window test.
    return rollbackCauses(views);
  }

  readonly #marking = new Set<string>();

  /**
   * A `marksDeployment` check (a Kubernetes rollout) that passes with a version not recorded
   * yet records a deployment of it, timed at the rollout's end when the probe knows it.
   */
  #markDeployment(def: CheckDef, status: CheckStatus): void {
    const release = status.last.release;
    if (!def.marksDeployment || !release || status.state !== 'pass' || this.#marking.has(release.version)) return;
    if (this.opts.store.deployments(1)[0]?.version === release.version) return;
    this.#marking.add(release.version);
    const now = Date.now();
    const d: Deployment = { id: randomUUID(), version: release.version, at: Math.min(release.at ?? now, now), createdAt: now, by: `check ${def.id}`, source: 'kubernetes' };
    this.opts.store
      .addDeployment(d)
      .then(() => {
        this.opts.log.info({ version: d.version, at: new Date(d.at).toISOString(), check: def.id }, 'deployment detected from a rollout');
        this.runSoon(this.checklist().checks.filter((c) => c.phase === 'monitor' || c.kind === 'attestation').map((c) => c.id));
      })
      .catch((err: unknown) => this.opts.log.warn({ err, version: d.version }, 'could not record the detected deployment; will try again'))
      .finally(() => this.#marking.delete(release.version));
  }

  /** Runs these checks now (after an attestation or a deployment), without waiting for them. */
  runSoon(ids: Iterable<string>): void {
    for (const id of ids) void this.#scheduler.runNow(id)?.catch(() => {});
  }

  reloads() {
    return this.#reloads;
  }

  /**
   * Loads the checklist file again (SIGHUP). A file with errors is rejected and the running
   * checklist keeps going; a good one replaces it, keeping the state of checks that remain.
   */
  async reload(): Promise<ReloadResult> {
    const res = await loadChecklistFile(this.opts.file, this.opts.env ?? process.env);
    if (!res.ok) {
      this.#reloads.failure++;
      this.#reloads.lastSuccessful = false;
      this.opts.log.error({ errors: res.diagnostics.map(formatDiagnostic) }, 'checklist reload rejected: keeping the running checklist');
      return { ok: false, diagnostics: res.diagnostics };
    }
    const old = this.#scheduler;
    const next = this.#makeScheduler(res.checklist);
    await old.stop(5_000);
    await closeProbeKinds();
    this.opts.store.retain(new Set(res.checklist.byId.keys()));
    await this.opts.ownership?.start(res.checklist.checks.map((c) => c.id));
    next.start(old.trackedSince());
    this.#scheduler = next;
    this.#reloads.success++;
    this.#reloads.lastSuccessful = true;
    this.#reloads.lastSuccessAt = Date.now();
    this.opts.log.info({ checks: res.checklist.checks.length }, 'checklist reloaded');
    return { ok: true, checks: res.checklist.checks.length };
  }

  /** Stops scheduling, lets runs in flight finish up to the deadline, releases probe resources. */
  async stop(deadlineMs = 10_000): Promise<void> {
    this.markStopping();
    await this.#scheduler.stop(deadlineMs);
    await this.opts.ownership?.stop();
    await closeProbeKinds();
    await this.opts.store.close();
  }
}
