// The shipped alerting: alerts/readiness.rules.yml, its PrometheusRule twin, the promtool unit
// tests in alerts/tests/, and the example Alertmanager config. promtool and amtool are the
// judges; this file checks that they pass, that they can fail, and the mixin conventions.
import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import YAML from 'yaml';
import { runCommand } from './helpers/service.js';
import { CONTRACT_METRICS, PROMTOOL_BIN, PROPOSED_METRICS, RECORDED_METRICS, ROOT, metricProblems, startPrometheus } from './helpers/prometheus.js';
import { PROMETHEUS_RULE_FILE, RULES_FILE, renderPrometheusRule } from '../scripts/gen-dashboards.js';
import { GRAFANA_BASE, RUNBOOK_BASE } from '../dashboards/src/common.js';
import { UID as OVERVIEW_UID } from '../dashboards/src/readiness-overview.js';
import { UID as POST_DEPLOY_UID } from '../dashboards/src/post-deploy-monitoring.js';
import { PHASES, SEVERITIES } from '../src/config/schema.js';
import { defaultNotify, NOTIFY, type Notify } from '../src/notify.js';
import { startAlertmanager, type PostedAlert } from './helpers/alertmanager.js';
import { createServer } from 'node:http';
import pino from 'pino';
import { loadChecklistFile } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';
import { runCheck } from '../src/harness.js';
import { DEFAULT_CONFIG } from '../src/cli.js';
import { waitFor } from './helpers/service.js';

/** A node of lezer-promql's syntax tree. */
type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

// promtool over every mutant, a real Prometheus three times and a real Alertmanager: 1-5 minutes
// depending on the machine's load.
t.setTimeout(10 * 60_000);

const AMTOOL_BIN = process.env.AMTOOL_BIN ?? '/usr/bin/amtool';
const ALERTMANAGER_CONFIG = join(ROOT, 'alerts/alertmanager.example.yml');
const TESTS_DIR = join(ROOT, 'alerts/tests');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

const rulesText = readFileSync(join(ROOT, RULES_FILE), 'utf8');
const groups = (YAML.parse(rulesText) as { groups: Group[] }).groups;
const rules = groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const recordings = rules.filter((r): r is Rule & { record: string } => r.record !== undefined);
/** The groups whose alerts the exporter raises (label origin="readiness-exporter"); the others are the app's. */
const EXPORTER_GROUPS = ['readiness-checks', 'readiness-exporter'];
const groupOf = (r: Rule) => groups.find((g) => g.rules.includes(r))?.name ?? '';
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => join(TESTS_DIR, f));

/** Alerts about one check: their summary names it. */
const isCheckAlert = (r: Rule) => (r.annotations?.summary ?? '').includes('{{ $labels.check }}');

/**
 * Alerts that fire on one evaluation (`for: 0s`), each with the reason its input is already
 * debounced: anything else waits.
 */
const NO_FOR: Record<string, string> = {
  ReadinessRollbackRecommended: 'its causes already waited failAfter runs and the monitor queries average over minutes; the page must go out within 90s',
};

t.test('promtool check rules accepts the rule file', async (t) => {
  const r = await runCommand(PROMTOOL_BIN, ['check', 'rules', join(ROOT, RULES_FILE)]);
  t.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  t.match(r.stdout, `SUCCESS: ${rules.length} rules found`);
});

