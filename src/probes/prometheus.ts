// prometheus: Prometheus's HTTP API. `measure` picks what is measured:
//   query    an instant PromQL query; its scalar, its single sample or its vector reduced
//            (max, min, sum, count, or required empty) is the value
//   targets  active scrape targets: every one up, every required job present (value = down)
//   rules    loaded rule groups: required alerts present, no rule failing to evaluate
//   alerts   alerts firing, optionally filtered, always-firing Watchdog-style alerts excluded
// PromQL is parsed when the checklist loads, with the Prometheus UI's own grammar
// (@prometheus-io/lezer-promql), so a typo fails `readiness validate`, not a 3 a.m. run.
//
// The second half of this file is what every observability-stack kind shares (alertmanager,
// grafana, jaeger and loki import it): connection params, the JSON API client, label
// matchers with Alertmanager's syntax, and the reduction of a query result to one number.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parser } from '@prometheus-io/lezer-promql';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Agent } from 'undici';
import { reasonFromError, type Reason } from '../reasons.js';
import { RegexSyntaxError, SafeRegex } from '../regex.js';
import { agentConnect } from './lease.js';
import { defineProbe, ProbeError, type Observation, type ProbeContext } from './types.js';
import { commonjs, lazy } from './lazy.js';
import { scrubSecrets } from './shared.js';

const undici = lazy(() => import('undici').then(commonjs));

/** Loads what ApiClient needs: the `load` of every kind built on it (alertmanager, grafana, jaeger, loki). */
export const loadApiClient = (): Promise<unknown> => undici();

// =============================================================================================
// The prometheus kind
// =============================================================================================

export const MEASURES = ['query', 'targets', 'rules', 'alerts'] as const;
export type Measure = (typeof MEASURES)[number];

/** Alerts that fire on purpose and never mean trouble (kube-prometheus's names). */
export const ALWAYS_FIRING = ['Watchdog', 'InfoInhibitor'];

// ---------------------------------------------------------------------------------------------
// Shared building blocks first: the kind's schema spreads CONNECTION_PARAMS.
// ---------------------------------------------------------------------------------------------

const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$';

function envParam(description: string) {
  return Type.Optional(Type.String({ pattern: ENV_NAME, 'x-hint': 'an environment variable name such as GRAFANA_TOKEN', description }));
}

/**
 * Where and how to reach an observability API. Credentials come only from environment
 * variables named here, so no param holds a secret (and the URL may be shown anywhere).
 */
export const CONNECTION_PARAMS = {
  url: Type.String({
    minLength: 1,
    description: 'Base URL, http:// or https://, including the sub-path the service is served under. No user:password in it: use usernameEnv/passwordEnv.',
  }),
  tokenEnv: envParam('Name of the environment variable holding a bearer token (sent as Authorization: Bearer). Unset or empty at run time: the check is error/unconfigured.'),
  usernameEnv: envParam('Name of the environment variable holding the Basic auth user name (together with passwordEnv).'),
  passwordEnv: envParam('Name of the environment variable holding the Basic auth password (together with usernameEnv).'),
  insecure: Type.Optional(Type.Boolean({ description: 'Skip TLS certificate verification (expiry, chain, host name).' })),
  ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of CA certificates to trust instead of the system CAs.' })),
};

export const CONNECTION_PARAM_NAMES: readonly string[] = Object.keys(CONNECTION_PARAMS);

export interface ConnectionParams {
  url: string;
  tokenEnv?: string;
  usernameEnv?: string;
  passwordEnv?: string;
  insecure?: boolean;
  ca?: string;
}

export const REDUCERS = ['single', 'max', 'min', 'sum', 'count', 'empty'] as const;
export type Reducer = (typeof REDUCERS)[number];

export function reduceParam(defaultText: string) {
  return Type.Optional(
    Type.Unsafe<Reducer>({
      type: 'string',
      enum: [...REDUCERS],
      description: `How a vector becomes the value: single (exactly one series), max, min, sum, count (0 for an empty vector), or empty (the vector must be empty). Default ${defaultText}.`,
    }),
  );
}

// No `default` keywords on measure-specific params: the loader applies defaults, and a
// default would put params on every check that validate() rejects for other measures.
const params = Type.Object(
  {
    ...CONNECTION_PARAMS,
    measure: Type.Unsafe<Measure>({ type: 'string', enum: [...MEASURES], description: `What to measure: ${MEASURES.join(' | ')}.` }),
    query: Type.Optional(Type.String({ minLength: 1, description: 'query: an instant PromQL expression; it must evaluate to a scalar or an instant vector.' })),
    reduce: reduceParam('single'),
    jobs: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'targets: jobs that must have at least one active target.' })),
    ignoreJobs: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'targets: jobs whose targets are not counted.' })),
    maxDown: Type.Optional(Type.Integer({ minimum: 0, description: 'targets: down targets tolerated before the check fails (default 0).' })),
    alerts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'rules: alert names that must be loaded as alerting rules.' })),
    ignoreAlerts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: `alerts: alert names never counted (default ${ALWAYS_FIRING.join(', ')}).` })),
    matchers: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'alerts: count only alerts whose labels match all of these, in Alertmanager syntax (severity=~"critical|warning").',
      }),
    ),
    includePending: Type.Optional(Type.Boolean({ description: 'alerts: count pending alerts too (default false: only firing ones).' })),
  },
  { additionalProperties: false },
);

