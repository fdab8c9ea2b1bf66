// The shipped Grafana dashboards: the committed JSON is what dashboards/src/*.ts generates,
// every query goes through the datasource variable, parses, selects only declared metrics and
// labels, runs on a real Prometheus and returns data from contract-shaped series, and the
// post-deploy panels draw the same limits the alerts fire on.
import t from 'tap';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import YAML from 'yaml';
import { DASHBOARDS, renderDashboards } from '../dashboards/src/index.js';
import { POST_DEPLOY_THRESHOLDS, RUNBOOK_BASE } from '../dashboards/src/common.js';
import { PROMETHEUS_RULE_FILE, RULES_FILE } from '../scripts/gen-dashboards.js';
import { runCommand } from './helpers/service.js';
import { APP_METRICS, CONTRACT_METRICS, PROMTOOL_BIN, PROPOSED_METRICS, ROOT, TARGET_LABELS, metricProblems, startPrometheus, substituteGrafanaVariables } from './helpers/prometheus.js';

/** The parts of Grafana's dashboard JSON these tests read. */
interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults?: { thresholds?: { steps: { value: number | null; color: string }[] }; custom?: { thresholdsStyle?: { mode: string } } }; overrides?: unknown[] };
  transformations?: { id: string }[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { type: string; name: string; query?: string | { query: string }; datasource?: { uid?: string } }[] };
  annotations: { list?: { name: string; expr?: string; datasource?: { uid?: string }; useValueForTime?: boolean }[] };
}

const committed = new Map(DASHBOARDS.map((d) => [d.file, JSON.parse(readFileSync(join(ROOT, d.file), 'utf8')) as Dashboard]));
const overview = committed.get('dashboards/readiness-overview.json') as Dashboard;
const postDeploy = committed.get('dashboards/post-deploy-monitoring.json') as Dashboard;

function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL query of a dashboard: panel targets and annotations. */
function queries(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d)) for (const q of p.targets ?? []) if (q.expr) out.push({ where: `${d.title} / ${p.title} / ${q.refId}`, expr: q.expr });
  for (const a of d.annotations.list ?? []) if (a.expr) out.push({ where: `${d.title} / annotation ${a.name}`, expr: a.expr });
  return out;
}

/** Query variables as [metric selector, label] from `label_values(selector, label)`. */
function labelValueVariables(d: Dashboard): { name: string; selector: string; label: string }[] {
  return d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
      return { name: v.name, selector: m?.[1] ?? q, label: m?.[2] ?? '' };
    });
}