t.test('every alert follows the mixin conventions', async (t) => {
  // Fewer alerts than before issue 13 on purpose: one per symptom, with notify deciding who hears.
  t.ok(alerts.length >= 13, `${alerts.length} alerts`);
  const names = new Set<string>();
  for (const a of alerts) {
    t.test(`${a.alert} (${a.labels?.severity})`, async (t) => {
      const key = `${a.alert}/${a.labels?.severity}`;
      t.notOk(names.has(key), 'unique name per severity');
      names.add(key);
      t.match(a.alert, /^Readiness[A-Z][A-Za-z0-9]+$/, 'CamelCase with the Readiness prefix');
      t.ok(['critical', 'warning', 'info'].includes(a.labels?.severity ?? ''), `severity is critical|warning|info, got ${a.labels?.severity}`);
      t.ok(a.for, 'has a for: duration');
      if (a.for === '0s') t.ok(NO_FOR[a.alert], `for: 0s only where the input is debounced already: ${NO_FOR[a.alert] ?? 'not listed'}`);
      for (const k of ['summary', 'description', 'runbook_url']) t.ok(a.annotations?.[k], `annotation ${k}`);
      if (EXPORTER_GROUPS.includes(groupOf(a))) {
        // monitor-no-alerts tells the exporter's own alerts from the application's by this label.
        t.equal(a.labels?.origin, 'readiness-exporter', 'the exporter\'s own alert says so (origin)');
        t.ok(a.labels?.component, 'names its component (the PagerDuty event\'s component)');
        t.match(a.annotations?.dashboard_url, new RegExp(`(^|\\s)${GRAFANA_BASE}/d/(${OVERVIEW_UID}|${POST_DEPLOY_UID})/`), 'links a shipped dashboard');
      } else {
        t.equal(a.labels?.origin, undefined, 'an application alert has no origin label: monitor-no-alerts counts it');
      }
      if (isCheckAlert(a)) {
        t.equal(a.annotations?.runbook_url, `${RUNBOOK_BASE}/checks/{{ $labels.check }}`, 'a check alert links the check runbook');
        t.match(a.annotations?.description, '{{ $labels.check }}', 'the description names the check');
      } else {
        t.equal(a.annotations?.runbook_url, `${RUNBOOK_BASE}/alerts/${a.alert.toLowerCase()}`, 'other alerts link their own runbook');
      }
    });
  }
});

t.test('readiness_* series are aggregated over replicas (instance, pod)', async (t) => {
  // Two exporter replicas expose the same series with different instance/pod labels: an alert
  // that kept either label would fire once per replica.
  const problems: string[] = [];
  for (const a of rules) {
    if (a.alert?.startsWith('ReadinessExporter')) continue; // about replicas on purpose (up)
    const tree = parser.parse(a.expr);
    tree.iterate({
      enter(n) {
        if (n.name !== 'VectorSelector') return;
        const id = n.node.getChild('Identifier');
        const metric = id ? a.expr.slice(id.from, id.to) : '';
        if (!metric.startsWith('readiness_')) return false;
        if (!replicaAggregated(n.node, a.expr)) problems.push(`${a.alert ?? a.record}: ${a.expr.slice(n.from, n.to)}`);
        return false;
      },
    });
  }
  t.same(problems, [], 'every readiness_* selector sits under max without (instance, pod) or a by() without them');
});

/** True when the nearest enclosing aggregation drops instance and pod. */
function replicaAggregated(node: SyntaxNode, expr: string): boolean {
  for (let p = node.parent; p; p = p.parent) {
    if (p.name !== 'AggregateExpr') continue;
    const mod = p.getChild('AggregateModifier');
    if (!mod) return true; // max(x): every label aggregated away
    const labels = (mod.getChild('GroupingLabels')?.getChildren('LabelName') ?? []).map((l) => expr.slice(l.from, l.to));
    if (mod.getChild('Without')) return labels.includes('instance') && labels.includes('pod');
    return !labels.includes('instance') && !labels.includes('pod');
  }
  return false;
}

t.test('the recording rules are the ones the alerts and the tests know', async (t) => {
  t.same(recordings.map((r) => r.record).sort(), Object.keys(RECORDED_METRICS).sort(), 'RECORDED_METRICS lists every recording rule');
  // Recorded first, in the group of the alerts that read them: same evaluation, no extra delay.
  const checks = groups.find((g) => g.name === 'readiness-checks')!.rules;
  const lastRecord = Math.max(...checks.map((r, i) => (r.record ? i : -1)));
  const firstAlert = checks.findIndex((r) => r.alert);
  t.ok(lastRecord < firstAlert, 'recording rules come before the alerts of their group');
  t.ok(recordings.every((r) => groupOf(r) === 'readiness-checks'), 'all in readiness-checks');
  for (const r of recordings) {
    // The exporter's last word: each raw selector also read through last_over_time while no
    // replica is up.
    for (const m of r.expr.matchAll(/(readiness_[a-z_]+(?:\{[^}]*\})?)\n?\s+or \(last_over_time\(([^[]+)\[10m\]\) unless on \(cluster, namespace, job\) up == 1\)/g)) {
      t.equal(m[2], m[1], `${r.record}: the last word of ${m[1]} is the same selector`);
    }
    const raw = [...r.expr.matchAll(/\breadiness_[a-z_]+(?:\{[^}]*\})?/g)].length;
    const kept = [...r.expr.matchAll(/last_over_time\(/g)].length;
    t.equal(raw, kept * 2, `${r.record}: every selector has its last word`);
  }
});

