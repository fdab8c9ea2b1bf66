// What the status page shows, read from the running service in one pass: the checklist by
// section, the verdict of each phase as `readiness gate --phase P` would see it, the latest
// deployment with its rollback verdict, and the sign-offs. The page and its live updates
// (/ui/state) are both rendered from this, so they cannot disagree.
import type { CheckDef, Checklist } from '../config/types.js';
import { PHASES, type Phase } from '../config/schema.js';
import type { AttestationParams } from '../probes/attestation.js';
import type { Service } from '../service.js';
import type { CheckView } from '../state.js';
import { isPassing, STATES, type Attestation, type Deployment, type State, type StoreHealth } from '../store/types.js';

export interface PhaseVerdict {
  /** A phase, or `all` for the whole gate. */
  phase: Phase | 'all';
  ready: boolean;
  /** Gating checks not passing: what `readiness gate --phase P` waits for. */
  failing: number;
  /** Non-passing checks that do not gate now. */
  advisory: number;
  total: number;
}

export interface SectionModel {
  name: string;
  checks: CheckView[];
  pass: number;
  total: number;
  /** No gating check of the section is failing. */
  passing: boolean;
}

export interface SignoffItem {
  view: CheckView;
  params: AttestationParams;
  /** Valid (unrevoked, unexpired) first, then the most recent revoked or expired ones. */
  attestations: (Attestation & { active: boolean })[];
  /** Older inactive attestations not listed. */
  more: number;
}

export interface PageModel {
  checklist: Checklist;
  version: string;
  now: number;
  summary: Record<'total' | State, number>;
  phases: PhaseVerdict[];
  sections: SectionModel[];
  deployment?: Deployment;
  window: { open: boolean; endsAt?: number };
  rollback: { recommended: boolean; causes: CheckView[] };
  signoffs: SignoffItem[];
  store: StoreHealth;
}

/** Inactive attestations listed per item, after the valid ones. */
const INACTIVE_SHOWN = 3;

/** Sections in the order they first appear in the checklist; checks in checklist order. */
export function bySection(views: readonly CheckView[]): SectionModel[] {
  const out = new Map<string, SectionModel>();
  for (const v of views) {
    let s = out.get(v.def.section);
    if (!s) out.set(v.def.section, (s = { name: v.def.section, checks: [], pass: 0, total: 0, passing: true }));
    s.checks.push(v);
    s.total++;
    if (isPassing(v.state)) s.pass++;
    else if (v.gating) s.passing = false;
  }
  return [...out.values()];
}

export function isAttestation(def: CheckDef): boolean {
  return def.kind === 'attestation';
}

/**
 * The whole gate and each phase's, in one pass: what `readiness()` answers for no filter
 * and for `phase=P` (ready when no gating check is non-passing; failing are the gating
 * non-passing ones, advisory the others). test/ui.test.ts pins the agreement.
 */
export function verdicts(views: readonly CheckView[]): { phases: PhaseVerdict[]; summary: Record<'total' | State, number> } {
  const byPhase = new Map<Phase | 'all', PhaseVerdict>((['all', ...PHASES] as const).map((phase) => [phase, { phase, ready: true, failing: 0, advisory: 0, total: 0 }]));
  const summary = Object.fromEntries([['total', 0], ...STATES.map((s) => [s, 0])]) as Record<'total' | State, number>;
  for (const v of views) {
    summary.total++;
    summary[v.state]++;
    for (const p of [byPhase.get('all')!, byPhase.get(v.def.phase)!]) {
      p.total++;
      if (isPassing(v.state)) continue;
      if (v.gating) {
        p.failing++;
        p.ready = false;
      } else p.advisory++;
    }
  }
  return { phases: [...byPhase.values()], summary };
}

export function pageModel(service: Service, now = Date.now()): PageModel {
  const checklist = service.checklist();
  const views = service.views(now);
  const { phases, summary } = verdicts(views);
  const w = service.deploymentWindow(now);
  const causes = w.deployment ? service.rollbackCauses(views) : [];
  // One read of the attestations (newest first), grouped by check.
  const byCheck = new Map<string, Attestation[]>();
  for (const a of service.opts.store.attestations()) {
    const list = byCheck.get(a.check);
    if (list) list.push(a);
    else byCheck.set(a.check, [a]);
  }
  const signoffs = views.filter((v) => isAttestation(v.def)).map((view): SignoffItem => {
    const all = (byCheck.get(view.def.id) ?? []).map((a) => ({ ...a, active: a.revokedAt === undefined && a.expiresAt > now }));
    const active = all.filter((a) => a.active);
    const inactive = all.filter((a) => !a.active);
    return { view, params: view.def.params as unknown as AttestationParams, attestations: [...active, ...inactive.slice(0, INACTIVE_SHOWN)], more: Math.max(0, inactive.length - INACTIVE_SHOWN) };
  });
  return {
    checklist,
    version: service.version,
    now,
    summary,
    phases,
    sections: bySection(views),
    ...(w.deployment && { deployment: w.deployment }),
    window: { open: w.open, ...(w.endsAt !== undefined && { endsAt: w.endsAt }) },
    rollback: { recommended: causes.length > 0, causes },
    signoffs,
    store: service.storeHealth(),
  };
}
