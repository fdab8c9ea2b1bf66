// The HTTP API through fastify's inject: /readiness verdicts and filters, /checks, runs,
// auth, errors, /metrics families, and that secrets never leave the process.
import pino from 'pino';
import t from 'tap';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });

function setup(t: { teardown: (fn: () => unknown) => void }, token?: string) {
  let dbOk = true;
  const defs = [
    makeDef(() => ({ value: 42, fields: { n: 42 } }), { id: 'tls-api', section: 'configuration', severity: 'critical', phase: 'pre-deploy', expect: ['n > 30'], runbook: 'https://runbooks.example/tls' }),
    makeDef(() => ({ fields: { ok: dbOk } }), { id: 'db-up', section: 'database', severity: 'high', phase: 'pre-deploy', expect: ['ok == true'], params: { token: 'hunter2-secret', host: 'db' }, secrets: ['hunter2-secret'] }),
    makeDef(() => ({ fields: { ok: false } }), { id: 'docs', section: 'documentation', severity: 'low', phase: 'pre-deploy', gate: false, expect: ['ok == true'] }),
    makeDef(() => ({ fields: {} }), { id: 'health', section: 'verify', severity: 'critical', phase: 'verify' }),
    makeDef(() => ({ fields: {} }), { id: 'no-env', section: 'verify', severity: 'low', phase: 'verify', unconfigured: 'environment variable API_URL is not set' }),
  ];
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store, log });
  return {
    service,
    setDb: (v: boolean) => (dbOk = v),
    app: async () => {
      const app = await buildServer({ service, log, ...(token && { apiToken: token }) });
      t.teardown(() => app.close());
      return app;
    },
    runAll: async () => {
      for (const d of defs) await service.scheduler.runNow(d.id);
    },
  };
}

t.test('readiness: pending is not ready; 200 once gating checks pass', async (t) => {
  const s = setup(t);
  const app = await s.app();
  let res = await app.inject('/readiness');
  t.equal(res.statusCode, 503);
  let body = res.json();
  t.equal(body.ready, false);
  t.equal(body.summary.pending, 4);
  t.equal(body.summary.unconfigured, 1);
  t.equal(body.checklist, 'test');

  await s.runAll();
  res = await app.inject('/readiness?phase=pre-deploy');
  t.equal(res.statusCode, 200, 'pre-deploy gating checks pass; the failing docs check does not gate');
  body = res.json();
  t.equal(body.ready, true);
  t.same(body.failing, []);
  t.same(body.advisory.map((f: { id: string }) => f.id), ['docs']);
  t.same(body.sections.database, { passing: true, pass: 1, total: 1 });
  t.same(body.sections.documentation, { passing: true, pass: 0, total: 1 });

  res = await app.inject('/readiness');
  t.equal(res.statusCode, 503, 'the unconfigured check keeps the whole gate red');
  t.same(res.json().failing.map((f: { id: string; state: string }) => [f.id, f.state]), [['no-env', 'unconfigured']]);
});

t.test('readiness names each failing check with its reason, value and expectation', async (t) => {
  const s = setup(t);
  const app = await s.app();
  s.setDb(false);
  await s.runAll();
  const res = await app.inject('/readiness?severity=critical,high');
  t.equal(res.statusCode, 503);
  const f = res.json().failing;
  t.equal(f.length, 1);
  t.match(f[0], { id: 'db-up', state: 'fail', reason: 'condition', message: 'ok == true is false (ok = false)', expect: ['ok == true'], severity: 'high', section: 'database' });
  t.ok(Date.parse(f[0].lastRun) > 0);
});

t.test('filters: repeated and comma-separated; unknown values are 400', async (t) => {
  const s = setup(t);
  const app = await s.app();
  await s.runAll();
  let res = await app.inject('/readiness?check=tls-api&check=health');
  t.equal(res.statusCode, 200);
  t.equal(res.json().summary.total, 2);
  res = await app.inject('/readiness?check=tls-api,docs&verbose=1');
  t.equal(res.json().checks.length, 2, 'verbose lists every matched check');
  const bad: [string, string][] = [
    ['severity=urgent', 'bad filter: unknown severity "urgent"; known: critical, high, medium, low'],
    ['phase=predeploy', 'bad filter: unknown phase "predeploy"; known: pre-deploy, deploy, verify, monitor, post-deploy'],
    ['check=nope', 'bad filter: unknown check "nope" (GET /checks lists them)'],
    ['section=secrity', 'bad filter: unknown section "secrity"; known: configuration, database, documentation, verify'],
  ];
  for (const [q, msg] of bad) {
    res = await app.inject(`/readiness?${q}`);
    t.equal(res.statusCode, 400, q);
    t.same(res.json(), { error: 'RDY_BAD_FILTER', message: msg }, q);
  }
});

