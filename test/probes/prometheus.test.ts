// The prometheus probe kind against a real Prometheus 2.42 (Debian's package, started by
// test/helpers/prometheus.ts) scraping local stand-in apps (test/helpers/metrics-app.ts) whose
// error ratio and latency the test sets, a target that refuses connections, and rule files with
// an always-firing Watchdog, an error-ratio alert, an alert stuck in pending, and a group whose
// rule fails at every evaluation (a many-to-many join). Then the "fix": Prometheus is reloaded
// without the dead target and the broken group, and the shipped checklist's Prometheus checks
// (probes/offgridflow.yaml) must pass, then fail again once the app turns bad.
// Checks go through the real loader (validate(), conditions, onNoData) and the real harness.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { loadChecklist, loadChecklistFile } from '../../src/config/load.js';
import { formatDiagnostic, type CheckDef } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import prometheus, { promqlProblems } from '../../src/probes/prometheus.js';
import type { Observation } from '../../src/probes/types.js';
import type { RunResult } from '../../src/store/types.js';
import { makeCtx } from '../helpers/ctx.js';
import { loadDocExamples, undocumented } from '../helpers/probe-docs.js';
import { closedPort, listenHanging } from '../helpers/listeners.js';
import { startMetricsApp } from '../helpers/metrics-app.js';
import { ROOT, startPrometheus } from '../helpers/prometheus.js';
import { removeDir, serviceDir, waitFor } from '../helpers/service.js';

const log = pino({ level: 'silent' });

// ---------------------------------------------------------------------------------------------
// The world: apps, rules, Prometheus
// ---------------------------------------------------------------------------------------------

const GiB = 1024 ** 3;
/** What the "cluster" series report for the app: the shipped monitor checks read these. */
const cluster = { connections: 20, maxConnections: 100, memoryBytes: 0.25 * GiB, memoryLimit: GiB, cpuCores: 0.2, cpuLimit: 1, diskFree: 80 * GiB, diskSize: 100 * GiB };
let cpuSeconds = 0;
let cpuAt = Date.now();

const api = await startMetricsApp(t, { rps: 200, errorRatio: 0, latencySeconds: 0.04 });
const worker = await startMetricsApp(t, { rps: 0, errorRatio: 0, latencySeconds: 0.01 });
const bad = await startMetricsApp(t, { rps: 200, errorRatio: 0.2, latencySeconds: 0.8 });
const deadPort = await closedPort();

// postgres_exporter, cAdvisor, kube-state-metrics and kubelet series, as the api target's extra.
api.extra = () => {
  const now = Date.now();
  cpuSeconds += (cluster.cpuCores * (now - cpuAt)) / 1000;
  cpuAt = now;
  const c = 'namespace="offgridflow",pod="offgridflow-api-7d9f",container="api"';
  return [
    '# TYPE pg_stat_activity_count gauge',
    `pg_stat_activity_count{datname="offgridflow",state="active"} ${cluster.connections / 2}`,
    `pg_stat_activity_count{datname="offgridflow",state="idle"} ${cluster.connections / 2}`,
    '# TYPE pg_settings_max_connections gauge',
    `pg_settings_max_connections ${cluster.maxConnections}`,
    '# TYPE container_memory_working_set_bytes gauge',
    `container_memory_working_set_bytes{${c}} ${cluster.memoryBytes}`,
    `container_memory_working_set_bytes{namespace="offgridflow",pod="offgridflow-api-7d9f",container=""} ${cluster.memoryBytes * 10}`,
    '# TYPE container_cpu_usage_seconds_total counter',
    `container_cpu_usage_seconds_total{${c}} ${cpuSeconds}`,
    '# TYPE kube_pod_container_resource_limits gauge',
    `kube_pod_container_resource_limits{${c},resource="memory",unit="byte"} ${cluster.memoryLimit}`,
    `kube_pod_container_resource_limits{${c},resource="cpu",unit="core"} ${cluster.cpuLimit}`,
    '# TYPE kubelet_volume_stats_available_bytes gauge',
    `kubelet_volume_stats_available_bytes{namespace="offgridflow",persistentvolumeclaim="data-postgres-0"} ${cluster.diskFree}`,
    '# TYPE kubelet_volume_stats_capacity_bytes gauge',
    `kubelet_volume_stats_capacity_bytes{namespace="offgridflow",persistentvolumeclaim="data-postgres-0"} ${cluster.diskSize}`,
  ].join('\n');
};

