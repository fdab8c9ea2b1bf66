// A total outage after a deployment recommends a rollback within 2 minutes (issue 11, item 2),
// with the shipped monitor checks exactly as probes/offgridflow.yaml ships them (queries,
// intervals, onNoData) against a real Prometheus 2.42 and the real `readiness serve`:
//
//   the app (its own process: http_requests_total, the request duration histogram)
//   the cluster (postgres_exporter, cAdvisor, kube-state-metrics series; stays up)
//     <- Prometheus, scraping both every 15s as jobs offgridflow-api and cluster
//     <- readiness serve (the shipped monitor-phase prometheus checks, interval 15s)
//
// A deployment is recorded, every monitor check passes and no rollback is recommended; then
// the app is killed with SIGKILL. Its requests stop and its series go: the error rate and p95
// checks cannot show the app is healthy, and /readiness?phase=monitor must answer 503 with
// rollback.recommended true, and readiness_rollback_recommended be 1, within 2 minutes.
// The bound is the shipped check interval (15s, issue 13: the rollback page within 90s) plus one
// scrape, with room for a loaded machine.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { runCli, startServe } from './helpers/cli.js';
import { listenHttp } from './helpers/listeners.js';
import { spawnMetricsApp } from './helpers/metrics-app-process.js';
import { ROOT, startPrometheus } from './helpers/prometheus.js';
import { removeDir, serviceDir, waitFor } from './helpers/service.js';
import type { FailingCheck, ReadinessBody } from '../src/state.js';

// Start-up (Prometheus, two scrapes, the first runs) plus the two minutes under test.
t.setTimeout(8 * 60_000);

const TOKEN = 'outage-test-token';
const MONITOR_IDS = ['monitor-error-rate', 'monitor-latency-p95', 'monitor-db-connections', 'monitor-memory', 'monitor-cpu', 'monitor-no-alerts'];
const BOUND_MS = 120_000;

interface RawCheck {
  id: string;
  phase: string;
  probe: string;
  interval?: string;
  onNoData?: string;
}
const shipped = YAML.parse(readFileSync(join(ROOT, 'probes/offgridflow.yaml'), 'utf8')) as {
  defaults: Record<string, unknown>;
  targets: Record<string, unknown>;
  checks: RawCheck[];
};

t.test('the shipped monitor checks say what no data means, and run every 15 seconds', async (t) => {
  const monitor = shipped.checks.filter((c) => c.phase === 'monitor' && c.probe === 'prometheus');
  t.same(monitor.map((c) => c.id), MONITOR_IDS);
  for (const c of monitor) {
    // 15s since issue 13: with a 15s scrape and evaluation the rollback page goes out within 90s.
    t.equal(c.interval, '15s', `${c.id}: interval`);
    t.ok(c.onNoData, `${c.id}: onNoData is set explicitly`);
    t.not(c.onNoData, 'pass', `${c.id}: no data is never a silent pass`);
  }
});

