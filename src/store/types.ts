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

export interface StoreHealth {
  ok: boolean;
  message: string;
}

export interface Store {
  /** Stores a status once it is durable (for the memory store: at once). */
  put(status: CheckStatus): Promise<void>;
  latest(check: string): CheckStatus | undefined;
  /** Newest first, at most `limit`. */
  history(check: string, limit: number): RunResult[];
  /** Drops checks that are no longer in the checklist. */
  retain(checks: ReadonlySet<string>): void;
  health(): StoreHealth;
  close(): Promise<void>;
}
