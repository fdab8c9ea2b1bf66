// The shipped Argo Rollouts AnalysisTemplates and Flagger webhooks (deploy/integrations/),
// rendered as kubectl would, sent as those tools send them (exact method, URL, headers, body)
// to a real `readiness serve` whose monitor check watches a target the test breaks; each
// answer is evaluated as the tool's source does (test/helpers/deploy-tools.ts, argo-expr.ts)
// and the decision it would take is asserted: healthy, then in rollback, then with the
// exporter unreachable. The expr-lang subset evaluator is pinned against expr-lang's documented
// behaviour at the end.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { evalCondition, evaluateResult } from './helpers/argo-expr.js';
import { startServe } from './helpers/cli.js';
import { callWebhook, flaggerDecision, jsonPath, measure, MetricRun, resolveArgs, type FlaggerWebhook, type WebMetric } from './helpers/deploy-tools.js';
import { one, render } from './helpers/kustomize.js';
import { freePort, serviceDir } from './helpers/service.js';

const TOKEN = randomBytes(16).toString('hex');
const templates = render('deploy/integrations/argo-rollouts');
const canary = one(render('deploy/integrations/flagger'), 'Canary');
const metricOf = (template: string, args: Record<string, string>) => {
  const at = one(templates, 'AnalysisTemplate', template);
  const defaults = Object.fromEntries((at.spec.args as { name: string; value?: string }[]).filter((a) => a.value !== undefined).map((a) => [a.name, a.value!]));
  return resolveArgs(at.spec.metrics[0] as WebMetric, { ...defaults, ...args });
};
/** The shipped URL with the Service's address swapped for the test service's. */
const retarget = (url: string, base: string) => url.replace('http://readiness-exporter.readiness.svc.cluster.local:9747', base);

async function setup(t: { teardown: (fn: () => unknown) => void }) {
  // The application the checks watch: its health (verify) and its error rate (monitor).
  const app = { healthy: true, errors: false };
  const target = createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(app.healthy ? 200 : 503).end();
    if (req.url === '/errors') return res.writeHead(app.errors ? 500 : 200).end();
    return res.writeHead(200).end('ok');
  });
  const port = await freePort();
  await new Promise<void>((r) => target.listen(port, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => target.close(() => r())));
  const dir = serviceDir('deploy-tools');
  const file = join(dir, 'checklist.yaml');
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: deploy-tools
defaults: { interval: 1s, timeout: 900ms, monitorWindow: 1h }
checks:
  - id: release-approved
    title: Pre-deploy gate
    section: pre-deploy
    severity: critical
    phase: pre-deploy
    probe: http
    with: { url: "http://127.0.0.1:${port}", path: / }
    expect: ["status == 200"]
  - id: app-health
    title: App health endpoint answers 200
    section: verify
    severity: critical
    phase: verify
    probe: http
    with: { url: "http://127.0.0.1:${port}", path: /health }
    expect: ["status == 200"]
  - id: app-errors
    title: The app answers without 5xx
    section: monitor
    severity: critical
    phase: monitor
    probe: http
    with: { url: "http://127.0.0.1:${port}", path: /errors }
    expect: ["status == 200"]
