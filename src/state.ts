// What a check looks like when read: the stored status plus the states derived at read time
// (unconfigured, pending, stale), and the readiness verdict over a filtered set of checks.
// /readiness, /checks, /metrics and `readiness check` all read through here, so they agree.
import type { CheckDef, Checklist } from './config/types.js';
import { PHASES, SEVERITIES, type Phase, type Severity } from './config/schema.js';
import type { Reason } from './reasons.js';
import { isPassing, STATES, type CheckStatus, type RunState, type State } from './store/types.js';

/** A check goes stale when no run has completed for this many intervals. */
export const STALE_INTERVALS = 3;

export interface CheckView {
  def: CheckDef;
  /** Whether it counts for readiness now: `gate`, and for monitor-phase checks, inside the deployment window. */
  gating: boolean;
  state: State;
  reason?: Reason;
  message: string;
  value?: number;
  /** Epoch ms of the end of the last run. */
  lastRun?: number;
  lastPass?: number;
  durationMs?: number;
  status?: CheckStatus;
  /**
   * Runs of the check this process performed since it started, by result: what
   * readiness_check_runs_total exports. Per process, so the sum over HA replicas counts each
   * run once (status.runs is the shared total since the store began).
   */
  runs?: Partial<Record<RunState, number>>;
}

/**
 * @param trackedSince when the service began scheduling the check: a check that has never
 * completed a run is `pending` until three intervals have passed, then `stale`. A check with a
 * result is `stale` once that result's run ended more than three intervals ago and this process
 * has tracked it for three intervals. A result restored from before the start that is already
 * too old is not served as passing: a restored pass or warn is `pending` until this process has
 * had three intervals to run the check (then `stale`); a restored fail or error stays as it is.
 */
export function viewCheck(def: CheckDef, status: CheckStatus | undefined, now: number, trackedSince: number): CheckView {
  const gating = def.gate;
  if (def.unconfigured) return { def, gating, state: 'unconfigured', reason: 'unconfigured', message: def.unconfigured };
  const staleAfter = STALE_INTERVALS * def.intervalMs;
  if (!status) {
    if (now - trackedSince > staleAfter) {
      return { def, gating, state: 'stale', reason: 'stale', message: `no run has completed since ${new Date(trackedSince).toISOString()}` };
    }
    return { def, gating, state: 'pending', reason: 'pending', message: 'not run yet' };
  }
  const view: CheckView = {
    def,
    gating,
    state: status.state,
    message: status.message,
    lastRun: status.last.finishedAt,
    durationMs: status.last.durationMs,
    status,
  };
  if (status.reason !== undefined) view.reason = status.reason;
  // A probe that found at run time what the loader could not see (a configuration that went
  // away): the environment lacks configuration, which is not an error that alerts.
  if (status.state === 'error' && status.reason === 'unconfigured') view.state = 'unconfigured';
  if (status.value !== undefined) view.value = status.value;
  if (status.lastPassAt !== undefined) view.lastPass = status.lastPassAt;
  // Measured from the run itself, never from when this process began tracking the check: a
  // result restored after a restart (or a long stop) is as old as its run, so a restart can
  // never turn an old pass into a fresh-looking one.
  if (now - status.last.finishedAt > staleAfter) {
    const ended = new Date(status.last.finishedAt).toISOString();
    if (now - trackedSince > staleAfter) {
      view.state = 'stale';
      view.reason = 'stale';
      view.message = `last run ended ${ended}, more than ${STALE_INTERVALS} intervals ago (last state ${status.state})`;
    } else if (isPassing(view.state)) {
      // Restored from before this process started and too old to vouch for anything, while
      // this process has not had three intervals to run it: not passing (a restart never
      // makes /readiness greener), and not `stale` either, which would page a rollback
      // because the exporter itself was down. A restored fail or error is kept as it is: no
      // greener, and the incident it raised neither resolves nor pages again.
      view.state = 'pending';
      view.reason = 'pending';
      view.message = `restored result (last state ${status.state}, run ended ${ended}) is older than ${STALE_INTERVALS} intervals; waiting for the first run since the restart`;
    }
  }
  return view;
}

/**
 * Until when viewCheck() gives the same view at a later `now`: the moment a pending check or
 * one with a fresh result turns stale (Infinity once nothing changes by time alone). Caches
 * of views expire by this instead of being recomputed on every read.
 */
export function viewValidUntil(def: CheckDef, status: CheckStatus | undefined, now: number, trackedSince: number): number {
  if (def.unconfigured) return Infinity;
  const staleAfter = STALE_INTERVALS * def.intervalMs;
  // The view changes when the run gets too old and when this process has tracked the check
  // for three intervals (a restored result: pending, then stale).
  const changes: number[] = [];
  if (status) changes.push(status.last.finishedAt + staleAfter + 1);
  if (!status || status.last.finishedAt < trackedSince) changes.push(trackedSince + staleAfter + 1);
  let next = Infinity;
  for (const at of changes) if (at > now && at < next) next = at;
  return next;
}

export interface Filters {
  severity?: Severity[];
  phase?: Phase[];
  section?: string[];
  check?: string[];
}

export type FilterResult = { ok: true; filters: Filters } | { ok: false; error: string };

function list(v: unknown): string[] {
  const arr = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return arr.flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter(Boolean);
}

/**
 * Reads filters from query parameters (comma-separated or repeated). Unknown values are
 * errors: a typo in a deploy script must not turn into a vacuous "ready".
 */
