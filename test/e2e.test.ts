// End to end with real components (issue 6): a failing check pages, and the dashboards show it.
//
//   test app (HTTP, 200 or 503 as the test says)
//     <- readiness serve (the real CLI, a two-check checklist, interval 1s)
//     <- Prometheus 2.42 (/usr/bin/prometheus: scrapes it every 1s, the SHIPPED rules loaded)
//     -> Alertmanager 0.25 (/usr/bin/prometheus-alertmanager: the SHIPPED example routing)
//     -> a local PagerDuty Events API v2 (test/helpers/pagerduty-capture.ts), Slack and SMTP sinks
//
// Break the app: the critical check fails, ReadinessCriticalCheckFailing fires and PagerDuty
// gets exactly one trigger event carrying the check, severity critical and the runbook. While
// it fails, every dashboard query runs on that Prometheus. Mend the app: the alert resolves,
// PagerDuty gets the resolve event for the same incident, and nothing else is ever sent to it.
//
// What differs from production, and only that (each asserted below):
//  - the rules are a generated copy of alerts/readiness.rules.yml whose `for:` durations are
//    shortened to 2s (ReadinessCriticalCheckFailing waits 5m); expressions, labels and
//    annotations are untouched;
//  - the Alertmanager config is alerts/alertmanager.example.yml with its endpoints pointed at
//    local captures, secrets in temp files, and group_wait/group_interval at 1s. repeat_interval
//    stays as shipped (1h for pages): it is what makes "one trigger while the alert fires" true.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { captureHttp, captureSmtp, startAlertmanager } from './helpers/alertmanager.js';
import { startServe } from './helpers/cli.js';
import { listenHttp } from './helpers/listeners.js';
import { startPagerDutyCapture, type ReceivedEvent } from './helpers/pagerduty-capture.js';
import { ROOT, parsePromQL, startPrometheus, substituteGrafanaVariables, type PrometheusServer, type RuleGroup } from './helpers/prometheus.js';
import { removeDir, serviceDir, waitFor } from './helpers/service.js';
import type { FailingCheck } from '../src/state.js';

const RULES_FILE = join(ROOT, 'alerts/readiness.rules.yml');
const ALERTMANAGER_EXAMPLE = join(ROOT, 'alerts/alertmanager.example.yml');
const DASHBOARD_DIR = join(ROOT, 'dashboards');

const CHECK = 'e2e-app-health';
/** A second check that never breaks: only the broken one may page. */
const MONITOR_CHECK = 'e2e-app-version';
const ALERT = 'ReadinessCriticalCheckFailing';
const JOB = 'readiness-exporter';
const SHORT_FOR = '2s';
const TOKEN = 'e2e-test-token';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The shipped files, transformed for a fast local run
// ---------------------------------------------------------------------------------------------

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

/**
 * The shipped rules with every `for:` set to `to`. ReadinessCriticalCheckFailing's 5m (and the
 * other alerts' 1m..15m) would make the test wait minutes; everything else is kept as is.
 */
function shortenFor(rules: RuleFile, to: string): RuleFile {
  const copy = structuredClone(rules);
  for (const g of copy.groups) for (const r of g.rules) if (r.for !== undefined) r.for = to;
  return copy;
}

/** A rule file without its `for:` durations: what shortenFor must leave identical. */
const withoutFor = (rules: RuleFile): RuleFile => ({ groups: rules.groups.map((g) => ({ ...g, rules: g.rules.map(({ for: _for, ...r }) => r) })) });

interface Route {
  receiver?: string;
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
  [k: string]: unknown;
}
interface AlertmanagerConfig {
  global: Record<string, unknown>;
  route: Route;
  receivers: { name: string; pagerduty_configs?: Record<string, unknown>[]; [k: string]: unknown }[];
  inhibit_rules?: unknown[];
}

interface LocalEndpoints {
  pagerdutyUrl: string;
  pagerdutyKeyFile: string;
  slackUrlFile: string;
  smtpSmarthost: string;
  smtpPasswordFile: string;
}

const LOCAL_GLOBAL_KEYS = ['slack_api_url_file', 'smtp_smarthost', 'smtp_auth_password_file', 'smtp_require_tls'] as const;
const LOCAL_PAGERDUTY_KEYS = ['url', 'routing_key_file'] as const;
const FAST_ROUTE_KEYS = ['group_wait', 'group_interval'] as const;

