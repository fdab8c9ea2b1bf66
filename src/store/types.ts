// The state the service keeps per check, and the Store interface behind it. The in-memory
// store lives here; durable stores (embedded, PostgreSQL) implement the same interface.
import type { Reason } from '../reasons.js';

/** The seven states of DESIGN.md. Only pass and warn count as passing. */
export const STATES = ['pass', 'warn', 'fail', 'error', 'stale', 'pending', 'unconfigured'] as const;
export type State = (typeof STATES)[number];
/** States a run can produce; stale, pending and unconfigured are derived when reading. */
export type RunState = 'pass' | 'warn' | 'fail' | 'error';

export function isPassing(s: State): boolean {
  return s === 'pass' || s === 'warn';
}

export interface ConditionOutcome {
  source: string;
  ok: boolean;
  text: string;
}

/** One completed run of one check. */
export interface RunResult {
  check: string;
  state: RunState;
  reason?: Reason;
  message: string;
  value?: number;
  /** Epoch milliseconds. */
  startedAt: number;
  finishedAt: number;
  durationMs: number;
  conditions: ConditionOutcome[];
  /** What the check saw deployed (its `version` field), for `marksDeployment` checks. */
  release?: { version: string; at?: number };
}

/** The latest known state of a check, after failAfter/passAfter. */
export interface CheckStatus {
  check: string;
  state: RunState;
  reason?: Reason;
  message: string;
  value?: number;
  /** The latest run (its state may differ from `state` while failAfter/passAfter hold it). */
  last: RunResult;
  lastPassAt?: number;
  /** How many consecutive runs agreed with the latest run's passing-ness. */
  streak: number;
  /** Runs by resulting state, since the store began. */
  runs: Partial<Record<RunState, number>>;
}

/**
 * A check's history is pruned after every this many of its own writes: it holds between
 * `limit` and `limit + pruneEvery - 1` rows, and each prune reads one check's newest rows
 * through the (check_id, id) index, so a write costs the same at 10k or 10M rows in total.
 */
export function pruneEvery(limit: number): number {
  return Math.max(1, Math.min(50, Math.ceil(limit / 10)));
}

/** A status and its run as JSON, the run serialised once (it is most of the status). */
export function serialise(s: CheckStatus): [status: string, last: string] {
  const last = JSON.stringify(s.last);
  const { last: _, ...rest } = s;
  const head = JSON.stringify(rest);
  return [`${head.slice(0, -1)},"last":${last}}`, last];
}

export interface StoreHealth {
  ok: boolean;
  message: string;
  /** Check results waiting in memory for the store to come back. */
  queued?: number;
  /** Failed backend operations since start. */
  errors?: number;
}

/** A signed human statement that a checklist line holds, valid until it expires. */
export interface Attestation {
  id: string;
  check: string;
  by: string;
  role: string;
  note?: string;
  evidenceUrl?: string;
  /** The release it was signed for, when the check is per release. */
  release?: string;
  /** Epoch milliseconds. */
  createdAt: number;
  expiresAt: number;
  revokedAt?: number;
  revokedBy?: string;
}

/** A release that went out: opens the post-deploy monitoring window. */
export interface Deployment {
  id: string;
  version: string;
  /** When it went out (epoch ms); defaults to when it was recorded. */
  at: number;
  createdAt: number;
  by?: string;
  source: 'api' | 'cli' | 'kubernetes';
}

/** Read access that probe kinds (attestation) and the service need. */
export interface Records {
  /** Every attestation of the check, revoked ones included, newest first. */
  attestations(check?: string): Attestation[];
  /** Newest first. */
  deployments(limit?: number): Deployment[];
}

/** Thrown when a write that must be durable cannot be made: the caller must not acknowledge it. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * What changed in a store, for caches derived from it (/metrics text, /readiness answers):
 * a check's latest status (written here or, in HA, by another replica), an attestation made
 * or revoked, a deployment recorded, the store going degraded or coming back.
 */
export type StoreChange =
  | { kind: 'status'; check: string }
  | { kind: 'attestation'; check: string }
  | { kind: 'deployment' }
  | { kind: 'health' };

export interface Store extends Records {
  /** memory, sqlite or postgres: shown in /readiness and logs. */
  readonly kind: string;
  /** Opens the store, applies migrations and loads the cached state. */
  init(): Promise<void>;
  /**
   * Records a check's new status. Durable stores resolve once it is written; when the
   * database is down the status is kept in a bounded queue and written when it returns.
   */
  put(status: CheckStatus): Promise<void>;
  latest(check: string): CheckStatus | undefined;
  /** Newest first, at most `limit`. */
  history(check: string, limit: number): Promise<RunResult[]>;
  /** Drops cached checks that are no longer in the checklist (their rows stay until retention). */
  retain(checks: ReadonlySet<string>): void;
  /** Resolves only once the attestation is durable; throws StoreUnavailableError otherwise. */
  addAttestation(a: Attestation): Promise<void>;
  /** Marks it revoked (durably); undefined when there is no such attestation. */
  revokeAttestation(id: string, by: string, at: number): Promise<Attestation | undefined>;
  /** Resolves only once the deployment is durable; throws StoreUnavailableError otherwise. */
  addDeployment(d: Deployment): Promise<void>;
  health(): StoreHealth;
  /**
   * Calls `listener` synchronously after every change to what the store serves; returns the
   * unsubscribe function. A store without it is read as changing all the time.
   */
  onChange?(listener: (change: StoreChange) => void): () => void;
  close(): Promise<void>;
}
