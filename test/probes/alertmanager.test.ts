// The alertmanager probe kind against a real Alertmanager 0.25 (Debian's package, started by
// test/helpers/alertmanager.ts) whose PagerDuty, Slack and email receivers point at local
// capture servers, and a real Prometheus 2.42 that sends it the always-firing Watchdog.
//  - receivers: read from the running configuration (/api/v2/status, config.original).
//  - route: the probe's routing is compared with amtool's (`amtool config routes test`, the
//    Alertmanager project's own implementation) for a table of label sets, on the test
//    configuration and on the shipped alerts/alertmanager.example.yml, and with what
//    Alertmanager actually delivers to the capture servers.
//  - alert: the Watchdog is absent before Prometheus runs, then present.
// Checks go through the real loader and harness, including the shipped checklist's rows.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import YAML from 'yaml';
import { loadChecklist, loadChecklistFile } from '../../src/config/load.js';
import { formatDiagnostic, type CheckDef } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import alertmanager, { buildRouteTree, matchRoutes, parseConfig } from '../../src/probes/alertmanager.js';
import type { Observation } from '../../src/probes/types.js';
import type { RunResult } from '../../src/store/types.js';
import { AMTOOL_BIN, captureHttp, captureSmtp, startAlertmanager } from '../helpers/alertmanager.js';
import { makeCtx } from '../helpers/ctx.js';
import { loadDocExamples, undocumented } from '../helpers/probe-docs.js';
import { closedPort, listenHttp } from '../helpers/listeners.js';
import { ROOT, startPrometheus } from '../helpers/prometheus.js';
import { mustRun, removeDir, serviceDir, waitFor } from '../helpers/service.js';

const log = pino({ level: 'silent' });

// ---------------------------------------------------------------------------------------------
// Alertmanager and the places it notifies
// ---------------------------------------------------------------------------------------------

const pagerduty = await captureHttp(t);
const slack = await captureHttp(t);
const smtp = await captureSmtp(t);

const config = {
  global: {
    resolve_timeout: '5m',
    smtp_smarthost: `${smtp.host}:${smtp.port}`,
    smtp_from: 'alertmanager@offgridflow.test',
    smtp_require_tls: false,
    slack_api_url: `${slack.url}/services/T000/B000/XXXX`,
  },
  route: {
    receiver: 'slack-alerts',
    group_by: ['alertname'],
    group_wait: '100ms',
    group_interval: '1s',
    repeat_interval: '1h',
    routes: [
      { receiver: 'pagerduty-critical', matchers: ['severity="critical"'], continue: true },
      { receiver: 'email-oncall', match_re: { severity: 'critical|warning' }, routes: [{ receiver: 'blackhole', matchers: ['team="sandbox"'] }] },
      { receiver: 'blackhole', matchers: ['alertname="Watchdog"'] },
      { receiver: 'slack-alerts', matchers: ['env!="production"', 'severity=~"info|none"'] },
    ],
  },
  receivers: [
    { name: 'slack-alerts', slack_configs: [{ channel: '#alerts', send_resolved: false }] },
    { name: 'pagerduty-critical', pagerduty_configs: [{ routing_key: 'pd-routing-key-0123456789', url: `${pagerduty.url}/v2/enqueue` }] },
    { name: 'email-oncall', email_configs: [{ to: 'oncall@offgridflow.test, sre@offgridflow.test', send_resolved: false }] },
    { name: 'blackhole' },
  ],
};

const am = await startAlertmanager(t, config);
const ENV = { ALERTMANAGER_URL: am.url };

// ---------------------------------------------------------------------------------------------
// Loading and running checks
// ---------------------------------------------------------------------------------------------

interface Spec {
  with: Record<string, unknown>;
  expect?: string[];
  timeout?: string;
}

function checklistText(...specs: Spec[]): string {
  return YAML.stringify({
    apiVersion: 'readiness/v1',
    checklist: 'alertmanager-test',
    targets: { alertmanager: { url: '${ALERTMANAGER_URL}' } },
    checks: specs.map((s, i) => ({
      id: `am-check-${i}`,
      title: 'Alertmanager test check',
      section: 'observability',
      severity: 'high',
      phase: 'pre-deploy',
      probe: 'alertmanager',
      target: 'alertmanager',
      with: s.with,
      ...(s.expect && { expect: s.expect }),
      ...(s.timeout && { timeout: s.timeout }),
    })),
  });
}

function load(spec: Spec, env: NodeJS.ProcessEnv = ENV): CheckDef {
  const r = loadChecklist(checklistText(spec), 'alertmanager-test.yaml', env);
  if (!r.ok) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.checklist.checks[0]!;
}