/**
 * The example routing pointed at local endpoints: the PagerDuty receiver's url and key file,
 * Slack's webhook URL file, the SMTP relay (plain: the capture speaks no STARTTLS) and password
 * file. group_wait and group_interval become 1s wherever the example sets them, so the first
 * notification and the resolve go out within a second. Nothing else changes.
 */
function localAlertmanagerConfig(example: AlertmanagerConfig, local: LocalEndpoints): AlertmanagerConfig {
  const c = structuredClone(example);
  Object.assign(c.global, {
    slack_api_url_file: local.slackUrlFile,
    smtp_smarthost: local.smtpSmarthost,
    smtp_auth_password_file: local.smtpPasswordFile,
    smtp_require_tls: false,
  });
  const fast = (r: Route) => {
    for (const k of FAST_ROUTE_KEYS) if (r[k] !== undefined) r[k] = '1s';
    r.routes?.forEach(fast);
  };
  fast(c.route);
  for (const pd of c.receivers.flatMap((r) => r.pagerduty_configs ?? [])) Object.assign(pd, { url: local.pagerdutyUrl, routing_key_file: local.pagerdutyKeyFile });
  return c;
}

/** A config without the keys localAlertmanagerConfig may touch: must equal the example's. */
function withoutLocalKeys(config: AlertmanagerConfig): AlertmanagerConfig {
  const c = structuredClone(config);
  for (const k of LOCAL_GLOBAL_KEYS) delete c.global[k];
  const strip = (r: Route) => {
    for (const k of FAST_ROUTE_KEYS) delete r[k];
    r.routes?.forEach(strip);
  };
  strip(c.route);
  for (const pd of c.receivers.flatMap((r) => r.pagerduty_configs ?? [])) for (const k of LOCAL_PAGERDUTY_KEYS) delete pd[k];
  return c;
}

// ---------------------------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------------------------

interface Panel {
  title?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  panels: Panel[];
  annotations?: { list?: { name: string; expr?: string }[] };
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}
interface DashboardQuery {
  dashboard: string;
  where: string;
  expr: string;
}

function dashboardQueries(): { dashboards: Dashboard[]; queries: DashboardQuery[] } {
  const dashboards = readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(DASHBOARD_DIR, f), 'utf8')) as Dashboard);
  const queries: DashboardQuery[] = [];
  for (const d of dashboards) {
    for (const p of d.panels.flatMap((x) => [x, ...(x.panels ?? [])])) {
      for (const q of p.targets ?? []) if (q.expr) queries.push({ dashboard: d.title, where: `${d.title} / ${p.title} / ${q.refId}`, expr: q.expr });
    }
    for (const a of d.annotations?.list ?? []) if (a.expr) queries.push({ dashboard: d.title, where: `${d.title} / annotation ${a.name}`, expr: a.expr });
  }
  return { dashboards, queries };
}

