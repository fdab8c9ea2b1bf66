// A loaded, validated checklist: what the scheduler, the metrics and the API work from.
// Built once by the loader and frozen; a reload builds a new one.
import type { Condition } from '../conditions.js';
import type { Notify } from '../notify.js';
import type { MissingConfig, ProbeKind } from '../probes/types.js';
import type { OnNoData, Phase, Severity } from './schema.js';

export interface CheckDef {
  id: string;
  title: string;
  description?: string;
  section: string;
  severity: Severity;
  phase: Phase;
  /** The probe kind's name (`http`, `tls`, ...). */
  kind: string;
  probe: ProbeKind;
  /** The kind's parameters: target fields merged under `with:`, env substituted, defaults applied. */
  params: Record<string, unknown>;
  expect: readonly Condition[];
  warn: readonly Condition[];
  /** Milliseconds between runs; for a cron schedule, the gap between its next two firings. */
  intervalMs: number;
  /** Cron expression, when the check runs on a schedule instead of an interval. */
  schedule?: string;
  timeoutMs: number;
  runbook?: string;
  failAfter: number;
  passAfter: number;
  onNoData: OnNoData;
  dependsOn: readonly string[];
  gate: boolean;
  /** What its failure means for a person (the `notify` key, or its default by phase, severity and kind). */
  notify: Notify;
  /** Field whose number becomes readiness_check_value, when not the probe's own value. */
  valueField?: string;
  /**
   * Why the check is intrusive (the check's `intrusive: true`, or a kind that always is, such
   * as ratelimit): it runs only where the operator opted in. Absent: not intrusive.
   */
  intrusive?: string;
  /** A passing run with a new `version` field records a deployment. */
  marksDeployment: boolean;
  /**
   * Set when this environment lacks configuration the check needs (an unset variable, no
   * Kubernetes configuration, an intrusive check not opted in): the check is `unconfigured`,
   * with this message, and never runs.
   */
  unconfigured?: string;
  /** With `unconfigured`: each missing piece, by the variable that would supply it. */
  missing?: readonly MissingConfig[];
  /** Substituted values that came from the environment in secret params: redacted from every output. */
  secrets: readonly string[];
}

export interface Checklist {
  name: string;
  /** The file it was loaded from (for messages and /readiness). */
  file: string;
  checks: readonly CheckDef[];
  byId: ReadonlyMap<string, CheckDef>;
  /** After a deployment, how long monitor-phase checks gate (defaults.monitorWindow, 2h). */
  monitorWindowMs: number;
}

/** One problem found while loading: `file:line:col: message`. */
export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}
