// `readiness serve` as a child process: lint-clean /metrics (promtool), /readiness following
// a real target, SIGHUP reloads (a bad file keeps the old checklist), SIGTERM drains.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ReadinessBody } from '../src/state.js';
import { startServe } from './helpers/cli.js';

type Checks = { checks: { id: string; state: string }[] };

const dir = mkdtempSync(join(tmpdir(), 'readiness-serve-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(fn: () => Promise<T | undefined>, what: string, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const checklist = (port: number, extra = '') => `apiVersion: readiness/v1
checklist: serve-test
defaults: { interval: 1s, timeout: 900ms }
checks:
  - id: app-health
    title: App health endpoint answers 200
    section: verify
    severity: critical
    phase: verify
    probe: http
    with: { url: "http://127.0.0.1:${port}", path: /health }
    expect: ["status == 200"]
    runbook: https://runbooks.example/app-health
  - id: secret-api
    title: Needs a token from the environment
    section: security
    severity: low
    phase: pre-deploy
    gate: false
    probe: http
    with: { url: "\${SECRET_API_URL}" }
${extra}`;

t.test('serve: metrics lint, readiness follows the target, reloads, graceful stop', async (t) => {
  let healthy = true;
  const app = createServer((req, res) => res.writeHead(healthy ? 200 : 503).end(healthy ? 'ok' : 'down'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => app.close());
  const appPort = (app.address() as { port: number }).port;
  const file = join(dir, 'checklist.yaml');
  writeFileSync(file, checklist(appPort));

  const svc = await startServe(t, ['-c', file], { READINESS_API_TOKEN: 'serve-test-token' });

  // Ready once the check has run.
  const ready = await until(async () => {
    const res = await fetch(`${svc.url}/readiness?phase=verify`);
    return res.status === 200 ? ((await res.json()) as ReadinessBody) : undefined;
  }, 'ready');
  t.equal(ready.summary.pass, 1);

  // The whole exposition passes promtool.
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  t.match(metrics, 'readiness_check_passing{check="app-health",section="verify",severity="critical",phase="verify"} 1');
  t.match(metrics, 'readiness_check_state{check="secret-api",state="unconfigured"} 1');
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
  t.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`);
  t.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'no lint findings at all');

  // Break the target: /readiness names the failing check with its reason.
  healthy = false;
  const failing = await until(async () => {
    const res = await fetch(`${svc.url}/readiness`);
    const body = (await res.json()) as ReadinessBody;
    return res.status === 503 && body.failing.some((f) => f.id === 'app-health') ? body : undefined;
  }, 'not ready');
  const f = failing.failing.find((x) => x.id === 'app-health')!;
  t.match(f, { state: 'fail', reason: 'http-status', severity: 'critical', runbook: 'https://runbooks.example/app-health' });
  t.match(f.message, /503/);
  healthy = true;

  // A bad file on SIGHUP is rejected; the old checklist keeps running.
  writeFileSync(file, 'apiVersion: readiness/v1\nchecklist: broken\nchecks: [ {id: x} ]\n');
  svc.child.kill('SIGHUP');
  await until(async () => ((await (await fetch(`${svc.url}/metrics`)).text()).includes('readiness_exporter_config_last_reload_successful 0') ? true : undefined), 'reload failure metric');
  const still = (await (await fetch(`${svc.url}/checks`)).json()) as Checks;
  t.same(still.checks.map((c) => c.id), ['app-health', 'secret-api'], 'old checklist still served');
  t.match(svc.output(), 'checklist reload rejected');
  t.match(svc.output(), 'missing required key');

  // A good file replaces it.
  writeFileSync(
    file,
    checklist(
      appPort,
      `  - id: app-port
    title: App port open
    section: verify
    severity: high
    phase: verify
    probe: tcp
    with: { host: 127.0.0.1, port: ${appPort} }
    expect: ["open == true"]
`,
    ),
  );
  svc.child.kill('SIGHUP');
  await until(async () => {
    const body = (await (await fetch(`${svc.url}/checks`)).json()) as Checks;
    return body.checks.length === 3 ? true : undefined;
  }, 'reloaded checklist');
  const m2 = await (await fetch(`${svc.url}/metrics`)).text();
  t.match(m2, 'readiness_exporter_config_reloads_total{result="success"} 1');
  t.match(m2, 'readiness_exporter_config_reloads_total{result="failure"} 1');

  // POST /checks/:id/run with the token runs it now.
  const run = await fetch(`${svc.url}/checks/app-port/run`, { method: 'POST', headers: { authorization: 'Bearer serve-test-token' } });
  t.equal(run.status, 200);
  t.equal(((await run.json()) as { state: string }).state, 'pass');
  t.notMatch(svc.output(), 'serve-test-token', 'the token is never logged');

  // SIGTERM: graceful exit with code 0.
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0);
  t.match(svc.output(), '"msg":"stopped"');
});

t.test('serve with no arguments runs the shipped checklist', async (t) => {
  const svc = await startServe(t, []);
  const body = (await (await fetch(`${svc.url}/readiness?verbose=1`)).json()) as ReadinessBody;
  t.equal(body.checklist, 'offgridflow-production');
  t.ok(body.summary.total >= 15);
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
  t.equal(lint.status, 0, `${lint.stdout}${lint.stderr}`);
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0);
});

t.test('serve refuses a bad checklist with exit 2 and the errors', async (t) => {
  const { runCli } = await import('./helpers/cli.js');
  const r = await runCli(['serve', '-c', 'test/fixtures/invalid-unknown-key.yaml', '--port', '0']);
  t.equal(r.code, 2);
  t.match(r.stderr, 'invalid-unknown-key.yaml:10:5: unknown key "intervl"');
});
