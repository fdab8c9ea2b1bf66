// jaeger: Jaeger's query HTTP API (the JSON API its UI uses). `measure` picks what is measured:
//   services  the required services report spans (GET /api/services)
//   traces    a service has traces within a lookback window (GET /api/traces); none is
//             no-data, so the check's onNoData decides (set onNoData: fail for "traces flow")
import { Type, type Static } from '@sinclair/typebox';
import { parseDuration, formatDuration } from '../config/duration.js';
import { CONNECTION_PARAMS, connectionEnv,
  connectionProblems, decode, listSome, measureProblems, loadApiClient, withApi, type ApiClient } from './prometheus.js';
import { defineProbe, ProbeError, type Observation } from './types.js';

export const MEASURES = ['services', 'traces'] as const;
export type Measure = (typeof MEASURES)[number];

const DEFAULTS = { lookback: '15m', limit: 20 } as const;

const params = Type.Object(
  {
    ...CONNECTION_PARAMS,
    measure: Type.Unsafe<Measure>({ type: 'string', enum: [...MEASURES], description: `What to measure: ${MEASURES.join(' | ')}.` }),
    services: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'services: services that must be listed.' })),
    service: Type.Optional(Type.String({ minLength: 1, description: 'traces: the service whose traces are searched.' })),
    operation: Type.Optional(Type.String({ minLength: 1, description: 'traces: only traces with a span of this operation.' })),
    tags: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'traces: only traces with spans carrying these tags, e.g. { http.status_code: "200" }.' })),
    lookback: Type.Optional(Type.String({ minLength: 1, description: `traces: how far back to search (default ${DEFAULTS.lookback}).` })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1500, description: `traces: most traces fetched (default ${DEFAULTS.limit}); traces counts at most this many.` })),
  },
  { additionalProperties: false },
);

export type JaegerParams = Static<typeof params>;
type ParamName = keyof JaegerParams;

const MEASURE_PARAMS: Record<Measure, { required: readonly ParamName[]; optional: readonly ParamName[] }> = {
  services: { required: ['services'], optional: [] },
  traces: { required: ['service'], optional: ['operation', 'tags', 'lookback', 'limit'] },
};

export default defineProbe({
  kind: 'jaeger',
  description: 'Asks Jaeger: required services report spans, and a service has traces within a lookback window.',
  params,
  // Credentials come from environment variables named by tokenEnv/usernameEnv/passwordEnv and a
  // URL with user:password is rejected at load, so no param value is a secret.
  secretParams: [],
  fields: {
    services: { type: 'number', description: 'services: services Jaeger lists.' },
    missing: { type: 'number', description: 'services: required services not listed. The check value.' },
    missing_services: { type: 'any', description: 'services: those services (a list).' },
    service_names: { type: 'any', description: 'services: every service Jaeger lists (a list).' },
    traces: { type: 'number', description: 'traces: traces found in the window (at most limit). The check value.' },
    spans: { type: 'number', description: 'traces: spans in those traces.' },
    error_traces: { type: 'number', description: 'traces: traces with a span tagged error=true.' },
    latest_age_seconds: { type: 'number', unit: 's', description: 'traces: seconds since the newest span found started.' },
  },

  requiredEnv: connectionEnv,
  validate(p) {
    const problems = [...connectionProblems(p), ...measureProblems(p.measure, p, MEASURE_PARAMS)];
    if (p.lookback !== undefined) {
      const ms = parseDuration(p.lookback);
      if (ms === undefined || ms <= 0) problems.push(`lookback ${JSON.stringify(p.lookback)} is not a duration such as 15m or 1h`);
    }
    return problems;
  },

  load: loadApiClient,

  run(p, ctx) {
    return withApi(p, ctx, { service: 'Jaeger' }, (api) => (p.measure === 'services' ? measureServices(api, p) : measureTraces(api, p)));
  },
});

