// Fault to page with PRODUCTION intervals (issue 13: at most 90s for the rollback incident):
// the shipped rules unchanged, Prometheus scraping and evaluating every 15s, the shipped
// Alertmanager example with its own group_wait, and the shipped health-ready, health-live,
// monitor-error-rate and monitor-no-alerts checks with their shipped intervals, timeouts and
// failAfter. Only the endpoints are local (API_URL, PROMETHEUS_URL, the notification sinks).
//
// Each sample is a fresh stack (so no sample inherits another's error rate or alert state):
// start everything, let it settle, record a deployment, wait a random 0-15s (the fault lands
// anywhere in the scrape and check schedules), inject the fault, and time until PagerDuty
// receives the rollback trigger.
//
//   npx tsx bench/page-latency.ts [samples per fault=4]
//
// test/e2e.test.ts asserts the same path at 1s intervals; this measures the production figure
// that docs/alerts.md states.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { captureHttp, captureSmtp, startAlertmanager } from '../test/helpers/alertmanager.js';
import { startServe } from '../test/helpers/cli.js';
import { startPagerDutyCapture } from '../test/helpers/pagerduty-capture.js';
import { App, localAlertmanagerConfig, type AlertmanagerConfig, type AppMode } from '../test/helpers/paging.js';
import { ROOT, startPrometheus } from '../test/helpers/prometheus.js';
import { freePort, removeDir, serviceDir, waitFor } from '../test/helpers/service.js';

const SAMPLES = Number(process.argv[2] ?? 4);
const CHECKS = ['health-ready', 'health-live', 'monitor-error-rate', 'monitor-no-alerts'];
const TOKEN = 'bench-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects teardowns like tap's t.teardown, run in reverse by close(). */
class Scope {
  readonly #fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async close(): Promise<void> {
    for (const fn of this.#fns.reverse()) {
      try {
        await fn();
      } catch {
        // best effort
      }
    }
  }
}

/** The shipped checklist reduced to the checks that make the rollback page fast, unchanged. */
function shippedChecks(): string {
  const doc = YAML.parse(readFileSync(join(ROOT, 'probes/offgridflow.yaml'), 'utf8')) as { checks: { id: string }[]; targets: Record<string, unknown> };
  const checks = doc.checks.filter((c) => CHECKS.includes(c.id));
  if (checks.length !== CHECKS.length) throw new Error(`the shipped checklist lacks one of ${CHECKS.join(', ')}`);
  return YAML.stringify({ ...doc, checks });
}

async function sample(fault: Exclude<AppMode, 'ok'>, n: number): Promise<{ faultToPage: number; summary: string }> {
  const scope = new Scope();
  const dir = serviceDir('page-latency');
  scope.teardown(() => removeDir(dir));
  try {
    const app = await App.start();
    scope.teardown(() => app.stop());
    const pd = await startPagerDutyCapture(scope);
    const slack = await captureHttp(scope);
    const smtp = await captureSmtp(scope);
    const secrets = join(dir, 'secrets');
    mkdirSync(secrets, { mode: 0o700 });
    const local = {
      pagerdutyUrl: pd.enqueueUrl,
      pagerdutyKeyFile: join(secrets, 'pagerduty-routing-key'),
      slackUrlFile: join(secrets, 'slack-webhook-url'),
      smtpSmarthost: `${smtp.host}:${smtp.port}`,
      smtpPasswordFile: join(secrets, 'smtp-password'),
    };
    writeFileSync(local.pagerdutyKeyFile, pd.routingKey);
    writeFileSync(local.slackUrlFile, `${slack.url}/hook`);
    writeFileSync(local.smtpPasswordFile, 'x');
    const example = YAML.parse(readFileSync(join(ROOT, 'alerts/alertmanager.example.yml'), 'utf8')) as AlertmanagerConfig;
    const am = await startAlertmanager(scope, YAML.stringify(localAlertmanagerConfig(example, local, { fastGrouping: false })));

    const exporterPort = await freePort();
    const rulesFile = join(dir, 'readiness.rules.yml');
    writeFileSync(rulesFile, 'groups: []\n');
    const prom = await startPrometheus(scope, {
      ruleFiles: [rulesFile],
      scrapeConfigs: [
        { job_name: 'readiness-exporter', static_configs: [{ targets: [`127.0.0.1:${exporterPort}`] }] },
        // The shipped monitor queries select namespace="offgridflow".
        { job_name: 'offgridflow-api', static_configs: [{ targets: [`127.0.0.1:${app.port}`], labels: { namespace: 'offgridflow' } }] },
      ],
      alertmanagers: [`127.0.0.1:${am.port}`],
      scrapeInterval: '15s',
      evaluationInterval: '15s',
    });
    const checklist = join(dir, 'checklist.yaml');
    writeFileSync(checklist, shippedChecks());
    const svc = await startServe(scope, ['-c', checklist, '--data-dir', join(dir, 'data')], { READINESS_API_TOKEN: TOKEN, READINESS_PORT: String(exporterPort), API_URL: app.url, PROMETHEUS_URL: prom.url }, 120_000);
    // Two scrapes of the app for rate(), then the shipped rules, unchanged.
    await prom.waitForTargets({ count: 2, scrapes: 3, timeoutMs: 120_000 });
    writeFileSync(rulesFile, readFileSync(join(ROOT, 'alerts/readiness.rules.yml'), 'utf8'));
    await prom.reload();
    await prom.waitForRuleEvaluation(60_000);
    await waitFor(
      'the checks pass',
      async () => {
        const states = await Promise.all(CHECKS.map(async (id) => ((await (await fetch(`${svc.url}/checks/${id}`)).json()) as { state: string }).state));
        return states.every((s) => s === 'pass') ? true : undefined;
      },
      { timeoutMs: 120_000, everyMs: 1000 },
    );
    const dep = await fetch(`${svc.url}/deployments`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ version: `bench-${n}` }) });
    if (dep.status !== 201) throw new Error(`deployment: ${dep.status}`);
    // Past one scrape and one evaluation after the deployment, then anywhere in the schedules.
    await sleep(30_000 + Math.random() * 15_000);
    if (pd.events.length > 0) throw new Error(`paged before the fault: ${JSON.stringify(pd.events.map((e) => e.event.payload?.summary))}`);
    const faultAt = Date.now();
    await app.set(fault);
    const page = await pd.waitFor((e) => e.event.event_action === 'trigger', 300_000);
    if (page.event.payload?.class !== 'ReadinessRollbackRecommended') throw new Error(`first page is ${page.event.payload?.class}`);
    return { faultToPage: (page.at - faultAt) / 1000, summary: page.event.payload.summary };
  } finally {
    await scope.close();
  }
}

const results: Record<string, number[]> = { http500: [], down: [] };
for (let i = 0; i < SAMPLES; i++) {
  for (const fault of ['http500', 'down'] as const) {
    const r = await sample(fault, i);
    results[fault]!.push(r.faultToPage);
    console.log(`${fault.padEnd(7)} sample ${i + 1}: fault to page ${r.faultToPage.toFixed(1)}s  (${r.summary})`);
  }
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0]?.toFixed(1)}s, median ${s[Math.floor(s.length / 2)]?.toFixed(1)}s, max ${s[s.length - 1]?.toFixed(1)}s (${s.length} samples)`;
};
for (const [fault, xs] of Object.entries(results)) console.log(`${fault}: ${stats(xs)}`);
