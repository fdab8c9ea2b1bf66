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
  /**
   * The version of the records (attestations, deployments) the run read, when it read any:
   * a result computed from older records never replaces one computed from newer records.
   */
  recordsVersion?: number;
  /** HA: the replica that ran it, and the lease epoch it ran under. */
  ranBy?: { replica: string; epoch?: number };
}

/** A result's order: records version first, then the end of the run. */
export function resultOrder(r: RunResult): [number, number] {
  return [r.recordsVersion ?? 0, r.finishedAt];
}

/**
 * Whether result `a` may replace result `b` as a check's latest. Computed from newer records
 * wins; from the same records, the later run wins. With `strict` (a records-only
 * re-evaluation by a replica that does not hold the check's lease), only strictly newer
 * records win: such a replica adds nothing unless it knows of a newer record.
 */
export function supersedes(a: RunResult, b: RunResult, strict = false): boolean {
  const [av, af] = resultOrder(a);
  const [bv, bf] = resultOrder(b);
  if (strict) return av > bv;
  return av > bv || (av === bv && af >= bf);
}

/**
 * What a result write must present. `lease`: the run started under this lease, and the
 * result is published only while it is still the check's current lease (HA fencing).
 * `recordsOnly`: a re-evaluation, by a replica that need not own the check, of a check whose
 * kind reads only records; published only if computed from strictly newer records.
 */
export interface WriteFence {
  lease?: { owner: string; epoch: number };
  recordsOnly?: boolean;
}

/** What became of a result handed to the store. */
export type WriteOutcome = { written: true } | { written: false; reason: 'fenced' | 'superseded'; current?: CheckStatus };

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
  /** Results not published since start: `fenced` (the lease was lost), `superseded` (a newer result is stored). */
  discarded?: { fenced: number; superseded: number };
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
  /**
   * The records version these reads reflect: every attestation and deployment written at a
   * version <= it is included. Grows only. Absent: records that are never written (tools).
   */
  recordsVersion?(): number;
}

/** Thrown when a write that must be durable cannot be made: the caller must not acknowledge it. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** What changed in the records, for the checks that read them. */
export interface RecordsChange {
  /** Checks whose attestations were added or revoked. */
  attestations: Set<string>;
  /** A deployment was recorded. */
  deployment: boolean;
}

/**
 * The store is not the one this service wrote to: an embedded file that was emptied,
 * replaced or reset, a PostgreSQL database dropped and recreated. Never silently adopted
 * (that would lose every attestation without a word): `--init-store` accepts it.
 */
export class StoreIdentityError extends Error {
  override name = 'StoreIdentityError';
}

/**
 * What changed in a store, for caches derived from it (/metrics text, /readiness answers):
 * a check's latest status (written here or, in HA, by another replica), an attestation made
 * or revoked, a deployment recorded, the store going degraded or coming back. `remote`: an
 * attestation or deployment another replica wrote, read back from the shared store.
 */
export type StoreChange =
  | { kind: 'status'; check: string }
  | { kind: 'attestation'; check: string; remote?: boolean }
  | { kind: 'deployment'; remote?: boolean }
  | { kind: 'health' };

export interface Store extends Records {
  /** memory, sqlite or postgres: shown in /readiness and logs. */
  readonly kind: string;
  /** Opens the store, applies migrations and loads the cached state. */
  init(opts?: { tolerateDown?: boolean; initStore?: boolean }): Promise<void>;
  /**
   * Records a check's new status. Durable stores resolve once it is written; when the
   * database is down the status is kept in a bounded queue and written when it returns.
   * A status that a newer one supersedes, or whose fence no longer holds, is not published.
   */
  put(status: CheckStatus, fence?: WriteFence): Promise<void>;
  latest(check: string): CheckStatus | undefined;
  /** Newest first, at most `limit`. */
  history(check: string, limit: number): Promise<RunResult[]>;
  /** Drops cached checks that are no longer in the checklist (their rows stay until retention). */
  retain(checks: ReadonlySet<string>): void;
  /** See Records.recordsVersion. */
  recordsVersion(): number;
  /** Whether a result of this check is still waiting to be written. */
  pendingWrite?(check: string): boolean;
  /** Reads other replicas' writes now (shared stores). */
  refresh?(): Promise<void>;
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
