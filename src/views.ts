// Every check's view, kept current instead of recomputed on every read. A view changes when
// its check's status changes (the store says so), when the whole picture changes (a reload,
// a deployment, an attestation: everything is rebuilt), and by time alone (a check turning
// stale, the deployment window opening or closing): each view knows until when it holds.
// /metrics, /readiness and /checks read one frozen snapshot, shared until the next change,
// so a scrape of 10,000 checks costs nothing per check that has not changed.
import type { CheckDef } from './config/types.js';
import type { CheckView } from './state.js';
import { isPassing } from './store/types.js';

export interface ViewsSnapshot {
  /** Every check of the checklist in its order; frozen, shared by every reader until a change. */
  readonly views: readonly CheckView[];
  /** Changes whenever any view changes. */
  readonly version: number;
  /**
   * Changes when what a /readiness answer (not verbose) shows of the checks changes: a
   * state, whether a check gates, or a non-passing check's details. A passing check that
   * passes again changes `version` only.
   */
  readonly readinessVersion: number;
  /** The first moment a view changes by time alone (stale, the deployment window). */
  readonly validUntil: number;
  /** The first moment something every view depends on changes by time alone (the deployment window). */
  readonly sharedValidUntil: number;
}

export interface ViewSource {
  /** The checks, in checklist order. */
  checks(): readonly CheckDef[];
  /** One check's view at `now` and until when it holds. */
  view(def: CheckDef, now: number): { view: CheckView; validUntil: number };
  /** Until when something every view depends on holds by time alone (the deployment window). */
  sharedValidUntil(now: number): number;
}

interface Entry {
  view: CheckView;
  validUntil: number;
}

/**
 * Whether a non-verbose /readiness answer may show something else after `next` replaced
 * `prev`: a passing check shows only its state (in the summary and sections); a non-passing
 * one is listed with its details, which every run changes.
 */
function relevant(prev: CheckView | undefined, next: CheckView): boolean {
  return !prev || !isPassing(prev.state) || !isPassing(next.state) || prev.state !== next.state || prev.gating !== next.gating;
}

export class ViewCache {
  #entries: Entry[] = [];
  #index = new Map<string, number>();
  #snapshot: ViewsSnapshot = { views: [], version: 0, readinessVersion: 0, validUntil: -Infinity, sharedValidUntil: -Infinity };
  readonly #dirty = new Set<number>();
  #all = true;
  #sharedUntil = -Infinity;
  /** The latest `now` the views were computed for. */
  #at = -Infinity;
  /** Views recomputed since the cache was made: a guard for tests (no work without a change). */
  built = 0;

  constructor(
    readonly source: ViewSource,
    /** For a store that cannot say what changed: every read recomputes. */
    readonly alwaysStale = false,
  ) {}

  /** Marks one check's view out of date, or every view (no argument). */
  invalidate(check?: string): void {
    if (check === undefined) {
      this.#all = true;
      return;
    }
    // A check not in the checklist (another replica's, a removed one) has no view to change.
    const i = this.#index.get(check);
    if (i !== undefined) this.#dirty.add(i);
  }

  get(now: number): ViewsSnapshot {
    const snap = this.#snapshot;
    if (!this.alwaysStale && !this.#all && this.#dirty.size === 0 && now < snap.validUntil && now >= this.#at) return snap;
    // Views of a later instant (a caller asking about the future) do not hold for an earlier one.
    if (this.alwaysStale || this.#all || now >= this.#sharedUntil || now < this.#at) return this.#rebuild(now);
    if (now >= snap.validUntil) this.#entries.forEach((e, i) => e.validUntil <= now && this.#dirty.add(i));
    const views = snap.views.slice();
    let changed = false;
    for (const i of this.#dirty) {
      const prev = this.#entries[i]!;
      const next = this.#make(prev.view.def, now);
      changed ||= relevant(prev.view, next.view);
      this.#entries[i] = next;
      views[i] = next.view;
    }
    this.#dirty.clear();
    return this.#publish(views, now, changed);
  }

  #make(def: CheckDef, now: number): Entry {
    const { view, validUntil } = this.source.view(def, now);
    this.built++;
    return { view: Object.freeze(view), validUntil };
  }

  #rebuild(now: number): ViewsSnapshot {
    const old = new Map(this.#entries.map((e) => [e.view.def.id, e.view]));
    const defs = this.source.checks();
    this.#entries = defs.map((d) => this.#make(d, now));
    this.#index = new Map(defs.map((d, i) => [d.id, i]));
    this.#sharedUntil = this.source.sharedValidUntil(now);
    this.#all = false;
    this.#dirty.clear();
    const changed = this.#entries.length !== old.size || this.#entries.some((e) => relevant(old.get(e.view.def.id), e.view));
    return this.#publish(
      this.#entries.map((e) => e.view),
      now,
      changed,
    );
  }

  #publish(views: CheckView[], now: number, relevant: boolean): ViewsSnapshot {
    this.#at = now;
    let validUntil = this.#sharedUntil;
    for (const e of this.#entries) if (e.validUntil < validUntil) validUntil = e.validUntil;
    const prev = this.#snapshot;
    this.#snapshot = {
      views: Object.freeze(views),
      version: prev.version + 1,
      readinessVersion: prev.readinessVersion + (relevant ? 1 : 0),
      // A source whose views change by time yet says "until now" must not loop: at least 1 ms.
      validUntil: Math.max(validUntil, now + 1),
      sharedValidUntil: this.#sharedUntil,
    };
    return this.#snapshot;
  }
}
