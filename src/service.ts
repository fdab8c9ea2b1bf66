// The running service: the loaded checklist, its scheduler, the store, reloads and shutdown.
// The HTTP layer and the metrics read everything through this object.
import type { Logger } from 'pino';
import { loadChecklistFile, type LoadResult } from './config/load.js';
import { describeVariable, missingGroups } from './config/missing.js';
import { randomUUID } from 'node:crypto';
import { formatDiagnostic, type CheckDef, type Checklist, type Diagnostic } from './config/types.js';
import type { MetricsSource } from './metrics.js';
import { closeProbeKinds } from './probes/index.js';
import type { Ownership } from './ha.js';
import { setLogSecrets } from './secrets.js';
import { Scheduler, type RunCounts, type SchedulerStats } from './scheduler.js';
import { rollbackCauses, type CheckView } from './state.js';
import type { CheckStatus, Deployment, RecordsChange, Store, StoreChange, StoreHealth } from './store/types.js';
import { VERSION } from './version.js';
import { ViewCache, type ViewsSnapshot } from './views.js';

/**
 * What changed in the service: everything the store reports, plus a reload (a new checklist)
 * and `invalidate` calls. Caches of anything derived from the service listen here.
 */
export type ServiceChange = StoreChange | { kind: 'reload' } | { kind: 'invalidate'; check?: string };

export interface ServiceOptions {
  file: string;
  checklist: Checklist;
  store: Store;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  concurrency?: number;
  maxJitterMs?: number;
  /** HA: which checks this replica runs (PgLeases); without it, this replica runs them all. */
  ownership?: Ownership;
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
  readonly #views: ViewCache;
  readonly #listeners = new Set<(c: ServiceChange) => void>();
  readonly #unsubscribe: (() => void) | undefined;
  #recordsVersion = 0;
  readonly #runCounts: RunCounts = new Map();