const rulesDir = serviceDir('prometheus-rules');
t.teardown(() => removeDir(rulesDir));
const appRules = join(rulesDir, 'app.rules.yml');
const brokenRules = join(rulesDir, 'broken.rules.yml');
writeFileSync(
  appRules,
  YAML.stringify({
    groups: [
      {
        name: 'app-alerts',
        rules: [
          { alert: 'Watchdog', expr: 'vector(1)', labels: { severity: 'none' } },
          {
            alert: 'AppHighErrorRate',
            expr: 'sum by (job) (rate(http_requests_total{code=~"5.."}[5s])) / sum by (job) (rate(http_requests_total[5s])) > 0.1',
            labels: { severity: 'critical' },
          },
          // Never fires within a test: it stays pending.
          { alert: 'SlowBurn', expr: 'vector(1)', for: '1h', labels: { severity: 'warning' } },
        ],
      },
    ],
  }),
);
// Both sides have two series per job (code 200 and 500): "many-to-many matching not allowed"
// at every evaluation, so the rule's health is err with lastError set.
writeFileSync(brokenRules, YAML.stringify({ groups: [{ name: 'broken-joins', rules: [{ record: 'job:http_requests:joined', expr: 'http_requests_total * on (job) http_requests_total' }] }] }));
const shippedRules = join(ROOT, 'alerts/readiness.rules.yml');

const appJobs = [
  { job_name: 'offgridflow-api', honor_labels: true, static_configs: [{ targets: [api.address], labels: { namespace: 'offgridflow' } }] },
  { job_name: 'offgridflow-worker', honor_labels: true, static_configs: [{ targets: [worker.address], labels: { namespace: 'offgridflow' } }] },
];
const prom = await startPrometheus(t, {
  ruleFiles: [appRules, brokenRules, shippedRules],
  scrapeConfigs: [...appJobs, { job_name: 'bad', static_configs: [{ targets: [bad.address] }] }, { job_name: 'dead', static_configs: [{ targets: [`127.0.0.1:${deadPort}`] }] }],
});
const ENV = { PROMETHEUS_URL: prom.url };

// ---------------------------------------------------------------------------------------------
// Loading and running checks
// ---------------------------------------------------------------------------------------------

interface Spec {
  with: Record<string, unknown>;
  expect?: string[];
  onNoData?: 'fail' | 'error' | 'pass';
  timeout?: string;
}

function checklistText(...specs: Spec[]): string {
  return YAML.stringify({
    apiVersion: 'readiness/v1',
    checklist: 'prometheus-test',
    targets: { prometheus: { url: '${PROMETHEUS_URL}' } },
    checks: specs.map((s, i) => ({
      id: `prom-check-${i}`,
      title: 'Prometheus test check',
      section: 'observability',
      severity: 'high',
      phase: 'monitor',
      probe: 'prometheus',
      target: 'prometheus',
      with: s.with,
      ...(s.expect && { expect: s.expect }),
      ...(s.onNoData && { onNoData: s.onNoData }),
      ...(s.timeout && { timeout: s.timeout }),
    })),
  });
}

function load(spec: Spec, env: NodeJS.ProcessEnv = ENV): CheckDef {
  const r = loadChecklist(checklistText(spec), 'prometheus-test.yaml', env);
  if (!r.ok) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.checklist.checks[0]!;
}

function loadErrors(...specs: Spec[]): string[] {
  const r = loadChecklist(checklistText(...specs), 'prometheus-test.yaml', ENV);
  return r.ok ? [] : r.diagnostics.map(formatDiagnostic);
}

