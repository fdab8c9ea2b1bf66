// End to end with real components (issues 6 and 13): one fault, one page.
//
//   app (HTTP: health, a login flow, /metrics with http_requests_total) and an ops server
//   (backup status, a runbook page)
//     <- readiness serve (the real CLI: verify, monitor and pre-deploy checks shaped like the
//        shipped ones, and one that is unconfigured here)
//     <- Prometheus 2.42 (/usr/bin/prometheus: scrapes the exporter and the app, the SHIPPED rules)
//     -> Alertmanager 0.25 (/usr/bin/prometheus-alertmanager: the SHIPPED example routing)
//     -> a local PagerDuty Events API v2 (test/helpers/pagerduty-capture.ts), Slack and SMTP sinks
//
// The faults, one after another, each with the exact PagerDuty events it must give:
//   1. a failing pre-deploy check outside any window: the backup check (notify: page) is one
//      trigger and its resolve; the runbook check (a ticket) goes to Slack, never to PagerDuty;
//   2. the app answering 500 inside the window of deployment 1.0.0: ONE trigger (the rollback
//      incident, naming the version, its time, each failing check with value and expectation,
//      the post-deploy dashboard and the runbook), then its resolve; the per-check page of
//      health-live is held back by it;
//   3. a total outage (the app process gone) inside the window of 1.0.1: ONE trigger, another
//      incident (another deployment), then its resolve;
//   4. the exporter killed while the backup incident is open: ReadinessExporterDown's trigger
//      and resolve, and nothing for the backup incident until the backup is fixed;
//   and the checks that are unconfigured the whole time (an unset target variable, no cluster)
//   never alert.
//
// What differs from production, and only that (each asserted below):
//  - the rules are a generated copy of alerts/readiness.rules.yml whose `for:` durations are
//    2s (0s stays 0s) and whose application alerts read rate()s over [10s] instead of [5m];
//    everything else is untouched;
//  - Prometheus scrapes and evaluates every 1s, the checks run every 1s;
//  - the Alertmanager config is alerts/alertmanager.example.yml with its endpoints pointed at
//    local captures, secrets in temp files, and group_wait/group_interval at 1s. repeat_interval
//    stays as shipped (1h for pages): it is what makes "one trigger while the alert fires" true.
// The fault-to-page time with production intervals is measured by bench/page-latency.ts
// (docs/alerts.md, "Fault to page").
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import YAML from 'yaml';
import { captureHttp, captureSmtp, startAlertmanager } from './helpers/alertmanager.js';
import { startServe } from './helpers/cli.js';
import { listenHttp } from './helpers/listeners.js';
import { startPagerDutyCapture, type ReceivedEvent } from './helpers/pagerduty-capture.js';
import { App, localAlertmanagerConfig, withoutLocalKeys, type AlertmanagerConfig, type LocalEndpoints } from './helpers/paging.js';
import {
  CONTRACT_METRICS,
  PROPOSED_METRICS,
  RECORDED_METRICS,
  ROOT,
  TARGET_LABELS,
  parsePromQL,
  startPrometheus,
  substituteGrafanaVariables,
  type PrometheusServer,
  type RuleGroup,
} from './helpers/prometheus.js';
import { freePort, removeDir, serviceDir, waitFor } from './helpers/service.js';
import { GRAFANA_BASE } from '../dashboards/src/common.js';
import { UID as POST_DEPLOY_UID } from '../dashboards/src/post-deploy-monitoring.js';
import type { FailingCheck } from '../src/state.js';

// Five faults in sequence, each held and mended: about 2 minutes, over 2 on a loaded 2-core machine.
t.setTimeout(10 * 60_000);

const RULES_FILE = join(ROOT, 'alerts/readiness.rules.yml');
const ALERTMANAGER_EXAMPLE = join(ROOT, 'alerts/alertmanager.example.yml');
const SHIPPED_CHECKLIST = join(ROOT, 'probes/offgridflow.yaml');
const DASHBOARD_DIR = join(ROOT, 'dashboards');

const JOB = 'readiness-exporter';
const APP_JOB = 'e2e-app';
const SHORT_FOR = '2s';
/**
 * The rollback incident's keep_firing_for in the test (production: 5m): longer than the checks
 * of the e2e checklist take to recover one after another, even on a loaded machine, so that a
 * `notify: page` check still failing when the rollback checks pass stays inhibited until it too
 * passes (the total outage below).
 */
const SHORT_KEEP = '15s';
/** The application alerts' rate() window in the test (production: 5m). */
const SHORT_WINDOW = '10s';
const TOKEN = 'e2e-test-token';
/** Checks whose failure inside the window is the rollback incident (notify: rollback, the default for verify and monitor). */
const ROLLBACK_CHECKS = ['health-ready', 'flow-login', 'monitor-error-rate', 'monitor-no-alerts'];
/**
 * Checks this environment never configures: a target variable that is unset, and a Kubernetes
 * check with no cluster (no kubeconfig, no service account). Both would page if they failed.
 */