  constructor(readonly opts: ServiceOptions) {
    this.#scheduler = this.#makeScheduler(opts.checklist);
    const { ownership, store } = opts;
    if (ownership) {
      ownership.onAcquire = (list) => this.#scheduler.acquired(list);
      // Hand a check over only with nothing in flight and its last result written: the next
      // owner reads when it last ran from the store and keeps the cadence.
      ownership.canRelease = (id) => !this.#scheduler.busy(id) && !(store.pendingWrite?.(id) ?? false);
      ownership.onRunRequest = (id) => void this.#scheduler.runNow(id)?.catch(() => {});
    }
    this.#views = new ViewCache(
      {
        checks: () => this.checklist().checks,
        view: (def, now) => {
          const entry = this.#scheduler.viewEntry(def.id, now)!;
          // Monitor-phase checks gate only inside the window after the latest deployment.
          if (def.phase === 'monitor') entry.view.gating = def.gate && this.deploymentWindow(now).open;
          return entry;
        },
        sharedValidUntil: (now) => {
          const w = this.deploymentWindow(now);
          if (!w.deployment) return Infinity;
          return now < w.deployment.at ? w.deployment.at : now < w.endsAt! ? w.endsAt! : Infinity;
        },
      },
      !opts.store.onChange,
    );
    this.#unsubscribe = opts.store.onChange?.((c) => {
      this.#changed(c);
      // Records another replica wrote: the checks that read them run here if this replica
      // owns them (a local writer calls recordsChanged itself, and waits for it).
      if (c.kind === 'attestation' && c.remote) void this.recordsChanged({ attestations: new Set([c.check]), deployment: false }, false);
      else if (c.kind === 'deployment' && c.remote) void this.recordsChanged({ attestations: new Set(), deployment: true }, false);
    });
  }

  #changed(c: ServiceChange): void {
    if (c.kind === 'status') this.#views.invalidate(c.check);
    else if (c.kind === 'invalidate') this.#views.invalidate(c.check);
    // Deployments move the window; attestations, health and reloads are rare: rebuild all.
    else this.#views.invalidate();
    if (c.kind !== 'status') this.#recordsVersion++;
    for (const l of this.#listeners) {
      try {
        l(c);
      } catch (err) {
        this.opts.log.error({ err, change: c }, 'change listener failed');
      }
    }
  }

  /**
   * Calls `listener` after every change of what the service serves (see ServiceChange);
   * returns the unsubscribe function. This is the one hook for caches of derived state.
   */
  onChange(listener: (c: ServiceChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Tells every cache that a check's view (or every view) changed for a reason the store does
   * not know about: state derived from something other than results, deployments and attestations.
   */
  invalidate(check?: string): void {
    this.#changed(check === undefined ? { kind: 'invalidate' } : { kind: 'invalidate', check });
  }

  /**
   * Changes with every deployment, attestation, store health change, reload and invalidate():
   * what /readiness shows besides the checks.
   */
  recordsVersion(): number {
    return this.#recordsVersion;
  }

  #makeScheduler(checklist: Checklist): Scheduler {
    const { store, log, env, concurrency, maxJitterMs, ownership } = this.opts;
    // From here on no log line shows this checklist's secrets, at any level (src/secrets.ts).
    setLogSecrets(checklist, checklist.checks.flatMap((c) => c.secrets));
    return new Scheduler(checklist, {
      store,
      log,
      stats: this.#stats,
      runCounts: this.#runCounts,
      onStatus: (def, status) => {
        // The run counts in the view changed even when the store kept a newer result.
        this.#views.invalidate(def.id);
        this.#markDeployment(def, status);
      },
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
    // Start-up resets when each check began being tracked (pending until its first run).
    this.#changed({ kind: 'reload' });
    this.opts.log.info({ checklist: this.checklist().name, checks: this.checklist().checks.length }, 'scheduler started');
    this.#logUnconfigured(this.checklist());
  }

  /** One line per piece of configuration this environment lacks, naming the checks it leaves unconfigured. */
  #logUnconfigured(checklist: Checklist): void {
    for (const g of missingGroups(checklist.checks)) {
      this.opts.log.warn(
        { missing: g.variable, checks: g.checks },
        `not configured: ${describeVariable(g)} is not set, so ${g.checks.length} check${g.checks.length === 1 ? ' is' : 's are'} unconfigured: ${g.checks.join(', ')}`,
      );
    }
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

  /** Every check's view now: frozen and shared until something changes (see ViewCache). */
  views(now = Date.now()): readonly CheckView[] {
    return this.#views.get(now).views;
  }

  /** The views with the versions a cache of anything derived from them compares. */
  snapshot(now = Date.now()): ViewsSnapshot {
    return this.#views.get(now);
  }

  /** Views recomputed so far: a test's proof that a read with no change does no work per check. */
  viewsBuilt(): number {
    return this.#views.built;
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
  rollbackRecommended(views: readonly CheckView[] = this.views()): boolean {
    return this.rollbackCauses(views).length > 0;
  }

  /** Pass the views a caller already has, so its verdict and this one describe one instant. */
  rollbackCauses(views: readonly CheckView[] = this.views()): CheckView[] {
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
        return this.recordsChanged({ attestations: new Set(), deployment: true }, true);
      })
      .catch((err: unknown) => this.opts.log.warn({ err, version: d.version }, 'could not record the detected deployment; will try again'))
      .finally(() => this.#marking.delete(release.version));
  }

  /**
   * Attestations or deployments changed: evaluate the checks that read them (attestation
   * checks; after a deployment, monitor-phase checks too). A check that reads only records
   * is evaluated here when this replica made the write (`here`: it answers with the new
   * state, and its result, computed from the newer records, supersedes the owner's) or owns
   * it; a check that probes a target only by its owner, never twice. Resolves once the
   * records-only evaluations are done (target probes are not waited for).
   */
  async recordsChanged(change: RecordsChange, here: boolean): Promise<void> {
    const ownership = this.opts.ownership;
    const evaluations: Promise<unknown>[] = [];
    for (const def of this.checklist().checks) {
      const affected = change.attestations.has(def.id) || (change.deployment && (def.phase === 'monitor' || def.kind === 'attestation'));
      if (!affected || def.unconfigured) continue;
      const owns = !ownership || ownership.owns(def.id);
      if (def.probe.recordsOnly && (here || owns)) {
        evaluations.push(this.#scheduler.runNow(def.id, { fresh: true }) ?? Promise.resolve());
      } else if (
        // Stryker disable next-line LogicalOperator: `||` adds only target checks owned elsewhere, which the scheduler's runNow refuses (mayRun)
        !def.probe.recordsOnly && owns
      ) {
        void this.#scheduler.runNow(def.id)?.catch(() => {});
      }
    }
    await Promise.allSettled(evaluations);
  }

  /**
   * Runs a check now for POST /checks/:id/run. In HA a check that probes a target runs on its
   * owner only: another replica asks the owner (PostgreSQL NOTIFY) and waits until a newer
   * result arrives in the shared store, or the check's timeout plus 5 s pass.
   */
  async runNow(id: string): Promise<'ran' | 'asked-owner' | 'unanswered'> {
    const local = this.#scheduler.runNow(id);
    if (local) {
      await local;
      return 'ran';
    }
    const def = this.checklist().byId.get(id);
    const ownership = this.opts.ownership;
    if (!def || def.unconfigured || !ownership?.requestRun || this.#scheduler.mayRun(id)) throw new Error('shutting down');
    const before = this.opts.store.latest(id)?.last.startedAt ?? -Infinity;
    await ownership.requestRun(id);
    const deadline = Date.now() + def.timeoutMs + 5_000;
    // Stryker disable next-line EqualityOperator: `<=` polls once more only when a poll lands on the deadline's exact millisecond
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      await this.opts.store.refresh?.().catch(() => {});
      if ((this.opts.store.latest(id)?.last.startedAt ?? -Infinity) > before) return 'asked-owner';
    }
    return 'unanswered';
  }


  reloads() {
    return this.#reloads;
  }

  /**
   * Loads the checklist file again (SIGHUP). A file with errors is rejected and the running
   * checklist keeps going; a good one replaces it, keeping the state of checks that remain.
   */
  async reload(): Promise<ReloadResult> {
    // The loader never throws; should it ever, the file is rejected like any bad one.
    const res = await loadChecklistFile(this.opts.file, this.opts.env ?? process.env).catch(
      // Stryker disable next-line all: unreachable, loadChecklistFile catches every error itself (src/config/load.ts)
      (err: unknown): LoadResult => ({ ok: false, diagnostics: [{ file: this.opts.file, line: 1, col: 1, message: `cannot load the checklist: ${String(err)}` }] }),
    );
    if (!res.ok) {
      this.#reloads.failure++;
      this.#reloads.lastSuccessful = false;
      this.opts.log.error({ errors: res.diagnostics.map(formatDiagnostic) }, 'checklist reload rejected: keeping the running checklist');
      return { ok: false, diagnostics: res.diagnostics };
    }
    const old = this.#scheduler;
    const oldChecklist = this.checklist();
    const next = this.#makeScheduler(res.checklist);
    await old.stop(5_000);
    // The loader builds a new checklist every time: the old one's secrets are no check's now.
    setLogSecrets(oldChecklist, undefined);
    await closeProbeKinds();
    this.opts.store.retain(new Set(res.checklist.byId.keys()));
    // Leases taken during start() are handed to the scheduler that will run them.
    this.#scheduler = next;
    await this.opts.ownership?.start(res.checklist.checks.map((c) => c.id));
    next.start(old.trackedSince());
    this.#changed({ kind: 'reload' });
    this.#reloads.success++;
    this.#reloads.lastSuccessful = true;
    this.#reloads.lastSuccessAt = Date.now();
    this.opts.log.info({ checks: res.checklist.checks.length }, 'checklist reloaded');
    this.#logUnconfigured(res.checklist);
    return { ok: true, checks: res.checklist.checks.length };
  }

  /** Stops scheduling, lets runs in flight finish up to the deadline, releases probe resources. */
  async stop(deadlineMs = 10_000): Promise<void> {
    this.markStopping();
    await this.#scheduler.stop(deadlineMs);
    await this.opts.ownership?.stop();
    await closeProbeKinds();
    this.#unsubscribe?.();
    await this.opts.store.close();
  }
}