export type PrometheusParams = Static<typeof params>;
type ParamName = keyof PrometheusParams;

const MEASURE_PARAMS: Record<Measure, { required: readonly ParamName[]; optional: readonly ParamName[] }> = {
  query: { required: ['query'], optional: ['reduce'] },
  targets: { required: [], optional: ['jobs', 'ignoreJobs', 'maxDown'] },
  rules: { required: [], optional: ['alerts'] },
  alerts: { required: [], optional: ['ignoreAlerts', 'matchers', 'includePending'] },
};

/** Problems with measure-specific params: missing required ones, ones that do not apply. */
export function measureProblems<M extends string>(
  measure: M,
  p: Record<string, unknown>,
  table: Record<M, { required: readonly string[]; optional: readonly string[] }>,
): string[] {
  const spec = table[measure];
  if (!spec) return []; // the schema's enum reported it
  const problems: string[] = [];
  for (const k of spec.required) if (p[k] === undefined) problems.push(`measure ${measure} needs "${k}"`);
  const allowed = new Set<string>(['measure', ...CONNECTION_PARAM_NAMES, ...spec.required, ...spec.optional]);
  for (const k of Object.keys(p)) {
    if (allowed.has(k) || p[k] === undefined) continue;
    const takes = [...spec.required, ...spec.optional].map((x) => `"${x}"`).join(', ');
    problems.push(`"${k}" does not apply to measure ${measure}; it takes ${takes || 'no other parameters'}`);
  }
  return problems;
}

export default defineProbe({
  kind: 'prometheus',
  description: 'Asks Prometheus: an instant PromQL query as the value, scrape targets up, rules loaded and healthy, alerts firing.',
  params,
  // Credentials come from environment variables named by tokenEnv/usernameEnv/passwordEnv and a
  // URL with user:password is rejected at load, so no param value is a secret.
  secretParams: [],
  fields: {
    value: { type: 'number', description: 'query: the scalar, the single sample, or the reduced vector. Also the check value.' },
    series: { type: 'number', description: 'query: series in the result (1 for a scalar).' },
    'labels.*': { type: 'string', description: 'query: labels of the sample the value came from (single, max, min): labels.pod.' },
    targets: { type: 'number', description: 'targets: active targets counted (ignoreJobs excluded).' },
    up: { type: 'number', description: 'targets: targets whose last scrape succeeded.' },
    down: { type: 'number', description: 'targets: targets whose last scrape failed. The check value.' },
    unknown: { type: 'number', description: 'targets: targets not scraped yet.' },
    missing: { type: 'number', description: 'targets: required jobs with no active target; rules: required alerts not loaded.' },
    down_targets: { type: 'any', description: 'targets: the down targets as "job instance: last error" (a list: len(down_targets)).' },
    missing_jobs: { type: 'any', description: 'targets: the required jobs with no active target (a list).' },
    groups: { type: 'number', description: 'rules: rule groups loaded.' },
    rules: { type: 'number', description: 'rules: rules loaded (alerting and recording).' },
    alerting_rules: { type: 'number', description: 'rules: alerting rules loaded.' },
    errors: { type: 'number', description: 'rules: rules whose last evaluation failed (health err). The check value, plus missing.' },
    failing_groups: { type: 'any', description: 'rules: names of the groups with a failing rule (a list).' },
    missing_alerts: { type: 'any', description: 'rules: required alert names not loaded (a list).' },
    firing: { type: 'number', description: 'alerts: alerts firing (pending ones too with includePending), after the filters. The check value.' },
    pending: { type: 'number', description: 'alerts: alerts pending (their `for` not yet elapsed), after the filters.' },
    firing_alerts: { type: 'any', description: 'alerts: the counted alerts as alertname{labels} (a list).' },
  },

  requiredEnv: connectionEnv,
  validate(p) {
    const problems = [...connectionProblems(p), ...measureProblems(p.measure, p, MEASURE_PARAMS)];
    if (p.query !== undefined) problems.push(...promqlProblems(p.query).map((m) => `query: ${m}`));
    problems.push(...matcherProblems(p.matchers));
    return problems;
  },

  load: loadApiClient,

  run(p, ctx) {
    return withApi(p, ctx, { service: 'Prometheus' }, (api) => {
      switch (p.measure) {
        case 'query':
          return measureQuery(api, p, ctx);
        case 'targets':
          return measureTargets(api, p);
        case 'rules':
          return measureRules(api, p);
        case 'alerts':
          return measureAlerts(api, p);
      }
    });
  },
});

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

/** The envelope of every /api/v1 answer (Loki's query API uses it too). */
const Envelope = Type.Object({ status: Type.Literal('success'), data: Type.Unknown(), warnings: Type.Optional(Type.Array(Type.String())) });

const LabelSet = Type.Record(Type.String(), Type.String());
const SampleValue = Type.Tuple([Type.Number(), Type.String()]);
const VectorResult = Type.Array(Type.Object({ metric: LabelSet, value: SampleValue }));
const QueryData = Type.Object({ resultType: Type.String(), result: Type.Unknown() });

/** `data` of a success envelope, or ProbeError('protocol'). */
export function envelopeData(body: unknown, where: string): unknown {
  return decode(Envelope, body, where, 'a Prometheus-style API answer').data;
}