const check = (spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<RunResult> => runCheck(load(spec, env), { log, env });

async function observe(spec: Spec, env: NodeJS.ProcessEnv = ENV): Promise<Observation> {
  const def = load(spec, env);
  return alertmanager.run(def.params as never, makeCtx({ env, timeoutMs: def.timeoutMs }));
}

/** amtool's answer: the receivers an alert with `labels` goes to, in routing order. */
async function amtool(configFile: string, labels: Record<string, string>): Promise<string[]> {
  const out = await mustRun(AMTOOL_BIN, ['config', 'routes', 'test', `--config.file=${configFile}`, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)]);
  return out.trim().split(',').filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Load-time validation
// ---------------------------------------------------------------------------------------------


t.test('docs/probes/alertmanager.md documents every parameter and field, and its examples load', async (t) => {
  t.same(undocumented(alertmanager), []);
  t.same(loadDocExamples('alertmanager'), { diagnostics: [], checks: 5 });
});

t.test('params are validated at load', async (t) => {
  const r = loadChecklist(
    checklistText(
      { with: { measure: 'route', integration: 'pagerduty' } },
      { with: { measure: 'receivers' } },
      { with: { measure: 'receivers', integration: 'email', channel: '#alerts' } },
      { with: { measure: 'alert', matchers: ['env=~"prod(uction"'] } },
      { with: { measure: 'alert', labels: { severity: 'critical' } } },
      { with: { measure: 'receivers', integration: 'carrier-pigeon' } },
    ),
    'alertmanager-test.yaml',
    ENV,
  );
  const errors = r.ok ? [] : r.diagnostics.map(formatDiagnostic);
  t.equal(errors.length, 6, errors.join('\n'));
  t.match(errors[0], 'measure route needs "labels"');
  t.match(errors[1], 'measure receivers needs "receiver" and/or "integration" (or "channel" / "to")');
  t.match(errors[2], '"channel" is a Slack setting; integration is email');
  t.match(errors[3], /matchers\[0\]: bad regex in env=~"prod\(uction"/);
  t.match(errors[4], '"labels" does not apply to measure alert; it takes "alertname", "matchers"');
  t.match(errors[5], /"integration" must be one of pagerduty, slack, email/);
});

// ---------------------------------------------------------------------------------------------
// receivers
// ---------------------------------------------------------------------------------------------

t.test('receivers: the running configuration has the wanted receivers', async (t) => {
  const pd = await observe({ with: { measure: 'receivers', integration: 'pagerduty' } });
  t.match(pd, { value: 1, fields: { receivers: 4, matching: 1, receiver_names: ['pagerduty-critical'] }, message: 'a receiver with pagerduty_configs: pagerduty-critical (pagerduty)' });
  const named = await check({ with: { measure: 'receivers', receiver: 'pagerduty-critical', integration: 'pagerduty' }, expect: ['matching == 1'] });
  t.equal(named.state, 'pass', named.message);
  const channel = await check({ with: { measure: 'receivers', integration: 'slack', channel: '#alerts' } });
  t.equal(channel.state, 'pass', channel.message);
  t.equal((await check({ with: { measure: 'receivers', channel: 'alerts' } })).state, 'pass', 'the # is optional');
  const email = await check({ with: { measure: 'receivers', to: 'SRE@offgridflow.test' } });
  t.equal(email.state, 'pass', email.message);
});

t.test('receivers: what is missing is named, with what there is instead', async (t) => {
  const cases: [Record<string, unknown>, string][] = [
    [{ integration: 'opsgenie' }, 'no receiver has opsgenie_configs (slack-alerts: slack, pagerduty-critical: pagerduty, email-oncall: email, blackhole: no integrations)'],
    [{ receiver: 'pagerduty' }, 'no receiver is named pagerduty (receivers: slack-alerts, pagerduty-critical, email-oncall, blackhole)'],
    [{ receiver: 'email-oncall', integration: 'slack' }, 'no receiver email-oncall has slack_configs (email-oncall: email)'],
    [{ integration: 'slack', channel: '#general' }, 'no Slack config posts to #general (slack-alerts: #alerts)'],
    [{ to: 'ceo@offgridflow.test' }, 'no email config sends to ceo@offgridflow.test (email-oncall: oncall@offgridflow.test, sre@offgridflow.test)'],
  ];
  for (const [w, message] of cases) {
    const r = await check({ with: { measure: 'receivers', ...w } });
    t.equal(r.state, 'fail', JSON.stringify(w));
    t.equal(r.reason, 'condition');
    t.equal(r.message, message);
  }
  // The PagerDuty routing key never leaves Alertmanager (it shows <secret>), nor the probe.
  const obs = await observe({ with: { measure: 'receivers', integration: 'pagerduty' } });
  t.notMatch(JSON.stringify(obs), 'pd-routing-key');
});

// ---------------------------------------------------------------------------------------------
// route
// ---------------------------------------------------------------------------------------------

t.test('route: severity=critical reaches PagerDuty, and email through continue', async (t) => {
  const pd = await observe({ with: { measure: 'route', labels: { severity: 'critical' }, integration: 'pagerduty' } });
  t.match(pd, {
    value: 1,
    fields: { routed: true, matched_receivers: ['pagerduty-critical', 'email-oncall'], matched_routes: ['route.routes[0]', 'route.routes[1]'] },
    message: 'an alert {severity="critical"} reaches pagerduty-critical via route.routes[0] (severity="critical", continue), email-oncall via route.routes[1] (severity=~"critical|warning")',
  });
  const email = await check({ with: { measure: 'route', labels: { severity: 'critical' }, integration: 'email' }, expect: ['routed == true'] });
  t.equal(email.state, 'pass', email.message);
});

t.test('route: an alert that goes elsewhere fails, naming where it goes', async (t) => {
  const warning = await check({ with: { measure: 'route', labels: { severity: 'warning' }, integration: 'pagerduty' } });
  t.equal(warning.state, 'fail');
  t.equal(warning.message, 'an alert {severity="warning"} goes to email-oncall via route.routes[1] (severity=~"critical|warning"), not to pagerduty-critical');
  // A child route takes the sandbox team's critical alerts away from email.
  const sandbox = await check({ with: { measure: 'route', labels: { severity: 'critical', team: 'sandbox' }, integration: 'email' } });
  t.equal(sandbox.state, 'fail');
  t.match(sandbox.message, 'goes to pagerduty-critical via route.routes[0] (severity="critical", continue), blackhole via route.routes[1].routes[0] (team="sandbox"), not to email-oncall');
  // Regexes are anchored: "critical-ish" is not "critical|warning"; the default route takes it.
  const anchored = await check({ with: { measure: 'route', labels: { severity: 'critical-ish' }, receiver: 'slack-alerts' } });
  t.equal(anchored.state, 'pass');
  t.match(anchored.message, 'reaches slack-alerts via route (the default route)');
  // A receiver that does not exist.
  const none = await check({ with: { measure: 'route', labels: { severity: 'critical' }, integration: 'opsgenie' } });
  t.equal(none.state, 'fail');
  t.match(none.message, /cannot reach a receiver with opsgenie_configs: no receiver has opsgenie_configs .*; it goes to pagerduty-critical via/);
});

t.test('route: the probe routes every label set exactly as amtool does', async (t) => {
  const labelSets: Record<string, string>[] = [
    { severity: 'critical' },
    { severity: 'warning' },
    { severity: 'info' },
    { severity: 'info', env: 'production' },
    { severity: 'none', env: 'staging' },
    { severity: 'critical', team: 'sandbox' },
    { severity: 'warning', team: 'sandbox' },
    { alertname: 'Watchdog', severity: 'none' },
    { alertname: 'Watchdog', severity: 'critical' },
    { severity: 'critical-ish' },
    { team: 'sandbox' },
  ];
  for (const labels of labelSets) {
    const obs = await observe({ with: { measure: 'route', labels, receiver: 'blackhole' } });
    const want = await amtool(am.configFile, labels);
    t.same(obs.fields.matched_receivers, [...new Set(want)], JSON.stringify(labels));
  }
  // And on the shipped example configuration, without a running Alertmanager.
  const example = join(ROOT, 'alerts/alertmanager.example.yml');
  const tree = buildRouteTree(parseConfig(readFileSync(example, 'utf8'), example).route);
  const exampleSets: Record<string, string>[] = [{ severity: 'critical' }, { severity: 'warning' }, { severity: 'info' }, { alertname: 'ReadinessCheckStale' }, { severity: 'page' }];
  for (const labels of exampleSets) {
    const mine = [...new Set(matchRoutes(tree, labels).map((r) => r.receiver))];
    t.same(mine, await amtool(example, labels), `example ${JSON.stringify(labels)}`);
  }
});

t.test('route: what the probe predicts is what Alertmanager delivers', async (t) => {
  const predicted = await observe({ with: { measure: 'route', labels: { alertname: 'ProbeRoutingTest', severity: 'critical' }, integration: 'pagerduty' } });
  t.same(predicted.fields.matched_receivers, ['pagerduty-critical', 'email-oncall']);
  await am.postAlerts([{ labels: { alertname: 'ProbeRoutingTest', severity: 'critical' }, annotations: { summary: 'routing test' } }]);
  const page = await pagerduty.waitFor((r) => JSON.stringify(r.body).includes('ProbeRoutingTest'));
  t.match(page, { path: '/v2/enqueue', body: { routing_key: 'pd-routing-key-0123456789', event_action: 'trigger' } });
  const mail = await smtp.waitFor((m) => m.data.includes('ProbeRoutingTest'));
  t.same(mail.to.sort(), ['oncall@offgridflow.test', 'sre@offgridflow.test']);
  t.notOk(slack.requests.some((r) => JSON.stringify(r.body).includes('ProbeRoutingTest')), 'not sent to Slack');

  await am.postAlerts([{ labels: { alertname: 'ProbeInfoTest', severity: 'info', env: 'staging' } }]);
  const info = await slack.waitFor((r) => JSON.stringify(r.body).includes('ProbeInfoTest'));
  t.match(info.body, { channel: '#alerts' });
  const predictedInfo = await observe({ with: { measure: 'route', labels: { alertname: 'ProbeInfoTest', severity: 'info', env: 'staging' }, channel: '#alerts' } });
  t.match(predictedInfo.fields, { routed: true, matched_routes: ['route.routes[3]'] });
});

// ---------------------------------------------------------------------------------------------
// alert (Watchdog), with Prometheus
// ---------------------------------------------------------------------------------------------

t.test('alert: before Prometheus sends it, the Watchdog is absent', async (t) => {
  const r = await check({ with: { measure: 'alert' }, expect: ['present == true'] });
  t.equal(r.state, 'fail');
  t.equal(r.reason, 'condition');
  t.match(r.message, /^Watchdog is not active in Alertmanager: the path from Prometheus \(the rule, its evaluation, the notifier\) to Alertmanager is broken \(active: /);
  t.equal(r.value, 0);
});

t.test('alert: once Prometheus runs, the Watchdog arrives and the check passes', async (st) => {
  // Registered on the file's root test: the tests below still need Prometheus sending.
  const rulesDir = serviceDir('am-rules');
  t.teardown(() => removeDir(rulesDir));
  const watchdogRules = join(rulesDir, 'watchdog.rules.yml');
  writeFileSync(watchdogRules, YAML.stringify({ groups: [{ name: 'meta', rules: [{ alert: 'Watchdog', expr: 'vector(1)', labels: { severity: 'none' } }] }] }));
  // Alertmanagers are discovered a few seconds after start: a firing alert sent before that is
  // dropped and re-sent only after resend-delay (1m by default).
  const prom = await startPrometheus(t, {
    ruleFiles: [watchdogRules],
    alertmanagers: [`127.0.0.1:${am.port}`],
    externalLabels: { cluster: 'test-cluster' },
    args: ['--rules.alert.resend-delay=1s'],
  });
  st.ok(prom.running());

  const def = load({ with: { measure: 'alert' }, expect: ['present == true', 'updated_seconds < 5m'] });
  let r: RunResult | undefined;
  await waitFor(
    'Watchdog in Alertmanager',
    async () => {
      r = await runCheck(def, { log, env: ENV });
      return r.state === 'pass' ? r : undefined;
    },
    { timeoutMs: 20_000, everyMs: 200 },
  ).catch(() => undefined);
  st.equal(r?.state, 'pass', r?.message ?? '');
  st.match(r?.message, /^Watchdog is active in Alertmanager \(1 alert, last received \d+s ago\)$/);
  const obs = await observe({ with: { measure: 'alert' } });
  st.match(obs.fields, { present: true, alerts: 1, suppressed: 0 });
  st.ok((obs.fields.updated_seconds as number) < 60, `updated ${obs.fields.updated_seconds}s ago`);
});

t.test('alert: matchers and another alert name', async (t) => {
  t.equal((await check({ with: { measure: 'alert', matchers: ['cluster="test-cluster"'] } })).state, 'pass');
  const other = await check({ with: { measure: 'alert', matchers: ['cluster="production"'] } });
  t.equal(other.state, 'fail');
  t.match(other.message, 'Watchdog matching cluster="production" is not active in Alertmanager');
  const named = await check({ with: { measure: 'alert', alertname: 'DeadMansSwitch' } });
  t.equal(named.state, 'fail');
  t.match(named.message, /DeadMansSwitch is not active .*\(active: .*Watchdog/);
});

// ---------------------------------------------------------------------------------------------
// The shipped checklist's Alertmanager rows
// ---------------------------------------------------------------------------------------------

t.test('the shipped checklist rows pass against this Alertmanager', async (t) => {
  const loaded = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), ENV);
  if (!loaded.ok) throw new Error(loaded.diagnostics.map(formatDiagnostic).join('\n'));
  for (const id of ['alerting-pipeline-watchdog', 'alertmanager-receiver-pagerduty', 'alertmanager-receiver-slack', 'alertmanager-receiver-email']) {
    const def = loaded.checklist.byId.get(id)!;
    t.equal(def.kind, 'alertmanager', id);
    const r = await runCheck(def, { log, env: ENV });
    t.equal(r.state, 'pass', `${id}: ${r.message}`);
  }
});

t.test('the shipped checklist rows fail when Alertmanager is reconfigured without them', async (t) => {
  const loaded = await loadChecklistFile(join(ROOT, 'probes/offgridflow.yaml'), ENV);
  if (!loaded.ok) throw new Error(loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const run = (id: string) => runCheck(loaded.checklist.byId.get(id)!, { log, env: ENV });
  // Critical alerts page but no longer continue to email; Slack posts to #general.
  const routes = structuredClone(config.route.routes);
  delete (routes[0] as { continue?: boolean }).continue;
  await am.reconfigure({
    ...config,
    route: { ...config.route, routes },
    receivers: config.receivers.map((r) => (r.name === 'slack-alerts' ? { name: r.name, slack_configs: [{ channel: '#general' }] } : r)),
  });
  const email = await waitFor('reloaded config seen', async () => {
    const r = await run('alertmanager-receiver-email');
    return r.state === 'fail' ? r : undefined;
  });
  t.equal(email.message, 'an alert {severity="critical"} goes to pagerduty-critical via route.routes[0] (severity="critical"), not to email-oncall');
  t.equal((await run('alertmanager-receiver-pagerduty')).state, 'pass');
  const slackRow = await run('alertmanager-receiver-slack');
  t.equal(slackRow.state, 'fail');
  t.equal(slackRow.message, 'no Slack config posts to #alerts (slack-alerts: #general)');
  // No PagerDuty receiver at all.
  await am.reconfigure({ ...config, route: { ...config.route, routes: routes.slice(1) }, receivers: config.receivers.filter((r) => r.name !== 'pagerduty-critical') });
  const pd = await waitFor('reloaded config seen', async () => {
    const r = await run('alertmanager-receiver-pagerduty');
    return r.state === 'fail' ? r : undefined;
  });
  t.match(pd.message, 'an alert {severity="critical"} cannot reach a receiver with pagerduty_configs: no receiver has pagerduty_configs');
  await am.reconfigure(config);
});

// ---------------------------------------------------------------------------------------------
// Alertmanager unreachable or answering badly
// ---------------------------------------------------------------------------------------------

t.test('refused, rejected credentials and an answer that is not a configuration are errors', async (t) => {
  const refused = await check({ with: { measure: 'receivers', integration: 'slack', url: `http://127.0.0.1:${await closedPort()}` } });
  t.equal(refused.state, 'error');
  t.equal(refused.reason, 'refused');

  // An auth proxy in front of Alertmanager, and one that answers garbage YAML.
  const proxy = await listenHttp((req, res) => {
    if (req.headers.authorization !== 'Bearer am-proxy-token-1') {
      res.writeHead(401, { 'content-type': 'text/plain' });
      return void res.end('Unauthorized');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ config: { original: 'route: [unclosed' } }));
  });
  t.teardown(() => proxy.close());
  const env = { ...ENV, AM_TOKEN: 'wrong-token-value' };
  const denied = await check({ with: { measure: 'receivers', integration: 'slack', url: proxy.url, tokenEnv: 'AM_TOKEN' } }, env);
  t.equal(denied.state, 'error');
  t.equal(denied.reason, 'auth');
  t.match(denied.message, /Alertmanager http:\/\/127\.0\.0\.1:\d+\/api\/v2\/status: HTTP 401: Unauthorized \(the token in AM_TOKEN was rejected\)/);
  t.notMatch(denied.message, 'wrong-token-value');
  const garbage = await check({ with: { measure: 'receivers', integration: 'slack', url: proxy.url, tokenEnv: 'AM_TOKEN' } }, { ...ENV, AM_TOKEN: 'am-proxy-token-1' });
  t.equal(garbage.state, 'error');
  t.equal(garbage.reason, 'protocol');
  t.match(garbage.message, /config\.original is not YAML/);
});