t.test('checks list and detail with history; secrets are never shown', async (t) => {
  const s = setup(t);
  const app = await s.app();
  await s.runAll();
  await s.service.scheduler.runNow('db-up');
  const list = await app.inject('/checks');
  t.equal(list.statusCode, 200);
  t.equal(list.json().checks.length, 5);
  t.notMatch(list.body, /hunter2/);
  const one = await app.inject('/checks/db-up?limit=5');
  const body = one.json();
  t.equal(body.history.length, 2);
  t.equal(body.params.token, '***');
  t.equal(body.params.host, 'db');
  t.equal(body.interval, 60);
  t.notMatch(one.body, /hunter2/);
  const missing = await app.inject('/checks/nope');
  t.equal(missing.statusCode, 404);
  t.same(missing.json(), { error: 'RDY_CHECK_NOT_FOUND', message: 'no check with id "nope"' });
});

t.test('POST /checks/:id/run needs the bearer token', async (t) => {
  const off = setup(t);
  const noToken = await off.app();
  let res = await noToken.inject({ method: 'POST', url: '/checks/tls-api/run', headers: { authorization: 'Bearer x' } });
  t.equal(res.statusCode, 403);
  t.equal(res.json().error, 'RDY_WRITES_DISABLED');

  const s = setup(t, 'tok-123456');
  const app = await s.app();
  res = await app.inject({ method: 'POST', url: '/checks/tls-api/run' });
  t.equal(res.statusCode, 401);
  res = await app.inject({ method: 'POST', url: '/checks/tls-api/run', headers: { authorization: 'Bearer wrong' } });
  t.equal(res.statusCode, 403);
  t.equal(res.json().error, 'RDY_FORBIDDEN');
  res = await app.inject({ method: 'POST', url: '/checks/tls-api/run', headers: { authorization: 'Bearer tok-123456' } });
  t.equal(res.statusCode, 200);
  t.equal(res.json().state, 'pass');
  t.equal(res.json().value, 42);
  res = await app.inject({ method: 'POST', url: '/checks/no-env/run', headers: { authorization: 'Bearer tok-123456' } });
  t.equal(res.statusCode, 409);
  res = await app.inject({ method: 'POST', url: '/checks/nope/run', headers: { authorization: 'Bearer tok-123456' } });
  t.equal(res.statusCode, 404);
});