const check = (spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<RunResult> => runCheck(load(spec, env), { log, env });

async function observe(spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<Observation> {
  const def = load(spec, env);
  return prometheus.run(def.params as never, makeCtx({ env, timeoutMs: def.timeoutMs }));
}

/** Runs the check until `done` holds (Prometheus needs scrapes and evaluations first); the last result either way. */
async function until(spec: Spec | CheckDef, done: (r: RunResult) => boolean, timeoutMs = 20_000): Promise<RunResult> {
  const def = 'id' in spec ? spec : load(spec);
  let last: RunResult | undefined;
  try {
    await waitFor(
      `check ${def.id}`,
      async () => {
        last = await runCheck(def, { log, env: ENV });
        return done(last) ? last : undefined;
      },
      { timeoutMs, everyMs: 250 },
    );
  } catch {
    // The caller's assertions show what the last run said.
  }
  return last!;
}

const ERROR_RATIO = (job: string) => `sum(rate(http_requests_total{job="${job}",code=~"5.."}[5s])) / sum(rate(http_requests_total{job="${job}"}[5s]))`;
const P95 = (job: string) => `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="${job}"}[5s])))`;

// Every scrape job has data for rate() (two scrapes) and every rule group has been evaluated.
await waitFor(
  'two scrapes of every app',
  async () => ((await prom.query('count(count_over_time(up[1m]) >= 2)'))[0]?.value[1] === '4' ? true : undefined),
  { timeoutMs: 25_000, everyMs: 200 },
);
await prom.waitForRuleEvaluation();

// ---------------------------------------------------------------------------------------------
// Load-time validation
// ---------------------------------------------------------------------------------------------


t.test('docs/probes/prometheus.md documents every parameter and field, and its examples load', async (t) => {
  t.same(undocumented(prometheus), []);
  t.same(loadDocExamples('prometheus'), { diagnostics: [], checks: 8 });
});

t.test('PromQL is validated at load, with the position of the error inside the query', async (t) => {
  const errors = loadErrors(
    { with: { measure: 'query', query: 'sum(rate(http_requests_total[5m])' } },
    { with: { measure: 'query', query: 'rate(http_requests_total{code="500"}[5x])' } },
    { with: { measure: 'query', query: 'http_requests_total[5m]' } },
    { with: { measure: 'query', query: 'rate(http_requests_total)' } },
    { with: { measure: 'query', query: 'sum(\n  rat(http_requests_total[5m])\n)' } },
    { with: { measure: 'targets', query: 'up' } },
    { with: { measure: 'query' } },
    { with: { measure: 'alerts', matchers: ['severity=~"crit'] } },
    { with: { measure: 'query', query: 'up', reduce: 'avg' } },
  );
  t.equal(errors.length, 9, errors.join('\n'));
  t.match(errors[0], /prometheus-test\.yaml:\d+:\d+: query: PromQL syntax error at column 34: unexpected end of the query after "sum\(rate\(http_requests_total\[5m\]\)"/);
  t.match(errors[1], /query: PromQL syntax error at column 39: unexpected "x" after ".*requests_total\{code=\\"500\\"\}\[5"/);
  t.match(errors[2], /query: the query returns a range vector \("http_requests_total\[5m\]"\)/);
  t.match(errors[3], /query: rate\(\) at column 1 needs a range vector, got "http_requests_total": add a range such as \[5m\]/);
  t.match(errors[4], /query: PromQL syntax error at line 2, column 6: unexpected "\(" \("rat" is not a PromQL function\)/);
  t.match(errors[5], /"query" does not apply to measure targets; it takes "jobs", "ignoreJobs", "maxDown"/);
  t.match(errors[6], /measure query needs "query"/);
  t.match(errors[7], /matchers\[0\]: matcher value has no closing double quote/);
  t.match(errors[8], /"reduce" must be one of single, max, min, sum, count, empty/);
  // The shipped checklist's queries all parse.
  const shipped = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), {});
  t.ok(shipped.ok, shipped.ok ? 'shipped checklist loads' : shipped.diagnostics.map(formatDiagnostic).join('\n'));
});