t.test('every PromQL expression parses and uses only declared metrics and labels', async (t) => {
  for (const a of rules) {
    t.same(metricProblems(a.expr), [], `${a.alert ?? a.record}: expr`);
    // Annotations run PromQL through the `query` template function: check those too, with
    // the printf verbs filled in the way the rules fill them.
    for (const [k, v] of Object.entries(a.annotations ?? {})) {
      // %s is the annotation's $sel (its own printf), %q a quoted label value.
      const sel = (/\$sel := printf "([^"]*)"/.exec(v)?.[1] ?? '').replace(/%q/g, '"x"');
      for (const m of v.matchAll(/printf "([^"]*\([^"]*)"/g)) {
        const q = (m[1] ?? '').replace(/%s/g, sel).replace(/%q/g, '"x"');
        t.same(metricProblems(q), [], `${a.alert}: query in ${k}: ${q}`);
      }
    }
  }
});

t.test('promtool unit tests pass', async (t) => {
  const r = await runCommand(PROMTOOL_BIN, ['test', 'rules', ...testFiles]);
  t.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  t.equal((r.stdout.match(/SUCCESS/g) ?? []).length, testFiles.length, 'one SUCCESS per test file');
});

interface AlertCase {
  alertname: string;
  eval_time: string;
  exp_alerts?: unknown[];
}
interface TestGroup {
  name?: string;
  alert_rule_test?: AlertCase[];
}

function seconds(d: string): number {
  let s = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    s += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  }
  return s;
}

t.test('every alert has unit tests that fire it, keep it quiet and resolve it', async (t) => {
  const seen = new Map<string, { fires: boolean; quiet: boolean; resolves: boolean }>();
  for (const file of testFiles) {
    const doc = YAML.parse(readFileSync(file, 'utf8')) as { rule_files: string[]; tests: TestGroup[] };
    t.same(doc.rule_files, ['../readiness.rules.yml'], `${file} tests the shipped rule file`);
    for (const group of doc.tests) {
      const byAlert = new Map<string, { time: number; firing: boolean }[]>();
      for (const c of group.alert_rule_test ?? []) {
        const list = byAlert.get(c.alertname) ?? [];
        list.push({ time: seconds(c.eval_time), firing: (c.exp_alerts ?? []).length > 0 });
        byAlert.set(c.alertname, list);
      }
      for (const [name, cases] of byAlert) {
        const s = seen.get(name) ?? { fires: false, quiet: false, resolves: false };
        const firing = cases.filter((c) => c.firing).map((c) => c.time);
        const quiet = cases.filter((c) => !c.firing).map((c) => c.time);
        const first = Math.min(...firing);
        s.fires ||= firing.length > 0;
        // Quiet before it first fires, or in a scenario where it never should.
        s.quiet ||= quiet.some((q) => q < first);
        s.resolves ||= quiet.some((q) => firing.some((f) => q > f));
        seen.set(name, s);
      }
    }
  }
  for (const a of alerts) {
    t.same(seen.get(a.alert), { fires: true, quiet: true, resolves: true }, `${a.alert}: fires, does not fire, resolves`);
  }
  t.same([...seen.keys()].filter((n) => !alerts.some((a) => a.alert === n)), [], 'no test names an alert that does not exist');
});

