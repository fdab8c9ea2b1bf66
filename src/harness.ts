// Runs one check once: the timeout (AbortSignal), the duration, exceptions turned into
// `error` with a reason, secrets scrubbed from messages, and the observation evaluated
// against the check's conditions. Probe kinds only measure; everything else is here.
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { evaluateCondition, evaluateConditionAsync, resolveField } from './conditions.js';
import type { CheckDef } from './config/types.js';
import { assertLease, LeaseLostError, ProbeError, type Observation } from './probes/types.js';
import { reasonFromError, type Reason } from './reasons.js';
import type { CheckStatus, ConditionOutcome, Records, RunResult, RunState } from './store/types.js';
import { scrubSecrets } from './probes/shared.js';
import { maskCutSecrets } from './secrets.js';

export interface RunDeps {
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** Aborts the run early (shutdown). */
  signal?: AbortSignal;
  latestValue?: (checkId: string) => number | undefined;
  records?: Records;
  /** HA: whether this replica still holds the check's lease (see ProbeContext.stillOwner). */
  stillOwner?: () => boolean;
}


const ABORT_GRACE_MS = 100;

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * Replaces every secret of the check (src/secrets.ts) with `***`: whole, and a part of one
 * that a probe or a condition cut off at an ellipsis.
 */
export function redact(text: string, secrets: readonly string[]): string {
  return maskCutSecrets(scrubSecrets(text, secrets, 4), secrets);
}

function oneLine(s: string, max = 500): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}

export async function runCheck(def: CheckDef, deps: RunDeps): Promise<RunResult> {
  // Before the clock starts: the kind's client library, on the first run that needs it.
  const loadFailed = def.probe.load ? await def.probe.load(def.params as never).then(() => undefined, (err: unknown) => err ?? new Error('load failed')) : undefined;
  const startedAt = Date.now();
  const t0 = performance.now();
  const ac = new AbortController();
  // A probe may attach one listener per request in flight (a ratelimit burst has 50).
  setMaxListeners(0, ac.signal);
  const timer = setTimeout(() => ac.abort(new TimeoutError(`timed out after ${def.timeoutMs} ms`)), def.timeoutMs);
  const onParentAbort = () => ac.abort(deps.signal!.reason);
  // A run that starts after shutdown began ends at once, like one in flight.
  if (deps.signal?.aborted) onParentAbort();
  else deps.signal?.addEventListener('abort', onParentAbort);
  // Built on first use: most runs of most kinds never log.
  let child: Logger | undefined;
  const log = () => (child ??= deps.log.child({ check: def.id, probe: def.kind }));

  let obs: Observation | undefined;
  let thrown: unknown;
  try {
    // The race makes the timeout hold even for a probe that ignores its signal.
    // After the abort, the probe gets a moment to settle with its own, more precise error
    // (a ProbeError saying which step was pending) before the bare timeout wins.
    const aborted = new Promise<never>((_, reject) => {
      const fire = () => setTimeout(() => reject(ac.signal.reason), ABORT_GRACE_MS);
      if (ac.signal.aborted) fire();
      else ac.signal.addEventListener('abort', fire);
    });
    aborted.catch(() => {});
    if (loadFailed !== undefined) throw loadFailed;
    // Loading the client library may have taken a while (or the process was stopped meanwhile).
    assertLease(deps.stillOwner, 'probe');
    obs = await Promise.race([
      def.probe.run(def.params as never, {
        signal: ac.signal,
        get log() {
          return log();
        },
        checkId: def.id,
        timeoutMs: def.timeoutMs,
        env: deps.env ?? process.env,
        valueOf: deps.latestValue ?? (() => undefined),
        ...(deps.records && { records: deps.records }),
        ...(deps.stillOwner && { stillOwner: deps.stillOwner }),
      }),
      aborted,
    ]);
  } catch (err) {
    thrown = err instanceof ProbeError || !ac.signal.aborted ? err : ac.signal.reason;
  } finally {
    clearTimeout(timer);
    deps.signal?.removeEventListener('abort', onParentAbort);
  }
  const finishedAt = Date.now();
  const durationMs = performance.now() - t0;
  const base = { check: def.id, startedAt, finishedAt, durationMs };

  let result: RunResult;
  if (obs === undefined) {
    // The check's own timeout is a TimeoutError: reasonFromError reads it as 'timeout'.
    const reason: Reason = reasonFromError(thrown);
    const msg = thrown instanceof Error ? thrown.message : String(thrown);
    if (reason === 'error' && !(thrown instanceof LeaseLostError)) log().warn({ err: thrown }, 'probe threw');
    result = { ...base, state: 'error', reason, message: msg || reason, conditions: [] };
  } else {
    result = { ...base, ...(await evaluateAsync(def, obs)) };
    const version = obs.fields.version;
    if (def.marksDeployment && typeof version === 'string' && version !== '') {
      const at = obs.fields.rolled_out_at;
      result.release = { version, ...(Number.isFinite(at) && { at: (at as number) * 1000 }) };
    }
  }
  result.message = oneLine(redact(result.message, def.secrets));
  for (const c of result.conditions) c.text = redact(c.text, def.secrets);
  // Stryker disable next-line ConditionalExpression: only saves building the line; pino drops a debug line below its level anyway
  if (deps.log.isLevelEnabled('debug')) log().debug({ state: result.state, reason: result.reason, durationMs: Math.round(durationMs) }, 'check ran');
  return result;
}