t.test('the url holds no credentials and credentials come from named environment variables', async (t) => {
  const errors = loadErrors(
    { with: { measure: 'targets', url: 'http://admin:hunter22@prometheus:9090' } },
    { with: { measure: 'targets', tokenEnv: 'PROM_TOKEN', usernameEnv: 'PROM_USER', passwordEnv: 'PROM_PASSWORD' } },
    { with: { measure: 'targets', usernameEnv: 'PROM_USER' } },
  );
  t.equal(errors.length, 3, errors.join('\n'));
  t.match(errors[0], /url carries user:password: put the credentials in environment variables named by usernameEnv and passwordEnv/);
  t.notMatch(errors.join('\n'), /hunter22/);
  t.match(errors[1], /set either tokenEnv or usernameEnv\/passwordEnv, not both/);
  t.match(errors[2], /usernameEnv and passwordEnv go together/);

  const r = await check({ with: { measure: 'targets', tokenEnv: 'PROM_TOKEN' } });
  t.equal(r.state, 'error');
  t.equal(r.reason, 'unconfigured');
  t.match(r.message, 'environment variable PROM_TOKEN (tokenEnv) is not set');
  const withToken = await check({ with: { measure: 'targets', tokenEnv: 'PROM_TOKEN', ignoreJobs: ['dead'] } }, { ...ENV, PROM_TOKEN: 'tok-123456' });
  t.equal(withToken.state, 'pass', withToken.message);
});

t.test('promqlProblems accepts the PromQL the checklist lines need', async (t) => {
  for (const q of [
    '100 * (sum(rate(http_requests_total{code=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total[5m]))',
    'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))',
    'max_over_time(up[10m:1m])',
    'quantile_over_time(0.9, up[5m])',
    'count(ALERTS{alertstate="firing"}) or vector(0)',
    'kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes',
  ]) {
    t.same(promqlProblems(q), [], q);
  }
});

// ---------------------------------------------------------------------------------------------
// query
// ---------------------------------------------------------------------------------------------