export function parseFilters(q: Record<string, unknown>, checklist: Checklist): FilterResult {
  const filters: Filters = {};
  const sev = list(q.severity);
  const phase = list(q.phase);
  const section = list(q.section);
  const check = list(q.check);
  const bad = (name: string, vals: string[], allowed: readonly string[]) => {
    const unknown = vals.filter((v) => !allowed.includes(v));
    return unknown.length ? `unknown ${name} ${unknown.map((u) => JSON.stringify(u)).join(', ')}; known: ${allowed.join(', ')}` : undefined;
  };
  const sections = [...new Set(checklist.checks.map((c) => c.section))];
  const err =
    bad('severity', sev, SEVERITIES) ??
    bad('phase', phase, PHASES) ??
    bad('section', section, sections) ??
    (check.some((c) => !checklist.byId.has(c))
      ? `unknown check ${check.filter((c) => !checklist.byId.has(c)).map((c) => JSON.stringify(c)).join(', ')} (GET /checks lists them)`
      : undefined);
  if (err) return { ok: false, error: err };
  if (sev.length) filters.severity = sev as Severity[];
  if (phase.length) filters.phase = phase as Phase[];
  if (section.length) filters.section = section;
  if (check.length) filters.check = check;
  return { ok: true, filters };
}

export function matches(def: CheckDef, f: Filters): boolean {
  return (
    (!f.severity || f.severity.includes(def.severity)) &&
    (!f.phase || f.phase.includes(def.phase)) &&
    (!f.section || f.section.includes(def.section)) &&
    (!f.check || f.check.includes(def.id))
  );
}

export interface FailingCheck {
  id: string;
  title: string;
  section: string;
  severity: Severity;
  phase: Phase;
  state: State;
  reason?: Reason;
  message: string;
  value?: number;
  expect: string[];
  lastRun?: string;
  runbook?: string;
  /** For an unconfigured check: the environment variables that would configure it. */
  missing?: string[];
}

export interface ReadinessBody {
  ready: boolean;
  checklist: string;
  evaluatedAt: string;
  filters: Filters;
  summary: Record<'total' | State, number>;
  failing: FailingCheck[];
  /** Non-passing checks that do not gate (`gate: false`): shown, never blocking. */
  advisory: FailingCheck[];
  sections: Record<string, { passing: boolean; pass: number; total: number }>;
  store?: { ok: boolean; message: string };
  /** The latest deployment and its monitoring window. */
  deployment?: { version: string; at: string; windowOpen: boolean; windowEndsAt: string };
  /** Whether to roll back: a gating monitor-phase check cannot show it is healthy inside the window (rollbackCauses). */
  rollback?: { recommended: boolean; failing: string[] };
  checks?: FailingCheck[];
}

export function describe(v: CheckView): FailingCheck {
  const out: FailingCheck = {
    id: v.def.id,
    title: v.def.title,
    section: v.def.section,
    severity: v.def.severity,
    phase: v.def.phase,
    state: v.state,
    message: v.message,
    expect: v.def.expect.map((c) => c.source),
  };
  if (v.reason !== undefined) out.reason = v.reason;
  if (v.value !== undefined) out.value = v.value;
  if (v.lastRun !== undefined) out.lastRun = new Date(v.lastRun).toISOString();
  if (v.def.runbook !== undefined) out.runbook = v.def.runbook;
  if (v.state === 'unconfigured' && v.def.missing?.length) out.missing = v.def.missing.map((m) => m.variable);
  return out;
}

/**
 * Whether a check cannot show that it is healthy, for the rollback verdict: `fail`, `error`
 * (a query that returned no data included, unless its `onNoData` says pass) or `stale`, once
 * its `failAfter` is met. Not `unconfigured` (this environment never asked for it) and not
 * `pending` (no run yet): neither says anything about the deployment. A total outage (no
 * requests, no series) must never be quieter than a partial one, so `error` counts like `fail`.
 */
export function cannotShowHealthy(v: CheckView): boolean {
  if (v.state === 'stale') return true;
  if (v.state !== 'fail' && v.state !== 'error') return false;
  const s = v.status;
  if (!s) return true;
  // Held by passAfter (the latest run passed): failAfter was met when it turned.
  if (isPassing(s.last.state)) return true;
  // The first results of a check (no earlier state to hold) still wait for failAfter.
  return s.streak >= v.def.failAfter;
}

/**
 * The rollback causes among `views` (from Service.views(), where monitor checks gate only
 * inside the window after the latest deployment): gating monitor-phase checks that cannot show
 * they are healthy. /readiness, /metrics and the CLI all read this one verdict.
 */
export function rollbackCauses(views: readonly CheckView[]): CheckView[] {
  return views.filter((v) => v.def.phase === 'monitor' && v.gating && cannotShowHealthy(v));
}

/** Ready when every gating check that matches the filters is passing (pass or warn). */
export function isReady(views: readonly CheckView[]): boolean {
  return views.every((v) => !v.gating || isPassing(v.state));
}

export function readiness(checklist: Checklist, all: readonly CheckView[], filters: Filters, now: number, verbose = false): ReadinessBody {
  const views = all.filter((v) => matches(v.def, filters));
  const summary = Object.fromEntries([['total', views.length], ...STATES.map((s) => [s, 0])]) as ReadinessBody['summary'];
  const sections: ReadinessBody['sections'] = {};
  for (const v of views) {
    summary[v.state]++;
    const s = (sections[v.def.section] ??= { passing: true, pass: 0, total: 0 });
    s.total++;
    if (isPassing(v.state)) s.pass++;
    else if (v.gating) s.passing = false;
  }
  const nonPassing = views.filter((v) => !isPassing(v.state));
  const body: ReadinessBody = {
    ready: isReady(views),
    checklist: checklist.name,
    evaluatedAt: new Date(now).toISOString(),
    filters,
    summary,
    failing: nonPassing.filter((v) => v.gating).map(describe),
    advisory: nonPassing.filter((v) => !v.gating).map(describe),
    sections,
  };
  if (verbose) body.checks = views.map(describe);
  return body;
}