t.test('metrics: every family of the contract, read at scrape time', async (t) => {
  const s = setup(t);
  const app = await s.app();
  s.setDb(false);
  await s.runAll();
  const res = await app.inject('/metrics');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  const m = res.body;
  t.match(m, 'readiness_check_passing{check="tls-api",section="configuration",severity="critical",phase="pre-deploy"} 1');
  t.match(m, 'readiness_check_passing{check="db-up",section="database",severity="high",phase="pre-deploy"} 0');
  t.match(m, 'readiness_check_state{check="db-up",state="fail"} 1');
  t.match(m, 'readiness_check_state{check="db-up",state="pass"} 0');
  t.match(m, 'readiness_check_state{check="no-env",state="unconfigured"} 1');
  t.match(m, 'readiness_check_failure_info{check="db-up",reason="condition"} 1');
  t.match(m, 'readiness_check_failure_info{check="no-env",reason="unconfigured"} 1');
  t.notMatch(m, /readiness_check_failure_info\{check="tls-api"/);
  t.match(m, 'readiness_check_value{check="tls-api"} 42');
  t.match(m, /readiness_check_last_run_timestamp_seconds\{check="tls-api"\} \d{10}/);
  t.match(m, /readiness_check_last_pass_timestamp_seconds\{check="tls-api"\} \d{10}/);
  t.notMatch(m, /readiness_check_last_pass_timestamp_seconds\{check="db-up"\}/);
  t.match(m, 'readiness_check_interval_seconds{check="tls-api"} 60');
  t.match(m, /readiness_check_duration_seconds\{check="tls-api"\} [\d.e-]+/);
  t.match(m, 'readiness_check_runs_total{check="db-up",result="fail"} 1');
  t.match(m, 'readiness_ready{phase="pre-deploy"} 0');
  t.match(m, 'readiness_ready{phase="verify"} 0');
  t.match(m, 'readiness_ready{phase="monitor"} 1');
  t.match(m, 'readiness_ready{phase="all"} 0');
  t.match(m, 'readiness_rollback_recommended 0');
  t.match(m, /readiness_build_info\{version="\d+\.\d+\.\d+",checklist="test"\} 1/);
  // What each check's failure means for a person, for the alert rules to join on (issue 13).
  t.match(m, 'readiness_check_info{check="tls-api",probe="scripted",notify="ticket",expect="n > 30"} 1');
  t.match(m, 'readiness_check_info{check="db-up",probe="scripted",notify="ticket",expect="ok == true"} 1');
  t.match(m, 'readiness_check_info{check="health",probe="scripted",notify="ticket",expect=""} 1');
  t.equal(m.match(/^readiness_check_info\{/gm)?.length, 5, 'one info series per check, unconfigured ones too');
  t.notMatch(m, /^readiness_deployment_info\{/m, 'no deployment info before the first deployment');
  t.match(m, 'readiness_exporter_checks 5');
  t.match(m, 'readiness_exporter_store_up 1');
  t.match(m, 'readiness_exporter_config_last_reload_successful 1');
  t.notMatch(m, /nodejs_active_handles_total/);
  t.notMatch(m, /hunter2/);
  s.setDb(true);
  await s.service.scheduler.runNow('db-up');
  const again = (await app.inject('/metrics')).body;
  t.match(again, 'readiness_check_passing{check="db-up",section="database",severity="high",phase="pre-deploy"} 1', 'the next scrape sees the new state');
});

t.test('metrics: a family whose value is unknown has no sample, not a 0', async (t) => {
  const s = setup(t);
  const app = await s.app();
  s.setDb(false);
  await s.runAll();
  const sample = (body: string, name: string) => body.split('\n').filter((l) => l === name || l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  const before = (await app.inject('/metrics')).body;
  t.match(before, '# TYPE readiness_deployment_timestamp_seconds gauge', 'the family is declared');
  t.same(sample(before, 'readiness_deployment_timestamp_seconds'), [], 'no deployment yet: no sample (a 0 would read as a deployment in 1970)');
  t.match(before, 'readiness_deployment_window_open 0', 'the window is known to be closed');
  t.same(sample(before, 'readiness_check_last_pass_timestamp_seconds').filter((l) => l.includes('"db-up"') || l.includes('"no-env"')), [], 'never passed: no sample');
  const at = Date.now() - 60_000;
  await s.service.opts.store.addDeployment({ id: '00000000-0000-4000-8000-000000000001', version: '1.2.3', at, createdAt: at, source: 'api' });
  const after = (await app.inject('/metrics')).body;
  t.same(sample(after, 'readiness_deployment_timestamp_seconds'), [`readiness_deployment_timestamp_seconds ${at / 1000}`], 'the deployment time once one is recorded');
});

t.test('health, docs, index and unknown routes', async (t) => {
  const s = setup(t);
  const app = await s.app();
  t.equal((await app.inject('/healthz')).json().status, 'ok');
  const docs = (await app.inject('/docs')).json();
  t.equal(docs.openapi.slice(0, 2), '3.');
  for (const p of ['/readiness', '/checks', '/checks/{id}', '/checks/{id}/run', '/metrics', '/healthz']) t.ok(docs.paths[p], `documents ${p}`);
  const nf = await app.inject('/nope');
  t.equal(nf.statusCode, 404);
  t.same(nf.json(), { error: 'RDY_NOT_FOUND', message: 'no route GET /nope' });
  t.equal((await app.inject('/')).json().checklist, 'test');
});

t.test('a deployment version becomes a bounded label value', async (t) => {
  const { versionLabel } = await import('../src/metrics.js');
  t.equal(versionLabel('1.4.2'), '1.4.2');
  t.equal(versionLabel('registry.example/api:sha-0a1b2c@sha256:ff'), 'registry.example/api:sha-0a1b2c@sha256:ff', 'image references pass through');
  t.equal(versionLabel('1.4.3 (hotfix) "x"\n'), '1.4.3__hotfix___x__', 'spaces, quotes, parentheses and newlines are replaced');
  t.equal(versionLabel('v'.repeat(300)).length, 128, 'at most 128 characters');
});