/** True when every metric the expression selects comes from the exporter or from Prometheus. */
function readsOnlyExporterMetrics(expr: string): boolean {
  return parsePromQL(expr).selectors.every((s) => s.metric !== undefined && (s.metric.startsWith('readiness_') || s.metric === 'up' || s.metric === 'ALERTS'));
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

t.test('the PagerDuty capture refuses what the Events API v2 refuses', async (t) => {
  const pd = await startPagerDutyCapture(t);
  const post = async (body: unknown, path = '/v2/enqueue', method = 'POST') => {
    const res = await fetch(`${pd.url}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(method === 'POST' && { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as { status: string; message: string; dedup_key?: string; errors?: string[] } };
  };
  const trigger = { routing_key: pd.routingKey, event_action: 'trigger', dedup_key: 'k1', payload: { summary: 's', source: 'src', severity: 'critical' } };
  t.same(await post(trigger), { status: 202, body: { status: 'success', message: 'Event processed', dedup_key: 'k1' } });
  const { dedup_key: _k, ...noKey } = trigger;
  const made = await post(noKey);
  t.match(made.body.dedup_key, /^[0-9a-f]{32}$/, 'a trigger without dedup_key gets one');

  const bad: [unknown, RegExp][] = [
    [{ ...trigger, payload: { ...trigger.payload, severity: 'high' } }, /payload\.severity/],
    [{ ...trigger, payload: { summary: 's', severity: 'critical' } }, /payload\.source/],
    [{ ...trigger, routing_key: 'x'.repeat(32) }, /routing_key/],
    [{ ...trigger, routing_key: 'short' }, /32 characters/],
    [{ routing_key: pd.routingKey, event_action: 'resolve' }, /dedup_key/],
    [{ ...trigger, event_action: 'fire' }, /event_action/],
    [{ ...trigger, links: [{ text: 'no href' }] }, /links/],
  ];
  for (const [body, error] of bad) {
    const r = await post(body);
    t.equal(r.status, 400, `refused: ${JSON.stringify(body)}`);
    t.equal(r.body.status, 'invalid event');
    t.match(r.body.errors?.join('\n'), error);
  }
  t.equal((await post({}, '/v1/enqueue')).status, 404, 'only /v2/enqueue exists');
  t.equal((await post(undefined, '/v2/enqueue', 'GET')).status, 405, 'only POST');
  t.equal(pd.events.length, 2, 'only the valid events are kept');
  t.equal(pd.rejected.length, bad.length + 2, 'every refusal is recorded');
});

t.test('a failing critical check pages PagerDuty once through the shipped rules and routing, then resolves', async (t) => {
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const dir = serviceDir('readiness-e2e');
  t.teardown(() => removeDir(dir));

  // --- The app the checks watch: /health breaks on demand, /version never does. -------------
  let healthy = true;
  const app = await listenHttp((req, res) => {
    if (req.url === '/health') res.writeHead(healthy ? 200 : 503).end(healthy ? 'ok' : 'down');
    else if (req.url === '/version') res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":"1.0.0"}');
    else res.writeHead(404).end();
  });
  t.teardown(() => app.close());

  // --- The shipped rules, and the runbook URL they give a check alert. ----------------------
  const shippedRules = YAML.parse(readFileSync(RULES_FILE, 'utf8')) as RuleFile;
  const shipped = shippedRules.groups.flatMap((g) => g.rules).find((r) => r.alert === ALERT);
  t.equal(shipped?.for, '5m', `the shipped ${ALERT} waits 5m: the reason for shortening`);
  const runbookTemplate = shipped?.annotations?.runbook_url ?? '';
  t.match(runbookTemplate, /\{\{ \$labels\.check \}\}/, 'the shipped runbook_url is built from the check id');
  const RUNBOOK = runbookTemplate.replace('{{ $labels.check }}', CHECK);
  t.match(RUNBOOK, /^https:\/\/[^{}\s]+$/, `runbook ${RUNBOOK}`);

  // --- The exporter: the real `readiness serve`. The check's runbook follows the documented
  // convention (docs/alerts.md, runbook_url), so /readiness and the page link the same page.
  const checklistFile = join(dir, 'checklist.yaml');
  writeFileSync(
    checklistFile,
    `apiVersion: readiness/v1
checklist: e2e
defaults: { interval: 1s, timeout: 900ms }
checks:
  - id: ${CHECK}
    title: The app's health endpoint answers 200
    section: verify
    severity: critical
    phase: verify
    probe: http
    with: { url: "${app.url}", path: /health }
    expect: ["status == 200"]
    runbook: ${RUNBOOK}
  - id: ${MONITOR_CHECK}
    title: The deployed version answers after the deployment
    section: monitor
    severity: high
    phase: monitor
    probe: http
    with: { url: "${app.url}", path: /version }
    expect: ["status == 200"]
    runbook: ${runbookTemplate.replace('{{ $labels.check }}', MONITOR_CHECK)}
`,
  );
  const svc = await startServe(t, ['-c', checklistFile, '--data-dir', join(dir, 'exporter-data')], { READINESS_API_TOKEN: TOKEN });
  const checkState = async (id: string) => (await (await fetch(`${svc.url}/checks/${id}`)).json()) as FailingCheck;
  await waitFor(
    'both checks pass',
    async () => ((await Promise.all([CHECK, MONITOR_CHECK].map(checkState))).every((c) => c.state === 'pass') ? true : undefined),
    { timeoutMs: 20_000, everyMs: 100 },
  );
  t.equal((await checkState(CHECK)).runbook, RUNBOOK, 'the exporter serves the same runbook');
  // A deployment, so the dashboards' deployment markers have a time to show.
  const dep = await fetch(`${svc.url}/deployments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ version: '1.0.0', by: 'e2e' }),
  });
  t.equal(dep.status, 201, 'deployment recorded');
  t.comment(`${elapsed()}: exporter up, checks passing`);

  // --- Notification endpoints and Alertmanager with the example routing. ---------------------
  const pd = await startPagerDutyCapture(t);
  const slack = await captureHttp(t);
  const smtp = await captureSmtp(t);
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets, { mode: 0o700 });
  const local: LocalEndpoints = {
    pagerdutyUrl: pd.enqueueUrl,
    pagerdutyKeyFile: join(secrets, 'pagerduty-routing-key'),
    slackUrlFile: join(secrets, 'slack-webhook-url'),
    smtpSmarthost: `${smtp.host}:${smtp.port}`,
    smtpPasswordFile: join(secrets, 'smtp-password'),
  };
  writeFileSync(local.pagerdutyKeyFile, `${pd.routingKey}\n`);
  writeFileSync(local.slackUrlFile, `${slack.url}/services/T000/B000/XXXX`);
  writeFileSync(local.smtpPasswordFile, 'e2e-password');
  const example = YAML.parse(readFileSync(ALERTMANAGER_EXAMPLE, 'utf8')) as AlertmanagerConfig;
  const amConfig = localAlertmanagerConfig(example, local);
  t.strictSame(withoutLocalKeys(amConfig), withoutLocalKeys(example), 'routing, receivers, templates and inhibitions are the example\'s');
  t.equal(amConfig.route.routes?.find((r) => r.receiver === 'pagerduty')?.repeat_interval, example.route.routes?.find((r) => r.receiver === 'pagerduty')?.repeat_interval, 'the page repeat_interval is the example\'s');
  const am = await startAlertmanager(t, YAML.stringify(amConfig));
  t.comment(`${elapsed()}: alertmanager up`);

  // --- Prometheus. It starts with no rules: the shipped ones are loaded once the exporter has
  // been scraped. ReadinessExporterAbsent (for: 5m, here 2s) would otherwise fire, and page,
  // during the ~5s Prometheus takes to hand a new target to its scraper.
  const rulesFile = join(dir, 'readiness.rules.yml');
  writeFileSync(rulesFile, 'groups: []\n');
  const prom: PrometheusServer = await startPrometheus(t, {
    ruleFiles: [rulesFile],
    scrapeConfigs: [{ job_name: JOB, static_configs: [{ targets: [new URL(svc.url).host] }] }],
    alertmanagers: [`127.0.0.1:${am.port}`],
    scrapeInterval: '1s',
    evaluationInterval: '1s',
  });
  await prom.waitForTargets({ count: 1, scrapes: 2 });
  t.comment(`${elapsed()}: prometheus scraping the exporter`);

  // The generated copy: only `for:` differs from the shipped file (expressions, labels and
  // annotations untouched), which the comparison below proves.
  const fast = shortenFor(shippedRules, SHORT_FOR);
  t.strictSame(withoutFor(fast), withoutFor(shippedRules), 'only the for: durations differ from the shipped rules');
  t.ok(fast.groups.flatMap((g) => g.rules).every((r) => r.for === undefined || r.for === SHORT_FOR), `every for: is ${SHORT_FOR}`);
  writeFileSync(rulesFile, YAML.stringify(fast));
  await prom.reload();
  const groups = await prom.waitForRuleEvaluation();
  // GET /api/v1/rules gives each alerting rule's `for:` as `duration`, in seconds.
  const loaded = groups.flatMap((g) => g.rules) as (RuleGroup['rules'][number] & { duration?: number })[];
  t.same(groups.map((g) => g.name).sort(), shippedRules.groups.map((g) => g.name).sort(), 'every shipped group is loaded');
  t.equal(loaded.length, shippedRules.groups.flatMap((g) => g.rules).length, 'every shipped rule is loaded');
  t.equal(loaded.find((r) => r.name === ALERT)?.duration, 2, `${ALERT} waits 2s here`);

  const ourAlerts = async () => (await prom.alerts()).filter((a) => a.labels.alertname === ALERT && a.labels.check === CHECK);

  await t.test('healthy: every rule evaluates, nothing is pending, nothing is sent', async (t) => {
    // Two evaluation rounds after the first, so a rule that could fire has started counting.
    await sleep(2500);
    for (const g of await prom.rules()) {
      for (const r of g.rules) t.notOk(r.lastError, `${g.name}/${r.name} evaluates: ${r.lastError ?? 'ok'}`);
    }
    t.same(await prom.alerts(), [], 'no alert pending or firing');
    t.same(pd.events, [], 'no page');
  });

  // --- Break the app. ------------------------------------------------------------------------
  const brokenAt = Date.now();
  healthy = false;
  let trigger: ReceivedEvent | undefined;

  await t.test('broken: the check fails, the alert fires, PagerDuty gets one trigger event', async (t) => {
    const failing = await waitFor('the check fails', async () => {
      const c = await checkState(CHECK);
      return c.state === 'pass' ? undefined : c;
    }, { timeoutMs: 10_000, everyMs: 100 });
    t.match(failing, { state: 'fail', reason: 'http-status' }, 'the exporter says fail, http-status (503)');

    const firing = await waitFor('the alert fires in Prometheus', async () => (await ourAlerts()).find((a) => a.state === 'firing'), { timeoutMs: 20_000, everyMs: 200 });
    t.comment(`${elapsed()}: ${ALERT} firing ${((Date.now() - brokenAt) / 1000).toFixed(1)}s after the break`);
    // max without (instance, pod) leaves the check's identity and the exporter's job, nothing per replica.
    t.strictSame(firing.labels, { alertname: ALERT, check: CHECK, check_severity: 'critical', job: JOB, phase: 'verify', section: 'verify', severity: 'critical' }, 'the alert\'s labels');
    t.equal(firing.annotations.runbook_url, RUNBOOK);

    trigger = await pd.waitFor((e) => e.event.event_action === 'trigger', 20_000);
    t.comment(`${elapsed()}: PagerDuty trigger ${((trigger.at - brokenAt) / 1000).toFixed(1)}s after the break`);
    const e = trigger.event;
    t.equal(e.routing_key, pd.routingKey, 'the routing key read from routing_key_file');
    t.match(e.dedup_key, /^[0-9a-f]{64}$/, 'Alertmanager\'s dedup_key (the group key hash)');
    t.equal(e.payload?.severity, 'critical', 'severity critical');
    t.equal(e.payload?.class, ALERT);
    t.equal(e.payload?.component, CHECK, 'the check id');
    t.equal(e.payload?.group, undefined, 'no namespace label in this setup, so no group (Alertmanager omits it)');
    t.equal(e.payload?.summary, `Critical readiness check ${CHECK} is failing.`);
    t.same(e.links, [{ href: RUNBOOK, text: 'Runbook' }], 'the runbook as a link');
    const details = e.payload?.custom_details ?? {};
    t.match(details, { check: CHECK, check_severity: 'critical', section: 'verify', phase: 'verify', runbook_url: RUNBOOK });
    // The description's `query` lookups ran in the real Prometheus: the current state and reason.
    t.match(details.description, new RegExp(`^Check ${CHECK} \\(section verify, phase verify\\) is in state\\s+fail\\s+with reason\\s+http-status\\s+and has not passed for 5 minutes`));
    t.match(details.firing, CHECK, 'the firing alert listed');
  });

  await t.test('while it fails: every dashboard query runs on this Prometheus', async (t) => {
    const { dashboards, queries } = dashboardQueries();
    t.ok(queries.length >= 20, `${queries.length} queries`);
    // Shown only while a rollback is recommended, which this scenario never makes (it would page
    // on its own): empty is the right answer here. test/dashboards.test.ts covers it set to 1.
    const emptyNow = new Set(['Post-deploy monitoring / annotation Rollback recommended']);
    let required = 0;
    for (const q of queries) {
      const result = await prom.query(substituteGrafanaVariables(q.expr));
      if (emptyNow.has(q.where)) {
        t.same(result, [], `${q.where}: empty, no rollback recommended`);
        continue;
      }
      // The post-deploy panels over app metrics (http_*, pg_*, container_*, kube_*) need an app,
      // postgres_exporter, cAdvisor and kube-state-metrics: test/dashboards.test.ts runs them
      // against series shaped like those on a real Prometheus. Here they must run without error.
      if (!readsOnlyExporterMetrics(q.expr)) continue;
      required++;
      t.ok(result.length > 0, `${q.where}: data`, { expr: q.expr });
      t.ok(result.every((s) => Number.isFinite(Number(s.value[1]))), `${q.where}: numbers`, { result });
    }
    t.ok(required >= 17, `${required} queries over the exporter's metrics returned data`);
    t.ok(
      queries.filter((q) => q.dashboard === 'Readiness overview').every((q) => readsOnlyExporterMetrics(q.expr)),
      'every Readiness overview query reads the exporter, so all of them were required to return data',
    );
    t.equal(emptyNow.size, queries.filter((q) => emptyNow.has(q.where)).length, 'the exemption names an existing query');

    // What the panels show is this scenario.
    const panel = async (where: string) => {
      const q = queries.find((x) => x.where.startsWith(where));
      t.ok(q, `${where} exists`);
      return q ? prom.query(substituteGrafanaVariables(q.expr)) : [];
    };
    t.same((await panel('Readiness overview / Failing checks over time /')).map((s) => s.metric.check), [CHECK], 'failing checks: exactly the broken one');
    t.same((await panel('Post-deploy monitoring / Alerts firing /')).map((s) => s.metric), [{ alertname: ALERT, severity: 'critical' }], 'alerts firing: exactly the page');
    for (const d of dashboards) {
      for (const v of d.templating.list.filter((x) => x.type === 'query' && x.name === 'job')) {
        const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
        const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
        const values = await prom.api<string[]>(`label/${m?.[2] ?? ''}/values`, { 'match[]': m?.[1] ?? '' });
        t.same(values, [JOB], `${d.title} / variable job lists the exporter's job`);
      }
    }
  });

  // Hold the failure for a few group_interval (1s) ticks past the trigger: a repeat would show now.
  await sleep(Math.max(0, (trigger?.at ?? Date.now()) + 3500 - Date.now()));
  const triggersWhileFailing = pd.events.filter((e) => e.event.event_action === 'trigger').length;

  // --- Mend the app. -------------------------------------------------------------------------
  const mendedAt = Date.now();
  healthy = true;

  await t.test('mended: the alert resolves and PagerDuty gets the resolve for the same incident', async (t) => {
    t.equal(triggersWhileFailing, 1, 'one trigger while the alert fired');
    const resolve = await pd.waitFor((e) => e.event.event_action === 'resolve', 20_000);
    t.comment(`${elapsed()}: PagerDuty resolve ${((resolve.at - mendedAt) / 1000).toFixed(1)}s after the fix`);
    t.equal(resolve.event.dedup_key, trigger?.event.dedup_key, 'resolves the incident the trigger opened');
    t.equal(resolve.event.routing_key, pd.routingKey);
    t.match(resolve.event.payload, { severity: 'critical', class: ALERT, component: CHECK, custom_details: { num_firing: '0', num_resolved: '1' } }, 'the resolve names the same alert');
    await waitFor('Prometheus no longer lists the alert', async () => ((await ourAlerts()).length === 0 ? true : undefined), { timeoutMs: 10_000, everyMs: 200 });
    t.same(await prom.alerts(), [], 'no alert pending or firing');

    // A few more group_interval ticks: nothing else may arrive.
    await sleep(2500);
    t.same(
      pd.events.map((e) => [e.event.event_action, e.event.payload?.class ?? '', e.event.payload?.component ?? '', e.event.dedup_key]),
      [
        ['trigger', ALERT, CHECK, trigger?.event.dedup_key],
        ['resolve', ALERT, CHECK, trigger?.event.dedup_key],
      ],
      'PagerDuty received exactly: one trigger and its resolve',
    );
    t.same(pd.rejected, [], 'the capture refused nothing');

    // Critical pages and is emailed (the checklist's "email notifications for critical
    // alerts"); Slack #alerts is for warnings.
    t.same(slack.requests.filter((r) => JSON.stringify(r.body).includes(ALERT)), [], 'no Slack message for the page');
    const emailDeadline = Date.now() + 15_000;
    while (!smtp.messages.some((m) => m.data.includes(ALERT)) && Date.now() < emailDeadline) await new Promise((r) => setTimeout(r, 100));
    t.ok(smtp.messages.some((m) => m.data.includes(ALERT)), 'the page is also emailed');
    if (slack.requests.length + smtp.messages.length > 0) t.comment(`other notifications: ${JSON.stringify({ slack: slack.requests, mail: smtp.messages })}`);

    // Alertmanager's own account agrees.
    const metrics = await (await fetch(`${am.url}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name}\\{integration="pagerduty"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
    t.equal(metric('alertmanager_notifications_total'), 2, 'Alertmanager sent two PagerDuty notifications');
    t.equal(metric('alertmanager_notifications_failed_total'), 0, 'none failed');
  });

  t.comment(`${elapsed()}: done`);
});
