// Builds CheckDefs around a scripted probe kind, for harness and scheduler tests: the
// probe's behaviour per run is whatever the test's function returns.
import { Type } from '@sinclair/typebox';
import { parseCondition } from '../../src/conditions.js';
import type { CheckDef, Checklist } from '../../src/config/types.js';
import { defineProbe, type Observation, type ProbeContext } from '../../src/probes/types.js';

export type Script = (ctx: ProbeContext, run: number) => Promise<Observation> | Observation;

export function scriptedKind(script: Script) {
  let runs = 0;
  const kind = defineProbe({
    kind: 'scripted',
    description: 'test probe',
    params: Type.Object({}),
    fields: { n: 'number', ok: 'boolean', s: 'string' },
    secretParams: ['token'],
    run: (_p, ctx) => Promise.resolve(script(ctx, ++runs)),
  });
  return { kind, runs: () => runs };
}

export function makeDef(script: Script, over: Partial<Omit<CheckDef, 'expect' | 'warn'>> & { expect?: string[]; warn?: string[] } = {}): CheckDef & { runs: () => number } {
  const { kind, runs } = scriptedKind(script);
  const { expect = [], warn = [], ...rest } = over;
  return {
    id: 'c1',
    title: 'C1',
    section: 'testing',
    severity: 'critical',
    phase: 'pre-deploy',
    kind: 'scripted',
    probe: kind,
    params: {},
    expect: expect.map((s) => parseCondition(s, kind.fields)),
    warn: warn.map((s) => parseCondition(s, kind.fields)),
    intervalMs: 60_000,
    timeoutMs: 1_000,
    failAfter: 1,
    passAfter: 1,
    onNoData: 'error',
    dependsOn: [],
    gate: true,
    notify: 'ticket',
    marksDeployment: false,
    secrets: [],
    ...rest,
    runs,
  };
}

export function checklistOf(...checks: CheckDef[]): Checklist {
  return { name: 'test', file: 'test.yaml', checks, byId: new Map(checks.map((c) => [c.id, c])), monitorWindowMs: 2 * 3_600_000 };
}