const JaegerError = Type.Object({ code: Type.Optional(Type.Number()), msg: Type.Optional(Type.String()) });
const Services = Type.Object({ data: Type.Union([Type.Array(Type.String()), Type.Null()]), errors: Type.Optional(Type.Union([Type.Array(JaegerError), Type.Null()])) });
const Traces = Type.Object({
  data: Type.Union([
    Type.Array(
      Type.Object({
        traceID: Type.String(),
        spans: Type.Array(
          Type.Object({
            startTime: Type.Number(),
            tags: Type.Optional(Type.Array(Type.Object({ key: Type.String(), value: Type.Unknown() }))),
          }),
        ),
      }),
    ),
    Type.Null(),
  ]),
  errors: Type.Optional(Type.Union([Type.Array(JaegerError), Type.Null()])),
});

/** Jaeger answers 200 with `errors` and no `data` when a storage query failed. */
function failedQuery(errors: readonly Static<typeof JaegerError>[] | null | undefined, where: string): void {
  if (errors && errors.length > 0) throw new ProbeError('http-status', `${where}: Jaeger reported ${errors.map((e) => `${e.code ?? ''} ${e.msg ?? ''}`.trim()).join('; ')}`);
}

async function measureServices(api: ApiClient, p: JaegerParams): Promise<Observation> {
  const path = '/api/services';
  const where = api.where(path);
  const body = decode(Services, await api.getJson(path), where, 'a Jaeger services list');
  if (body.data === null) failedQuery(body.errors, where);
  const listed = body.data ?? [];
  const missing = (p.services ?? []).filter((s) => !listed.includes(s));
  const fields = { services: listed.length, missing: missing.length, missing_services: missing, service_names: listed };
  if (missing.length > 0) {
    return {
      value: missing.length,
      fields,
      failure: { reason: 'condition', message: `service${missing.length > 1 ? 's' : ''} not reporting to Jaeger: ${missing.join(', ')} (Jaeger lists ${listSome(listed) || 'no services'})` },
    };
  }
  return { value: 0, fields, message: `all ${p.services!.length} required services report to Jaeger (${listed.length} listed)` };
}

async function measureTraces(api: ApiClient, p: JaegerParams): Promise<Observation> {
  const path = '/api/traces';
  const where = api.where(path);
  const lookbackMs = parseDuration(p.lookback ?? DEFAULTS.lookback)!;
  const limit = p.limit ?? DEFAULTS.limit;
  const end = Date.now();
  const query: Record<string, string> = {
    service: p.service!,
    // Jaeger takes microseconds since the epoch.
    start: String((end - lookbackMs) * 1000),
    end: String(end * 1000),
    limit: String(limit),
  };
  if (p.operation) query.operation = p.operation;
  if (p.tags) query.tags = JSON.stringify(p.tags);
  const body = decode(Traces, await api.getJson(path, query), where, 'a Jaeger trace search result');
  if (body.data === null) failedQuery(body.errors, where);
  const traces = body.data ?? [];
  const window = `${p.service}${p.operation ? ` ${p.operation}` : ''}${p.tags ? ` ${JSON.stringify(p.tags)}` : ''} in the last ${formatDuration(lookbackMs)}`;
  if (traces.length === 0) return { fields: { traces: 0, spans: 0, error_traces: 0 }, noData: true, message: `no traces of ${window}` };
  const spans = traces.flatMap((t) => t.spans);
  const isError = (tag: { key: string; value: unknown }) => tag.key === 'error' && (tag.value === true || tag.value === 'true');
  const errorTraces = traces.filter((t) => t.spans.some((s) => (s.tags ?? []).some(isError))).length;
  const newest = spans.reduce((m, s) => Math.max(m, s.startTime), 0);
  const fields: Record<string, unknown> = { traces: traces.length, spans: spans.length, error_traces: errorTraces };
  if (newest > 0) fields.latest_age_seconds = Math.max(0, (end - newest / 1000) / 1000);
  const capped = traces.length >= limit ? ' (the limit)' : '';
  return {
    value: traces.length,
    fields,
    message: `${traces.length}${capped} traces of ${window}, ${errorTraces} with errors${newest > 0 ? `, newest ${Math.round(fields.latest_age_seconds as number)}s ago` : ''}`,
  };
}
