// Runs every configured check on its interval or cron schedule. One timer for all checks;
// slots are anchored to the schedule (no drift), a check never overlaps itself (a slot that
// finds the previous run still going is skipped and counted), a global cap bounds how
// many run at once, and first runs are spread by a per-check jitter so 200 checks do not
// fire in the same millisecond. A probe failure is a result, never a crash.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Cron } from 'croner';
import type { Logger } from 'pino';
import type { CheckDef, Checklist } from './config/types.js';
import type { Acquired, Ownership } from './ha.js';
import { dependencyResult, nextStatus, runCheck } from './harness.js';
import { viewCheck, viewValidUntil, type CheckView } from './state.js';
import { isPassing, type CheckStatus, type Records, type RunResult, type RunState, type Store, type WriteFence } from './store/types.js';

/** Runs this process performed, per check and result: what readiness_check_runs_total counts. */
export type RunCounts = Map<string, Partial<Record<RunState, number>>>;

export interface SchedulerOptions {
  store: Store;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** Most checks running at once (default 16). */
  concurrency?: number;
  /** Upper bound of the start-up spread (default 10 s, never more than the check's interval). */
  maxJitterMs?: number;
  now?: () => number;
  /** Counters kept across reloads: pass the previous scheduler's. */
  stats?: SchedulerStats;
  /** Runs performed by this process, kept across reloads like `stats`. */
  runCounts?: RunCounts;
  /** In HA, which checks this replica runs; the others' results arrive through the store. */
  ownership?: Ownership;
  /** Where attestations and deployments are read (default: the store). */
  records?: Records;
  /** Called with every new status (after it is handed to the store). */
  onStatus?: (def: CheckDef, status: CheckStatus) => void;
}

export interface SchedulerStats {
  /** Slots skipped because the previous run of the same check was still going. */
  skipped: number;
  /** Seconds between a slot's due time and its run starting, last observed per check. */
  lagSeconds: number;
  /** Largest lag seen since the previous read. */
  maxLagSeconds: number;
  running: number;
  queued: number;
  storeErrors: number;
}

interface Slot {
  def: CheckDef;
  due: number;
  /** How late it may start (TIMER_SLACK_MS, at most a tenth of its interval). */
  slack: number;
  /** When a skipped slot was last logged, and how many were skipped since. */
  skipLoggedAt?: number;
  skippedSinceLog?: number;
  cron?: Cron;
  running?: Promise<CheckStatus | undefined>;
  trackedSince: number;
  unsubscribe?: () => void;
  /** A change notification arrived while a run was in flight: run again after it. */
  rerun?: boolean;
  /** A run asked to start after the one in flight (its inputs changed meanwhile). */
  after?: Promise<CheckStatus | undefined>;
  notifyTimer?: NodeJS.Timeout;
}

/** Change notifications within this window are folded into one run. */
const NOTIFY_DEBOUNCE_MS = 200;

/**
 * Timer slack: a slot may start up to this long after it is due (never more than a tenth of
 * its interval), so slots due close together share one wakeup of the event loop. A wakeup
 * costs more CPU than the tcp probe it starts: 200 checks @1 s spread by jitter woke the
 * process 200 times a second; with the slack, at most 50. Slots stay anchored to the
 * schedule (no drift): only the start moves, never the next due time.
 */
export const TIMER_SLACK_MS = 20;

/** A check whose slots keep being skipped is logged once per this long (the counter counts all). */
const SKIP_LOG_EVERY_MS = 60_000;

/** Deterministic spread in [0, span): the same check gets the same offset on every start. */
export function jitterFor(id: string, span: number): number {
  if (span <= 0) return 0;
  return createHash('sha256').update(id).digest().readUInt32BE(0) % span;
}