`,
  );
  const svc = await startServe(t, ['-c', file, '--data-dir', join(dir, 'data')], { READINESS_API_TOKEN: TOKEN });
  const until = async (what: string, path: string, ok: (b: Record<string, unknown>) => boolean) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const b = (await (await fetch(`${svc.url}${path}`)).json()) as Record<string, unknown>;
      if (ok(b)) return b;
      if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(b)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await until('every check has run', '/readiness', (b) => (b.summary as { pending: number }).pending === 0);
  return { app, svc, until };
}

t.test('Argo Rollouts: deploy-mark, verify and rollback templates, healthy then in rollback', async (t) => {
  const { app, svc, until } = await setup(t);
  const base = svc.url;

  // readiness-deploy-mark: POST /deployments with the token from the Secret arg.
  const mark = new MetricRun(metricOf('readiness-deploy-mark', { 'readiness-url': base, version: '1.4.2', 'api-token': TOKEN }));
  t.equal(await mark.runUntilDecided(1), 'Successful', 'the deployment is recorded: the window opens');
  t.match(mark.measurements[0], { status: 201, value: true });
  t.match(await until('window open', '/deployments', (b) => (b.window as { open: boolean }).open), { deployments: [{ version: '1.4.2' }] });
  // With a wrong token the exporter answers 403: an Error, retried, never a success.
  const badMark = new MetricRun(metricOf('readiness-deploy-mark', { 'readiness-url': base, version: '1.4.3', 'api-token': 'wrong' }));
  t.equal(await badMark.runUntilDecided(10), 'Error', '5 consecutive errors > consecutiveErrorLimit 4');
  t.same(badMark.measurements.map((m) => m.status), [403, 403, 403, 403, 403]);

  // readiness-verify: healthy, ten measurements pass.
  const verify = new MetricRun(metricOf('readiness-verify', { 'readiness-url': base }));
  t.equal(verify.metric.provider.web.url, `${base}/readiness?phase=verify&notReadyStatus=200`);
  t.equal(await verify.runUntilDecided(20), 'Successful');
  t.equal(verify.count, 10);
  t.equal(verify.failed, 0);

  // readiness-rollback: healthy, it keeps running (no count).
  const rollback = new MetricRun(metricOf('readiness-rollback', { 'readiness-url': base }));
  for (let i = 0; i < 3; i++) t.equal(rollback.add(await measure(rollback.metric)), 'Running', `healthy measurement ${i + 1}: carry on`);
  t.same(rollback.measurements.map((m) => [m.status, m.value, m.phase]), Array(3).fill([200, false, 'Successful']));

  // The new version starts failing: the exporter recommends a rollback, Argo aborts at once.
  app.errors = true;
  await until('rollback recommended', '/rollback?rollbackStatus=200', (b) => b.recommended === true);
  t.equal(rollback.add(await measure(rollback.metric)), 'Failed', 'failed (1) > failureLimit (0): the rollout is aborted');
  t.match(rollback.measurements.at(-1), { status: 200, value: true, phase: 'Failed' });

  // The verify gate of a new analysis fails on a broken health check (4 failures > 3).
  app.healthy = false;
  await until('verify failing', '/readiness?phase=verify&notReadyStatus=200', (b) => b.ready === false);
  const verify2 = new MetricRun(metricOf('readiness-verify', { 'readiness-url': base }));
  t.equal(await verify2.runUntilDecided(20), 'Failed');
  t.equal(verify2.failed, 4);

  // Without notReadyStatus=200 the same answer would be an Error, not a Failure: the reason for the parameter.
  const plain = resolveArgs({ ...verify2.metric, provider: { web: { ...verify2.metric.provider.web, url: `${base}/readiness?phase=verify` } } }, {});
  t.match(await measure(plain), { phase: 'Error', status: 503 });

  // The exporter unreachable: errors, and after 5 in a row the metric errors (the rollout aborts).
  svc.child.kill('SIGKILL');
  await svc.exited;
  const down = new MetricRun(metricOf('readiness-rollback', { 'readiness-url': base }));
  t.equal(await down.runUntilDecided(10), 'Error');
  t.equal(down.measurements.length, 5);
  t.ok(down.measurements.every((m) => m.phase === 'Error' && m.status === undefined));
});

t.test('Flagger: pre-rollout, confirm-promotion and rollback hooks, healthy then in rollback', async (t) => {
  const { app, svc, until } = await setup(t);
  const hooks = (canary.spec.analysis.webhooks as FlaggerWebhook[]).map((w) => ({ ...w, url: retarget(w.url, svc.url) }));
  const hook = (type: string) => hooks.find((h) => h.type === type)!;
  const call = async (type: string) => {
    const r = await callWebhook(hook(type), { name: canary.metadata.name, namespace: 'offgridflow', phase: 'Progressing' });
    return { ...r, decision: flaggerDecision(type, r.ok) };
  };
  // The window opens as the pipeline records the deployment.
  const dep = await fetch(`${svc.url}/deployments`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ version: '2.0.0', by: 'ci' }) });
  t.equal(dep.status, 201);

  t.match(await call('pre-rollout'), { ok: true, status: 200, decision: 'start the analysis' });
  t.match(await call('confirm-promotion'), { ok: true, status: 200, decision: 'promote' });
  t.match(await call('rollback'), { ok: false, status: 409, decision: 'no rollback signalled' });

  app.healthy = false;
  await until('verify failing', '/readiness?phase=verify&notReadyStatus=200', (b) => b.ready === false);
  t.match(await call('confirm-promotion'), { ok: false, status: 503, decision: 'wait for promotion approval' });
  t.match(await call('rollback'), { ok: false, status: 409, decision: 'no rollback signalled' }, 'a failing verify check holds promotion but is no rollback cause');

  app.errors = true;
  await until('rollback recommended', '/rollback?rollbackStatus=200', (b) => b.recommended === true);
  const rb = await call('rollback');
  t.match(rb, { ok: true, status: 200, decision: 'roll back now' });

  // pre-rollout with the pre-deploy gate red (a 5xx is retried `retries` times, then fails).
  const gate = { ...hook('pre-rollout'), url: `${svc.url}/readiness?phase=monitor`, retries: 2 };
  const r = await callWebhook(gate, { name: 'api', namespace: 'offgridflow', phase: 'Progressing' });
  t.match(r, { ok: false, status: 503, attempts: 3 });
  t.equal(flaggerDecision('pre-rollout', r.ok), 'halt, failed checks +1 (rolled back at the threshold)');

  // A typo in the rollback URL is a 400: Flagger would never roll back. The exporter refuses it
  // loudly rather than answering with defaults; docs/deploy.md says to test the URL with curl.
  const typo = await callWebhook({ ...hook('rollback'), url: hook('rollback').url.replace('rollbackStatus', 'rollbackstatus') }, { name: 'api', namespace: 'offgridflow', phase: 'Progressing' });
  t.match(typo, { ok: false, status: 400 });

  // The exporter unreachable: no hook succeeds; the rollback hook signals nothing.
  svc.child.kill('SIGKILL');
  await svc.exited;
  for (const type of ['pre-rollout', 'confirm-promotion', 'rollback']) t.match(await call(type), { ok: false, status: undefined }, `${type}: unreachable`);
});

t.test('the expr-lang subset behaves as expr-lang does for the shipped conditions and their neighbours', async (t) => {
  // [result, condition, expected: boolean | 'error']
  const table: [unknown, string, boolean | 'error'][] = [
    [true, 'result == true', true],
    [false, 'result == true', false],
    [null, 'result == true', false], // nil is comparable with anything at compile time, unequal at run time
    [1, 'result == true', 'error'], // float64 vs bool: "mismatched types" at compile time
    ['true', 'result == true', 'error'],
    [true, 'result', true],
    [1, 'result', 'error'], // "expected bool, but got float64"
    [true, '!result', false],
    [true, 'not result == false', true], // (not result) == false: unary not (precedence 50) binds tighter than == (20)
    [false, '!(result == true)', true],
    [{ ready: true }, 'result.ready == true', true],
    [{ ready: true }, 'result.missing == nil', true], // a missing key is nil
    [{ summary: { fail: 0, error: 0 } }, 'result.summary.fail == 0 && result.summary.error == 0', true],
    [{ n: 2 }, 'result.n > 1 and result.n <= 2', true],
    [2, 'result >= 2 || result < 0', true],
    [2, 'result > "1"', 'error'],
    [true, 'result && 1', 'error'],
    [true, 'unknownName == true', 'error'],
    [true, 'result ==', 'error'],
    [true, 'result matches "x"', 'error'], // outside the subset: refused, not guessed
  ];
  for (const [result, cond, want] of table) {
    let got: boolean | 'error';
    try {
      got = evalCondition(result, cond);
    } catch {
      got = 'error';
    }
    t.equal(got, want, `${JSON.stringify(result)} | ${cond}`);
  }
  // EvaluateResult's combinations.
  t.same(evaluateResult(true, { successCondition: 'result == true' }), { phase: 'Successful' });
  t.same(evaluateResult(false, { successCondition: 'result == true' }), { phase: 'Failed' });
  t.same(evaluateResult(false, { failureCondition: 'result == true' }), { phase: 'Successful' });
  t.same(evaluateResult(true, { failureCondition: 'result == true' }), { phase: 'Failed' });
  t.same(evaluateResult(false, { successCondition: 'result == true', failureCondition: 'result == nil' }), { phase: 'Inconclusive' });
  t.equal(evaluateResult(1, { failureCondition: 'result == true' }).phase, 'Error');
  t.same(evaluateResult('anything', {}), { phase: 'Successful' });
  // The JSONPath subset.
  t.equal(jsonPath({ a: { b: 3 } }, '{$.a.b}'), 3);
  t.equal(jsonPath({ a: 1 }, '{.a}'), 1);
  t.throws(() => jsonPath({ a: 1 }, '{$.b}'), /b is not found/);
  t.throws(() => jsonPath({ a: [1] }, '{$.a[0]}'), /unsupported/);
});