async function measureQuery(api: ApiClient, p: PrometheusParams, ctx: ProbeContext): Promise<Observation> {
  const query = p.query!;
  const path = '/api/v1/query';
  // Prometheus stops evaluating at its own timeout: a slow query does not outlive the check.
  const body = await api.getJson(path, { query, timeout: `${Math.max(1, ctx.timeoutMs)}ms` });
  const data = decode(QueryData, envelopeData(body, api.where(path)), api.where(path), 'a query result');
  return queryObservation(data.resultType, data.result, p.reduce ?? 'single', api.where(path));
}

/** Turns an instant query's result (Prometheus or Loki) into an observation. */
export function queryObservation(resultType: string, result: unknown, reduce: Reducer, where: string): Observation {
  switch (resultType) {
    case 'scalar': {
      const [, v] = decode(SampleValue, result, where, 'a scalar result');
      return reduceSamples([{ labels: {}, value: sampleValue(v) }], reduce, true);
    }
    case 'vector': {
      const vector = decode(VectorResult, result, where, 'a vector result');
      return reduceSamples(
        vector.map((s) => ({ labels: s.metric, value: sampleValue(s.value[1]) })),
        reduce,
      );
    }
    case 'matrix':
      throw new ProbeError('protocol', `${where}: the query returned a range vector; use an expression that gives an instant vector or a scalar (e.g. rate(x[5m]) instead of x[5m])`);
    case 'streams':
      throw new ProbeError('protocol', `${where}: the query returned log lines (streams), not numbers; use a metric query such as sum(count_over_time({app="api"}[10m]))`);
    default:
      throw new ProbeError('protocol', `${where}: the query returned a ${resultType}, not a number`);
  }
}

const TargetsData = Type.Object({
  activeTargets: Type.Array(
    Type.Object({
      labels: LabelSet,
      scrapePool: Type.Optional(Type.String()),
      scrapeUrl: Type.Optional(Type.String()),
      lastError: Type.Optional(Type.String()),
      health: Type.String(),
    }),
  ),
});

async function measureTargets(api: ApiClient, p: PrometheusParams): Promise<Observation> {
  const path = '/api/v1/targets';
  const where = api.where(path);
  const data = decode(TargetsData, envelopeData(await api.getJson(path, { state: 'active' }), where), where, 'a targets list');
  const ignore = new Set(p.ignoreJobs ?? []);
  const jobOf = (t: Static<typeof TargetsData>['activeTargets'][number]) => t.labels.job ?? t.scrapePool ?? '';
  const counted = data.activeTargets.filter((t) => !ignore.has(jobOf(t)));
  const down = counted.filter((t) => t.health === 'down');
  const up = counted.filter((t) => t.health === 'up');
  const jobs = new Set(data.activeTargets.map(jobOf));
  const missingJobs = (p.jobs ?? []).filter((j) => !jobs.has(j));
  const downTargets = down.map((t) => `${jobOf(t)} ${t.labels.instance ?? t.scrapeUrl ?? ''}${t.lastError ? `: ${oneLine(t.lastError, 160)}` : ''}`);
  const fields = {
    targets: counted.length,
    up: up.length,
    down: down.length,
    unknown: counted.length - up.length - down.length,
    missing: missingJobs.length,
    down_targets: downTargets,
    missing_jobs: missingJobs,
  };
  const maxDown = p.maxDown ?? 0;
  const problems: string[] = [];
  if (down.length > maxDown) problems.push(`${down.length} of ${counted.length} targets down${maxDown ? ` (at most ${maxDown} allowed)` : ''}: ${listSome(downTargets)}`);
  if (missingJobs.length > 0) problems.push(`required job${missingJobs.length > 1 ? 's' : ''} with no active target: ${missingJobs.join(', ')}`);
  if (problems.length > 0) return { value: down.length, fields, failure: { reason: 'condition', message: problems.join('; ') } };
  const notYet = fields.unknown > 0 ? `, ${fields.unknown} not scraped yet` : '';
  const downText = down.length > 0 ? `, ${down.length} down (tolerated): ${listSome(downTargets)}` : '';
  const countedJobs = new Set(counted.map(jobOf)).size;
  return { value: down.length, fields, message: `${up.length} of ${counted.length} targets up in ${countedJobs} job${countedJobs === 1 ? '' : 's'}${notYet}${downText}` };
}

const RulesData = Type.Object({
  groups: Type.Array(
    Type.Object({
      name: Type.String(),
      file: Type.Optional(Type.String()),
      rules: Type.Array(Type.Object({ name: Type.String(), type: Type.String(), health: Type.Optional(Type.String()), lastError: Type.Optional(Type.String()) })),
    }),
  ),
});

