// The loki probe kind against a local server speaking Loki's query API
// (test/helpers/obs-apis.ts: GET /loki/api/v1/query answering vector, streams or matrix data in
// Loki's envelope, 400 with a text body for a parse error, 401 "no org id" without the tenant
// header). Grafana Loki is not packaged for Debian 12 and Debian's `loki` package is an
// unrelated genetics tool, so no real Loki runs here. The server holds log lines placed in time
// by the test and counts them over LogQL ranges (a subset: count_over_time/rate, line filters,
// sum/max/min/count by), so the values asserted are computed, not canned.
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { loadChecklist, loadChecklistFile } from '../../src/config/load.js';
import { formatDiagnostic, type CheckDef } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import loki, { logqlProblems, type LokiParams } from '../../src/probes/loki.js';
import type { Observation } from '../../src/probes/types.js';
import type { RunResult } from '../../src/store/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { loadDocExamples, undocumented } from '../helpers/probe-docs.js';
import { closedPort } from '../helpers/listeners.js';
import { fakeLoki, type Fault, type LogLine } from '../helpers/obs-apis.js';
import { ROOT } from '../helpers/prometheus.js';

const log = pino({ level: 'silent' });
const SEC = 1000;
const MIN = 60 * SEC;
const now = Date.now();

// The API logs a line every 20s for the last 30 minutes from two pods, every 5th an audit
// line; two ERROR lines 5 minutes ago and one 40 minutes ago. The worker logs once a minute.
const lines: LogLine[] = [];
for (let i = 0; i < 90; i++) {
  const pod = `offgridflow-api-${(i % 2) + 1}`;
  lines.push({
    labels: { namespace: 'offgridflow', app: 'offgridflow-api', pod },
    atMs: now - 7 * SEC - i * 20 * SEC,
    line: i % 5 === 0 ? `level=info msg="audit" user=u${i} action=report.generate` : `level=info msg="handled request" path=/v1/activities status=200`,
  });
}
for (const ago of [5 * MIN, 5 * MIN + 3 * SEC, 40 * MIN]) {
  lines.push({ labels: { namespace: 'offgridflow', app: 'offgridflow-api', pod: 'offgridflow-api-1' }, atMs: now - ago, line: 'level=ERROR msg="database timeout" path=/v1/reports' });
}
for (let i = 0; i < 30; i++) lines.push({ labels: { namespace: 'offgridflow', app: 'offgridflow-worker', pod: 'offgridflow-worker-1' }, atMs: now - 11 * SEC - i * MIN, line: 'level=info msg="tick"' });

const inLast = (ms: number, pred: (l: LogLine) => boolean) => lines.filter((l) => l.atMs > Date.now() - ms && pred(l)).length;
const isApi = (l: LogLine) => l.labels.app === 'offgridflow-api';

const server = await fakeLoki(t, { lines });
const ENV = { LOKI_URL: server.url };
const APP = '{namespace="offgridflow", app="offgridflow-api"}';

interface Spec {
  with: Record<string, unknown>;
  expect?: string[];
  onNoData?: 'fail' | 'error' | 'pass';
  timeout?: string;
}

function checklistText(spec: Spec): string {
  return YAML.stringify({
    apiVersion: 'readiness/v1',
    checklist: 'loki-test',
    targets: { loki: { url: '${LOKI_URL}' } },
    checks: [
      {
        id: 'loki-check',
        title: 'Loki test check',
        section: 'observability',
        severity: 'high',
        phase: 'verify',
        probe: 'loki',
        target: 'loki',
        with: spec.with,
        ...(spec.expect && { expect: spec.expect }),
        ...(spec.onNoData && { onNoData: spec.onNoData }),
        ...(spec.timeout && { timeout: spec.timeout }),
      },
    ],
  });
}

function load(spec: Spec, env: NodeJS.ProcessEnv = ENV): CheckDef {
  const r = loadChecklist(checklistText(spec), 'loki-test.yaml', env);
  if (!r.ok) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.checklist.checks[0]!;
}