t.test('a broken rule makes the unit tests fail (the harness can fail)', async (t) => {
  const mutations: [what: string, from: string, to: string][] = [
    ['error-rate limit raised to 5%', '> 0.01', '> 0.05'],
    ['replicas no longer aggregated', 'max without (instance, pod) (\n            readiness_check_state{state="stale"}', 'sum without (pod) (\n            readiness_check_state{state="stale"}'],
    ['absent exporter only warns', 'absent(up{job=~".*readiness.*"})\n        for: 5m\n        labels:\n          severity: critical', 'absent(up{job=~".*readiness.*"})\n        for: 5m\n        labels:\n          severity: warning'],
    ['the reason is no longer looked up', 'readiness_check_failure_info{%s} == 1', 'readiness_check_failure_info{%s} == 2'],
    ['unconfigured counts as failing', 'state=~"fail|error|stale"}\n', 'state=~"fail|error|stale|unconfigured"}\n'],
    ['the exporter\'s last word forgotten', 'or (last_over_time(readiness_check_passing[10m]) unless on (cluster, namespace, job) up == 1)', 'or (last_over_time(readiness_check_passing[10s]) unless on (cluster, namespace, job) up == 1)'],
    ['rollback outside the window', 'and on (cluster, namespace, job) readiness:deployment_window_open == 1\n          )', 'and on (cluster, namespace, job) readiness:deployment_window_open >= 0\n          )'],
    ['notify ignored: every failing check pages', 'readiness:check_failing{check!~"tls-.*"}\n          and on (cluster, namespace, job, check) readiness:check_notify{notify="page"}', 'readiness:check_failing{check!~"tls-.*"}'],
    ['tickets for monitor checks outside the window', 'readiness:check_failing{phase!="monitor"}', 'readiness:check_failing'],
  ];
  for (const [what, from, to] of mutations) {
    t.test(what, async (t) => {
      t.ok(rulesText.includes(from), 'the mutated text exists in the rule file');
      const dir = mkdtempSync(join(tmpdir(), 'readiness-rules-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(join(dir, 'readiness.rules.yml'), rulesText.replace(from, to));
      mkdirSync(join(dir, 'tests'));
      for (const f of testFiles) copyFileSync(f, join(dir, 'tests', f.slice(TESTS_DIR.length + 1)));
      const checked = await runCommand(PROMTOOL_BIN, ['check', 'rules', join(dir, 'readiness.rules.yml')]);
      t.equal(checked.code, 0, 'the mutant is still a valid rule file');
      const r = await runCommand(PROMTOOL_BIN, ['test', 'rules', ...readdirSync(join(dir, 'tests')).map((f) => join(dir, 'tests', f))]);
      t.not(r.code, 0, 'promtool test rules fails');
      t.match(r.stdout + r.stderr, /FAILED/);
    });
  }
});

t.test('the PrometheusRule carries exactly the plain rules', async (t) => {
  const committed = readFileSync(join(ROOT, PROMETHEUS_RULE_FILE), 'utf8');
  t.equal(committed, renderPrometheusRule(rulesText), `${PROMETHEUS_RULE_FILE} is up to date (npm run dashboards)`);
  const manifest = YAML.parse(committed) as { apiVersion: string; kind: string; metadata: { name: string }; spec: { groups: Group[] } };
  t.equal(manifest.apiVersion, 'monitoring.coreos.com/v1');
  t.equal(manifest.kind, 'PrometheusRule');
  t.ok(manifest.metadata.name);
  t.same(manifest.spec.groups, groups, 'same groups, rules, labels and annotations');

  // And promtool accepts the manifest's groups as a rule file of their own.
  const dir = mkdtempSync(join(tmpdir(), 'readiness-prometheusrule-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'groups.yml'), YAML.stringify({ groups: manifest.spec.groups }));
  const r = await runCommand(PROMTOOL_BIN, ['check', 'rules', join(dir, 'groups.yml')]);
  t.equal(r.code, 0, `${r.stdout}${r.stderr}`);
});

t.test('the example Alertmanager config is valid and routes by severity', async (t) => {
  const r = await runCommand(AMTOOL_BIN, ['check-config', ALERTMANAGER_CONFIG]);
  t.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  const expected: [labels: string[], receiver: string][] = [
    [['severity=critical', 'alertname=ReadinessRollbackRecommended', 'origin=readiness-exporter', 'component=deployment', 'version=1.4.2'], 'pagerduty,email'],
    [['severity=critical', 'alertname=ReadinessCheckFailing', 'origin=readiness-exporter', 'check=backup-latest-age'], 'pagerduty,email'],
    [['severity=critical', 'alertname=ReadinessExporterDown', 'origin=readiness-exporter', 'component=readiness-exporter'], 'pagerduty,email'],
    [['severity=critical', 'alertname=ReadinessExporterAbsent'], 'pagerduty,email'],
    [['severity=warning', 'alertname=ReadinessCheckFailing', 'check=postgres-reachable'], 'slack-and-email'],
    [['severity=warning', 'alertname=ReadinessAppErrorRateHigh'], 'slack-and-email'],
    [['severity=info'], 'blackhole'],
    [['severity=none'], 'blackhole'],
    [['alertname=Watchdog', 'severity=none'], 'blackhole'],
    [['alertname=SomethingWithoutSeverity'], 'slack-and-email'],
  ];
  for (const [labels, receiver] of expected) {
    const r = await runCommand(AMTOOL_BIN, ['config', 'routes', 'test', `--config.file=${ALERTMANAGER_CONFIG}`, ...labels]);
    t.equal(r.stdout.trim(), receiver, `${labels.join(' ')} -> ${receiver}`);
  }

  const am = YAML.parse(readFileSync(ALERTMANAGER_CONFIG, 'utf8')) as {
    receivers: { name: string; pagerduty_configs?: Record<string, unknown>[]; slack_configs?: Record<string, unknown>[]; email_configs?: unknown[] }[];
    inhibit_rules: { source_matchers: string[]; target_matchers: string[] }[];
  };
  const pd = am.receivers.find((x) => x.name === 'pagerduty')?.pagerduty_configs?.[0];
  t.ok(pd?.routing_key_file, 'PagerDuty Events API v2 routing key comes from a file');
  t.notOk(pd?.routing_key, 'no routing key in the file');
  const slack = am.receivers.find((x) => x.name === 'slack-and-email');
  t.equal(slack?.slack_configs?.[0]?.channel, '#alerts');
  t.ok(slack?.email_configs?.length, 'warning also goes to email');
  t.ok(am.receivers.find((x) => x.name === 'email')?.email_configs?.length, 'critical alerts are emailed too (the checklist line)');

  // Inhibit rules name alerts that exist.
  const known = new Set(alerts.map((a) => a.alert));
  for (const rule of am.inhibit_rules) {
    for (const m of [...rule.source_matchers, ...rule.target_matchers]) {
      const names = /^alertname=~?"([^"]+)"$/.exec(m)?.[1]?.split('|') ?? [];
      for (const n of names) t.ok(known.has(n), `inhibit rule names ${n}`);
    }
  }
});

// shared/ sits beside the repository (here and in CI); without it there is nothing to compare.
// DESIGN.md sits beside the main checkout (../shared); from a git worktree, beside the main one.
const gitCommonDir = spawnSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim();
const DESIGN =
  [join(ROOT, '..', 'shared', 'DESIGN.md'), ...(gitCommonDir ? [join(dirname(gitCommonDir), '..', 'shared', 'DESIGN.md')] : [])].find((p) => existsSync(p)) ??
  join(ROOT, '..', 'shared', 'DESIGN.md');
t.test('the metric list the checks use matches DESIGN.md', { skip: existsSync(DESIGN) ? false : `${DESIGN} not found` }, async (t) => {
  const design = DESIGN;
  const table = new Map<string, string[]>();
  for (const m of readFileSync(design, 'utf8').matchAll(/^\| `([a-z_]+)` \| [a-z]+ \| ([^|]*) \|/gm)) {
    const labels = (m[2] ?? '').trim();
    table.set(m[1] ?? '', labels === '-' ? [] : labels.split(',').map((l) => l.trim()));
  }
  t.ok(table.size >= 12, 'the metrics table was found');
  for (const [name, labels] of Object.entries(CONTRACT_METRICS)) {
    t.same(table.get(name), labels, `${name} with labels ${labels.join(', ') || '(none)'} is in the contract`);
  }
  for (const name of Object.keys(PROPOSED_METRICS)) {
    if (table.has(name)) t.comment(`${name} is in DESIGN.md now: move it from PROPOSED_METRICS to CONTRACT_METRICS`);
  }
});

t.test('docs/alerts.md documents every alert and every app metric', async (t) => {
  const docs = readFileSync(join(ROOT, 'docs/alerts.md'), 'utf8');
  for (const a of alerts) t.match(docs, `### ${a.alert}`, `${a.alert} has a section`);
  for (const m of ['http_requests_total', 'http_request_duration_seconds_bucket', 'pg_stat_activity_count', 'pg_settings_max_connections', 'container_memory_working_set_bytes', 'container_cpu_usage_seconds_total', 'kube_pod_container_resource_limits']) {
    t.match(docs, `\`${m}\``, `${m} is documented`);
  }
});

t.test('a real Prometheus loads every group and evaluates it without error', async (t) => {
  const prom = await startPrometheus(t, { ruleFiles: [RULES_FILE] });
  const loaded = await prom.waitForRuleEvaluation();
  t.same(loaded.map((g) => g.name).sort(), groups.map((g) => g.name).sort(), 'all groups loaded');
  t.equal(loaded.flatMap((g) => g.rules).length, rules.length, 'all rules loaded');
  // Two more rounds, so every rule has been evaluated and could have failed.
  await prom.waitForMoreEvaluations(2);
  for (const g of await prom.rules()) {
    for (const r of g.rules) {
      t.equal(r.health, 'ok', `${g.name}/${r.name} health`);
      t.notOk(r.lastError, `${g.name}/${r.name}: ${r.lastError ?? 'no lastError'}`);
    }
  }
  // Nothing scrapes an exporter here: the dead man's switch must be counting.
  const absent = (await prom.alerts()).filter((a) => a.labels.alertname === 'ReadinessExporterAbsent');
  t.equal(absent.length, 1, 'ReadinessExporterAbsent is pending with no exporter scraped');
  t.equal(absent[0]?.state, 'pending');
});

t.test('the Watchdog rule file is valid and always fires', async (t) => {
  const file = join(ROOT, 'alerts/watchdog.rules.yml');
  const check = await runCommand(PROMTOOL_BIN, ['check', 'rules', file]);
  t.equal(check.code, 0, `${check.stdout}${check.stderr}`);
  const dir = mkdtempSync(join(tmpdir(), 'watchdog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(file, join(dir, 'watchdog.rules.yml'));
  writeFileSync(
    join(dir, 'watchdog.test.yml'),
    YAML.stringify({
      rule_files: ['watchdog.rules.yml'],
      evaluation_interval: '1m',
      tests: [{ interval: '1m', input_series: [], alert_rule_test: [{ eval_time: '5m', alertname: 'Watchdog', exp_alerts: [{ exp_labels: { severity: 'none' }, exp_annotations: YAML.parse(readFileSync(file, 'utf8')).groups[0].rules[0].annotations }] }] }],
    }),
  );
  const test = await runCommand(PROMTOOL_BIN, ['test', 'rules', join(dir, 'watchdog.test.yml')]);
  t.equal(test.code, 0, `${test.stdout}${test.stderr}`);
});

t.test('promtool covers the notify defaults: alerts/tests/notify.test.yml is what the loader gives', async (t) => {
  // Every check of that file carries the notify the loader would give it (src/notify.ts), and
  // together they cover every phase and severity plus an attestation, so the promtool
  // expectations there are the routing of the defaults, not of made-up labels.
  const doc = YAML.parse(readFileSync(join(TESTS_DIR, 'notify.test.yml'), 'utf8')) as { tests: { input_series: { series: string }[] }[] };
  const series = doc.tests.flatMap((g) => g.input_series.map((s) => s.series));
  const labelsOf = (s: string) => Object.fromEntries([...s.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  const passing = new Map(series.filter((s) => s.startsWith('readiness_check_passing{')).map((s) => [labelsOf(s).check, labelsOf(s)]));
  const cells = new Set<string>();
  const info = series.filter((s) => s.startsWith('readiness_check_info{')).map(labelsOf);
  t.equal(info.length, passing.size, 'one info series per check');
  for (const i of info) {
    const p = passing.get(i.check ?? '');
    t.ok(p, `${i.check} has its passing series`);
    if (!p) continue;
    const want = defaultNotify({ phase: p.phase as (typeof PHASES)[number], severity: p.severity as (typeof SEVERITIES)[number], kind: i.probe ?? '', gate: true });
    t.equal(i.notify, want, `${i.check}: ${p.phase}, ${p.severity}, ${i.probe} -> ${want}`);
    cells.add(i.probe === 'attestation' ? 'attestation' : `${p.phase}/${p.severity}`);
  }
  for (const phase of PHASES) for (const sev of SEVERITIES) t.ok(cells.has(`${phase}/${sev}`), `covers ${phase}/${sev}`);
  t.ok(cells.has('attestation'), 'covers an attestation');
  const used = new Set(info.map((i) => i.notify as Notify));
  t.same([...used].sort(), NOTIFY.filter((n) => n !== 'page').sort(), 'every default value appears (page is never a default)');
});

t.test('the example Alertmanager inhibits causes under their symptom (a real Alertmanager, amtool)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-am-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The example as shipped, with its secret files pointing at temp files.
  const config = readFileSync(ALERTMANAGER_CONFIG, 'utf8').replaceAll('/etc/alertmanager/secrets/', `${dir}/`);
  for (const f of ['pagerduty-routing-key', 'slack-webhook-url', 'smtp-password']) writeFileSync(join(dir, f), f === 'slack-webhook-url' ? 'http://127.0.0.1:9/hook' : 'x'.repeat(32));
  const am = await startAlertmanager(t, config);

  const exporter = { job: 'readiness-exporter', namespace: 'monitoring', origin: 'readiness-exporter' };
  const alert = (labels: Record<string, string>): PostedAlert => ({ labels, annotations: { summary: labels.alertname ?? '' } });
  const rollback = alert({ ...exporter, alertname: 'ReadinessRollbackRecommended', severity: 'critical', component: 'deployment', version: '1.4.2' });
  const cases: [name: string, labels: Record<string, string>][] = [
    // The rollback incident's causes: a verify check that pages on its own, a verify ticket, a monitor stale warning.
    ['verify page', { ...exporter, alertname: 'ReadinessCheckFailing', severity: 'critical', component: 'health-live', check: 'health-live', phase: 'verify' }],
    ['verify ticket', { ...exporter, alertname: 'ReadinessCheckFailing', severity: 'warning', component: 'smoke-tests', check: 'smoke-tests', phase: 'verify' }],
    ['monitor stale', { ...exporter, alertname: 'ReadinessCheckStale', severity: 'warning', component: 'monitor-cpu', check: 'monitor-cpu', phase: 'monitor', state: 'stale' }],
    // Not caused by the deployment: a backup page, a pre-deploy ticket, the app's own alert,
    // and the same verify check of another exporter (staging).
    ['pre-deploy page', { ...exporter, alertname: 'ReadinessCheckFailing', severity: 'critical', component: 'backup-latest-age', check: 'backup-latest-age', phase: 'pre-deploy' }],
    ['pre-deploy ticket', { ...exporter, alertname: 'ReadinessCheckFailing', severity: 'warning', component: 'postgres-reachable', check: 'postgres-reachable', phase: 'pre-deploy' }],
    ['app alert', { alertname: 'ReadinessAppErrorRateHigh', severity: 'warning', job: 'api', namespace: 'offgridflow' }],
    ['other exporter', { ...exporter, job: 'readiness-staging', alertname: 'ReadinessCheckFailing', severity: 'critical', component: 'health-live', check: 'health-live', phase: 'verify' }],
    // A certificate under 7 days pages; its 30-day ticket is covered by the page.
    ['tls page', { ...exporter, alertname: 'ReadinessTLSCertificateExpiringSoon', severity: 'critical', component: 'tls-api-expiry', check: 'tls-api-expiry' }],
    ['tls ticket', { ...exporter, alertname: 'ReadinessCheckFailing', severity: 'warning', component: 'tls-api-expiry', check: 'tls-api-expiry', phase: 'pre-deploy', check_severity: 'critical' }],
    // A ticket covers the same check's stale warning.
    ['ticket stale', { ...exporter, alertname: 'ReadinessCheckStale', severity: 'warning', component: 'postgres-reachable', check: 'postgres-reachable', phase: 'pre-deploy', state: 'stale' }],
  ];
  await am.postAlerts([rollback, ...cases.map(([, l]) => alert(l))]);

  /** The names of the cases amtool lists as inhibited (`amtool alert query --inhibited`). */
  const inhibited = async () => {
    const r = await runCommand(AMTOOL_BIN, ['alert', 'query', '--inhibited', '-o', 'json', `--alertmanager.url=${am.url}`]);
    t.equal(r.code, 0, r.stderr);
    const listed = (JSON.parse(r.stdout) as { labels: Record<string, string>; status: { state: string } }[]).filter((a) => a.status.state === 'suppressed');
    const name = (l: Record<string, string>) => (l.alertname === rollback.labels.alertname ? 'rollback' : (cases.find(([, c]) => JSON.stringify(Object.entries(c).sort()) === JSON.stringify(Object.entries(l).sort()))?.[0] ?? JSON.stringify(l)));
    return listed.map((a) => name(a.labels)).sort();
  };
  t.same(await inhibited(), ['monitor stale', 'ticket stale', 'tls ticket', 'verify page', 'verify ticket'], 'the rollback incident holds back its causes; a page its ticket; a ticket its stale warning');

  // The whole exporter down: everything it said is held back, the other exporter's and the app's are not.
  await am.postAlerts([alert({ ...exporter, alertname: 'ReadinessExporterDown', severity: 'critical', component: 'readiness-exporter' })]);
  t.same(
    await inhibited(),
    ['monitor stale', 'pre-deploy page', 'pre-deploy ticket', 'rollback', 'ticket stale', 'tls page', 'tls ticket', 'verify page', 'verify ticket'],
    'ReadinessExporterDown holds back everything that exporter would have said',
  );
});

/** Serves a Prometheus text exposition that `body()` makes at each scrape; closed in teardown. */
async function exposition(t: { teardown(fn: () => unknown): void }, body: () => string): Promise<string> {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const addr = server.address();
  return `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

t.test("the shipped monitor-no-alerts counts the application's alerts (ReadinessApp* too), never the exporter's own", async (t) => {
  // issue 13: it ignored every alert named Readiness*, the app's error-rate alert included, and
  // stayed green while it fired. Real Prometheus, the shipped rules (for: set to 0s so they fire
  // now), a fake exporter recommending a rollback and an app answering 5% 5xx; then the shipped
  // check, run as the exporter runs it.
  const dir = mkdtempSync(join(tmpdir(), 'readiness-no-alerts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const copy = YAML.parse(rulesText) as { groups: Group[] };
  for (const r of copy.groups.flatMap((g) => g.rules)) if (r.for) r.for = '0s';
  writeFileSync(join(dir, 'readiness.rules.yml'), YAML.stringify(copy));
  const exporter = await exposition(t, () =>
    [
      'readiness_check_passing{check="monitor-error-rate",section="monitor",severity="critical",phase="monitor"} 0',
      ...['pass', 'fail'].map((s) => `readiness_check_state{check="monitor-error-rate",state="${s}"} ${s === 'fail' ? 1 : 0}`),
      'readiness_check_info{check="monitor-error-rate",probe="prometheus",notify="rollback",expect="value < 1"} 1',
      'readiness_deployment_window_open 1',
      'readiness_deployment_info{version="1.4.2"} 1',
      '',
    ].join('\n'),
  );
  let n = 0;
  const app = await exposition(t, () => {
    n += 1;
    return `http_requests_total{method="GET",code="200"} ${n * 95}\nhttp_requests_total{method="GET",code="500"} ${n * 5}\n`;
  });
  const prom = await startPrometheus(t, {
    ruleFiles: [join(dir, 'readiness.rules.yml')],
    scrapeConfigs: [
      { job_name: 'readiness-exporter', static_configs: [{ targets: [exporter] }] },
      { job_name: 'offgridflow-api', static_configs: [{ targets: [app], labels: { namespace: 'offgridflow' } }] },
    ],
  });
  await prom.waitForTargets({ scrapes: 3 });
  const firing = await waitFor(
    'the rollback page and the app alert firing',
    async () => {
      const names = (await prom.alerts()).filter((a) => a.state === 'firing').map((a) => a.labels.alertname).sort();
      return names.includes('ReadinessRollbackRecommended') && names.includes('ReadinessAppErrorRateHigh') ? names : undefined;
    },
    { timeoutMs: 30_000, everyMs: 200 },
  );
  t.same(firing, ['ReadinessAppErrorRateHigh', 'ReadinessRollbackRecommended'], 'precondition: one alert of each kind fires');

  const loaded = await loadChecklistFile(DEFAULT_CONFIG, { PROMETHEUS_URL: prom.url });
  if (!loaded.ok) return t.fail(loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const def = loaded.checklist.byId.get('monitor-no-alerts');
  t.ok(def, 'the shipped check');
  if (!def) return;
  const r = await runCheck(def, { log: pino({ level: 'silent' }), env: { PROMETHEUS_URL: prom.url } });
  t.equal(r.state, 'fail', r.message);
  t.match(r.message, /^1 alert firing \(matching severity=~"critical\|warning", origin!="readiness-exporter".*\): ReadinessAppErrorRateHigh\{/, 'the application\'s alert counts');
  t.notMatch(r.message, 'ReadinessRollbackRecommended', 'the exporter\'s own alert does not');
});
