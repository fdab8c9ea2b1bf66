// The shipped alerting: alerts/readiness.rules.yml, its PrometheusRule twin, the promtool unit
// tests in alerts/tests/, and the example Alertmanager config. promtool and amtool are the
// judges; this file checks that they pass, that they can fail, and the mixin conventions.
import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import YAML from 'yaml';
import { runCommand } from './helpers/service.js';
import { CONTRACT_METRICS, PROMTOOL_BIN, PROPOSED_METRICS, ROOT, metricProblems, parsePromQL, startPrometheus } from './helpers/prometheus.js';
import { PROMETHEUS_RULE_FILE, RULES_FILE, renderPrometheusRule } from '../scripts/gen-dashboards.js';
import { RUNBOOK_BASE } from '../dashboards/src/common.js';

/** A node of lezer-promql's syntax tree. */
type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

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
const alerts = groups.flatMap((g) => g.rules).filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => join(TESTS_DIR, f));

/** Alerts about one check: their expression selects per-check series. */
const isCheckAlert = (r: Rule) => parsePromQL(r.expr).selectors.some((s) => s.metric?.startsWith('readiness_check_'));

t.test('promtool check rules accepts the rule file', async (t) => {
  const r = await runCommand(PROMTOOL_BIN, ['check', 'rules', join(ROOT, RULES_FILE)]);
  t.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  t.match(r.stdout, `SUCCESS: ${alerts.length} rules found`);
});

t.test('every alert follows the mixin conventions', async (t) => {
  t.ok(alerts.length >= 14, 'the issue asks for at least 14 alerts');
  const names = new Set<string>();
  for (const a of alerts) {
    t.test(a.alert, async (t) => {
      t.notOk(names.has(a.alert), 'unique name');
      names.add(a.alert);
      t.match(a.alert, /^Readiness[A-Z][A-Za-z0-9]+$/, 'CamelCase with the Readiness prefix');
      t.ok(['critical', 'warning', 'info'].includes(a.labels?.severity ?? ''), `severity is critical|warning|info, got ${a.labels?.severity}`);
      t.ok(a.for, 'has a for: duration (no alert on a single evaluation)');
      for (const k of ['summary', 'description', 'runbook_url']) t.ok(a.annotations?.[k], `annotation ${k}`);
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
  for (const a of alerts) {
    if (a.alert.startsWith('ReadinessExporter')) continue; // about replicas on purpose (up)
    const tree = parser.parse(a.expr);
    tree.iterate({
      enter(n) {
        if (n.name !== 'VectorSelector') return;
        const id = n.node.getChild('Identifier');
        const metric = id ? a.expr.slice(id.from, id.to) : '';
        if (!metric.startsWith('readiness_')) return false;
        if (!replicaAggregated(n.node, a.expr)) problems.push(`${a.alert}: ${a.expr.slice(n.from, n.to)}`);
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

t.test('every PromQL expression parses and uses only declared metrics and labels', async (t) => {
  for (const a of alerts) {
    t.same(metricProblems(a.expr), [], `${a.alert}: expr`);
    // Annotations run PromQL through the `query` template function: check those too, with
    // the printf verbs filled in the way the rules fill them.
    for (const [k, v] of Object.entries(a.annotations ?? {})) {
      for (const m of v.matchAll(/printf "([^"]*\([^"]*)"/g)) {
        const q = (m[1] ?? '').replace(/%s/g, 'cluster="", namespace="n", job="j", check="c"').replace(/%q/g, '"x"');
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
    ['replicas no longer aggregated', 'max without (instance, pod) (readiness_check_passing{severity="critical"})', 'readiness_check_passing{severity="critical"}'],
    ['absent exporter only warns', 'absent(up{job=~".*readiness.*"} == 1)\n        for: 5m\n        labels:\n          severity: critical', 'absent(up{job=~".*readiness.*"} == 1)\n        for: 5m\n        labels:\n          severity: warning'],
    ['the reason is no longer looked up', 'readiness_check_failure_info{%s} == 1', 'readiness_check_failure_info{%s} == 2'],
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
    [['severity=critical', 'alertname=ReadinessCriticalCheckFailing', 'check=tls-api-expiry'], 'pagerduty,email'],
    [['severity=critical', 'alertname=ReadinessExporterAbsent'], 'pagerduty,email'],
    [['severity=warning', 'alertname=ReadinessHighCheckFailing'], 'slack-and-email'],
    [['severity=info'], 'blackhole'],
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
const DESIGN = join(ROOT, '..', 'shared', 'DESIGN.md');
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
  t.equal(loaded.flatMap((g) => g.rules).length, alerts.length, 'all rules loaded');
  // Two more rounds, so every rule has been evaluated and could have failed.
  await new Promise((r) => setTimeout(r, 2500));
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