async function measureRules(api: ApiClient, p: PrometheusParams): Promise<Observation> {
  const path = '/api/v1/rules';
  const where = api.where(path);
  const { groups } = decode(RulesData, envelopeData(await api.getJson(path), where), where, 'a rules list');
  const rules = groups.flatMap((g) => g.rules.map((r) => ({ ...r, group: g.name })));
  const alerting = new Set(rules.filter((r) => r.type === 'alerting').map((r) => r.name));
  const failing = rules.filter((r) => r.health === 'err' || (r.lastError ?? '') !== '');
  const failingGroups = [...new Set(failing.map((r) => r.group))];
  const missingAlerts = (p.alerts ?? []).filter((a) => !alerting.has(a));
  const fields = {
    groups: groups.length,
    rules: rules.length,
    alerting_rules: alerting.size,
    errors: failing.length,
    missing: missingAlerts.length,
    failing_groups: failingGroups,
    missing_alerts: missingAlerts,
  };
  const value = failing.length + missingAlerts.length;
  const problems: string[] = [];
  if (missingAlerts.length > 0) problems.push(`alert${missingAlerts.length > 1 ? 's' : ''} not loaded: ${missingAlerts.join(', ')}`);
  if (failing.length > 0) {
    const detail = failingGroups.map((g) => {
      const inGroup = failing.filter((r) => r.group === g);
      const first = inGroup[0]!;
      return `group ${g}: ${first.name}: ${oneLine(first.lastError ?? 'health err', 200)}${inGroup.length > 1 ? ` (+${inGroup.length - 1} more rule${inGroup.length > 2 ? 's' : ''})` : ''}`;
    });
    problems.push(`${failing.length} rule${failing.length > 1 ? 's' : ''} failing to evaluate in ${listSome(detail, 3)}`);
  }
  if (groups.length === 0) problems.push('Prometheus has no rule groups loaded');
  if (problems.length > 0) return { value, fields, failure: { reason: 'condition', message: problems.join('; ') } };
  return {
    value,
    fields,
    message: `${rules.length} rules (${alerting.size} alerting) in ${groups.length} groups, none failing${p.alerts ? `; all ${p.alerts.length} required alerts loaded` : ''}`,
  };
}

const AlertsData = Type.Object({
  alerts: Type.Array(Type.Object({ labels: LabelSet, state: Type.String(), activeAt: Type.Optional(Type.String()) })),
});

async function measureAlerts(api: ApiClient, p: PrometheusParams): Promise<Observation> {
  const path = '/api/v1/alerts';
  const where = api.where(path);
  const { alerts } = decode(AlertsData, envelopeData(await api.getJson(path), where), where, 'an alerts list');
  const ignore = new Set(p.ignoreAlerts ?? ALWAYS_FIRING);
  const matchers = (p.matchers ?? []).flatMap((m) => parseMatchers(m));
  const relevant = alerts.filter((a) => !ignore.has(a.labels.alertname ?? '') && matchesAll(matchers, a.labels));
  const firing = relevant.filter((a) => a.state === 'firing');
  const pending = relevant.filter((a) => a.state === 'pending');
  const counted = p.includePending ? [...firing, ...pending] : firing;
  const names = counted.map((a) => `${a.labels.alertname ?? '(no alertname)'}${formatLabels(a.labels, ['alertname'])}${a.state === 'pending' ? ' (pending)' : ''}`);
  const fields = { firing: counted.length, pending: pending.length, firing_alerts: names };
  const scope = [matchers.length > 0 ? `matching ${matchers.map(formatMatcher).join(', ')}` : '', ignore.size > 0 ? `ignoring ${[...ignore].join(', ')}` : '']
    .filter(Boolean)
    .join(', ');
  if (counted.length > 0) {
    return {
      value: counted.length,
      fields,
      failure: { reason: 'condition', message: `${counted.length} alert${counted.length > 1 ? 's' : ''} ${p.includePending ? 'firing or pending' : 'firing'}${scope ? ` (${scope})` : ''}: ${listSome(names)}` },
    };
  }
  const pend = pending.length > 0 ? `; ${pending.length} pending: ${listSome(pending.map((a) => a.labels.alertname ?? ''))}` : '';
  return { value: 0, fields, message: `no alerts firing${scope ? ` (${scope})` : ''}${pend}` };
}

// ---------------------------------------------------------------------------------------------
// PromQL validation at load
// ---------------------------------------------------------------------------------------------

/** Functions whose (first, or for quantile_over_time second) argument must be a range vector. */
const RANGE_ARGUMENT: Record<string, number> = Object.fromEntries([
  ...['rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets', 'predict_linear', 'holt_winters'].map((f) => [f, 0]),
  ...['avg', 'min', 'max', 'sum', 'count', 'stddev', 'stdvar', 'last', 'present', 'absent', 'mad'].map((f) => [`${f}_over_time`, 0]),
  ['quantile_over_time', 1],
]);

const RANGE_NODES = new Set(['MatrixSelector', 'SubqueryExpr']);

interface SyntaxNodeLike {
  name: string;
  from: number;
  to: number;
  firstChild: SyntaxNodeLike | null;
  nextSibling: SyntaxNodeLike | null;
  getChild(name: string): SyntaxNodeLike | null;
}

function children(n: SyntaxNodeLike): SyntaxNodeLike[] {
  const out: SyntaxNodeLike[] = [];
  for (let c = n.firstChild; c; c = c.nextSibling) out.push(c);
  return out;
}

function unparen(n: SyntaxNodeLike): SyntaxNodeLike {
  let cur = n;
  while (cur.name === 'ParenExpr') {
    const inner = children(cur).find((c) => c.name !== '⚠');
    if (!inner) break;
    cur = inner;
  }
  return cur;
}