export class Scheduler {
  readonly #slots = new Map<string, Slot>();
  readonly #queue: { slot: Slot; due: number; scheduled: boolean; resolve: (s: CheckStatus | undefined) => void; reject: (e: Error) => void }[] = [];
  readonly #ac = new AbortController();
  readonly #runs: RunCounts;
  /** When acquired checks last started, for start() (acquisitions can precede it). */
  readonly #hints = new Map<string, number>();
  readonly #opts: Required<Omit<SchedulerOptions, 'env' | 'stats' | 'ownership' | 'onStatus' | 'records' | 'runCounts'>> & {
    records?: Records;
    env: NodeJS.ProcessEnv;
    ownership?: Ownership;
    onStatus?: SchedulerOptions['onStatus'];
  };
  #timer: NodeJS.Timeout | undefined;
  #running = 0;
  #stopped = false;
  #started = false;
  readonly stats: SchedulerStats;

  constructor(
    readonly checklist: Checklist,
    opts: SchedulerOptions,
  ) {
    // Every run in flight listens on the shutdown signal: many at once is expected, not a leak.
    setMaxListeners(0, this.#ac.signal);
    const { stats, runCounts, ...rest } = opts;
    this.#opts = { concurrency: 16, maxJitterMs: 10_000, now: Date.now, env: process.env, ...rest };
    this.stats = stats ?? { skipped: 0, lagSeconds: 0, maxLagSeconds: 0, running: 0, queued: 0, storeErrors: 0 };
    this.#runs = runCounts ?? new Map();
    const now = this.#opts.now();
    for (const def of checklist.checks) this.#slots.set(def.id, { def, due: Infinity, slack: Math.min(TIMER_SLACK_MS, def.intervalMs / 10), trackedSince: now });
  }

  /** Starts scheduling. `trackedSince` carries over from a previous scheduler on reload. */
  start(trackedSince?: ReadonlyMap<string, number>): void {
    if (this.#started) return;
    this.#started = true;
    const now = this.#opts.now();
    for (const slot of this.#slots.values()) {
      slot.trackedSince = trackedSince?.get(slot.def.id) ?? now;
      if (slot.def.unconfigured) continue;
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent: with no callback croner never starts a timer (paused or not; the cron only computes nextRun), and the loader validated the pattern in the same mode
      if (slot.def.schedule !== undefined) slot.cron = new Cron(slot.def.schedule, { paused: true, mode: '5-or-6-parts' });
      slot.due = this.#firstDue(slot, now, this.#lastStart(slot.def.id, this.#hints.get(slot.def.id)));
      this.#subscribe(slot);
    }
    this.#hints.clear();
    this.#arm();
  }

  /** When the check's last known run started: the store's, or a newer one read with its lease. */
  #lastStart(id: string, hint?: number): number | undefined {
    const stored = this.#opts.store.latest(id)?.last.startedAt;
    if (stored === undefined) return hint;
    return hint === undefined ? stored : Math.max(stored, hint);
  }

  /**
   * The first slot of a check this scheduler starts running (at start-up, or when HA hands
   * it over). A run less than an interval old sets the cadence: the next run is one interval
   * after it, whichever process made it (this one before a restart, another replica before a
   * takeover), so a check runs once per interval across restarts and handovers. Otherwise it
   * runs soon, spread by the per-check jitter. A cron check keeps its cron slots, plus one
   * start-up run when it has no recent result (its next firing may be hours away).
   */
  #firstDue(slot: Slot, now: number, lastStartedAt: number | undefined): number {
    const i = slot.def.intervalMs;
    const spread = now + jitterFor(slot.def.id, Math.min(this.#opts.maxJitterMs, i));
    const recent = lastStartedAt !== undefined && lastStartedAt + i > now;
    if (slot.cron) {
      const next = slot.cron.nextRun()?.getTime() ?? Infinity;
      return recent ? next : Math.min(next, spread);
    }
    return recent ? lastStartedAt + i : spread;
  }

  /** HA: this replica took these checks over; continue each one's cadence. */
  acquired(list: readonly Acquired[]): void {
    if (!this.#started) {
      for (const a of list) if (a.lastStartedAt !== undefined) this.#hints.set(a.check, a.lastStartedAt);
      return;
    }
    if (this.#stopped) return;
    const now = this.#opts.now();
    for (const a of list) {
      const slot = this.#slots.get(a.check);
      if (!slot || slot.def.unconfigured) continue;
      slot.due = this.#firstDue(slot, now, this.#lastStart(a.check, a.lastStartedAt));
    }
    this.#arm();
  }

  /** Whether a run of the check is in flight or queued. */
  busy(id: string): boolean {
    return this.#slots.get(id)?.running !== undefined;
  }

  /**
   * Whether this process may run the check: it owns it (or there is no HA), or the check
   * reads only records, which any replica may evaluate (ordered by records version).
   */
  mayRun(id: string): boolean {
    const slot = this.#slots.get(id);
    return slot !== undefined && (this.#mine(slot) || slot.def.probe.recordsOnly === true);
  }

  /** Watch-backed kinds tell us when to run; the interval stays as the safety net. */
  #subscribe(slot: Slot): void {
    const { probe, params, id } = slot.def;
    if (!probe.subscribe) return;
    const notify = () => {
      if (this.#stopped || slot.notifyTimer || !this.#mine(slot)) return;
      slot.notifyTimer = setTimeout(() => {
        delete slot.notifyTimer;
        if (this.#stopped) return;
        if (slot.running) {
          slot.rerun = true;
          return;
        }
        void this.#enqueue(slot, this.#opts.now()).catch(() => {});
      }, NOTIFY_DEBOUNCE_MS);
      slot.notifyTimer.unref?.();
    };
    try {
      slot.unsubscribe = probe.subscribe(params as never, notify, { log: this.#opts.log.child({ check: id }), env: this.#opts.env, checkId: id });
    } catch (err) {
      this.#opts.log.warn({ err, check: id }, 'subscribe failed: the check runs on its interval only');
    }
  }

  /** When each check began being tracked: handed to the next scheduler on reload. */
  trackedSince(): Map<string, number> {
    return new Map([...this.#slots].map(([id, s]) => [id, s.trackedSince]));
  }

  views(now = this.#opts.now()): CheckView[] {
    return this.checklist.checks.map((def) => this.#view(this.#slots.get(def.id)!, now));
  }

  view(id: string, now = this.#opts.now()): CheckView | undefined {
    const slot = this.#slots.get(id);
    return slot && this.#view(slot, now);
  }

  /** view(id), and until when it holds by time alone (viewValidUntil). */
  viewEntry(id: string, now = this.#opts.now()): { view: CheckView; validUntil: number } | undefined {
    const slot = this.#slots.get(id);
    if (!slot) return undefined;
    const status = this.#opts.store.latest(id);
    return { view: this.#view(slot, now, status), validUntil: viewValidUntil(slot.def, status, now, slot.trackedSince) };
  }

  #view(slot: Slot, now: number, status = this.#opts.store.latest(slot.def.id)): CheckView {
    const v = viewCheck(slot.def, status, now, slot.trackedSince);
    // A copy: a view is frozen with what it shows (the metrics text is built once per view).
    const runs = this.#runs.get(slot.def.id);
    if (runs) v.runs = { ...runs };
    return v;
  }

  /**
   * Runs a check now (POST /checks/:id/run); joins the run in flight if there is one. With
   * `fresh`, the run starts after the one in flight instead (what it reads changed since that
   * one started: a result computed before an attestation must not answer for it). Undefined
   * when this process may not run it (see mayRun), or it is unconfigured, or stopping.
   */
  runNow(id: string, opts: { fresh?: boolean } = {}): Promise<CheckStatus | undefined> | undefined {
    const slot = this.#slots.get(id);
    if (!slot || slot.def.unconfigured || this.#stopped || !this.mayRun(id)) return undefined;
    if (!slot.running) return this.#enqueue(slot, this.#opts.now());
    if (!opts.fresh) return slot.running;
    slot.after ??= slot.running
      .catch(() => undefined)
      .then(() => {
        slot.after = undefined;
        return this.#stopped ? undefined : (slot.running ?? this.#enqueue(slot, this.#opts.now()));
      });
    return slot.after;
  }

  #arm(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    let next = Infinity;
    for (const s of this.#slots.values()) if (s.due + s.slack < next) next = s.due + s.slack;
    if (next === Infinity) return;
    // setTimeout caps at ~24.8 days; re-arm in steps for rare cron schedules.
    const delay = Math.min(Math.max(0, next - this.#opts.now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => this.#tick(), delay);
    this.#timer.unref?.();
  }

  #tick(): void {
    const now = this.#opts.now();
    for (const slot of this.#slots.values()) {
      if (slot.due > now) continue;
      const due = slot.due;
      slot.due = this.#nextDue(slot, due, now);
      if (!this.#mine(slot)) continue;
      if (slot.running) {
        this.stats.skipped++;
        this.#logSkip(slot, now);
        continue;
      }
      void this.#enqueue(slot, due, true);
    }
    this.#arm();
  }

  /**
   * At most one warning per check per minute: an overloaded service skips slots every
   * second, and a log line for each made it slower still. The counter
   * (readiness_exporter_scheduler_skipped_runs_total) counts every one.
   */
  #logSkip(slot: Slot, now: number): void {
    slot.skippedSinceLog = (slot.skippedSinceLog ?? 0) + 1;
    if (slot.skipLoggedAt !== undefined && now - slot.skipLoggedAt < SKIP_LOG_EVERY_MS) return;
    this.#opts.log.warn({ check: slot.def.id, skipped: slot.skippedSinceLog }, 'previous run still in progress: slot skipped');
    slot.skipLoggedAt = now;
    slot.skippedSinceLog = 0;
  }

  #mine(slot: Slot): boolean {
    return !this.#opts.ownership || this.#opts.ownership.owns(slot.def.id);
  }

  #nextDue(slot: Slot, due: number, now: number): number {
    if (slot.cron) return slot.cron.nextRun(new Date(Math.max(now, due)))?.getTime() ?? Infinity;
    // Anchored to the schedule: slots missed while the process was busy are skipped, not bunched.
    const i = slot.def.intervalMs;
    return due + Math.max(1, Math.ceil((now - due + 1) / i)) * i;
  }

  #enqueue(slot: Slot, due: number, scheduled = false): Promise<CheckStatus | undefined> {
    // The slot is free the moment the run settles, before anyone awaiting it resumes: a
    // runNow right after must start a new run, not join the finished one.
    const done = () => {
      if (slot.running === p) delete slot.running;
    };
    const p: Promise<CheckStatus | undefined> = new Promise((resolve, reject) =>
      this.#queue.push({
        slot,
        due,
        scheduled,
        resolve: (s) => {
          done();
          resolve(s);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      }),
    );
    slot.running = p;
    p.catch(() => {}).finally(() => {
      if (slot.rerun && !this.#stopped) {
        slot.rerun = false;
        void this.#enqueue(slot, this.#opts.now()).catch(() => {});
      }
    });
    this.#drain();
    return p;
  }

  #drain(): void {
    while (this.#running < this.#opts.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running++;
      const lag = Math.max(0, (this.#opts.now() - job.due) / 1000);
      this.stats.lagSeconds = lag;
      this.stats.maxLagSeconds = Math.max(this.stats.maxLagSeconds, lag);
      this.#execute(job.slot.def)
        .then((status) => {
          if (job.scheduled) this.#noBunching(job.slot, status?.last.startedAt);
          job.resolve(status);
        })
        .finally(() => {
          this.#running--;
          this.#drain();
        });
    }
    this.stats.running = this.#running;
    this.stats.queued = this.#queue.length;
  }

  /**
   * A scheduled run that started late (a busy process, a client library loading on its first
   * use) takes its slot's place: when the next slot would come less than half an interval
   * after it, that slot is skipped and counted, so the schedule never probes a check twice
   * within half an interval.
   */
  #noBunching(slot: Slot, startedAt: number | undefined): void {
    if (slot.cron || startedAt === undefined || this.#stopped) return;
    const i = slot.def.intervalMs;
    if (slot.due - startedAt >= i / 2) return;
    slot.due += Math.ceil((startedAt + i / 2 - slot.due) / i) * i;
    this.stats.skipped++;
    this.#opts.log.debug({ check: slot.def.id }, 'run started late: the next slot is skipped');
    this.#arm();
  }

  /** The fence a run starting now presents with its result; null: this process may not run it now. */
  #fenceFor(def: CheckDef): WriteFence | undefined | null {
    const own = this.#opts.ownership;
    if (!own) return undefined;
    if (own.owns(def.id)) {
      const lease = own.fence(def.id);
      return lease ? { lease } : undefined;
    }
    return def.probe.recordsOnly ? { recordsOnly: true } : null;
  }

  async #execute(def: CheckDef): Promise<CheckStatus | undefined> {
    const store = this.#opts.store;
    // Decided when the run starts: ownership may have moved while it waited in the queue.
    const fence = this.#fenceFor(def);
    if (fence === null) return store.latest(def.id);
    // The records version of the first read is the oldest this run saw: its result's version.
    const source = this.#opts.records ?? store;
    let recordsVersion: number | undefined;
    const seen = () => (recordsVersion ??= source.recordsVersion?.() ?? 0);
    const records: Records = {
      attestations: (check) => (seen(), source.attestations(check)),
      deployments: (limit) => (seen(), source.deployments(limit)),
    };
    let result: RunResult | undefined;
    for (const dep of def.dependsOn) {
      const v = this.view(dep);
      if (v && !isPassing(v.state) && v.state !== 'pending') {
        result = dependencyResult(def, dep, v.state);
        break;
      }
    }
    // HA: asked again where the probe sends (after loading its client, once its connection is
    // open): the process may have been stopped or stalled since the run started, and another
    // replica may run the check now. A run refused there sent nothing and publishes nothing.
    const own = this.#opts.ownership;
    const epoch = fence?.lease?.epoch;
    let refused = false;
    const stillOwner =
      own && epoch !== undefined
        ? () => {
            const ok = own.fence(def.id)?.epoch === epoch;
            refused ||= !ok;
            return ok;
          }
        : undefined;
    result ??= await runCheck(def, {
      log: this.#opts.log,
      env: this.#opts.env,
      signal: this.#ac.signal,
      latestValue: (id) => store.latest(id)?.value,
      records,
      ...(stillOwner && { stillOwner }),
    }).catch((err: unknown) => {
      // runCheck catches probe errors itself; this is a bug in the harness, kept as data.
      this.#opts.log.error({ err, check: def.id }, 'harness failed');
      const now = Date.now();
      return { check: def.id, state: 'error' as const, reason: 'error' as const, message: String(err), startedAt: now, finishedAt: now, durationMs: 0, conditions: [] };
    });
    if (refused) {
      this.#opts.log.warn({ check: def.id, epoch }, 'the check\'s lease was lost before its probe sent (all or the rest of) its traffic: nothing more sent, nothing published');
      return store.latest(def.id);
    }
    if (recordsVersion !== undefined) result.recordsVersion = recordsVersion;
    if (own) result.ranBy = { replica: own.replicaId, ...(fence?.lease && { epoch: fence.lease.epoch }) };
    const counts = this.#runs.get(def.id) ?? {};
    counts[result.state] = (counts[result.state] ?? 0) + 1;
    this.#runs.set(def.id, counts);
    const status = nextStatus(def, store.latest(def.id), result);
    // The store updates its cache at once and writes in the background: a slow or down
    // database never holds up the next run.
    store.put(status, fence).catch((err: unknown) => {
      this.stats.storeErrors++;
      this.#opts.log.error({ err, check: def.id }, 'store write failed');
    });
    this.#opts.onStatus?.(def, status);
    return status;
  }

  /**
   * Stops scheduling and waits up to `deadlineMs` for runs in flight to finish; then aborts
   * them (their results are recorded as errors).
   */
  async stop(deadlineMs = 10_000): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const s of this.#slots.values()) {
      s.cron?.stop();
      s.unsubscribe?.();
      clearTimeout(s.notifyTimer);
    }
    for (const job of this.#queue.splice(0)) job.reject(new Error('shutting down: the run was not started'));
    const inflight = [...this.#slots.values()].flatMap((s) => (s.running ? [s.running] : []));
    if (inflight.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineMs);
    });
    await Promise.race([Promise.allSettled(inflight), deadline]);
    clearTimeout(timer);
    this.#ac.abort(new Error('shutting down'));
    await Promise.allSettled(inflight);
  }
}

/**
 * Runs every check once, dependencies first, with the same harness the service uses
 * (`readiness check`). Checks that are not `only` are left pending.
 */
export async function runOnce(checklist: Checklist, opts: SchedulerOptions & { only?: readonly string[] }): Promise<CheckView[]> {
  const sched = new Scheduler(checklist, opts);
  const wanted = new Set(opts.only ?? checklist.checks.map((c) => c.id));
  // Include what the wanted checks depend on, so `--only` still honours dependsOn.
  const addDeps = (id: string) => {
    // An unknown name (`--only nope`) has nothing to add.
    const def = checklist.byId.get(id);
    if (!def) return;
    for (const d of def.dependsOn) {
      // Stryker disable next-line ConditionalExpression: dependencies are acyclic (the loader rejects cycles): adding one twice changes nothing
      if (wanted.has(d)) continue;
      wanted.add(d);
      addDeps(d);
    }
  };
  [...wanted].forEach(addDeps);
  const done = new Map<string, Promise<unknown>>();
  const run = (def: CheckDef): Promise<unknown> => {
    let p = done.get(def.id);
    // Stryker disable next-line ConditionalExpression: every run() call happens in the first tick, so a second runNow joins the run in flight
    if (!p) {
      p = Promise.all(def.dependsOn.map((d) => run(checklist.byId.get(d)!))).then(() => sched.runNow(def.id));
      done.set(def.id, p);
    }
    return p;
  };
  await Promise.all(checklist.checks.filter((c) => wanted.has(c.id)).map(run));
  await sched.stop(0);
  return sched.views().filter((v) => wanted.has(v.def.id));
}