const UNCONFIGURED = ['api-docs-staging', 'k8s-nodes-ready'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The shipped files, transformed for a fast local run
// ---------------------------------------------------------------------------------------------

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

/** The group of application alerts: their rate() windows are shortened here. */
const APP_GROUP = 'readiness-post-deploy';

/**
 * The shipped rules with every non-zero `for:` at 2s, keep_firing_for at 15s and the
 * application alerts' rate() windows at 10s: ReadinessCheckFailing's 5m and an error rate over
 * 5m would make the test wait minutes. The recording rules' 10-minute "last word" stays as shipped.
 */
function fastRules(rules: RuleFile): RuleFile {
  const copy = structuredClone(rules);
  for (const g of copy.groups) {
    for (const r of g.rules) {
      if (r.for !== undefined && r.for !== '0s') r.for = SHORT_FOR;
      if (r.keep_firing_for !== undefined) r.keep_firing_for = SHORT_KEEP;
      if (g.name === APP_GROUP) r.expr = r.expr.replaceAll('[5m]', `[${SHORT_WINDOW}]`);
    }
  }
  return copy;
}

/** A rule file without what fastRules may change: must be identical for the copy and the shipped file. */
const comparable = (rules: RuleFile): RuleFile => ({
  groups: rules.groups.map((g) => ({
    ...g,
    rules: g.rules.map(({ for: _for, keep_firing_for: _keep, ...r }) => ({ ...r, expr: g.name === APP_GROUP ? r.expr.replaceAll(`[${SHORT_WINDOW}]`, '[5m]') : r.expr })),
  })),
});

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
// The tests
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

/** A PagerDuty event as the assertions compare it. */
const brief = (e: ReceivedEvent) => [e.event.event_action, e.event.payload?.class ?? '', e.event.payload?.component ?? '', e.event.dedup_key ?? ''];

t.test('one fault, one page: the shipped rules and routing, from fault to PagerDuty and back', async (t) => {
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const dir = serviceDir('readiness-e2e');
  t.teardown(() => removeDir(dir));
  /** This test, for what must outlive a subtest (the restarted exporter). */
  const whole = t;

  // --- The app and the ops endpoints the pre-deploy checks read. ---------------------------
  const app = await App.start();
  t.teardown(() => app.stop());
  const ops = { backupFresh: true, runbookPublished: true };
  const opsServer = await listenHttp((req, res) => {
    if (req.url === '/backup') res.writeHead(ops.backupFresh ? 200 : 500).end(ops.backupFresh ? 'newest backup 2h old' : 'newest backup 31h old');
    else if (req.url === '/runbooks/api-down') res.writeHead(ops.runbookPublished ? 200 : 404).end();
    else res.writeHead(404).end();
  });
  t.teardown(() => opsServer.close());

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
  t.strictSame(withoutLocalKeys(amConfig), withoutLocalKeys(example), "routing, grouping, receivers, templates and inhibitions are the example's");
  t.equal(amConfig.route.routes?.find((r) => r.receiver === 'pagerduty')?.repeat_interval, example.route.routes?.find((r) => r.receiver === 'pagerduty')?.repeat_interval, "the page repeat_interval is the example's");
  const am = await startAlertmanager(t, YAML.stringify(amConfig));
  t.comment(`${elapsed()}: alertmanager up`);

  // --- Prometheus first (the monitor checks query it), with no rules yet: the shipped ones are
  // loaded once the exporter has been scraped, or ReadinessExporterDown (here 2s) would page
  // while the exporter starts.
  const exporterPort = await freePort();
  const rulesFile = join(dir, 'readiness.rules.yml');
  writeFileSync(rulesFile, 'groups: []\n');
  const prom: PrometheusServer = await startPrometheus(t, {
    ruleFiles: [rulesFile],
    scrapeConfigs: [
      { job_name: JOB, static_configs: [{ targets: [`127.0.0.1:${exporterPort}`] }] },
      { job_name: APP_JOB, static_configs: [{ targets: [`127.0.0.1:${app.port}`] }] },
    ],
    alertmanagers: [`127.0.0.1:${am.port}`],
    scrapeInterval: '1s',
    evaluationInterval: '1s',
  });
  t.comment(`${elapsed()}: prometheus up`);

  // --- The exporter: the real `readiness serve`, with checks shaped like the shipped ones. -----
  const shipped = YAML.parse(readFileSync(SHIPPED_CHECKLIST, 'utf8')) as { checks: { id: string; with?: { matchers?: string[] } }[] };
  const noAlertsMatchers = shipped.checks.find((c) => c.id === 'monitor-no-alerts')?.with?.matchers ?? [];
  t.ok(noAlertsMatchers.length > 0, "the shipped monitor-no-alerts' matchers");
  const checklistFile = join(dir, 'checklist.yaml');
  writeFileSync(
    checklistFile,
    YAML.stringify({
      apiVersion: 'readiness/v1',
      checklist: 'e2e',
      defaults: { interval: '1s', timeout: '900ms', runbookBase: 'https://runbooks.offgridflow.com/readiness' },
      checks: [
        // Verify (notify: rollback by default), failAfter 2 as shipped.
        { id: 'health-ready', title: 'Readiness endpoint answers 200', section: 'verify', severity: 'critical', phase: 'verify', probe: 'http', with: { url: app.url, path: '/health/ready' }, expect: ['status == 200'], failAfter: 2 },
        // Someone wants this one paged at any hour: inside the window the rollback incident covers it.
        { id: 'health-live', title: 'Liveness endpoint answers 200', section: 'verify', severity: 'critical', phase: 'verify', probe: 'http', with: { url: app.url, path: '/health/live' }, expect: ['status == 200'], failAfter: 2, notify: 'page' },
        {
          id: 'flow-login',
          title: 'A user can log in',
          section: 'verify',
          severity: 'critical',
          phase: 'verify',
          probe: 'flow',
          with: {
            url: app.url,
            steps: [
              { name: 'login', method: 'POST', path: '/api/login', json: { user: 'smoke' }, capture: { token: 'json.token' } },
              { name: 'me', path: '/api/me', headers: { Authorization: 'Bearer {{token}}' } },
            ],
          },
          expect: ['duration_ms < 3s'],
        },
        // Monitor (notify: rollback by default), as shipped but over [10s] instead of [5m].
        {
          id: 'monitor-error-rate',
          title: 'Error rate < 1%',
          section: 'monitor',
          severity: 'critical',
          phase: 'monitor',
          probe: 'prometheus',
          with: {
            url: prom.url,
            measure: 'query',
            query: `100 * (sum(rate(http_requests_total{job="${APP_JOB}", code=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{job="${APP_JOB}"}[10s]))`,
          },
          expect: ['value < 1'],
        },
        { id: 'monitor-no-alerts', title: 'No alerts firing', section: 'monitor', severity: 'high', phase: 'monitor', probe: 'prometheus', with: { url: prom.url, measure: 'alerts', matchers: noAlertsMatchers }, expect: ['firing == 0'] },
        // Pre-deploy: backups are watched continuously (a page); a missing runbook is a ticket.
        { id: 'backup-latest-age', title: 'Latest backup < 24h old', section: 'disaster-recovery', severity: 'critical', phase: 'pre-deploy', probe: 'http', with: { url: opsServer.url, path: '/backup' }, expect: ['status == 200'], notify: 'page' },
        { id: 'runbook-api-down', title: 'Runbook: API down', section: 'documentation', severity: 'high', phase: 'pre-deploy', probe: 'http', with: { url: opsServer.url, path: '/runbooks/api-down' }, expect: ['status == 200'] },
        // Its target is never named here: unconfigured, and it must never alert, although it would page.
        { id: 'api-docs-staging', title: 'Staging API docs', section: 'documentation', severity: 'critical', phase: 'pre-deploy', probe: 'http', with: { url: '${E2E_STAGING_API_URL}', path: '/docs' }, expect: ['status == 200'], notify: 'page' },
        { id: 'k8s-nodes-ready', title: 'Kubernetes nodes Ready', section: 'infrastructure', severity: 'critical', phase: 'pre-deploy', probe: 'kubernetes', with: { measure: 'nodes' }, expect: ['nodes_not_ready == 0'], notify: 'page' },
      ],
    }),
  );
  const serveArgs = ['-c', checklistFile, '--data-dir', join(dir, 'exporter-data')];
  // No cluster here, whatever the machine has: no kubeconfig, no service account, no ~/.kube.
  const serveEnv = { READINESS_API_TOKEN: TOKEN, READINESS_PORT: String(exporterPort), KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', HOME: dir };
  let svc = await startServe(t, serveArgs, serveEnv, 90_000);
  /** GET on the exporter, through its restarts: a keep-alive socket to the killed process may answer ECONNRESET once. */
  const exporterJson = async <T>(path: string): Promise<T | undefined> => {
    try {
      const res = await fetch(`${svc.url}${path}`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5000) });
      // /readiness answers 503 with its body when not ready.
      return res.ok || res.status === 503 ? ((await res.json()) as T) : undefined;
    } catch {
      return undefined;
    }
  };
  const checkState = async (id: string) => {
    for (let i = 0; ; i++) {
      const c = await exporterJson<FailingCheck>(`/checks/${id}`);
      if (c || i >= 20) return c;
      await sleep(250);
    }
  };
  const states = async () => Object.fromEntries(await Promise.all(['health-ready', 'health-live', 'flow-login', 'monitor-error-rate', 'monitor-no-alerts', 'backup-latest-age', 'runbook-api-down', ...UNCONFIGURED].map(async (id) => [id, (await checkState(id))?.state])));
  const allPass = async () => {
    const s = await states();
    return Object.entries(s).every(([id, st]) => (UNCONFIGURED.includes(id) ? st === 'unconfigured' : st === 'pass')) ? s : undefined;
  };
  const deploy = async (version: string) => {
    const res = await fetch(`${svc.url}/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ version, by: 'e2e' }),
    });
    t.equal(res.status, 201, `deployment ${version} recorded`);
    return ((await res.json()) as { deployment: { at: string } }).deployment.at;
  };

  await prom.waitForTargets({ count: 2, scrapes: 3 });
  await waitFor('every check passes (the unconfigured one aside)', allPass, { timeoutMs: 60_000, everyMs: 250 });
  for (const id of UNCONFIGURED) t.equal((await checkState(id))?.state, 'unconfigured', `precondition: ${id} is unconfigured`);
  t.comment(`${elapsed()}: exporter up, checks passing`);

  // --- The shipped rules, fast. ------------------------------------------------------------------
  const shippedRules = YAML.parse(readFileSync(RULES_FILE, 'utf8')) as RuleFile;
  t.ok(shippedRules.groups.find((g) => g.name === APP_GROUP)?.rules.every((r) => !r.expr.includes(`[${SHORT_WINDOW}]`)), 'the shipped app alerts never use the test window (so the comparison is exact)');
  const fast = fastRules(shippedRules);
  t.strictSame(comparable(fast), comparable(shippedRules), 'only for:, keep_firing_for: and the app alerts\' rate() windows differ from the shipped rules');
  writeFileSync(rulesFile, YAML.stringify(fast));
  await prom.reload();
  const groups = await prom.waitForRuleEvaluation();
  const loaded = groups.flatMap((g) => g.rules) as (RuleGroup['rules'][number] & { duration?: number })[];
  t.same(groups.map((g) => g.name).sort(), shippedRules.groups.map((g) => g.name).sort(), 'every shipped group is loaded');
  t.equal(loaded.length, shippedRules.groups.flatMap((g) => g.rules).length, 'every shipped rule is loaded');
  t.equal(loaded.find((r) => r.name === 'ReadinessRollbackRecommended')?.duration, 0, 'the rollback page waits for nothing but its causes');

  /** Events PagerDuty received since `mark` (an index into pd.events). */
  const since = (mark: number) => pd.events.slice(mark);
  /** Waits until no PagerDuty event has arrived for `quietMs` (a few group_interval ticks). */
  const quiet = async (quietMs = 3000) => {
    let n = pd.events.length;
    let at = Date.now();
    while (Date.now() - at < quietMs) {
      await sleep(250);
      if (pd.events.length !== n) {
        n = pd.events.length;
        at = Date.now();
      }
    }
  };
  const triggers: ReceivedEvent[] = [];
  /** The first PagerDuty event at index `from` or later with this action (and `also`). */
  const nextEvent = (from: number, action: 'trigger' | 'resolve', timeoutMs: number, also: (e: ReceivedEvent) => boolean = () => true) =>
    pd.waitFor((e) => pd.events.indexOf(e) >= from && e.event.event_action === action && also(e), timeoutMs);
  /** Once PagerDuty has been quiet for a while: exactly `expected` (brief()s) arrived since `mark`. */
  const exactlySince = async (t: Test, mark: number, expected: (string | undefined)[][], message: string) => {
    await quiet();
    t.same(since(mark).map(brief), expected, message);
  };
  /** An incident of `cls` on `component`: its trigger and then its resolve, as brief() gives them. */
  const incident = (cls: string, component: string, key: string | undefined) => [
    ['trigger', cls, component, key],
    ['resolve', cls, component, key],
  ];
  /**
   * The app mended after a rollback page: the incident the trigger opened resolves, every check
   * passes again, and the trigger and its resolve are all PagerDuty got since `mark`.
   */
  const mendedAfterRollback = async (t: Test, mark: number, trigger: ReceivedEvent) => {
    await app.set('ok');
    const resolve = await nextEvent(mark + 1, 'resolve', 60_000);
    t.equal(resolve.event.dedup_key, trigger.event.dedup_key, 'resolves the incident the trigger opened');
    await waitFor('every check passes again', allPass, { timeoutMs: 60_000, everyMs: 250 });
    await exactlySince(t, mark, incident('ReadinessRollbackRecommended', 'deployment', trigger.event.dedup_key), 'exactly: one trigger and its resolve');
    return resolve;
  };

  await t.test('healthy: every rule evaluates over the real exporter, nothing pending, nothing sent', async (t) => {
    await sleep(2500);
    for (const g of await prom.rules()) {
      for (const r of g.rules) {
        t.equal(r.health, 'ok', `${g.name}/${r.name}: health`);
        t.notOk(r.lastError, `${g.name}/${r.name} evaluates: ${r.lastError ?? 'ok'}`);
      }
    }
    t.same(await prom.alerts(), [], 'no alert pending or firing');
    t.same(pd.events, [], 'no page');
    // The metric contract and the recording rules, as the rules and dashboards read them, are
    // what the real exporter and Prometheus serve: every declared label, and no other.
    for (const [metric, labels] of Object.entries({ ...CONTRACT_METRICS, ...PROPOSED_METRICS })) {
      if (metric === 'readiness_deployment_timestamp_seconds' || metric === 'readiness_deployment_info') continue; // no deployment yet: below
      const series = await prom.api<Record<string, string>[]>('series', { 'match[]': `${metric}{job="${JOB}"}` });
      t.ok(series.length > 0, `${metric}: served`);
      const seen = new Set(series.flatMap((s) => Object.keys(s)).filter((l) => l !== '__name__' && !TARGET_LABELS.includes(l)));
      t.same([...seen].sort(), [...labels].sort(), `${metric}: labels ${labels.join(', ') || '(none)'}`);
    }
    const notify = await prom.query('readiness:check_notify');
    t.same(
      Object.fromEntries(notify.map((s) => [s.metric.check, s.metric.notify])),
      { 'health-ready': 'rollback', 'health-live': 'page', 'flow-login': 'rollback', 'monitor-error-rate': 'rollback', 'monitor-no-alerts': 'rollback', 'backup-latest-age': 'page', 'runbook-api-down': 'ticket', 'api-docs-staging': 'page', 'k8s-nodes-ready': 'page' },
      'notify as the loader decided it (defaults and explicit), read through the recording rule',
    );
  });

  // --- 1. A failing pre-deploy check outside any window. --------------------------------------
  await t.test('pre-deploy, no deployment: the backup page is one trigger and one resolve; the runbook ticket never pages', async (t) => {
    const mark = pd.events.length;
    ops.backupFresh = false;
    ops.runbookPublished = false;
    const trigger = await nextEvent(mark, 'trigger', 30_000);
    triggers.push(trigger);
    t.match(trigger.event.payload, { severity: 'critical', class: 'ReadinessCheckFailing', component: 'backup-latest-age', summary: 'Readiness check backup-latest-age is failing.' });
    t.match(trigger.event.payload?.custom_details, { check: 'backup-latest-age', phase: 'pre-deploy', runbook_url: 'https://runbooks.offgridflow.com/readiness/checks/backup-latest-age' });
    t.match(String(trigger.event.payload?.custom_details?.description), /in state\s+fail\s+with reason\s+http-status,\s+value [\d.]+,\s+expected status == 200,/, 'state, reason, value (the duration an http check measures) and expectation');
    // The ticket: Slack (and email), not PagerDuty.
    const ticket = await slack.waitFor((r) => JSON.stringify(r.body).includes('runbook-api-down'), 30_000);
    t.match(JSON.stringify(ticket.body), 'ReadinessCheckFailing');
    await exactlySince(t, mark, [['trigger', 'ReadinessCheckFailing', 'backup-latest-age', trigger.event.dedup_key]], 'one trigger while it fails');

    ops.backupFresh = true;
    ops.runbookPublished = true;
    const resolve = await nextEvent(mark + 1, 'resolve', 30_000);
    t.equal(resolve.event.dedup_key, trigger.event.dedup_key, 'resolves the incident it opened');
    await exactlySince(t, mark, incident('ReadinessCheckFailing', 'backup-latest-age', trigger.event.dedup_key), 'exactly: the trigger and its resolve');
    await waitFor('every check passes again', allPass, { timeoutMs: 30_000, everyMs: 250 });
    t.comment(`${elapsed()}: pre-deploy done`);
  });

  // --- 2. HTTP 500 inside the window of 1.0.0. -------------------------------------------------
  let rollback1: ReceivedEvent | undefined;
  await t.test('HTTP 500 inside the window: ONE rollback page with what the responder needs, then ONE resolve', async (t) => {
    const deployedAt = await deploy('1.0.0');
    await sleep(1500); // the window is open in the exporter's next scrape
    const mark = pd.events.length;
    const faultAt = Date.now();
    await app.set('http500');
    const trigger = await nextEvent(mark, 'trigger', 60_000);
    rollback1 = trigger;
    triggers.push(trigger);
    const faultToPage = (trigger.at - faultAt) / 1000;
    // The pipeline's own worst case here: 2 app scrapes (a new 5xx series needs two samples for
    // rate()) or 2 runs of a failAfter-2 check, an exporter scrape, an evaluation and group_wait,
    // 1s each; the rest is headroom for a loaded 2-core machine.
    const worstCase = 2 + 1 + 1 + 1;
    t.comment(`${elapsed()}: fault to page ${faultToPage.toFixed(1)}s (pipeline worst case ${worstCase}s at 1s intervals)`);
    t.ok(faultToPage <= worstCase + 25, `fault to page ${faultToPage.toFixed(1)}s is within the pipeline's bound (+25s for load)`);

    const e = trigger.event;
    t.match(e.payload, { severity: 'critical', class: 'ReadinessRollbackRecommended', component: 'deployment' }, 'the rollback incident, with a component');
    t.match(e.payload?.summary, new RegExp(`^Roll back 1\\.0\\.0 \\(deployed ${new Date(deployedAt).toISOString().slice(0, 10)} [0-9:.]+ \\+0000 UTC\\): \\d+ post-deploy checks? failing\\.$`), 'the version and when it went out');
    const details = e.payload?.custom_details ?? {};
    t.equal(details.version, '1.0.0');
    const description = String(details.description);
    t.match(description, /^Deployment 1\.0\.0 went out at \d{4}-\d\d-\d\d [0-9:.]+ \+0000 UTC and its post-deploy window is open\. Failing: /);
    // Each failing check with its state, measured value and expectation.
    const items = [...description.matchAll(/(?:Failing: |; )([a-z0-9-]+) \((verify|monitor)\) (fail|error|stale)(?: \(([a-z-]+)\))?, value (\S+), expected ([^;]+?)(?=;|\. Roll back)/g)];
    t.ok(items.length >= 1, `${items.length} failing checks listed: ${description}`);
    const expectOf: Record<string, string> = { 'health-ready': 'status == 200', 'flow-login': 'duration_ms < 3s', 'monitor-error-rate': 'value < 1', 'monitor-no-alerts': 'firing == 0' };
    for (const [, check, , , , value, expected] of items) {
      t.ok(ROLLBACK_CHECKS.includes(check ?? ''), `${check} is a rollback check`);
      t.equal(expected, expectOf[check ?? ''], `${check}: its expectation`);
      t.ok(value === 'none' || Number.isFinite(Number(value)), `${check}: value ${value}`);
      if (check === 'monitor-error-rate') t.ok(Number(value) > 1, `the measured error rate ${value}%`);
    }
    t.notMatch(description, /health-live|backup|runbook|api-docs-staging/, 'only the rollback checks');
    const dashboard = `${GRAFANA_BASE}/d/${POST_DEPLOY_UID}/post-deploy-monitoring?var-job=${JOB}&from=${Date.parse(deployedAt) - 900_000}&to=now`;
    t.equal(details.dashboard_url, dashboard, 'the post-deploy dashboard from 15 minutes before the deployment');
    t.same(e.links, [
      { href: 'https://runbooks.offgridflow.com/readiness/alerts/readinessrollbackrecommended', text: 'Runbook' },
      { href: dashboard, text: 'Dashboard' },
    ], 'the runbook and the dashboard as links');
    t.match(e.dedup_key, /^[0-9a-f]{64}$/, "Alertmanager's group key: one per deployment");

    // While it fails: the exporter agrees, the per-check page of health-live fires but is held
    // back, monitor-no-alerts counts the application's alert and not the exporter's own.
    // The exporter's own verdict counts monitor checks only: it follows once the error rate shows.
    const rb = await waitFor('the exporter recommends the rollback too', async () => {
      const r = await exporterJson<{ rollback?: { recommended: boolean; failing: string[] } }>('/readiness?phase=monitor');
      return r?.rollback?.recommended ? r.rollback : undefined;
    }, { timeoutMs: 30_000, everyMs: 250 });
    t.ok(rb.failing.includes('monitor-error-rate'), `the exporter recommends the rollback: ${rb.failing.join(', ')}`);
    const inhibited = await waitFor('the health-live page, held back', async () => (await prom.alerts()).find((a) => a.labels.alertname === 'ReadinessCheckFailing' && a.labels.check === 'health-live' && a.state === 'firing'), { timeoutMs: 20_000, everyMs: 200 });
    t.equal(inhibited.labels.severity, 'critical', 'health-live pages on its own outside a deployment');
    const noAlerts = await waitFor('monitor-no-alerts fails on the app alert', async () => {
      const c = await checkState('monitor-no-alerts');
      return c?.state === 'fail' ? c : undefined;
    }, { timeoutMs: 30_000, everyMs: 250 });
    t.match(noAlerts.message, /ReadinessAppErrorRateHigh\{/, "the application's ReadinessApp* alert counts");
    t.notMatch(noAlerts.message, /ReadinessRollbackRecommended|ReadinessCheckFailing/, "the exporter's own alerts do not");

    await t.test('every dashboard query runs on this Prometheus, and the panels show this fault', async (t) => {
      const { dashboards, queries } = dashboardQueries();
      t.ok(queries.length >= 20, `${queries.length} queries`);
      let required = 0;
      for (const q of queries) {
        const result = await prom.query(substituteGrafanaVariables(q.expr));
        // The post-deploy panels over app metrics this app does not have (latency, PostgreSQL,
        // containers) run here without error; test/dashboards.test.ts gives them data.
        if (!readsOnlyExporterMetrics(q.expr)) continue;
        required++;
        t.ok(result.length > 0, `${q.where}: data`, { expr: q.expr });
        t.ok(result.every((s) => Number.isFinite(Number(s.value[1]))), `${q.where}: numbers`, { result });
      }
      t.ok(required >= 18, `${required} queries over the exporter's metrics returned data`);
      const panel = async (where: string) => {
        const q = queries.find((x) => x.where.startsWith(where));
        t.ok(q, `${where} exists`);
        return q ? prom.query(substituteGrafanaVariables(q.expr)) : [];
      };
      t.same((await panel('Readiness overview / Exporter replicas up /')).map((s) => s.metric.job), [JOB], "replicas up: the exporter's one target, not the app's");
      const failing = (await panel('Readiness overview / Failing checks over time /')).map((s) => s.metric.check);
      t.ok(failing.includes('health-ready') && !failing.includes('backup-latest-age'), `failing checks: ${failing.join(', ')}`);
      t.ok((await panel('Post-deploy monitoring / Alerts firing /')).some((s) => s.metric.alertname === 'ReadinessRollbackRecommended'), 'alerts firing: the rollback page');
      t.same((await panel('Post-deploy monitoring / Rollback recommended /')).map((s) => s.value[1]), ['1'], 'the rollback stat');
      for (const d of dashboards) {
        for (const v of d.templating.list.filter((x) => x.type === 'query' && x.name === 'job')) {
          const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
          const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
          t.same(await prom.api<string[]>(`label/${m?.[2] ?? ''}/values`, { 'match[]': m?.[1] ?? '' }), [JOB], `${d.title} / variable job lists the exporter's job`);
        }
      }
      // The recording rules the alerts read carry the labels the rules and tests declare.
      for (const [metric, labels] of Object.entries(RECORDED_METRICS)) {
        const series = await prom.query(metric);
        // No check here is stale or a certificate check: those two are empty, rightly.
        if (metric === 'readiness:check_stale' || metric === 'readiness:tls_days_left') {
          t.same(series, [], `${metric}: nothing to record`);
          continue;
        }
        t.ok(series.length > 0, `${metric}: recorded`);
        const seen = new Set(series.flatMap((s) => Object.keys(s.metric)).filter((l) => l !== '__name__' && !TARGET_LABELS.includes(l)));
        t.same([...seen].sort(), [...labels].sort(), `${metric}: labels ${labels.join(', ') || '(none)'}`);
      }
    });

    await exactlySince(t, mark, [['trigger', 'ReadinessRollbackRecommended', 'deployment', trigger.event.dedup_key]], 'ONE trigger for the fault: no per-check page, no second incident');

    const resolve = await mendedAfterRollback(t, mark, trigger);
    t.comment(`${elapsed()}: resolve ${((resolve.at - faultAt) / 1000).toFixed(1)}s after the fault`);
  });

  // --- 3. A total outage inside the window of 1.0.1. -----------------------------------------
  await t.test('total outage inside the window: ONE rollback page (another incident, another deployment), then ONE resolve', async (t) => {
    await deploy('1.0.1');
    await sleep(1500);
    const mark = pd.events.length;
    const faultAt = Date.now();
    await app.set('down');
    const trigger = await nextEvent(mark, 'trigger', 60_000);
    triggers.push(trigger);
    t.comment(`${elapsed()}: total outage: fault to page ${((trigger.at - faultAt) / 1000).toFixed(1)}s`);
    t.ok((trigger.at - faultAt) / 1000 <= 2 + 1 + 1 + 1 + 25, 'within the pipeline\'s bound (+25s for load)');
    t.match(trigger.event.payload, { severity: 'critical', class: 'ReadinessRollbackRecommended', component: 'deployment', custom_details: { version: '1.0.1' } });
    t.match(String(trigger.event.payload?.custom_details?.description), /(health-ready|flow-login) \(verify\) error \(refused\), value none, expected (status == 200|duration_ms < 3s)/, 'a check refused by the dead app is a rollback cause');
    t.not(trigger.event.dedup_key, rollback1?.event.dedup_key, 'a new deployment is a new incident');
    await exactlySince(t, mark, [['trigger', 'ReadinessRollbackRecommended', 'deployment', trigger.event.dedup_key]], 'ONE trigger for the outage');

    await mendedAfterRollback(t, mark, trigger);
  });

  // --- 4. The exporter killed while an incident it raised is open. ----------------------------
  await t.test('exporter killed: ReadinessExporterDown pages and resolves; the incident it had raised neither resolves nor pages again', async (t) => {
    const mark = pd.events.length;
    ops.backupFresh = false;
    const backup = await nextEvent(mark, 'trigger', 30_000);
    triggers.push(backup);
    t.equal(backup.event.payload?.component, 'backup-latest-age', 'precondition: the backup incident is open');
    await quiet();

    svc.child.kill('SIGKILL');
    await svc.exited;
    const killedAt = Date.now();
    const down = await nextEvent(mark + 1, 'trigger', 30_000, (e) => e.event.payload?.class === 'ReadinessExporterDown');
    triggers.push(down);
    t.comment(`${elapsed()}: exporter down paged ${((down.at - killedAt) / 1000).toFixed(1)}s after the kill`);
    t.match(down.event.payload, { severity: 'critical', component: 'readiness-exporter', summary: `Readiness exporter ${JOB} is down.` });
    // Down for longer than a few group_interval ticks: nothing about the backup incident.
    await sleep(4000);
    t.same(since(mark).map(brief), [
      ['trigger', 'ReadinessCheckFailing', 'backup-latest-age', backup.event.dedup_key],
      ['trigger', 'ReadinessExporterDown', 'readiness-exporter', down.event.dedup_key],
    ], 'while the exporter is down, its open incident neither resolves nor repeats');

    svc = await startServe(whole, serveArgs, serveEnv, 90_000);
    const up = await nextEvent(mark + 1, 'resolve', 30_000);
    t.equal(up.event.dedup_key, down.event.dedup_key, 'the exporter-down incident resolves once it is back');
    await quiet();
    t.same((await checkState('backup-latest-age'))?.state, 'fail', 'precondition: the backup still fails after the restart');

    ops.backupFresh = true;
    const fixed = await nextEvent(mark + 1, 'resolve', 30_000, (e) => e.event.dedup_key === backup.event.dedup_key);
    t.ok(fixed, 'the backup incident resolves when the backup is fixed');
    await exactlySince(t, mark, [
      ['trigger', 'ReadinessCheckFailing', 'backup-latest-age', backup.event.dedup_key],
      ['trigger', 'ReadinessExporterDown', 'readiness-exporter', down.event.dedup_key],
      ['resolve', 'ReadinessExporterDown', 'readiness-exporter', down.event.dedup_key],
      ['resolve', 'ReadinessCheckFailing', 'backup-latest-age', backup.event.dedup_key],
    ], 'exactly: the two triggers and their two resolves');
  });

  await t.test('all along: the unconfigured checks never alerted, every page named its component, nothing was refused', async (t) => {
    for (const id of UNCONFIGURED) {
      t.equal((await checkState(id))?.state, 'unconfigured', `${id}: still unconfigured`);
      t.same(await prom.query(`count_over_time(ALERTS{check="${id}"}[1h])`), [], `${id}: no alert about it ever, pending or firing`);
      t.notMatch(JSON.stringify(pd.events) + JSON.stringify(slack.requests) + JSON.stringify(smtp.messages), id, `${id}: no notification mentions it`);
    }
    t.equal(triggers.length, 5, 'five faults, five triggers');
    t.same(pd.events.filter((e) => e.event.event_action === 'trigger').map((e) => e.event.dedup_key), triggers.map((e) => e.event.dedup_key), 'and no other trigger');
    for (const e of pd.events.filter((x) => x.event.event_action === 'trigger')) t.ok(e.event.payload?.component, `${e.event.payload?.class}: component ${e.event.payload?.component}`);
    t.same(pd.rejected, [], 'the capture refused nothing');
    // Pages are emailed too (the checklist's "email notifications for critical alerts").
    await smtp.waitFor((m) => m.data.includes('ReadinessRollbackRecommended'), 15_000);
    const metrics = await (await fetch(`${am.url}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name}\\{integration="pagerduty"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
    t.equal(metric('alertmanager_notifications_total'), pd.events.length, "Alertmanager's own count of PagerDuty notifications agrees");
    t.equal(metric('alertmanager_notifications_failed_total'), 0, 'none failed');
  });

  t.comment(`${elapsed()}: done`);
});