t.test('query: the error ratio the app serves is the value', async (t) => {
  const good = await until({ with: { measure: 'query', query: ERROR_RATIO('offgridflow-api') }, expect: ['value < 0.01'] }, (r) => r.state === 'pass');
  t.equal(good.state, 'pass', good.message);
  t.equal(good.value, 0);
  const failing = await check({ with: { measure: 'query', query: ERROR_RATIO('bad') }, expect: ['value < 0.01'] });
  t.equal(failing.state, 'fail');
  t.equal(failing.reason, 'condition');
  t.ok(Math.abs(failing.value! - 0.2) < 0.02, `error ratio ${failing.value}`);
  t.match(failing.message, /value < 0.01 is false \(value = 0\.[12]/);
});

t.test('query: p95 latency from the histogram', async (t) => {
  const fast = await check({ with: { measure: 'query', query: P95('offgridflow-api') }, expect: ['value < 0.5'] });
  t.equal(fast.state, 'pass', fast.message);
  // Every request takes 40ms: the 0.05 bucket, interpolated to 0.95 x 0.05.
  t.ok(Math.abs(fast.value! - 0.0475) < 0.001, `p95 ${fast.value}`);
  const slow = await check({ with: { measure: 'query', query: P95('bad') }, expect: ['value < 0.5'] });
  t.equal(slow.state, 'fail', slow.message);
  t.ok(slow.value! > 0.9 && slow.value! <= 1, `p95 ${slow.value}`);
});

t.test('query: vectors reduced with max, min, sum, count; the sample labels are fields', async (t) => {
  const min = await observe({ with: { measure: 'query', query: 'up', reduce: 'min' } });
  t.equal(min.value, 0);
  t.match(min.fields, { series: 4, labels: { job: 'dead', instance: `127.0.0.1:${deadPort}` } });
  t.match(min.message, `value 0 at up{instance="127.0.0.1:${deadPort}", job="dead"} (min of 4 series)`);
  const max = await observe({ with: { measure: 'query', query: 'up', reduce: 'max' } });
  t.equal(max.value, 1);
  t.equal(await (await observe({ with: { measure: 'query', query: 'up', reduce: 'sum' } })).value, 3);
  t.equal((await observe({ with: { measure: 'query', query: 'up', reduce: 'count' } })).value, 4);
  // Conditions can use the labels.
  const r = await check({ with: { measure: 'query', query: 'up', reduce: 'min' }, expect: ['value == 1', 'labels.job != "dead"'] });
  t.equal(r.state, 'fail');
  t.match(r.message, /value == 1 is false \(value = 0\); labels.job != "dead" is false/);
});

t.test('query: several series without reduce is an error naming them', async (t) => {
  const r = await check({ with: { measure: 'query', query: 'up' } });
  t.equal(r.state, 'error');
  t.match(r.message, /the query returned 4 series where one was expected \(up\{.*\}.* and 1 more\): aggregate it \(sum, max\) or set reduce/);
});

t.test('query: an empty vector is no-data, decided by onNoData (never a silent pass)', async (t) => {
  const q = { measure: 'query', query: 'up{job="no-such-job"}' };
  const byDefault = await check({ with: q, expect: ['value == 1'] });
  t.equal(byDefault.state, 'error');
  t.equal(byDefault.reason, 'no-data');
  t.match(byDefault.message, 'the query returned an empty vector (no series matched)');
  t.equal((await check({ with: q, onNoData: 'fail' })).state, 'fail');
  t.equal((await check({ with: q, onNoData: 'pass' })).state, 'pass');
  // count of nothing is a real 0, not no data.
  const count = await check({ with: { ...q, reduce: 'count' }, expect: ['value == 0'] });
  t.equal(count.state, 'pass', count.message);
  t.equal(count.value, 0);
});

t.test('query: NaN (0/0, an error ratio with no traffic) is no-data', async (t) => {
  const r = await check({ with: { measure: 'query', query: ERROR_RATIO('offgridflow-worker') }, expect: ['value < 0.01'] });
  t.equal(r.state, 'error');
  t.equal(r.reason, 'no-data');
  t.match(r.message, 'the query returned NaN (0/0: e.g. an error ratio with no requests in the window)');
});

t.test('query: reduce empty requires no series and names the ones there are', async (t) => {
  const down = await check({ with: { measure: 'query', query: 'up == 0', reduce: 'empty' } });
  t.equal(down.state, 'fail');
  t.equal(down.reason, 'condition');
  t.match(down.message, `the query returned 1 series where none were expected: up{instance="127.0.0.1:${deadPort}", job="dead"} = 0`);
  const none = await check({ with: { measure: 'query', query: 'up{job="offgridflow-api"} == 0', reduce: 'empty' } });
  t.equal(none.state, 'pass', none.message);
  t.equal(none.value, 0);
});

t.test('query: an expression Prometheus rejects at run time is an error with its explanation', async (t) => {
  const r = await check({ with: { measure: 'query', query: 'http_requests_total * on (job) http_requests_total' } });
  t.equal(r.state, 'error');
  t.equal(r.reason, 'http-status');
  t.match(r.message, /Prometheus http:\/\/127\.0\.0\.1:\d+\/api\/v1\/query: HTTP 422: execution: .*many-to-many matching not allowed/);
});

// ---------------------------------------------------------------------------------------------
// targets
// ---------------------------------------------------------------------------------------------

t.test('targets: a down target fails the check and is named with its scrape error', async (t) => {
  const obs = await observe({ with: { measure: 'targets' } });
  t.match(obs.fields, { targets: 4, up: 3, down: 1, missing: 0 });
  t.match(obs.failure, { reason: 'condition', message: new RegExp(`1 of 4 targets down: dead 127\\.0\\.0\\.1:${deadPort}: .*connection refused`) });
  const r = await check({ with: { measure: 'targets' }, expect: ['down == 0'] });
  t.equal(r.state, 'fail');
  t.equal(r.value, 1);
});

t.test('targets: required jobs must have an active target', async (t) => {
  const r = await check({ with: { measure: 'targets', jobs: ['offgridflow-api', 'offgridflow-web'], ignoreJobs: ['dead'] } });
  t.equal(r.state, 'fail');
  t.match(r.message, 'required job with no active target: offgridflow-web');
  t.notMatch(r.message, 'offgridflow-api');
});

t.test('targets: ignoreJobs and maxDown', async (t) => {
  const ignored = await check({ with: { measure: 'targets', jobs: ['offgridflow-api', 'offgridflow-worker'], ignoreJobs: ['dead'] }, expect: ['down == 0', 'missing == 0'] });
  t.equal(ignored.state, 'pass', ignored.message);
  t.match(ignored.message, '3 of 3 targets up in 3 jobs');
  const tolerated = await check({ with: { measure: 'targets', maxDown: 1 } });
  t.equal(tolerated.state, 'pass', tolerated.message);
  t.match(tolerated.message, /3 of 4 targets up in 4 jobs, 1 down \(tolerated\): dead/);
});

// ---------------------------------------------------------------------------------------------
// rules
// ---------------------------------------------------------------------------------------------

t.test('rules: a group whose rule fails to evaluate fails the check, named with the error', async (t) => {
  // The join fails only once both sides have series: wait for an evaluation after the scrapes.
  await until({ with: { measure: 'rules' } }, (r) => /broken-joins/.test(r.message));
  const obs = await observe({ with: { measure: 'rules', alerts: ['Watchdog', 'AppHighErrorRate'] } });
  t.match(obs.fields, { errors: 1, missing: 0, failing_groups: ['broken-joins'] });
  t.ok((obs.fields.groups as number) >= 3, 'app, broken and shipped groups');
  t.match(obs.failure?.message, /1 rule failing to evaluate in group broken-joins: job:http_requests:joined: .*many-to-many matching not allowed/);
  const r = await check({ with: { measure: 'rules' }, expect: ['errors == 0'] });
  t.equal(r.state, 'fail');
});

t.test('rules: required alerts must be loaded', async (t) => {
  const obs = await observe({ with: { measure: 'rules', alerts: ['Watchdog', 'DatabaseDown', 'ReadinessCheckStale'] } });
  t.match(obs.fields, { missing: 1, missing_alerts: ['DatabaseDown'] });
  t.match(obs.failure?.message, /^alert not loaded: DatabaseDown; 1 rule failing/);
});

// ---------------------------------------------------------------------------------------------
// alerts
// ---------------------------------------------------------------------------------------------

t.test('alerts: a firing alert fails the check and is named with its labels', async (t) => {
  const r = await until({ with: { measure: 'alerts' }, expect: ['firing == 0'] }, (x) => x.state === 'fail' && /AppHighErrorRate/.test(x.message));
  t.equal(r.state, 'fail');
  t.match(r.message, '1 alert firing (ignoring Watchdog, InfoInhibitor): AppHighErrorRate{job="bad", severity="critical"}');
  t.equal(r.value, 1);
});

t.test('alerts: matchers scope the alerts; Watchdog is excluded unless ignoreAlerts says otherwise', async (t) => {
  const api = await check({ with: { measure: 'alerts', matchers: ['job="offgridflow-api"'] } });
  t.equal(api.state, 'pass', api.message);
  const watchdog = await check({ with: { measure: 'alerts', matchers: ['alertname="Watchdog"'] } });
  t.equal(watchdog.state, 'pass', watchdog.message);
  const counted = await check({ with: { measure: 'alerts', matchers: ['alertname="Watchdog"'], ignoreAlerts: [] } });
  t.equal(counted.state, 'fail');
  t.match(counted.message, 'Watchdog{severity="none"}');
});

t.test('alerts: pending alerts count only with includePending', async (t) => {
  const obs = await observe({ with: { measure: 'alerts', matchers: ['alertname="SlowBurn"'] } });
  t.match(obs.fields, { firing: 0, pending: 1 });
  t.match(obs.message, 'no alerts firing (matching alertname="SlowBurn", ignoring Watchdog, InfoInhibitor); 1 pending: SlowBurn');
  const r = await check({ with: { measure: 'alerts', matchers: ['alertname="SlowBurn"'], includePending: true } });
  t.equal(r.state, 'fail');
  t.match(r.message, 'SlowBurn{severity="warning"} (pending)');
});

// ---------------------------------------------------------------------------------------------
// Prometheus itself unreachable
// ---------------------------------------------------------------------------------------------

t.test('a refused connection and a Prometheus that never answers are errors', async (t) => {
  const refused = await check({ with: { measure: 'targets', url: `http://127.0.0.1:${await closedPort()}` } });
  t.equal(refused.state, 'error');
  t.equal(refused.reason, 'refused');
  const hanging = await listenHanging();
  t.teardown(() => hanging.close());
  const slow = await observe({ with: { measure: 'targets', url: `http://127.0.0.1:${hanging.port}` }, timeout: '300ms' });
  t.match(slow.error, { reason: 'timeout', message: /Prometheus http:\/\/127\.0\.0\.1:\d+\/api\/v1\/targets: no complete answer within the check timeout \(300 ms\)/ });
});

// ---------------------------------------------------------------------------------------------
// The fix, then the shipped checklist's Prometheus checks
// ---------------------------------------------------------------------------------------------

t.test('after the fix (dead target and broken group removed), the shipped Prometheus checks pass, then fail when the app turns bad', async (t) => {
  const config = YAML.parse(readFileSync(prom.configFile, 'utf8')) as Record<string, unknown>;
  config.scrape_configs = appJobs;
  config.rule_files = [appRules, shippedRules];
  writeFileSync(prom.configFile, YAML.stringify(config));
  await prom.reload();

  const loaded = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), ENV);
  if (!loaded.ok) throw new Error(loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const ids = ['prometheus-targets-up', 'prometheus-rules-loaded', 'postgres-disk-free', 'monitor-error-rate', 'monitor-latency-p95', 'monitor-db-connections', 'monitor-memory', 'monitor-cpu', 'monitor-no-alerts'];
  const defs = ids.map((id) => loaded.checklist.byId.get(id)!);
  t.same(
    defs.map((d) => d.kind),
    ids.map(() => 'prometheus'),
  );

  for (const def of defs) {
    const r = await until(def, (x) => x.state === 'pass');
    t.equal(r.state, 'pass', `${def.id}: ${r.message}`);
  }
  const values: Record<string, number> = Object.fromEntries(await Promise.all(defs.map(async (d) => [d.id, (await runCheck(d, { log, env: ENV })).value ?? NaN])));
  t.match(values, { 'prometheus-targets-up': 0, 'postgres-disk-free': 80, 'monitor-error-rate': 0, 'monitor-db-connections': 20, 'monitor-memory': 25 });
  // rate() over [5m] of a counter younger than 5m divides its increase by the whole 5m
  // (Prometheus's extrapolation), so here the CPU share reads lower than 20%; the burst
  // below is sized for that.
  t.ok(values['monitor-cpu']! > 0 && values['monitor-cpu']! < 20, `cpu ${values['monitor-cpu']}`);
  t.ok(values['monitor-latency-p95']! < 0.05, `p95 ${values['monitor-latency-p95']}`);

  // The app turns bad: 30% errors, 800ms per request, connections, memory, CPU and disk high.
  api.set({ errorRatio: 0.3, latencySeconds: 0.8 });
  Object.assign(cluster, { connections: 90, memoryBytes: 0.9 * GiB, cpuCores: 100, diskFree: 30 * GiB });
  const expected: Record<string, RegExp> = {
    'postgres-disk-free': /value > 50 is false \(value = 30\)/,
    'monitor-error-rate': /value < 1 is false/,
    'monitor-latency-p95': /value < 0.5 is false/,
    'monitor-db-connections': /value < 80 is false \(value = 90\)/,
    'monitor-memory': /value < 80 is false \(value = 90\)/,
    'monitor-cpu': /value < 70 is false/,
    'monitor-no-alerts': /1 alert firing \(matching severity=~"critical\|warning", origin!="readiness-exporter", ignoring Watchdog, InfoInhibitor\): AppHighErrorRate\{job="offgridflow-api", severity="critical"\}/,
  };
  for (const def of defs.filter((d) => expected[d.id])) {
    const r = await until(def, (x) => x.state === 'fail');
    t.equal(r.state, 'fail', `${def.id}: ${r.message}`);
    t.match(r.message, expected[def.id]!, def.id);
  }
});
