// The one interface every probe kind implements. A kind lives in one file under
// src/probes/, ends in `export default defineProbe({...})`, and is registered by one line
// in src/probes/index.ts. The harness (src/harness.ts) owns timeouts, durations and the
// translation of exceptions into `error` results, so a kind only measures.
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Reason } from '../reasons.js';
import type { Records } from '../store/types.js';

/**
 * The type of a field a probe reports, as conditions see it. `unit` lets a condition
 * compare against a duration literal (`duration_ms < 500ms`, `age_seconds < 1h`): the
 * literal is converted to that unit when the checklist is loaded.
 */
export interface FieldSpec {
  type: 'number' | 'string' | 'boolean' | 'any';
  unit?: 'ms' | 's' | 'days';
  /** One line for the generated reference docs. */
  description?: string;
}

/**
 * Field names a probe reports. A name ending in `.*` declares a family (`json.*`,
 * `header.*`): any field below that prefix may be used in conditions.
 */
export type FieldSpecs = Record<string, FieldSpec['type'] | FieldSpec>;

/** What one run of a probe measured. Probes return this for a down target; they throw only for bugs. */
export interface Observation {
  /** The headline number for `readiness_check_value` (days left, percent, ms, count). */
  value?: number;
  /** Named measurements that `expect`/`warn` conditions refer to. */
  fields: Record<string, unknown>;
  /** The query ran but returned nothing (an empty vector, no rows): decided by the check's `onNoData`. */
  noData?: boolean;
  /**
   * The target answered and the answer is bad by the probe's own standard (a certificate
   * chain that does not verify, an unexpected HTTP status): the check is `fail` with this
   * reason, whatever its conditions say.
   */
  failure?: { reason: Reason; message: string };
  /** The target could not be measured (refused, DNS, protocol garbage): the check is `error`. */
  error?: { reason: Reason; message: string };
  /** A short human summary of what was seen, shown in /readiness when nothing failed. */
  message?: string;
}

/**
 * One piece of configuration a check needs and this environment lacks. `variable` is what
 * /readiness and `readiness validate` tell a user to set; `alternative` names the other ways
 * to supply it when a variable is not the only one (a pod's service account).
 */
export interface MissingConfig {
  variable: string;
  alternative?: string;
  /** One line: what is missing, as the check's message says it. */
  message: string;
}

/** HA: a run that sent nothing because the replica no longer holds the check's lease (the scheduler publishes nothing of it). */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
}

/** The error of a run refused before its `what` was sent. */
export function leaseLost(what = 'request'): LeaseLostError {
  return new LeaseLostError(`the check's lease was lost before the ${what} was sent`);
}

/**
 * Asks the run's lease question (ProbeContext.stillOwner; outside HA there is none) and throws
 * leaseLost(what) when the lease is no longer held: right before `what` is sent.
 */
export function assertLease(stillOwner: (() => boolean) | undefined, what?: string): void {
  if (stillOwner && !stillOwner()) throw leaseLost(what);
}

/** What the harness hands to a probe run. */
export interface ProbeContext {
  /** Aborted at the check's timeout and at shutdown: pass it to every I/O call. */
  signal: AbortSignal;
  /** A child logger bound to {check, probe}. Never log secrets. */
  log: Logger;
  /** The check id, for messages. */
  checkId: string;
  /** The check's timeout in milliseconds (the signal fires then). */
  timeoutMs: number;
  /** Environment variables, read at load time; probes take secrets (tokens) from here. */
  env: NodeJS.ProcessEnv;
  /** Latest numeric value of another check, for measurements that combine checks. */
  valueOf(checkId: string): number | undefined;
  /** Attestations and deployments (the attestation kind reads them); absent in one-off tools. */
  records?: Records;
  /**
   * HA: whether this replica still holds the check's lease, asked at the moment of the call.
   * A probe whose request goes out after an asynchronous step (a connection being opened)
   * asks it right before sending, and sends nothing when it is false: a replica that was
   * stopped or stalled in between must not probe a check another replica has taken over.
   */
  stillOwner?: () => boolean;
}