/** Load-time problems of a list of label matchers (`severity="critical"`), one per bad entry. */
export function matcherProblems(matchers: readonly string[] | undefined): string[] {
  const problems: string[] = [];
  for (const [i, m] of (matchers ?? []).entries()) {
    try {
      parseMatchers(m);
    } catch (err) {
      problems.push(`matchers[${i}]: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** "line 2, column 7" (1-based) of an offset in a possibly multi-line text. */
function position(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - (before.lastIndexOf('\n') + 1) + 1;
  return line > 1 ? `line ${line}, column ${col}` : `column ${col}`;
}

/**
 * Problems with a PromQL expression: the first syntax error with its position inside the
 * expression, a range vector where an instant query needs an instant vector, and a range
 * function given an instant vector (`rate(x)`). Empty when the expression is fine.
 */
export function promqlProblems(expr: string): string[] {
  const tree = parser.parse(expr);
  let error: { from: number; to: number } | undefined;
  tree.iterate({
    enter(n) {
      if (error) return false;
      if (n.type.isError) error = { from: n.from, to: n.to };
      return undefined;
    },
  });
  if (error) {
    const { from, to } = error;
    let what: string;
    if (from >= expr.trimEnd().length) {
      what = expr.trim() === '' ? 'the query is empty' : `unexpected end of the query after ${JSON.stringify(tail(expr.trimEnd(), 40))}`;
    } else {
      const tok = expr.slice(from, Math.max(to, from + 1)).split(/\s/)[0] || expr[from]!;
      what = `unexpected ${JSON.stringify(tok)}`;
      const ident = /([A-Za-z_][A-Za-z0-9_]*)\s*$/.exec(expr.slice(0, from));
      if (expr[from] === '(' && ident) what += ` ("${ident[1]}" is not a PromQL function)`;
      else if (from > 0) what += ` after ${JSON.stringify(tail(expr.slice(0, from).trimEnd(), 40))}`;
    }
    const at = from >= expr.trimEnd().length ? expr.trimEnd().length : from;
    return [`PromQL syntax error at ${position(expr, at)}: ${what}`];
  }

  const problems: string[] = [];
  const top = tree.topNode.firstChild ? unparen(tree.topNode.firstChild as SyntaxNodeLike) : undefined;
  if (top && RANGE_NODES.has(top.name)) {
    problems.push(`the query returns a range vector (${JSON.stringify(expr.slice(top.from, top.to))}); a check needs an instant vector or a scalar, e.g. rate(x[5m]) or last_over_time(x[5m])`);
  } else if (top?.name === 'StringLiteral') {
    problems.push('the query is a string literal, not a number');
  }
  tree.iterate({
    enter(ref) {
      if (ref.name !== 'FunctionCall') return;
      const n = ref.node as unknown as SyntaxNodeLike;
      const ident = n.getChild('FunctionIdentifier');
      const body = n.getChild('FunctionCallBody');
      if (!ident || !body) return;
      const fn = expr.slice(ident.from, ident.to);
      const index = RANGE_ARGUMENT[fn];
      if (index === undefined) return;
      const arg = children(body)[index];
      if (arg && !RANGE_NODES.has(unparen(arg).name)) {
        const text = expr.slice(arg.from, arg.to);
        problems.push(`${fn}() at ${position(expr, ref.from)} needs a range vector, got ${JSON.stringify(tail(text, 40))}: add a range such as [5m]`);
      }
    },
  });
  return problems;
}

function tail(s: string, n: number): string {
  return s.length > n ? `...${s.slice(-n)}` : s;
}

// =============================================================================================
// Shared by the observability-stack kinds
// =============================================================================================

/** Problems with the connection params, found at load. */
/** The variables a connection's credentials come from (for ProbeKind.requiredEnv). */
export function connectionEnv(p: ConnectionParams): string[] {
  return [p.tokenEnv, p.usernameEnv, p.passwordEnv].filter((n): n is string => typeof n === 'string' && n !== '');
}

export function connectionProblems(p: ConnectionParams): string[] {
  const problems: string[] = [];
  let u: URL | undefined;
  try {
    u = new URL(p.url);
  } catch {
    // Not echoed: a malformed URL may still hold a password.
    problems.push('url is not an absolute http:// or https:// URL');
  }
  if (u) {
    if (u.protocol !== 'http:' && u.protocol !== 'https:') problems.push(`url must be http:// or https://, not ${u.protocol}//`);
    if (u.username || u.password) problems.push('url carries user:password: put the credentials in environment variables named by usernameEnv and passwordEnv');
    if (u.search || u.hash) problems.push('url must not have a ?query or #fragment: give the base URL of the service');
  }
  if (p.tokenEnv && (p.usernameEnv || p.passwordEnv)) problems.push('set either tokenEnv or usernameEnv/passwordEnv, not both');
  if (Boolean(p.usernameEnv) !== Boolean(p.passwordEnv)) problems.push('usernameEnv and passwordEnv go together');
  if (p.ca && p.insecure) problems.push('ca has no effect with insecure: true');
  if (p.ca && !existsSync(p.ca)) problems.push(`ca file ${p.ca} does not exist`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The JSON API client
// ---------------------------------------------------------------------------------------------

/** Larger answers are refused: a /api/v1/targets of a big fleet is a few MiB. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface ApiClientOptions {
  /** The service's name in messages: "Prometheus", "Grafana". */
  service: string;
  /** Extra request headers (a tenant, an organisation); never secrets. */
  headers?: Record<string, string>;
}

/** GETs JSON from one service for one probe run; every failure is a ProbeError with a reason. */
export class ApiClient {
  private constructor(
    private readonly base: URL,
    private readonly service: string,
    private readonly headers: Record<string, string>,
    private readonly agent: Agent,
    private readonly signal: AbortSignal,
    private readonly timeoutMs: number,
    private readonly credentials: { via: string; values: string[] },
  ) {}

  /** Resolves credentials from the environment; ProbeError('unconfigured') when one is unset. */
  static async open(p: ConnectionParams, ctx: ProbeContext, opts: ApiClientOptions): Promise<ApiClient> {
    let base: URL;
    try {
      base = new URL(p.url);
    } catch {
      throw new ProbeError('error', 'url is not an absolute http:// or https:// URL');
    }
    if (base.username || base.password) throw new ProbeError('error', 'url carries user:password: use usernameEnv and passwordEnv');
    const headers: Record<string, string> = { 'user-agent': 'readiness-exporter', accept: 'application/json', ...opts.headers };
    const values: string[] = [];
    const need = (param: string, name: string | undefined): string | undefined => {
      if (!name) return undefined;
      const v = ctx.env[name];
      // Same rule as an unset ${ENV} in a target: never measure without the credentials.
      if (!v) throw new ProbeError('unconfigured', `environment variable ${name} (${param}) is not set`);
      values.push(v);
      return v;
    };
    let via = '';
    const token = need('tokenEnv', p.tokenEnv);
    if (token) {
      headers.authorization = `Bearer ${token}`;
      via = `the token in ${p.tokenEnv}`;
    }
    const user = need('usernameEnv', p.usernameEnv);
    const password = need('passwordEnv', p.passwordEnv);
    if (user !== undefined && password !== undefined) {
      const basic = Buffer.from(`${user}:${password}`).toString('base64');
      headers.authorization = `Basic ${basic}`;
      values.push(basic);
      via = `the user in ${p.usernameEnv}`;
    }
    let ca: string | undefined;
    if (p.ca && !p.insecure) {
      try {
        ca = await readFile(p.ca, { encoding: 'utf8', signal: ctx.signal });
      } catch (err) {
        throw new ProbeError(ctx.signal.aborted ? 'timeout' : 'error', `cannot read ca file ${p.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    // The check's signal is the timeout; undici's own timers are only a backstop.
    const backstop = ctx.timeoutMs * 2;
    const { Agent } = await undici();
    const agent = new Agent({ connect: await agentConnect({ rejectUnauthorized: !p.insecure, ca, timeout: backstop }, ctx), headersTimeout: backstop, bodyTimeout: backstop });
    return new ApiClient(base, opts.service, headers, agent, ctx.signal, ctx.timeoutMs, { via, values });
  }

  /** `Prometheus http://prom:9090/api/v1/targets`: for messages (the URL holds no credentials). */
  where(path: string): string {
    return `${this.service} ${this.url(path).href}`;
  }

  private url(path: string): URL {
    const u = new URL(this.base.href);
    u.pathname = u.pathname.replace(/\/+$/, '') + path;
    return u;
  }

  /** GET path?query; the parsed JSON of a 2xx answer, else ProbeError (auth, rate-limited, http-status, protocol, refused, ...). */
  async getJson(path: string, query: Record<string, string | readonly string[] | undefined> = {}): Promise<unknown> {
    const url = this.url(path);
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      for (const x of typeof v === 'string' ? [v] : v) url.searchParams.append(k, x);
    }
    const where = this.where(path);
    let status: number;
    let text: string;
    let retryAfter: string | undefined;
    try {
      const { request } = await undici();
      const res = await request(url, { method: 'GET', headers: this.headers, signal: this.signal, dispatcher: this.agent });
      status = res.statusCode;
      const ra = res.headers['retry-after'];
      retryAfter = Array.isArray(ra) ? ra[0] : ra;
      text = await readCapped(res.body as AsyncIterable<Buffer>, MAX_BODY_BYTES, where);
    } catch (err) {
      if (this.signal.aborted) throw new ProbeError('timeout', `${where}: no complete answer within the check timeout (${this.timeoutMs} ms)`);
      if (err instanceof ProbeError) throw err;
      const e = err as Error & { code?: string };
      const said = oneLine(e.message || String(err), 200);
      throw new ProbeError(reasonFromError(err), `${where}: ${said}${e.code && !said.includes(e.code) ? ` (${e.code})` : ''}`);
    }
    if (status < 200 || status >= 300) {
      const detail = errorDetail(text);
      const reason: Reason = status === 401 || status === 403 ? 'auth' : status === 429 ? 'rate-limited' : 'http-status';
      let hint = '';
      if (reason === 'auth') hint = this.credentials.via ? ` (${this.credentials.via} was rejected)` : ' (no credentials were sent: set tokenEnv, or usernameEnv and passwordEnv)';
      if (reason === 'rate-limited' && retryAfter) hint = ` (Retry-After: ${retryAfter})`;
      if (status === 404) hint = ` (is url the ${this.service} base URL, with its sub-path?)`;
      throw new ProbeError(reason, this.scrub(`${where}: HTTP ${status}${detail ? `: ${detail}` : ''}${hint}`));
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ProbeError('protocol', this.scrub(`${where}: HTTP ${status} with a body that is not JSON: ${JSON.stringify(oneLine(text, 80))}`));
    }
  }

  /** Replaces credential values in a text by *** (servers may echo what they were sent). */
  scrub(text: string): string {
    return scrubSecrets(text, this.credentials.values, 4);
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

/**
 * Runs `measure` with a client for `p`: turns ProbeErrors (the service down, bad answers,
 * rejected credentials, the timeout) into error observations and scrubs credentials from
 * every message.
 */
export async function withApi(p: ConnectionParams, ctx: ProbeContext, opts: ApiClientOptions, measure: (api: ApiClient) => Promise<Observation>): Promise<Observation> {
  let api: ApiClient | undefined;
  try {
    api = await ApiClient.open(p, ctx, opts);
    const obs = await measure(api);
    const a = api;
    if (obs.message) obs.message = a.scrub(obs.message);
    if (obs.failure) obs.failure = { ...obs.failure, message: a.scrub(obs.failure.message) };
    if (obs.error) obs.error = { ...obs.error, message: a.scrub(obs.error.message) };
    return obs;
  } catch (err) {
    if (err instanceof ProbeError) return { fields: {}, error: { reason: err.reason, message: api ? api.scrub(err.message) : err.message } };
    if (ctx.signal.aborted) return { fields: {}, error: { reason: 'timeout', message: `${opts.service}: no answer within the check timeout (${ctx.timeoutMs} ms)` } };
    throw err;
  } finally {
    await api?.close();
  }
}

async function readCapped(body: AsyncIterable<Buffer>, cap: number, where: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    // Leaving the loop destroys the stream, which aborts the rest of the download.
    if (size > cap) throw new ProbeError('protocol', `${where}: the answer is larger than ${cap / 1024 / 1024} MiB`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** The explanation in an error answer: Prometheus/Loki `error`, Grafana `message`, Jaeger `errors[].msg`, or the text. */
function errorDetail(text: string): string {
  try {
    const j = JSON.parse(text) as unknown;
    if (isObject(j)) {
      if (typeof j.error === 'string') return oneLine(`${typeof j.errorType === 'string' && j.errorType ? `${j.errorType}: ` : ''}${j.error}`, 300);
      if (typeof j.message === 'string') return oneLine(j.message, 300);
      const first = Array.isArray(j.errors) ? (j.errors[0] as unknown) : undefined;
      if (isObject(first) && typeof first.msg === 'string') return oneLine(first.msg, 300);
    }
  } catch {
    // Plain text (Loki's 400s) or HTML from a proxy.
  }
  return oneLine(text.replace(/<[^>]*>/g, ' '), 200);
}

/** Checks an answer's shape; ProbeError('protocol') naming the first mismatch. */
export function decode<S extends TSchema>(schema: S, body: unknown, where: string, what: string): Static<S> {
  if (Value.Check(schema, body)) return body;
  const e = Value.Errors(schema, body).First();
  const at = e ? `${e.path || '/'}: ${e.message}` : 'unexpected shape';
  throw new ProbeError('protocol', `${where}: the answer is not ${what} (${at})`);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * One line of at most `max` characters. A longer text keeps its start and its end: servers put
 * the cause last ("found duplicate series ... [long list];many-to-many matching not allowed").
 */
export function oneLine(s: string, max = 300): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const head = Math.ceil((max - 5) / 2);
  return `${flat.slice(0, head)} ... ${flat.slice(flat.length - (max - 5 - head))}`;
}

/** "a, b, c and 4 more". */
export function listSome(items: readonly string[], n = 5): string {
  if (items.length <= n) return items.join(', ');
  return `${items.slice(0, n).join(', ')} and ${items.length - n} more`;
}

// ---------------------------------------------------------------------------------------------
// Label matchers, with Alertmanager's syntax and semantics (pkg/labels/parse.go)
// ---------------------------------------------------------------------------------------------

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface LabelMatcher {
  name: string;
  op: MatchOp;
  value: string;
  /** For =~ and !~: the value anchored at both ends, as Prometheus and Alertmanager do. */
  re?: SafeRegex;
}

const MATCHER_RE = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*([\s\S]*?)\s*$/;

/**
 * A Go (RE2) regular expression anchored at both ends, as Prometheus and Alertmanager anchor
 * them: RE2 itself (src/regex.ts), so every Go regex means the same here, (?i), (?P<name>),
 * \pL and \Q...\E included, and matching is linear whatever the label values (the target's).
 */
export function anchoredRegex(source: string): SafeRegex {
  try {
    return SafeRegex.compile(`^(?:${source})$`);
  } catch (err) {
    if (err instanceof RegexSyntaxError) throw new Error(err.message);
    throw err;
  }
}

export function labelMatcher(name: string, op: MatchOp, value: string): LabelMatcher {
  if (op !== '=~' && op !== '!~') return { name, op, value };
  try {
    return { name, op, value, re: anchoredRegex(value) };
  } catch (err) {
    throw new Error(`bad regex in ${name}${op}${JSON.stringify(value)}: ${(err as Error).message}`);
  }
}

/** One matcher: `name OP value`, the value optionally double-quoted with \" \\ \n escapes. */
export function parseMatcher(s: string): LabelMatcher {
  const m = MATCHER_RE.exec(s);
  if (!m) throw new Error(`bad matcher ${JSON.stringify(s.trim())}: expected name=value, name!=value, name=~regex or name!~regex`);
  let raw = m[3]!;
  let expectTrailingQuote = false;
  if (raw.startsWith('"')) {
    raw = raw.slice(1);
    expectTrailingQuote = true;
  }
  let value = '';
  let escaped = false;
  const chars = [...raw];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (escaped) {
      escaped = false;
      value += c === 'n' ? '\n' : c === '"' || c === '\\' ? c : `\\${c}`;
      continue;
    }
    if (c === '\\') {
      if (i < chars.length - 1) escaped = true;
      else value += '\\';
    } else if (c === '"') {
      if (!expectTrailingQuote || i < chars.length - 1) throw new Error(`matcher value contains an unescaped double quote: ${m[3]}`);
      expectTrailingQuote = false;
    } else {
      value += c;
    }
  }
  if (expectTrailingQuote) throw new Error(`matcher value has no closing double quote: ${m[3]}`);
  return labelMatcher(m[1]!, m[2] as MatchOp, value);
}

/** A comma-separated list of matchers, optionally in braces: `{severity="critical", team=~"db|api"}`. */
export function parseMatchers(s: string): LabelMatcher[] {
  const text = s.trim().replace(/^\{/, '').replace(/\}$/, '');
  const tokens: string[] = [];
  let token = '';
  let inside = false;
  let escaped = false;
  for (const c of text) {
    if (c === ',' && !inside) {
      tokens.push(token);
      token = '';
      continue;
    }
    if (c === '"') {
      if (!escaped) inside = !inside;
      else escaped = false;
    } else if (c === '\\') {
      escaped = !escaped;
    } else {
      escaped = false;
    }
    token += c;
  }
  tokens.push(token);
  return tokens.filter((t) => t.trim() !== '').map(parseMatcher);
}

/** A missing label matches like an empty one (`team!="db"` matches an alert without `team`). */
export function matchesOne(m: LabelMatcher, labels: Readonly<Record<string, string>>): boolean {
  const v = labels[m.name] ?? '';
  switch (m.op) {
    case '=':
      return v === m.value;
    case '!=':
      return v !== m.value;
    case '=~':
      return m.re!.testSync(v);
    case '!~':
      return !m.re!.testSync(v);
  }
}

export function matchesAll(ms: readonly LabelMatcher[], labels: Readonly<Record<string, string>>): boolean {
  return ms.every((m) => matchesOne(m, labels));
}

export function formatMatcher(m: LabelMatcher): string {
  return `${m.name}${m.op}${JSON.stringify(m.value)}`;
}

/** `{job="api", pod="api-1"}` (sorted, `drop` and __name__ left out; empty set: ""). */
export function formatLabels(labels: Readonly<Record<string, string>>, drop: readonly string[] = []): string {
  const parts = Object.keys(labels)
    .filter((k) => k !== '__name__' && !drop.includes(k))
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length > 0 ? `{${parts.join(', ')}}` : '';
}

// ---------------------------------------------------------------------------------------------
// Query results to one number (Prometheus and Loki)
// ---------------------------------------------------------------------------------------------

export interface QuerySample {
  labels: Record<string, string>;
  value: number;
}

/** A sample value as the API writes it: "1e+00", "NaN", "+Inf", "-Inf". */
export function sampleValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return s.trim() === '' ? NaN : Number(s);
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return String(Number(n.toPrecision(6)));
}

function seriesName(labels: Readonly<Record<string, string>>): string {
  return `${labels.__name__ ?? ''}${formatLabels(labels)}` || '{}';
}

/**
 * The observation for a query's samples. An empty vector is no-data (the check's onNoData
 * decides), except for `count` (0) and `empty` (the pass case). NaN samples (0/0, as an error
 * ratio with no traffic gives) are no value either: they are skipped, and NaN alone is no-data.
 */
export function reduceSamples(samples: readonly QuerySample[], reduce: Reducer, scalar = false): Observation {
  const series = samples.length;
  if (reduce === 'empty') {
    if (series === 0) return { value: 0, fields: { value: 0, series: 0 }, message: 'the query returned no series, as required' };
    const listed = samples.map((s) => `${seriesName(s.labels)} = ${formatNumber(s.value)}`);
    return {
      value: series,
      fields: { value: series, series },
      failure: { reason: 'condition', message: `the query returned ${series} series where none were expected: ${listSome(listed)}` },
    };
  }
  if (reduce === 'count') return { value: series, fields: { value: series, series }, message: `${series} series` };
  if (series === 0) return { fields: { series: 0 }, noData: true, message: 'the query returned an empty vector (no series matched)' };
  if (reduce === 'single' && series > 1) {
    const listed = samples.map((s) => seriesName(s.labels));
    throw new ProbeError('error', `the query returned ${series} series where one was expected (${listSome(listed, 3)}): aggregate it (sum, max) or set reduce to max, min, sum or count`);
  }
  const numbers = samples.filter((s) => !Number.isNaN(s.value));
  if (numbers.length === 0) {
    return { fields: { series }, noData: true, message: `the query returned NaN${series > 1 ? ` in all ${series} series` : ''} (0/0: e.g. an error ratio with no requests in the window)` };
  }
  let picked: QuerySample | undefined;
  let value: number;
  switch (reduce) {
    case 'single':
      picked = numbers[0]!;
      value = picked.value;
      break;
    case 'max':
    case 'min':
      picked = numbers.reduce((a, b) => ((reduce === 'max' ? b.value > a.value : b.value < a.value) ? b : a));
      value = picked.value;
      break;
    case 'sum':
      value = numbers.reduce((a, b) => a + b.value, 0);
      break;
  }
  const fields: Record<string, unknown> = { value, series };
  if (picked) fields.labels = { ...picked.labels };
  const name = picked && !scalar ? `${picked.labels.__name__ ?? ''}${formatLabels(picked.labels)}` : '';
  const at = name ? (series > 1 ? ` at ${name}` : ` ${name}`) : '';
  const how = series > 1 ? ` (${reduce} of ${series} series${numbers.length < series ? `, ${series - numbers.length} NaN skipped` : ''})` : '';
  return { value, fields, message: `value ${formatNumber(value)}${at}${how}` };
}