type Decision = Omit<RunResult, 'check' | 'startedAt' | 'finishedAt' | 'durationMs'>;
type Outcome = (c: CheckDef['expect'][number]) => ConditionOutcome;

/**
 * Decides pass/warn/fail/error from one observation, on the caller's thread (regexes are RE2:
 * linear, but a long body is still work). runCheck uses evaluateAsync.
 */
export function evaluate(def: CheckDef, obs: Observation): Decision {
  return decide(def, obs, (c) => ({ source: c.source, ...pick(evaluateCondition(c, obs.fields)) }));
}

/** Like evaluate; regex conditions over long texts (a response body) are matched off the event loop. */
export async function evaluateAsync(def: CheckDef, obs: Observation): Promise<Decision> {
  // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut; decide() returns before reading any condition of an error or no-data observation
  if (obs.error || obs.noData) return evaluate(def, obs);
  const all = [...def.expect, ...def.warn];
  const results = await Promise.all(all.map((c) => evaluateConditionAsync(c, obs.fields)));
  const byCondition = new Map(all.map((c, i) => [c, results[i]!]));
  return decide(def, obs, (c) => ({ source: c.source, ...pick(byCondition.get(c)!) }));
}

function decide(def: CheckDef, obs: Observation, outcome: Outcome): Decision {
  const value = pickValue(def, obs);
  const withValue = value === undefined ? {} : { value };
  if (obs.error) return { state: 'error', reason: obs.error.reason, message: obs.error.message, conditions: [], ...withValue };
  if (obs.noData) {
    const message = obs.message ?? 'the query returned no data';
    if (def.onNoData === 'pass') return { state: 'pass', message, conditions: [] };
    return { state: def.onNoData, reason: 'no-data', message, conditions: [] };
  }
  const expect = def.expect.map(outcome);
  const warn = def.warn.map(outcome);
  const conditions = [...expect, ...warn];
  if (obs.failure) return { state: 'fail', reason: obs.failure.reason, message: obs.failure.message, conditions, ...withValue };
  const failed = expect.filter((c) => !c.ok);
  if (failed.length > 0) {
    return { state: 'fail', reason: 'condition', message: failed.map((c) => c.text).join('; '), conditions, ...withValue };
  }
  const warned = warn.filter((c) => !c.ok);
  if (warned.length > 0) return { state: 'warn', message: warned.map((c) => c.text).join('; '), conditions, ...withValue };
  const message = obs.message ?? (expect.length > 0 ? expect.map((c) => c.text).join('; ') : 'ok');
  return { state: 'pass', message, conditions, ...withValue };
}

function pick(r: { ok: boolean; text: string }): { ok: boolean; text: string } {
  return { ok: r.ok, text: r.text };
}

function pickValue(def: CheckDef, obs: Observation): number | undefined {
  const v = def.valueField !== undefined ? resolveField(obs.fields, def.valueField) : obs.value;
  if (typeof v === 'boolean') return v ? 1 : 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** A result for a check that was not run because a dependency is not passing. */
export function dependencyResult(def: CheckDef, dep: string, depState: string, now = Date.now()): RunResult {
  return {
    check: def.id,
    state: 'error',
    reason: 'dependency',
    message: `not run: depends on ${dep}, which is ${depState}`,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    conditions: [],
  };
}

const passing = (s: RunState) => s === 'pass' || s === 'warn';

/**
 * Folds a new run into the previous status. failAfter/passAfter hold the previous state
 * until enough consecutive runs agree, so one blip does not flip a check.
 */
export function nextStatus(def: CheckDef, prev: CheckStatus | undefined, run: RunResult): CheckStatus {
  const runs = { ...(prev?.runs ?? {}) };
  runs[run.state] = (runs[run.state] ?? 0) + 1;
  const streak = prev && passing(prev.last.state) === passing(run.state) ? prev.streak + 1 : 1;
  const lastPassAt = passing(run.state) ? run.finishedAt : prev?.lastPassAt;
  let adopt = true;
  if (prev && passing(prev.state) !== passing(run.state)) {
    adopt = streak >= (passing(run.state) ? def.passAfter : def.failAfter);
  }
  const status: CheckStatus = adopt
    ? { check: def.id, state: run.state, message: run.message, last: run, streak, runs }
    : {
        check: def.id,
        state: prev!.state,
        message: `still ${prev!.state}: ${streak} of ${passing(run.state) ? def.passAfter : def.failAfter} consecutive runs needed to change; latest run ${run.state}: ${run.message}`,
        last: run,
        streak,
        runs,
      };
  const reason = adopt ? run.reason : prev!.reason;
  if (reason !== undefined) status.reason = reason;
  const value = run.value ?? (adopt ? undefined : prev!.value);
  if (value !== undefined) status.value = value;
  if (lastPassAt !== undefined) status.lastPassAt = lastPassAt;
  return status;
}
