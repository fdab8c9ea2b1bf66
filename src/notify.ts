// What a check's failure means for a person (the checklist's `notify` key): one rollback page
// per deployment, a page of its own, a ticket, or nothing but the gate. The defaults by phase,
// severity and kind live here once: the loader applies them, /metrics exports the result as
// readiness_check_info{notify}, the shipped rules route on it, and docs/config.md and the
// promtool tests (alerts/tests/notify.test.yml) are checked against this function.
import type { Phase, Severity } from './config/enums.js';

export const NOTIFY = ['rollback', 'page', 'ticket', 'none'] as const;
export type Notify = (typeof NOTIFY)[number];

/** Phases whose checks can recommend a rollback: what goes wrong during and after a deployment. */
export const ROLLBACK_PHASES: readonly Phase[] = ['deploy', 'verify', 'monitor'];

export interface NotifySubject {
  phase: Phase;
  severity: Severity;
  /** The probe kind. */
  kind: string;
  gate: boolean;
}

/**
 * The default when a check does not say:
 * - attestations never page and, since a missing signature is the gate's business, say nothing;
 * - a check that does not gate says nothing (it is advisory);
 * - monitor checks are the rollback verdict inside the post-deploy window, whatever their
 *   severity; verify checks of severity critical or high join it;
 * - every other critical or high check raises a ticket; medium and low ones only gate.
 */
export function defaultNotify(c: NotifySubject): Notify {
  if (c.kind === 'attestation' || !c.gate) return 'none';
  if (c.phase === 'monitor') return 'rollback';
  const important = c.severity === 'critical' || c.severity === 'high';
  if (c.phase === 'verify') return important ? 'rollback' : 'none';
  return important ? 'ticket' : 'none';
}

/** Why `notify` cannot be this value for this check, or undefined when it can. */
export function notifyProblem(notify: Notify, c: NotifySubject): string | undefined {
  if (c.kind === 'attestation' && (notify === 'page' || notify === 'rollback')) {
    return `notify: ${notify} is not allowed for an attestation: a missing signature never pages (use ticket or none)`;
  }
  if (notify === 'rollback' && !ROLLBACK_PHASES.includes(c.phase)) {
    return `notify: rollback is for checks of phase ${ROLLBACK_PHASES.join(', ')} (what fails after a deployment); this one is ${c.phase}: use page, ticket or none`;
  }
  if (notify === 'rollback' && !c.gate) return 'notify: rollback needs gate: true (a check that does not gate cannot recommend a rollback)';
  return undefined;
}