t.test('the committed JSON is what the generator produces', async (t) => {
  for (const [file, text] of renderDashboards()) {
    t.equal(readFileSync(join(ROOT, file), 'utf8'), text, `${file} is up to date (npm run dashboards)`);
  }
  const r = await runCommand(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/gen-dashboards.ts'), '--check'], { timeoutMs: 60_000 });
  t.equal(r.code, 0, `gen-dashboards --check: ${r.stdout}${r.stderr}`);
});

t.test('the generator check fails when a dashboard was edited by hand', async (t) => {
  // A scratch checkout: the generated files as committed, one of them edited.
  const root = mkdtempSync(join(tmpdir(), 'readiness-checkout-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const f of [RULES_FILE, ...DASHBOARDS.map((d) => d.file), PROMETHEUS_RULE_FILE]) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    copyFileSync(join(ROOT, f), join(root, f));
  }
  const gen = ['--import', 'tsx', join(ROOT, 'scripts/gen-dashboards.ts'), '--check', `--root=${root}`];
  t.equal((await runCommand(process.execPath, gen, { timeoutMs: 60_000 })).code, 0, 'the unedited copy passes');
  const file = DASHBOARDS[0]?.file ?? '';
  writeFileSync(join(root, file), readFileSync(join(root, file), 'utf8').replace('"Readiness overview"', '"Readiness overview (edited)"'));
  const r = await runCommand(process.execPath, gen, { timeoutMs: 60_000 });
  t.equal(r.code, 1, 'exit 1');
  t.match(r.stderr, `${file} is out of date`);
});

t.test('every query goes through the datasource variable; no uid is hard-coded', async (t) => {
  for (const d of committed.values()) {
    const ds = d.templating.list.find((v) => v.type === 'datasource');
    t.equal(ds?.name, 'datasource', `${d.title}: has a datasource variable`);
    t.equal(ds?.query, 'prometheus', `${d.title}: it lists Prometheus datasources`);
    // Every datasource reference anywhere in the JSON is the variable.
    const refs: unknown[] = [];
    JSON.stringify(d, (k, v: unknown) => {
      if (k === 'datasource') refs.push(v);
      return v;
    });
    t.ok(refs.length > 0);
    t.same([...new Set(refs.map((r) => JSON.stringify(r)))], [JSON.stringify({ type: 'prometheus', uid: '${datasource}' })], `${d.title}: only \${datasource}`);
    const uids: unknown[] = [];
    JSON.stringify(d, (k, v: unknown) => {
      if (k === 'uid') uids.push(v);
      return v;
    });
    t.same(uids.filter((u) => u !== '${datasource}'), [d.uid], `${d.title}: the only other uid is the dashboard's own`);
  }
});

t.test('every PromQL expression parses and uses only declared metrics and labels', async (t) => {
  for (const d of committed.values()) {
    for (const q of queries(d)) t.same(metricProblems(substituteGrafanaVariables(q.expr)), [], q.where);
    for (const v of labelValueVariables(d)) {
      t.same(metricProblems(substituteGrafanaVariables(v.selector)), [], `${d.title} / variable ${v.name}`);
      const metric = /^\w+/.exec(v.selector)?.[0] ?? '';
      const labels = CONTRACT_METRICS[metric] ?? PROPOSED_METRICS[metric] ?? APP_METRICS[metric] ?? [];
      t.ok(labels.includes(v.label) || TARGET_LABELS.includes(v.label), `${d.title} / variable ${v.name}: ${metric} has label ${v.label}`);
    }
  }

  // promtool's parser is Prometheus's own (with type checking): every query as a recording rule.
  const rules = [...committed.values()].flatMap((d) => queries(d)).map((q, i) => ({ record: `dashboard:query_${i}`, expr: substituteGrafanaVariables(q.expr) }));
  const dir = mkdtempSync(join(tmpdir(), 'readiness-dashboards-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'queries.yml'), YAML.stringify({ groups: [{ name: 'dashboards', rules }] }));
  const r = await runCommand(PROMTOOL_BIN, ['check', 'rules', join(dir, 'queries.yml')]);
  t.equal(r.code, 0, `promtool check rules on every dashboard query: ${r.stdout}${r.stderr}`);
});

t.test('readiness overview: gate per phase, passing per section, every check, failing over time', async (t) => {
  const panels = allPanels(overview);
  const exprsOf = (p: Panel) => (p.targets ?? []).map((q) => q.expr ?? '').join('\n');
  const find = (title: string) => panels.find((p) => p.title === title);

  t.match(exprsOf(find('Ready per phase') as Panel), /by \(phase\) \(readiness_ready\{/, 'ready / not ready per phase');
  t.match(exprsOf(find('Ready (whole gate)') as Panel), 'phase="all"');
  t.match(exprsOf(find('Passing per section') as Panel), /sum by \(section\).*readiness_check_passing/);

  const table = find('Every check') as Panel;
  t.equal(table.type, 'table');
  const e = exprsOf(table);
  for (const m of ['readiness_check_passing', 'readiness_check_state', 'readiness_check_value', 'readiness_check_failure_info', 'readiness_check_last_run_timestamp_seconds']) {
    t.match(e, m, `the table shows ${m}`);
  }
  t.same(table.transformations?.map((x) => x.id), ['merge', 'organize'], 'one row per check');
  t.match(JSON.stringify(table.fieldConfig?.overrides), `${RUNBOOK_BASE}/checks/\${__value.raw}`, 'the check links its runbook, as the alerts do');

  const trend = panels.filter((p) => ['timeseries', 'state-timeline'].includes(p.type) && /readiness_check_passing/.test(exprsOf(p)));
  t.ok(trend.length >= 2, 'failing checks over time: by severity and per check');
});

t.test('post-deploy monitoring: the T+2h limits, drawn and equal to the alert thresholds', async (t) => {
  const rules = (YAML.parse(readFileSync(join(ROOT, RULES_FILE), 'utf8')) as { groups: { rules: { alert?: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
  for (const th of Object.values(POST_DEPLOY_THRESHOLDS)) {
    const panel = allPanels(postDeploy).find((p) => p.title === th.title);
    t.equal(panel?.type, 'timeseries', `${th.title}: a time series`);
    const steps = panel?.fieldConfig?.defaults?.thresholds?.steps ?? [];
    t.same(steps.map((s) => s.value), [null, th.limit], `${th.title}: limit ${th.limit} is the threshold`);
    t.not(panel?.fieldConfig?.defaults?.custom?.thresholdsStyle?.mode ?? 'off', 'off', `${th.title}: the limit is drawn`);
    const rule = rules.find((r) => r.alert === th.alert);
    t.ok(rule, `${th.alert} exists`);
    t.equal(Number(/>\s*([0-9.]+)\s*$/.exec(rule?.expr ?? '')?.[1]), th.limit, `${th.alert} fires above the same limit`);
  }
  const deployments = postDeploy.annotations.list?.find((a) => a.name === 'Deployments');
  t.match(deployments?.expr, 'readiness_deployment_timestamp_seconds', 'deployment markers come from the exporter');
  t.equal(deployments?.useValueForTime, true, 'placed at the deployment time, not the scrape time');
  t.ok(
    allPanels(postDeploy).some((p) => (p.targets ?? []).some((q) => q.expr?.includes('readiness_rollback_recommended'))),
    'the rollback recommendation is shown',
  );
});

// ---------------------------------------------------------------------------------------------
// On a real Prometheus: contract-shaped series from two exporter replicas, and app metrics.
// ---------------------------------------------------------------------------------------------

const started = Date.now() / 1000;
const STATES = ['pass', 'warn', 'fail', 'error', 'stale', 'pending', 'unconfigured'];
const CHECKS = [
  { check: 'tls-api-expiry', section: 'configuration', severity: 'critical', phase: 'pre-deploy', state: 'fail', reason: 'condition', value: 20 },
  { check: 'health-ready', section: 'verify', severity: 'high', phase: 'verify', state: 'pass', value: 200 },
  { check: 'monitor-error-rate', section: 'monitor', severity: 'critical', phase: 'monitor', state: 'error', reason: 'no-data' },
];

/** What one exporter replica exposes (both replicas serve the same shared state). */
function exporterMetrics(): string {
  const now = Date.now() / 1000;
  const l = (o: Record<string, string>) => `{${Object.entries(o).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
  const lines = ['# TYPE readiness_check_passing gauge'];
  for (const c of CHECKS) lines.push(`readiness_check_passing${l({ check: c.check, section: c.section, severity: c.severity, phase: c.phase })} ${['pass', 'warn'].includes(c.state) ? 1 : 0}`);
  lines.push('# TYPE readiness_check_state gauge');
  for (const c of CHECKS) for (const s of STATES) lines.push(`readiness_check_state${l({ check: c.check, state: s })} ${s === c.state ? 1 : 0}`);
  lines.push('# TYPE readiness_check_failure_info gauge');
  for (const c of CHECKS) if (c.reason) lines.push(`readiness_check_failure_info${l({ check: c.check, reason: c.reason })} 1`);
  lines.push('# TYPE readiness_check_value gauge');
  for (const c of CHECKS) if (c.value !== undefined) lines.push(`readiness_check_value${l({ check: c.check })} ${c.value}`);
  for (const [m, v] of [
    ['readiness_check_last_run_timestamp_seconds', now - 5],
    ['readiness_check_last_pass_timestamp_seconds', now - 3600],
    ['readiness_check_interval_seconds', 60],
    ['readiness_check_duration_seconds', 0.25],
  ] as const) {
    lines.push(`# TYPE ${m} gauge`);
    for (const c of CHECKS) lines.push(`${m}${l({ check: c.check })} ${v}`);
  }
  lines.push('# TYPE readiness_check_runs_total counter');
  for (const c of CHECKS) lines.push(`readiness_check_runs_total${l({ check: c.check, result: c.state })} ${Math.floor(now - started) + 1}`);
  lines.push('# TYPE readiness_ready gauge');
  for (const [phase, v] of [['all', 0], ['pre-deploy', 0], ['deploy', 1], ['verify', 1], ['monitor', 0], ['post-deploy', 1]] as const) lines.push(`readiness_ready${l({ phase })} ${v}`);
  lines.push('# TYPE readiness_check_info gauge');
  for (const c of CHECKS) lines.push(`readiness_check_info${l({ check: c.check, probe: 'http', notify: c.phase === 'pre-deploy' ? 'page' : 'rollback', expect: 'value > 1' })} 1`);
  lines.push('# TYPE readiness_rollback_recommended gauge', 'readiness_rollback_recommended 1');
  lines.push('# TYPE readiness_deployment_window_open gauge', 'readiness_deployment_window_open 1');
  lines.push('# TYPE readiness_deployment_info gauge', 'readiness_deployment_info{version="1.4.2"} 1');
  lines.push('# TYPE readiness_build_info gauge', 'readiness_build_info{version="0.1.0",checklist="dashboards-test"} 1');
  lines.push('# TYPE readiness_deployment_timestamp_seconds gauge', `readiness_deployment_timestamp_seconds ${Math.floor(started - 600)}`);
  return `${lines.join('\n')}\n`;
}

/** The app, postgres_exporter, cAdvisor and kube-state-metrics series the post-deploy panels read. */
function appMetrics(): string {
  const n = Math.floor((Date.now() / 1000 - started) * 10) + 1;
  const c = 'namespace="offgridflow",pod="api-0",container="api"';
  return `${[
    '# TYPE http_requests_total counter',
    `http_requests_total{method="GET",code="200"} ${n * 100}`,
    `http_requests_total{method="GET",code="500"} ${n}`,
    '# TYPE http_request_duration_seconds histogram',
    `http_request_duration_seconds_bucket{le="0.1"} ${n * 80}`,
    `http_request_duration_seconds_bucket{le="0.5"} ${n * 95}`,
    `http_request_duration_seconds_bucket{le="+Inf"} ${n * 101}`,
    `http_request_duration_seconds_sum ${n * 12}`,
    `http_request_duration_seconds_count ${n * 101}`,
    '# TYPE pg_stat_activity_count gauge',
    'pg_stat_activity_count{datname="offgridflow",state="active"} 12',
    'pg_stat_activity_count{datname="offgridflow",state="idle"} 8',
    '# TYPE pg_settings_max_connections gauge',
    'pg_settings_max_connections 100',
    '# TYPE container_memory_working_set_bytes gauge',
    `container_memory_working_set_bytes{${c}} 268435456`,
    '# TYPE container_cpu_usage_seconds_total counter',
    `container_cpu_usage_seconds_total{${c},cpu="total"} ${n * 0.05}`,
    '# TYPE kube_pod_container_resource_limits gauge',
    `kube_pod_container_resource_limits{${c},resource="memory",unit="byte"} 536870912`,
    `kube_pod_container_resource_limits{${c},resource="cpu",unit="core"} 0.5`,
  ].join('\n')}\n`;
}

async function serve(t: { teardown(fn: () => unknown): void }, body: () => string): Promise<string> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(body());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const addr = server.address();
  return `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

t.test('every dashboard query runs on a real Prometheus and returns data', async (t) => {
  const replicas = [await serve(t, exporterMetrics), await serve(t, exporterMetrics)];
  const app = await serve(t, appMetrics);
  const dir = mkdtempSync(join(tmpdir(), 'readiness-dashboards-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // An alert that fires at once, so the "Alerts firing" panel has something to list.
  writeFileSync(join(dir, 'firing.yml'), YAML.stringify({ groups: [{ name: 'test', rules: [{ alert: 'TestAlwaysFiring', expr: 'vector(1)', labels: { severity: 'warning' } }] }] }));
  const prom = await startPrometheus(t, {
    ruleFiles: [RULES_FILE, join(dir, 'firing.yml')],
    scrapeConfigs: [
      {
        job_name: 'readiness-exporter',
        static_configs: replicas.map((target, i) => ({ targets: [target], labels: { namespace: 'monitoring', pod: `readiness-exporter-${i}` } })),
      },
      { job_name: 'api', honor_labels: true, static_configs: [{ targets: [app], labels: { namespace: 'offgridflow' } }] },
    ],
  });
  // rate() needs two scrapes of every target; the firing alert one evaluation after that.
  await prom.waitForTargets({ scrapes: 3 });
  await prom.waitForRuleEvaluation();

  for (const d of committed.values()) {
    for (const q of queries(d)) {
      const result = await prom.query(substituteGrafanaVariables(q.expr));
      t.ok(result.length > 0, `${q.where}: data`);
      t.ok(result.every((s) => s.value[1] !== 'NaN'), `${q.where}: a number`, { expr: q.expr, result });
    }
    for (const v of labelValueVariables(d)) {
      const values = await prom.api<string[]>(`label/${v.label}/values`, { 'match[]': substituteGrafanaVariables(v.selector) });
      t.ok(values.length > 0, `${d.title} / variable ${v.name}: values`);
    }
  }

  // Two replicas, one row per check: the table's queries aggregate the replicas away.
  const rows = await prom.query('max by (check, section, severity, phase) (readiness_check_passing{job=~".*"})');
  t.equal(rows.length, CHECKS.length, 'one row per check with two replicas scraped');

  // "Exporter replicas up" with $job = All counts the exporter's two replicas, not the app's target
  // (issue 13: it showed 3 where there was 1 exporter).
  const replicasPanel = allPanels(overview).find((p) => p.title === 'Exporter replicas up');
  const up = await prom.query(substituteGrafanaVariables(replicasPanel?.targets?.[0]?.expr ?? ''));
  t.same(up.map((s) => s.metric.job).sort(), ['readiness-exporter', 'readiness-exporter'], 'only the exporter\'s targets, with the job variable at All');

  // The shipped rules over the same series: each evaluates without error, and the recording
  // rules the alerts read have the series the contract promises.
  for (const g of await prom.rules()) {
    if (g.name === 'test') continue;
    for (const r of g.rules) {
      t.equal(r.health, 'ok', `${g.name}/${r.name}: health`);
      t.notOk(r.lastError, `${g.name}/${r.name}: ${r.lastError ?? 'no error'}`);
    }
  }
  const failing = await prom.query('readiness:check_failing');
  t.same(failing.map((s) => s.metric.check).sort(), ['monitor-error-rate', 'tls-api-expiry'], 'fail and error count as failing, pass does not; one series for two replicas');
  t.same(failing.map((s) => Object.keys(s.metric).sort().join(',')), Array(2).fill('__name__,check,check_severity,job,namespace,phase,section'), 'the labels of readiness:check_failing');
});
