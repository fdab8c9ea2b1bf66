// The jaeger probe kind against a local server speaking Jaeger query's HTTP API
// (test/helpers/obs-apis.ts: GET /api/services and GET /api/traces with service, operation,
// tags, start/end in microseconds and limit, in Jaeger's {data, total, limit, offset, errors}
// envelope), since Jaeger is not packaged for Debian 12. Spans are placed in time by the test,
// so "traces within the lookback" is computed, not canned. The server also misbehaves on demand.
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { loadChecklist, loadChecklistFile } from '../../src/config/load.js';
import { formatDiagnostic, type CheckDef } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import jaeger from '../../src/probes/jaeger.js';
import type { Observation } from '../../src/probes/types.js';
import type { RunResult } from '../../src/store/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { loadDocExamples, undocumented } from '../helpers/probe-docs.js';
import { closedPort } from '../helpers/listeners.js';
import { fakeJaeger, type Fault, type FakeSpan } from '../helpers/obs-apis.js';
import { ROOT } from '../helpers/prometheus.js';

const log = pino({ level: 'silent' });
const MIN = 60_000;
const now = Date.now();

const spans: FakeSpan[] = [
  { service: 'offgridflow-api', operation: 'GET /v1/activities', startMs: now - 2 * MIN, tags: { 'http.status_code': '200' } },
  { service: 'offgridflow-api', operation: 'POST /v1/reports', startMs: now - 5 * MIN, tags: { error: true, 'http.status_code': '500' } },
  { service: 'offgridflow-api', operation: 'GET /v1/activities', startMs: now - 40 * MIN },
  { service: 'offgridflow-worker', operation: 'report.generate', startMs: now - 50 * MIN },
];
const server = await fakeJaeger(t, { services: ['offgridflow-api', 'offgridflow-worker', 'jaeger-query'], spans });
const ENV = { JAEGER_URL: server.url };

interface Spec {
  with: Record<string, unknown>;
  expect?: string[];
  onNoData?: 'fail' | 'error' | 'pass';
  timeout?: string;
}

function load(spec: Spec, env: NodeJS.ProcessEnv = ENV): CheckDef {
  const text = YAML.stringify({
    apiVersion: 'readiness/v1',
    checklist: 'jaeger-test',
    targets: { jaeger: { url: '${JAEGER_URL}' } },
    checks: [
      {
        id: 'jaeger-check',
        title: 'Jaeger test check',
        section: 'observability',
        severity: 'medium',
        phase: 'pre-deploy',
        probe: 'jaeger',
        target: 'jaeger',
        with: spec.with,
        ...(spec.expect && { expect: spec.expect }),
        ...(spec.onNoData && { onNoData: spec.onNoData }),
        ...(spec.timeout && { timeout: spec.timeout }),
      },
    ],
  });
  const r = loadChecklist(text, 'jaeger-test.yaml', env);
  if (!r.ok) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.checklist.checks[0]!;
}

