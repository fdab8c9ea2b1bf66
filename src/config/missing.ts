// The unconfigured model: which pieces of configuration a check lacks in this environment
// (by the variable that would supply each), its message, checks that depend on an unconfigured
// one, and the list a new user needs: each missing variable once, with the checks it would
// configure, most first. The loader decides it; /readiness, validate and the start-up log read it.
import type { MissingConfig } from '../probes/types.js';
import type { CheckDef } from './types.js';

/** The missing pieces for unset variables, in order, once each. */
export function missingVariables(names: readonly string[]): MissingConfig[] {
  return [...new Set(names)].map((variable) => ({ variable, message: `environment variable ${variable} is not set` }));
}

/** One line for a check's message: unset variables together, then every other piece. */
export function unconfiguredMessage(missing: readonly MissingConfig[]): string {
  const isPlain = (m: MissingConfig) => m.message === `environment variable ${m.variable} is not set`;
  const plain = missing.filter(isPlain).map((m) => m.variable);
  const other = missing.filter((m) => !isPlain(m)).map((m) => m.message);
  const vars = plain.length === 0 ? [] : [`environment variable${plain.length > 1 ? 's' : ''} ${plain.join(', ')} ${plain.length > 1 ? 'are' : 'is'} not set`];
  return [...vars, ...other].join('; ');
}

/** Adds `more` to `into`, one entry per variable (the first one's message and alternative win). */
export function mergeMissing(into: readonly MissingConfig[], more: readonly MissingConfig[]): MissingConfig[] {
  const out = [...into];
  for (const m of more) if (!out.some((o) => o.variable === m.variable)) out.push(m);
  return out;
}

/**
 * A check whose dependency is unconfigured cannot run either (the scheduler would report
 * `dependency` errors forever): it is unconfigured too, missing what the dependency misses.
 * `checks` is mutated; dependency cycles are rejected by the loader before this runs.
 */
export function propagateUnconfigured(checks: CheckDef[]): void {
  const byId = new Map(checks.map((c) => [c.id, c]));
  const done = new Set<string>();
  const visit = (c: CheckDef, path: Set<string>): void => {
    if (done.has(c.id) || path.has(c.id)) return;
    path.add(c.id);
    for (const id of c.dependsOn) {
      const dep = byId.get(id);
      if (!dep) continue;
      visit(dep, path);
      if (!dep.missing?.length) continue;
      const added = dep.missing.filter((m) => !c.missing?.some((o) => o.variable === m.variable));
      if (added.length === 0 && c.unconfigured) continue;
      const note = `depends on ${dep.id}, which is unconfigured (${dep.missing.map((m) => m.variable).join(', ')})`;
      c.missing = mergeMissing(c.missing ?? [], dep.missing);
      c.unconfigured = c.unconfigured ? `${c.unconfigured}; ${note}` : note;
    }
    path.delete(c.id);
    done.add(c.id);
  };
  for (const c of checks) visit(c, new Set());
}

/** A missing variable and the checks it would configure. */
export interface MissingGroup {
  variable: string;
  alternative?: string;
  checks: string[];
}

/** Code-unit order: the same everywhere, and free (a first localeCompare loads ICU's collator, 10 ms of `readiness validate`). */
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Each missing variable once, with the checks that need it: most checks first, then by name (code-unit order). */
export function missingGroups(checks: readonly CheckDef[]): MissingGroup[] {
  const groups = new Map<string, MissingGroup>();
  for (const c of checks) {
    for (const m of c.missing ?? []) {
      const g = groups.get(m.variable) ?? { variable: m.variable, ...(m.alternative !== undefined && { alternative: m.alternative }), checks: [] };
      g.checks.push(c.id);
      groups.set(m.variable, g);
    }
  }
  return [...groups.values()].sort((a, b) => b.checks.length - a.checks.length || byName(a.variable, b.variable));
}

/** How a missing variable is named to a person: with its alternatives, when it has some. */
export function describeVariable(g: Pick<MissingGroup, 'variable' | 'alternative'>): string {
  return g.alternative ? `${g.variable} (or ${g.alternative})` : g.variable;
}

/** `readiness validate`'s lines for the unconfigured checks: each missing variable once, most checks first. */
export function missingReport(checks: readonly CheckDef[]): string[] {
  const groups = missingGroups(checks);
  if (groups.length === 0) return [];
  return [
    'set these to configure them (each variable once, with the checks it would configure, most first):',
    ...groups.map((g) => `  ${describeVariable(g)}: ${g.checks.length} check${g.checks.length === 1 ? '' : 's'}: ${g.checks.join(', ')}`),
  ];
}

/** The operator's opt-in for intrusive checks (also set by --allow-intrusive). */
export const ALLOW_INTRUSIVE = 'READINESS_ALLOW_INTRUSIVE';

/**
 * What READINESS_ALLOW_INTRUSIVE allows: `true` (or 1, yes, all) every intrusive check, else a
 * comma-separated list of check ids. Unset, empty or anything else: none.
 */
export function intrusiveOptIn(env: NodeJS.ProcessEnv): { all: boolean; ids: string[] } {
  const v = (env[ALLOW_INTRUSIVE] ?? '').trim();
  if (/^(1|true|yes|all)$/i.test(v)) return { all: true, ids: [] };
  return { all: false, ids: v.split(',').map((s) => s.trim()).filter(Boolean) };
}

export function intrusiveAllowed(id: string, env: NodeJS.ProcessEnv): boolean {
  const o = intrusiveOptIn(env);
  return o.all || o.ids.includes(id);
}

/** The missing piece of an intrusive check the operator has not opted in to. */
export function intrusiveMissing(id: string, why: string): MissingConfig {
  return {
    variable: ALLOW_INTRUSIVE,
    alternative: '--allow-intrusive',
    message: `intrusive (${why}): runs only where the operator opts in: set ${ALLOW_INTRUSIVE}=${id} (or true for every intrusive check), or pass --allow-intrusive`,
  };
}

/** `readiness validate`'s lines for the intrusive checks: each, and whether this environment opted in. */
export function intrusiveReport(checks: readonly CheckDef[], env: NodeJS.ProcessEnv): string[] {
  const intrusive = checks.filter((c) => c.intrusive !== undefined);
  const optIn = intrusiveOptIn(env);
  const known = new Set(intrusive.map((c) => c.id));
  const stray = optIn.ids.filter((id) => !known.has(id));
  if (intrusive.length === 0 && stray.length === 0) return [];
  return [
    ...(intrusive.length === 0
      ? []
      : [
          `intrusive checks (run only where the operator opts in: ${ALLOW_INTRUSIVE}=true or a list of ids, or --allow-intrusive):`,
          ...intrusive.map((c) => `  ${c.id}: ${c.intrusive}${intrusiveAllowed(c.id, env) ? ' (opted in)' : ' (not opted in)'}`),
        ]),
    ...stray.map((id) => `warning: ${ALLOW_INTRUSIVE} names ${JSON.stringify(id)}, which is not an intrusive check of this checklist`),
  ];
}
