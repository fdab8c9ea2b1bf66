// The checklist file's schema, in one place. The loader validates every file against it
// (unknown keys are errors) and the reference docs in docs/config.md describe the same fields.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { NO_DATA, PHASES, SEVERITIES } from './enums.js';
import { NOTIFY } from '../notify.js';

export { NO_DATA, PHASES, SEVERITIES, type OnNoData, type Phase, type Severity } from './enums.js';

/** A string enum that ajv reports as "must be one of ..." rather than a pile of anyOf errors. */
function StringEnum<T extends readonly string[]>(values: T, description: string) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], description });
}

/** `x-hint` is shown instead of ajv's "must match pattern" message. */
const Slug = (description: string) =>
  Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description, 'x-hint': 'lower-case letters, digits and dashes, at most 63 characters, e.g. tls-api-expiry' });
const Duration = (description: string) => Type.String({ description, 'x-hint': 'a duration such as 500ms, 30s, 5m, 1h, 30d' });
const Count = (description: string) => Type.Integer({ minimum: 1, maximum: 100, description });

export const CheckSchema = Type.Object(
  {
    id: Slug('Stable identifier: the `check` label of every metric. Never rename a shipped id.'),
    title: Type.String({ minLength: 1, description: 'The checklist line, as a person reads it.' }),
    description: Type.Optional(Type.String({ description: 'Longer explanation shown in /checks.' })),
    section: Slug('Checklist section (`section` label), e.g. security, database, monitor.'),
    severity: StringEnum(SEVERITIES, 'critical | high | medium | low'),
    phase: StringEnum(PHASES, 'When the check matters: pre-deploy | deploy | verify | monitor | post-deploy'),
    probe: Type.String({ minLength: 1, description: 'Probe kind (http, tls, tcp, ...).' }),
    target: Type.Optional(Type.String({ description: 'Name of an entry in `targets:` whose fields are merged under `with:`.' })),
    with: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: "The probe kind's parameters." })),
    expect: Type.Optional(Type.Array(Type.String(), { description: 'Conditions that must all hold for pass.' })),
    warn: Type.Optional(Type.Array(Type.String(), { description: 'Conditions whose failure makes a passing check warn.' })),
    interval: Type.Optional(Duration('How often the check runs (default from `defaults`).')),
    schedule: Type.Optional(Type.String({ description: 'Cron expression instead of `interval` (5 or 6 fields).' })),
    timeout: Type.Optional(Duration('How long one run may take (default from `defaults`).')),
    runbook: Type.Optional(Type.String({ format: 'uri', description: "Runbook URL: the alert's runbook_url." })),
    failAfter: Type.Optional(Count('Consecutive failing results before a passing check turns failing (default 1).')),
    passAfter: Type.Optional(Count('Consecutive passing results before a failing check turns passing (default 1).')),
    onNoData: Type.Optional(StringEnum(NO_DATA, 'State when the query returns nothing: fail | error | pass (default error).')),
    dependsOn: Type.Optional(Type.Array(Type.String(), { description: 'Check ids: when one is not passing, this check is not run and reports `dependency`.' })),
    gate: Type.Optional(Type.Boolean({ description: 'Whether the check counts for readiness (default true).' })),
    notify: Type.Optional(
      StringEnum(NOTIFY, 'What a failure means for a person: rollback | page | ticket | none (default by phase, severity and kind: docs/config.md).'),
    ),
    value: Type.Optional(Type.String({ description: "Field whose number becomes readiness_check_value (default: the probe's own)." })),
    intrusive: Type.Optional(
      Type.Boolean({
        description:
          "The check disturbs its target (an attack payload, anything that spends the endpoint's budget): it runs only where the operator opted in with READINESS_ALLOW_INTRUSIVE or --allow-intrusive; elsewhere it is unconfigured. Probe kinds that are always intrusive (ratelimit) need no mark.",
      }),
    ),
    marksDeployment: Type.Optional(
      Type.Boolean({ description: 'When the check passes with a `version` not yet recorded, record a deployment of it (a Kubernetes rollout check).' }),
    ),
  },
  { additionalProperties: false },
);

export const DefaultsSchema = Type.Object(
  {
    interval: Type.Optional(Duration('Default interval (1m).')),
    timeout: Type.Optional(Duration('Default timeout (10s).')),
    failAfter: Type.Optional(Count('Default failAfter (1).')),
    passAfter: Type.Optional(Count('Default passAfter (1).')),
    onNoData: Type.Optional(StringEnum(NO_DATA, 'Default onNoData (error).')),
    monitorWindow: Type.Optional(Duration('How long after a deployment monitor-phase checks gate and can recommend a rollback (2h).')),
    runbookBase: Type.Optional(
      Type.String({ format: 'uri', description: 'A check without `runbook` links to RUNBOOK_BASE/checks/<id>, the URL the shipped alerts put in runbook_url.' }),
    ),
  },
  { additionalProperties: false },
);

export const ChecklistSchema = Type.Object(
  {
    apiVersion: Type.Unsafe<'readiness/v1'>({ type: 'string', enum: ['readiness/v1'], description: 'Always readiness/v1.' }),
    checklist: Slug('Name of the checklist: the `checklist` label of readiness_build_info.'),
    defaults: Type.Optional(DefaultsSchema),
    targets: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), Type.Record(Type.String(), Type.Unknown()), {
        description: 'Named connections; secrets only through ${ENV} references.',
      }),
    ),
    checks: Type.Array(CheckSchema, { minItems: 1, description: 'The checks.' }),
  },
  { additionalProperties: false },
);

export type RawChecklist = Static<typeof ChecklistSchema>;
export type RawCheck = Static<typeof CheckSchema>;

/** Walks a TypeBox object schema for the docs generator and the did-you-mean hints. */
export function propertyNames(schema: TSchema): string[] {
  return Object.keys((schema as { properties?: Record<string, unknown> }).properties ?? {});
}