/** A probe kind: its name, its parameters' schema, the fields it reports, and its run function. */
export interface ProbeKind<S extends TSchema = TSchema> {
  /** The YAML `probe:` value, the file name, and the metric-free identifier of the kind. */
  kind: string;
  /** One line describing what the kind measures. */
  description: string;
  /** TypeBox schema of the check's `with:` (merged over its target's fields). */
  params: S;
  /** Fields conditions may refer to. */
  fields: FieldSpecs;
  /**
   * Names of params that hold secrets (tokens, passwords, URLs with credentials): never
   * logged, never shown in /readiness or /checks.
   */
  secretParams?: readonly string[];
  /**
   * Names of the environment variables a check's params say it needs (a token named by
   * `tokenEnv`). One that is unset makes the check `unconfigured` at load, like an unset
   * `${VAR}`, so `readiness validate` lists it and it is never run half-configured.
   */
  requiredEnv?(params: Static<S>): string[];
  /**
   * What else this environment lacks for the check to run that no variable name shows (no
   * Kubernetes configuration, no key file): asked at load like requiredEnv, so the check is
   * `unconfigured`, never an `error` that alerts. Reads only the environment and the file
   * system: no network, no heavy client.
   */
  missingConfig?(params: Static<S>, env: NodeJS.ProcessEnv): MissingConfig[];
  /**
   * Secret values a check of this kind sends (or hands to a program) that neither its secret
   * params nor the variables its params name (`*Env`, requiredEnv) show: the token of a
   * kubeconfig's user, the AWS variables an SDK reads by default, the variables exec passes on.
   * A `user:password` a probe sends as Basic credentials is returned as that pair. Asked at load
   * like missingConfig (environment and file system only, never throws out); the loader masks
   * these with every other secret of the check on every surface (src/secrets.ts).
   */
  secrets?(params: Static<S>, env: NodeJS.ProcessEnv): string[];
  /**
   * Set for a kind whose every run is intrusive (it spends the target's budget: a burst of
   * requests): what it does, in a few words. Its checks run only where the operator opted in
   * (READINESS_ALLOW_INTRUSIVE, --allow-intrusive), as checks marked `intrusive: true` do.
   */
  intrusive?: string;
  /** Called once per loaded checklist for each check of this kind: extra validation beyond the schema. */
  validate?(params: Static<S>): string[];
  run(params: Static<S>, ctx: ProbeContext): Promise<Observation>;
  /**
   * Loads the client library a run of this check needs (undici, pg, the AWS SDK,
   * @kubernetes/client-node), which the kind imports on first use (src/probes/lazy.ts) so that
   * the CLI and checklists without the kind never load it. The harness awaits it before the
   * run's clock and timeout start: an import is not the target's latency.
   */
  load?(params: Static<S>): Promise<unknown>;
  /**
   * Optional, for kinds backed by a watch (Kubernetes informers): calls `notify` whenever
   * what the check measures may have changed, and the scheduler runs the check then
   * (debounced) instead of waiting for its next slot. Returns the unsubscribe function.
   */
  subscribe?(params: Static<S>, notify: () => void, ctx: { log: Logger; env: NodeJS.ProcessEnv; checkId: string }): () => void;
  /**
   * The kind reads only attestations and deployments, never a target (the attestation kind).
   * In HA any replica may evaluate such a check after it wrote a record (so the writer can
   * answer with the new state); results are ordered by the records version they read.
   */
  recordsOnly?: boolean;
  /** Releases pools/agents held for the kind (called on reload and shutdown). */
  close?(): Promise<void>;
}

/** Identity function that gives a probe kind's object literal its types. */
export function defineProbe<S extends TSchema>(probe: ProbeKind<S>): ProbeKind<S> {
  return probe;
}

/** Throw from a probe for a target that answered with something unusable (garbage, bad auth). */
export class ProbeError extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}