t.test('kill the app after a deployment: rollback recommended within 2 minutes', async (t) => {
  const app = await spawnMetricsApp(t, { rps: 100, errorRatio: 0, latencySeconds: 0.04 });

  // What the rest of the cluster reports about the app's pods and database: healthy, and alive
  // after the app dies (as postgres_exporter, cAdvisor and kube-state-metrics would be).
  let cpuSeconds = 0;
  let cpuAt = Date.now();
  const c = 'namespace="offgridflow",pod="offgridflow-api-7d9f",container="api"';
  const cluster = await listenHttp((_req, res) => {
    const now = Date.now();
    cpuSeconds += (0.2 * (now - cpuAt)) / 1000;
    cpuAt = now;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(
      [
        '# TYPE pg_stat_activity_count gauge',
        'pg_stat_activity_count{datname="offgridflow",state="active"} 10',
        '# TYPE pg_settings_max_connections gauge',
        'pg_settings_max_connections 100',
        '# TYPE container_memory_working_set_bytes gauge',
        `container_memory_working_set_bytes{${c}} ${0.25 * 2 ** 30}`,
        '# TYPE container_cpu_usage_seconds_total counter',
        `container_cpu_usage_seconds_total{${c}} ${cpuSeconds}`,
        '# TYPE kube_pod_container_resource_limits gauge',
        `kube_pod_container_resource_limits{${c},resource="memory",unit="byte"} ${2 ** 30}`,
        `kube_pod_container_resource_limits{${c},resource="cpu",unit="core"} 1`,
        '',
      ].join('\n'),
    );
  });
  t.teardown(() => cluster.close());

  const prom = await startPrometheus(t, {
    scrapeInterval: '15s',
    scrapeConfigs: [
      { job_name: 'offgridflow-api', honor_labels: true, static_configs: [{ targets: [app.address], labels: { namespace: 'offgridflow' } }] },
      { job_name: 'cluster', honor_labels: true, static_configs: [{ targets: [`127.0.0.1:${cluster.port}`], labels: { namespace: 'offgridflow' } }] },
    ],
  });
  // Two scrapes are what the shipped queries' rate()s need; the checks passing is asserted below.
  await prom.waitForTargets({ count: 2, scrapes: 2, timeoutMs: 90_000 });

  // The shipped monitor checks, verbatim, with the shipped defaults and prometheus target.
  const dir = serviceDir('outage');
  t.teardown(() => removeDir(dir));
  const file = join(dir, 'monitor.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      apiVersion: 'readiness/v1',
      checklist: 'offgridflow-production',
      defaults: shipped.defaults,
      targets: { prometheus: shipped.targets.prometheus },
      checks: shipped.checks.filter((c) => MONITOR_IDS.includes(c.id)),
    }),
  );
  const serve = await startServe(t, ['-c', file], { PROMETHEUS_URL: prom.url, READINESS_API_TOKEN: TOKEN, READINESS_DATA_DIR: join(dir, 'data') });

  const monitorNow = async () => {
    const res = await fetch(`${serve.url}/readiness?phase=monitor&verbose=1`);
    return { status: res.status, body: (await res.json()) as ReadinessBody };
  };
  const rollbackMetric = async () => {
    const text = await (await fetch(`${serve.url}/metrics`)).text();
    return Number(/^readiness_rollback_recommended (\S+)$/m.exec(text)?.[1]);
  };

  const dep = await fetch(`${serve.url}/deployments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ version: '1.4.2', by: 'outage-test' }),
  });
  t.equal(dep.status, 201, 'deployment recorded: the monitoring window is open');

  // Precondition: with the app serving, every monitor check passes and nothing recommends a rollback.
  const healthy = await waitFor(
    'every monitor check passing',
    async () => {
      const r = await monitorNow();
      return r.body.summary.pass === MONITOR_IDS.length ? r : undefined;
    },
    { timeoutMs: 90_000, everyMs: 500 },
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify((await monitorNow()).body.checks?.map((x) => [x.id, x.state, x.message]))}`);
  });
  t.equal(healthy.status, 200);
  t.same(healthy.body.rollback, { recommended: false, failing: [] });
  t.equal(await rollbackMetric(), 0);

  await app.kill();
  const killedAt = Date.now();
  t.notOk(app.running(), 'the app is gone');

  const detected = await waitFor(
    'rollback recommended',
    async () => {
      const r = await monitorNow();
      return r.status === 503 && r.body.rollback?.recommended ? r : undefined;
    },
    { timeoutMs: BOUND_MS + 60_000, everyMs: 500 },
  );
  const tookMs = Date.now() - killedAt;
  t.comment(`rollback recommended ${(tookMs / 1000).toFixed(1)} s after the app was killed`);
  t.ok(tookMs < BOUND_MS, `within 2 minutes (took ${(tookMs / 1000).toFixed(1)} s)`);
  t.equal(await rollbackMetric(), 1, 'readiness_rollback_recommended agrees');

  // The app's own checks say why: no data, not a silent pass. The cluster's checks still pass.
  const byId = new Map((detected.body.checks ?? []).map((x: FailingCheck) => [x.id, x]));
  const causes = detected.body.rollback!.failing;
  t.ok(causes.includes('monitor-error-rate') || causes.includes('monitor-latency-p95'), `the app's checks are the causes: ${causes.join(', ')}`);
  for (const id of causes) t.match(byId.get(id), { state: 'error', reason: 'no-data' }, `${id}: error, no data`);
  for (const id of ['monitor-db-connections', 'monitor-memory', 'monitor-cpu']) t.equal(byId.get(id)?.state, 'pass', `${id}: the cluster is still healthy`);
  t.ok(detected.body.failing.every((f) => causes.includes(f.id)), 'every gating failure is a rollback cause');

  // The deploy script's view: `readiness gate --phase monitor` prints the same verdict.
  const gate = await runCli(['gate', '--url', serve.url, '--phase', 'monitor', '--timeout', '1s']);
  t.equal(gate.code, 1, 'gate: not ready');
  t.match(gate.stdout, `rollback recommended: ${causes.join(', ')}`);
});