const check = (spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<RunResult> => runCheck(load(spec, env), { log, env });

async function observe(spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<Observation> {
  const def = load(spec, env);
  return loki.run(def.params as never, makeCtx({ env, timeoutMs: def.timeoutMs }));
}


t.test('docs/probes/loki.md documents every parameter and field, and its examples load', async (t) => {
  t.same(undocumented(loki), []);
  t.same(loadDocExamples('loki'), { diagnostics: [], checks: 3 });
});

t.test('LogQL structure is checked at load, with positions', async (t) => {
  t.same(logqlProblems(`sum(count_over_time(${APP} |= "ERROR" [15m]))`), []);
  t.same(logqlProblems('sum by (pod) (rate({app="api"} |~ `(?i)error` [5m]))'), []);
  t.same(logqlProblems('{app="api"} |= "ERROR"'), ['this is a log query (it returns lines, not a number): wrap it in a range aggregation such as sum(count_over_time(<query> [10m]))']);
  t.same(logqlProblems('sum(count_over_time({app="api"}[5m])'), ['"(" at column 4 is never closed']);
  t.same(logqlProblems('count_over_time({app="api}[5m])'), ['unterminated string starting at column 22']);
  t.same(logqlProblems('count_over_time({app="api"}[5m]))'), ['unexpected ")" at column 33']);
  t.same(logqlProblems('sum(count_over_time(app="api"[5m]))'), ['no stream selector such as {namespace="offgridflow"}']);
  t.same(logqlProblems('count_over_time({app="api"}[5m)]'), ['unexpected ")" at column 31 (the "[" at column 28 is not closed)']);
  t.throws(() => load({ with: { query: '{app="api"}' } }), /loki-test\.yaml:\d+:\d+: query: this is a log query/);
  t.throws(() => load({ with: { query: 'sum(count_over_time({app="api"}[5m]))', reduce: 'median' } }), /"reduce" must be one of/);
  t.throws(() => load({ with: { query: 'sum(count_over_time({app="api"}[5m]))', url: 'http://u:p@loki:3100' } }), /url carries user:password/);
});

t.test('the value is the number of log lines the query counts', async (t) => {
  const obs = await observe({ with: { query: `sum(count_over_time(${APP}[10m]))` } });
  const want = inLast(10 * MIN, isApi);
  t.equal(obs.value, want);
  t.match(obs.fields, { value: want, series: 1 });
  t.equal(obs.message, `value ${want}`);
  const r = await check({ with: { query: `sum(count_over_time(${APP} |= "audit" [1h]))` }, expect: ['value > 0'] });
  t.equal(r.state, 'pass', r.message);
  t.equal(r.value, inLast(60 * MIN, (l) => isApi(l) && l.line.includes('audit')));
});

t.test('per-stream results are summed by default; max names its stream; single needs one series', async (t) => {
  const q = `count_over_time(${APP}[10m])`;
  const sum = await observe({ with: { query: q } });
  t.equal(sum.value, inLast(10 * MIN, isApi));
  t.match(sum.fields, { series: 2 });
  t.match(sum.message, /^value \d+ \(sum of 2 series\)$/);
  const max = await observe({ with: { query: q, reduce: 'max' } });
  t.equal(max.value, inLast(10 * MIN, (l) => isApi(l) && l.labels.pod === 'offgridflow-api-1'));
  t.match(max.fields, { labels: { pod: 'offgridflow-api-1' } });
  const byPod = await check({ with: { query: `sum by (pod) (count_over_time(${APP} |= "ERROR" [15m]))`, reduce: 'max' }, expect: ['value == 0'] });
  t.equal(byPod.state, 'fail');
  t.match(byPod.message, 'value == 0 is false (value = 2)');
  const single = await check({ with: { query: q, reduce: 'single' } });
  t.equal(single.state, 'error');
  t.match(single.message, /the query returned 2 series where one was expected \(\{app="offgridflow-api", namespace="offgridflow", pod="offgridflow-api-\d"\}/);
});

t.test('no matching stream is no-data, decided by onNoData', async (t) => {
  const spec = { with: { query: 'sum(count_over_time({namespace="offgridflow", app="offgridflow-web"}[10m]))' }, expect: ['value > 0'] };
  const byDefault = await check(spec);
  t.equal(byDefault.state, 'error');
  t.equal(byDefault.reason, 'no-data');
  t.equal(byDefault.message, 'the query returned no series: no log stream matched the selector in the range');
  t.equal((await check({ ...spec, onNoData: 'fail' })).state, 'fail');
  t.equal((await check({ ...spec, onNoData: 'pass' })).state, 'pass');
  t.equal((await check({ ...spec, with: { ...spec.with, reduce: 'count' }, expect: ['value == 0'] })).state, 'pass', 'count of nothing is 0');
});

t.test("Loki's parse errors (400, text body) are errors with Loki's explanation", async (t) => {
  const r = await check({ with: { query: `sum(count_over_time(${APP}[5m])) by` } });
  t.equal(r.state, 'error');
  t.equal(r.reason, 'http-status');
  t.match(r.message, /^Loki http:\/\/127\.0\.0\.1:\d+\/loki\/api\/v1\/query: HTTP 400: parse error at line 1, col \d+: syntax error: unexpected "end of input", expecting \($/);
});

t.test('results that are not numbers: log lines and range vectors', async (t) => {
  // A log query gets past load only by skipping validate(), as a hand-built check would.
  const params = { url: server.url, query: `${APP} |= "ERROR"` } as LokiParams;
  const streams = await loki.run(params, makeCtx());
  t.match(streams.error, { reason: 'protocol', message: /the query returned log lines \(streams\), not numbers; use a metric query such as sum\(count_over_time/ });
  server.override = { resultType: 'matrix', result: [{ metric: { app: 'offgridflow-api' }, values: [[now / 1000, '3']] }] };
  t.teardown(() => {
    server.override = undefined;
  });
  const matrix = await observe({ with: { query: `sum(count_over_time(${APP}[10m]))` } });
  t.match(matrix.error, { reason: 'protocol', message: /the query returned a range vector/ });
  server.override = { resultType: 'vector', result: [{ metric: {}, value: [now / 1000, 'not-a-number-but-a-string'] }] };
  const nan = await observe({ with: { query: `sum(count_over_time(${APP}[10m]))` } });
  t.match(nan, { noData: true, message: /NaN/ });
  server.override = undefined;
});

t.test('multi-tenant Loki: the tenant header, and 401 "no org id" without it', async (t) => {
  const tenanted = await fakeLoki(t, { lines, tenant: 'offgridflow' });
  const env = { LOKI_URL: tenanted.url };
  const q = { query: `sum(count_over_time(${APP}[10m]))` };
  const without = await check({ with: q }, env);
  t.equal(without.state, 'error');
  t.equal(without.reason, 'auth');
  t.match(without.message, 'HTTP 401: no org id (no credentials were sent: set tokenEnv, or usernameEnv and passwordEnv)');
  const withTenant = await check({ with: { ...q, tenant: 'offgridflow' }, expect: ['value > 0'] }, env);
  t.equal(withTenant.state, 'pass', withTenant.message);
  t.equal(tenanted.requests.at(-1)!.headers['x-scope-orgid'], 'offgridflow');
});

t.test('Basic auth from usernameEnv/passwordEnv, never shown', async (t) => {
  const guarded = await fakeLoki(t, { lines, basic: { user: 'readiness', password: 'l0ki-gateway-pass' } });
  const spec = { with: { query: `sum(count_over_time(${APP}[10m]))`, usernameEnv: 'LOKI_USER', passwordEnv: 'LOKI_PASSWORD' } };
  const ok = await check(spec, { LOKI_URL: guarded.url, LOKI_USER: 'readiness', LOKI_PASSWORD: 'l0ki-gateway-pass' });
  t.equal(ok.state, 'pass', ok.message);
  const wrong = await check(spec, { LOKI_URL: guarded.url, LOKI_USER: 'readiness', LOKI_PASSWORD: 'wrong-password' });
  t.equal(wrong.reason, 'auth');
  t.match(wrong.message, 'HTTP 401: 401 Authorization Required (the user in LOKI_USER was rejected)');
  t.notMatch(wrong.message, 'wrong-password');
  const unset = await check(spec, { LOKI_URL: guarded.url, LOKI_USER: 'readiness' });
  t.equal(unset.reason, 'unconfigured');
  t.equal(unset.message, 'environment variable LOKI_PASSWORD (passwordEnv) is not set');
});

t.test('every way Loki can answer badly is an error with its reason', async (t) => {
  const cases: [Fault, string, RegExp][] = [
    ['server-error', 'http-status', /HTTP 500: internal error: storage unavailable$/],
    ['bad-gateway-html', 'http-status', /HTTP 502: 502 Bad Gateway/],
    ['rate-limited', 'rate-limited', /HTTP 429: Too many requests \(Retry-After: 30\)/],
    ['forbidden', 'auth', /HTTP 403: Permission denied/],
    ['malformed', 'protocol', /with a body that is not JSON/],
    ['wrong-shape', 'protocol', /the answer is not a Loki query result \(\/resultType: Expected required property\)/],
    ['reset', 'refused', /\/loki\/api\/v1\/query: /],
    ['slow', 'timeout', /no complete answer within the check timeout \(300 ms\)/],
  ];
  t.teardown(() => {
    server.fault = undefined;
  });
  for (const [fault, reason, message] of cases) {
    server.fault = fault;
    const r = await check({ with: { query: `sum(count_over_time(${APP}[10m]))` }, timeout: '300ms' });
    t.equal(r.state, 'error', fault);
    t.equal(r.reason, reason, `${fault}: ${r.message}`);
    t.match(r.message, message, fault);
  }
  server.fault = undefined;
  const refused = await check({ with: { query: `sum(count_over_time(${APP}[10m]))` } }, { LOKI_URL: `http://127.0.0.1:${await closedPort()}` });
  t.equal(refused.reason, 'refused');
});

t.test('the shipped checklist rows: logs flowing, audit lines, no ERROR lines', async (t) => {
  const shipped = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), ENV);
  if (!shipped.ok) throw new Error(shipped.diagnostics.map(formatDiagnostic).join('\n'));
  const run = (id: string) => runCheck(shipped.checklist.byId.get(id)!, { log, env: ENV });
  const flowing = await run('loki-logs-flowing');
  t.equal(flowing.state, 'pass', flowing.message);
  t.equal(flowing.value, inLast(10 * MIN, isApi));
  t.equal((await run('audit-logs-flowing')).state, 'pass');
  const errors = await run('logs-no-errors');
  t.equal(errors.state, 'fail');
  t.equal(errors.message, 'value == 0 is false (value = 2)');

  // The ERROR lines age out of the 15-minute window: no line matches, which passes.
  for (const l of lines) if (l.line.includes('ERROR')) l.atMs -= 20 * MIN;
  const clean = await run('logs-no-errors');
  t.equal(clean.state, 'pass', clean.message);
  t.equal(clean.message, 'the query returned no series: no log stream matched the selector in the range');

  // The API stops logging: nothing in the last 10 minutes or hour fails, it is not "no errors".
  for (const l of lines) l.atMs -= 2 * 60 * MIN;
  const stopped = await run('loki-logs-flowing');
  t.equal(stopped.state, 'fail');
  t.equal(stopped.reason, 'no-data');
  t.equal((await run('audit-logs-flowing')).state, 'fail');
  t.same(shipped.checklist.byId.get('logs-no-errors')!.dependsOn, ['loki-logs-flowing'], 'logs-no-errors then reports the dependency, not a pass');
});
