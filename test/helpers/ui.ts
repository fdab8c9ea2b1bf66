// Services for the status page tests: checks whose probe returns what the test says (so
// every state can be produced on demand), attestation checks loaded from YAML with the
// real attestation kind, and the HTTP server listening on a real port for the browser.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { defaultNotify } from '../../src/notify.js';
import { parseCondition } from '../../src/conditions.js';
import { loadChecklist } from '../../src/config/load.js';
import type { Phase, Severity } from '../../src/config/schema.js';
import { formatDiagnostic, type CheckDef, type Checklist } from '../../src/config/types.js';
import { buildServer } from '../../src/http/server.js';
import { defineProbe, type FieldSpecs, type MissingConfig, type Observation } from '../../src/probes/types.js';
import { Service } from '../../src/service.js';
import { MemoryStore } from '../../src/store/memory.js';

export const log = pino({ level: 'silent' });

export interface ScriptedCheck {
  id: string;
  title?: string;
  section: string;
  severity?: Severity;
  phase?: Phase;
  fields?: FieldSpecs;
  expect?: string[];
  warn?: string[];
  intervalMs?: number;
  runbook?: string;
  gate?: boolean;
  unconfigured?: string;
  /** With `unconfigured`: what is missing, by the variable that would supply it. */
  missing?: MissingConfig[];
  params?: Record<string, unknown>;
  secretParams?: string[];
  secrets?: string[];
  /** What each run observes; `run` counts from 1. */
  observe?: (run: number) => Observation;
}

/** A check whose probe returns whatever `observe` says, through the real harness. */
export function scripted(c: ScriptedCheck): CheckDef {
  const fields = c.fields ?? { n: 'number' };
  let runs = 0;
  const observe = c.observe ?? (() => ({ fields: {} }));
  const probe = defineProbe({
    kind: 'scripted',
    description: 'test probe',
    params: Type.Object({}, { additionalProperties: true }),
    fields,
    secretParams: c.secretParams ?? [],
    run: async () => observe(++runs),
  });
  return {
    id: c.id,
    title: c.title ?? c.id,
    section: c.section,
    severity: c.severity ?? 'high',
    phase: c.phase ?? 'pre-deploy',
    kind: 'scripted',
    probe,
    params: c.params ?? {},
    expect: (c.expect ?? []).map((s) => parseCondition(s, fields)),
    warn: (c.warn ?? []).map((s) => parseCondition(s, fields)),
    intervalMs: c.intervalMs ?? 3_600_000,
    timeoutMs: 5_000,
    failAfter: 1,
    passAfter: 1,
    onNoData: 'error',
    dependsOn: [],
    gate: c.gate ?? true,
    notify: defaultNotify({ phase: c.phase ?? 'pre-deploy', severity: c.severity ?? 'high', kind: 'scripted', gate: c.gate ?? true }),
    marksDeployment: false,
    secrets: c.secrets ?? [],
    ...(c.runbook !== undefined && { runbook: c.runbook }),
    ...(c.unconfigured !== undefined && { unconfigured: c.unconfigured }),
    ...(c.missing !== undefined && { missing: c.missing }),
  };
}

/** Checks of the real attestation kind, from checklist YAML (only its `checks:` entries). */
export function attestationChecks(checksYaml: string): CheckDef[] {
  const res = loadChecklist(`apiVersion: readiness/v1\nchecklist: x\nchecks:\n${checksYaml}`, 'ui-test.yaml', {});
  if (!res.ok) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  return [...res.checklist.checks];
}

export function checklistOf(name: string, checks: CheckDef[]): Checklist {
  return { name, file: `${name}.yaml`, checks, byId: new Map(checks.map((c) => [c.id, c])), monitorWindowMs: 2 * 3_600_000 };
}

export interface UiService {
  url: string;
  service: Service;
  store: MemoryStore;
  app: FastifyInstance;
  /** Runs these checks now (all but unconfigured ones when omitted). */
  run(...ids: string[]): Promise<void>;
  /** Stops listening (the page should say it lost contact). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

/**
 * The service over these checks, not scheduling (tests run checks when they want a state),
 * listening on 127.0.0.1. Closed in teardown.
 */
export async function startUi(t: { teardown(fn: () => unknown): void }, name: string, checks: CheckDef[], token?: string): Promise<UiService> {
  const store = new MemoryStore();
  const service = new Service({ file: `${name}.yaml`, checklist: checklistOf(name, checks), store, log });
  let app = await buildServer({ service, log, ...(token && { apiToken: token }) });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const port = Number(new URL(address).port);
  let open = true;
  t.teardown(async () => {
    if (open) await app.close();
  });
  return {
    url: address,
    service,
    store,
    get app() {
      return app;
    },
    async run(...ids: string[]) {
      const list = ids.length ? ids : checks.filter((c) => !c.unconfigured).map((c) => c.id);
      for (const id of list) await service.scheduler.runNow(id);
    },
    async stop() {
      open = false;
      await app.close();
    },
    async restart() {
      app = await buildServer({ service, log, ...(token && { apiToken: token }) });
      await app.listen({ port, host: '127.0.0.1' });
      open = true;
    },
  };
}