const check = (spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<RunResult> => runCheck(load(spec, env), { log, env });

async function observe(spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<Observation> {
  const def = load(spec, env);
  return jaeger.run(def.params as never, makeCtx({ env, timeoutMs: def.timeoutMs }));
}


t.test('docs/probes/jaeger.md documents every parameter and field, and its examples load', async (t) => {
  t.same(undocumented(jaeger), []);
  t.same(loadDocExamples('jaeger'), { diagnostics: [], checks: 2 });
});

t.test('params are validated at load', async (t) => {
  t.throws(() => load({ with: { measure: 'services' } }), /measure services needs "services"/);
  t.throws(() => load({ with: { measure: 'traces' } }), /measure traces needs "service"/);
  t.throws(() => load({ with: { measure: 'traces', service: 'api', lookback: '15 minutes' } }), /lookback "15 minutes" is not a duration such as 15m or 1h/);
  t.throws(() => load({ with: { measure: 'services', services: ['api'], lookback: '1h' } }), /"lookback" does not apply to measure services/);
  t.throws(() => load({ with: { measure: 'spans' } }), /"measure" must be one of services, traces/);
});

t.test('services: the required services are listed', async (t) => {
  const obs = await observe({ with: { measure: 'services', services: ['offgridflow-api', 'offgridflow-worker'] } });
  t.match(obs, { value: 0, fields: { services: 3, missing: 0, missing_services: [], service_names: ['offgridflow-api', 'offgridflow-worker', 'jaeger-query'] } });
  t.equal(obs.message, 'all 2 required services report to Jaeger (3 listed)');
  const r = await check({ with: { measure: 'services', services: ['offgridflow-api', 'offgridflow-web', 'offgridflow-billing'] }, expect: ['missing == 0'] });
  t.equal(r.state, 'fail');
  t.equal(r.reason, 'condition');
  t.equal(r.message, 'services not reporting to Jaeger: offgridflow-web, offgridflow-billing (Jaeger lists offgridflow-api, offgridflow-worker, jaeger-query)');
  t.equal(r.value, 2);
});

t.test('traces: found within the lookback, with errors and the newest age', async (t) => {
  const obs = await observe({ with: { measure: 'traces', service: 'offgridflow-api', lookback: '15m' } });
  t.match(obs, { value: 2, fields: { traces: 2, spans: 2, error_traces: 1 } });
  const age = obs.fields.latest_age_seconds as number;
  t.ok(age >= 119 && age < 140, `newest span ${age}s ago`);
  t.match(obs.message, /^2 traces of offgridflow-api in the last 15m, 1 with errors, newest 1\d\ds ago$/);
  // What Jaeger was asked: the window in microseconds and the default limit.
  const q = server.requests.at(-1)!.query;
  const window = (Number(q.get('end')) - Number(q.get('start'))) / 1e6;
  t.equal(window, 900);
  t.equal(q.get('limit'), '20');
  const r = await check({ with: { measure: 'traces', service: 'offgridflow-api' }, expect: ['traces >= 1', 'error_traces == 0'] });
  t.equal(r.state, 'fail');
  t.match(r.message, 'error_traces == 0 is false (error_traces = 1)');
});

t.test('traces: operation and tag filters', async (t) => {
  const op = await observe({ with: { measure: 'traces', service: 'offgridflow-api', operation: 'POST /v1/reports' } });
  t.equal(op.value, 1);
  t.equal(server.requests.at(-1)!.query.get('operation'), 'POST /v1/reports');
  const tags = await observe({ with: { measure: 'traces', service: 'offgridflow-api', tags: { 'http.status_code': '200' }, lookback: '1h' } });
  t.equal(tags.value, 1);
  t.equal(server.requests.at(-1)!.query.get('tags'), '{"http.status_code":"200"}');
});

t.test('traces: none in the window is no-data, decided by onNoData', async (t) => {
  const spec = { with: { measure: 'traces', service: 'offgridflow-worker', lookback: '15m' }, expect: ['traces >= 1'] };
  const byDefault = await check(spec);
  t.equal(byDefault.state, 'error');
  t.equal(byDefault.reason, 'no-data');
  t.equal(byDefault.message, 'no traces of offgridflow-worker in the last 15m');
  const failing = await check({ ...spec, onNoData: 'fail' });
  t.equal(failing.state, 'fail');
  t.equal(failing.reason, 'no-data');
  const longer = await check({ ...spec, with: { ...spec.with, lookback: '1h' }, onNoData: 'fail' });
  t.equal(longer.state, 'pass', longer.message);
});

t.test('traces: the count stops at the limit, and says so', async (t) => {
  for (let i = 0; i < 30; i++) spans.push({ service: 'offgridflow-batch', operation: 'tick', startMs: now - i * 1000 });
  const obs = await observe({ with: { measure: 'traces', service: 'offgridflow-batch', limit: 25 } });
  t.equal(obs.value, 25);
  t.match(obs.message, /^25 \(the limit\) traces of offgridflow-batch/);
});

t.test('every way Jaeger can answer badly is an error with its reason', async (t) => {
  const cases: [Fault, string, RegExp][] = [
    ['unauthorized', 'auth', /^Jaeger http:\/\/127\.0\.0\.1:\d+\/api\/services: HTTP 401: Unauthorized \(no credentials were sent: set tokenEnv, or usernameEnv and passwordEnv\)$/],
    ['not-found', 'http-status', /HTTP 404: Not found \(is url the Jaeger base URL, with its sub-path\?\)/],
    ['rate-limited', 'rate-limited', /HTTP 429: Too many requests \(Retry-After: 30\)/],
    ['server-error', 'http-status', /HTTP 500: internal error: storage unavailable/],
    ['bad-gateway-html', 'http-status', /HTTP 502: 502 Bad Gateway/],
    ['malformed', 'protocol', /not JSON/],
    ['wrong-shape', 'protocol', /the answer is not a Jaeger services list \(\/data: Expected required property\)/],
    ['reset', 'refused', /\/api\/services: /],
    ['slow', 'timeout', /no complete answer within the check timeout \(300 ms\)/],
  ];
  t.teardown(() => {
    server.fault = undefined;
  });
  for (const [fault, reason, message] of cases) {
    server.fault = fault;
    const r = await check({ with: { measure: 'services', services: ['offgridflow-api'] }, timeout: '300ms' });
    t.equal(r.state, 'error', fault);
    t.equal(r.reason, reason, `${fault}: ${r.message}`);
    t.match(r.message, message, fault);
  }
  server.fault = undefined;
  const refused = await check({ with: { measure: 'services', services: ['offgridflow-api'] } }, { JAEGER_URL: `http://127.0.0.1:${await closedPort()}` });
  t.equal(refused.reason, 'refused');
});

t.test('a token for a Jaeger behind an authenticating proxy', async (t) => {
  const guarded = await fakeJaeger(t, { services: ['offgridflow-api'], spans: [], token: 'jaeger-proxy-token' });
  const env = { JAEGER_URL: guarded.url, JAEGER_TOKEN: 'jaeger-proxy-token' };
  const r = await check({ with: { measure: 'services', services: ['offgridflow-api'], tokenEnv: 'JAEGER_TOKEN' } }, env);
  t.equal(r.state, 'pass', r.message);
  const wrong = await check({ with: { measure: 'services', services: ['offgridflow-api'], tokenEnv: 'JAEGER_TOKEN' } }, { ...env, JAEGER_TOKEN: 'not-the-token' });
  t.equal(wrong.reason, 'auth');
  t.match(wrong.message, '(the token in JAEGER_TOKEN was rejected)');
});

t.test('the shipped checklist rows', async (t) => {
  const shipped = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), ENV);
  if (!shipped.ok) throw new Error(shipped.diagnostics.map(formatDiagnostic).join('\n'));
  const services = shipped.checklist.byId.get('jaeger-services')!;
  const traces = shipped.checklist.byId.get('jaeger-traces-recent')!;
  t.equal((await runCheck(services, { log, env: ENV })).state, 'pass');
  t.equal((await runCheck(traces, { log, env: ENV })).state, 'pass');
  // The API stops sending spans: its newest are now older than 15 minutes.
  for (const s of spans) if (s.service === 'offgridflow-api') s.startMs -= 30 * MIN;
  const stale = await runCheck(traces, { log, env: ENV });
  t.equal(stale.state, 'fail');
  t.equal(stale.reason, 'no-data');
  t.equal(stale.message, 'no traces of offgridflow-api in the last 15m');
  server.services.splice(server.services.indexOf('offgridflow-worker'), 1);
  const gone = await runCheck(services, { log, env: ENV });
  t.equal(gone.state, 'fail');
  t.match(gone.message, 'service not reporting to Jaeger: offgridflow-worker');
});
