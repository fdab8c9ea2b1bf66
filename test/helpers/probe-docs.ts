// A probe kind's reference page (docs/probes/<kind>.md) cannot drift from its code: every
// parameter of its schema and every field it declares appears in a table of the page, and the
// example checklist on the page loads through the real loader.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadChecklist } from '../../src/config/load.js';
import { formatDiagnostic } from '../../src/config/types.js';
import type { ProbeKind } from '../../src/probes/types.js';
import { ROOT } from './prometheus.js';

export function docPage(kind: string): string {
  return readFileSync(join(ROOT, 'docs/probes', `${kind}.md`), 'utf8');
}

/** Parameters and fields that no table row of the page names in backquotes. */
export function undocumented(probe: ProbeKind): string[] {
  const rows = docPage(probe.kind)
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .join('\n');
  const params = Object.keys((probe.params as { properties?: Record<string, unknown> }).properties ?? {});
  return [...params.map((p) => `param ${p}`), ...Object.keys(probe.fields).map((f) => `field ${f}`)].filter((what) => !rows.includes(`\`${what.split(' ')[1]}\``));
}

/** Loads the page's example checklist (its ```yaml block with `checks:`): diagnostics, and how many checks of the kind. */
export function loadDocExamples(kind: string, env: NodeJS.ProcessEnv = {}): { diagnostics: string[]; checks: number } {
  const block = [...docPage(kind).matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('checks:'));
  if (!block) return { diagnostics: ['no example checklist on the page'], checks: 0 };
  const r = loadChecklist(`apiVersion: readiness/v1\nchecklist: docs-example\n${block}`, `docs/probes/${kind}.md`, env);
  return r.ok ? { diagnostics: [], checks: r.checklist.checks.filter((c) => c.kind === kind).length } : { diagnostics: r.diagnostics.map(formatDiagnostic), checks: 0 };
}
