// The endpoints deploy tools and Kubernetes call: /readyz (can this replica answer),
// /rollback (the rollback verdict, its status chosen per caller), and /readiness's POST form
// and notReadyStatus. Through fastify's inject; test/deploy-tools.test.ts drives the same
// routes over real sockets with the exact requests Argo Rollouts and Flagger send.
import pino from 'pino';
import t from 'tap';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });
const TOKEN = 'deploy-tools-token';
// What Flagger POSTs to every webhook (flaggerv1.CanaryWebhookPayload).
const FLAGGER_PAYLOAD = { name: 'api', namespace: 'offgridflow', phase: 'Progressing', checksum: 'abc', metadata: { note: 'ignored' } };

async function setup(t: { teardown: (fn: () => unknown) => void }) {
  let errorRate = 0.1;
  const defs = [
    makeDef(() => ({ value: errorRate, fields: { n: errorRate } }), { id: 'error-rate', section: 'monitor', severity: 'critical', phase: 'monitor', expect: ['n < 1'] }),
    makeDef(() => ({ fields: { ok: true } }), { id: 'smoke', section: 'verify', severity: 'critical', phase: 'verify', expect: ['ok == true'] }),
  ];
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store: new MemoryStore(), log, maxJitterMs: 0 });
  const app = await buildServer({ service, log, apiToken: TOKEN });
  t.teardown(async () => {
    await app.close();
    await service.stop(0);
  });
  return {
    service,
    app,
    setErrorRate: (v: number) => (errorRate = v),
    run: async (id: string) => service.scheduler.runNow(id),
    deploy: async (version: string) => {
      const res = await app.inject({ method: 'POST', url: '/deployments', headers: { authorization: `Bearer ${TOKEN}` }, payload: { version } });
      if (res.statusCode !== 201) throw new Error(`deploy-mark: ${res.statusCode} ${res.body}`);
    },
  };
}

t.test('/readyz: 503 while starting, 200 once scheduling, 503 from SIGTERM on', async (t) => {
  const s = await setup(t);
  let res = await s.app.inject('/readyz');
  t.equal(res.statusCode, 503, 'before start() the replica has not restored its state');
  t.match(res.json(), { status: 'starting', checklist: 'test', checks: 2 });
  t.equal((await s.app.inject('/healthz')).statusCode, 200, '/healthz (liveness) answers while starting');
  await s.service.start();
  res = await s.app.inject('/readyz');
  t.equal(res.statusCode, 200);
  t.equal(res.json().status, 'ready');
  // Not about the checked systems: /readiness is 503 (checks pending) while /readyz is 200.
  t.equal((await s.app.inject('/readiness')).statusCode, 503);
  s.service.markStopping();
  res = await s.app.inject('/readyz');
  t.equal(res.statusCode, 503);
  t.equal(res.json().status, 'stopping');
});

t.test('/readyz: start() finishing after SIGTERM does not turn the replica ready again', async (t) => {
  const s = await setup(t);
  s.service.markStopping();
  await s.service.start();
  t.equal((await s.app.inject('/readyz')).statusCode, 503);
});

t.test('/rollback: no deployment, healthy, then recommended, with the causes named', async (t) => {
  const s = await setup(t);
  await s.run('error-rate');
  let res = await s.app.inject('/rollback');
  t.equal(res.statusCode, 200);
  t.match(res.json(), { recommended: false, causes: [], message: 'no deployment recorded yet: nothing to roll back' });
  t.notOk('deployment' in res.json());

  s.setErrorRate(5);
  await s.run('error-rate');
  res = await s.app.inject('/rollback');
  t.equal(res.statusCode, 200, 'a failing monitor check outside any window is no rollback cause');
  t.equal(res.json().recommended, false);

  await s.deploy('1.4.2');
  await s.run('error-rate');
  res = await s.app.inject('/rollback');
  t.equal(res.statusCode, 503, 'inside the window the failing monitor check recommends a rollback');
  const body = res.json();
  t.equal(body.recommended, true);
  t.match(body.deployment, { version: '1.4.2', windowOpen: true });
  t.same(
    body.causes.map((c: { id: string; state: string }) => [c.id, c.state]),
    [['error-rate', 'fail']],
  );
  t.match(body.causes[0], { reason: 'condition', value: 5, expect: ['n < 1'], severity: 'critical', phase: 'monitor' });
  t.match(body.message, /^roll back 1\.4\.2: 1 monitor check not healthy inside the post-deploy window: error-rate \(fail: condition\)/);

  // One verdict: /readiness's rollback block and the metric say the same.
  const r = (await s.app.inject('/readiness?phase=monitor')).json();
  t.same(r.rollback, { recommended: true, failing: ['error-rate'] });
  t.match((await s.app.inject('/metrics')).body, /^readiness_rollback_recommended 1$/m);

  s.setErrorRate(0.2);
  await s.run('error-rate');
  res = await s.app.inject('/rollback');
  t.equal(res.statusCode, 200);
  t.match(res.json(), { recommended: false, causes: [], message: 'no rollback recommended for 1.4.2: no gating monitor check is a rollback cause' });
});

t.test('/rollback: the status of each outcome is the caller\'s choice; typos are 400', async (t) => {
  const s = await setup(t);
  await s.deploy('2.0.0');
  await s.run('error-rate');
  // Flagger's rollback hook: 2xx (200-202) rolls back, anything else does not.
  let res = await s.app.inject('/rollback?rollbackStatus=200&okStatus=409');
  t.equal(res.statusCode, 409);
  t.equal(res.json().recommended, false);
  s.setErrorRate(3);
  await s.run('error-rate');
  res = await s.app.inject('/rollback?rollbackStatus=200&okStatus=409');
  t.equal(res.statusCode, 200);
  t.equal(res.json().recommended, true);
  // Argo Rollouts' web metric: always 2xx, the verdict read from the body.
  res = await s.app.inject('/rollback?rollbackStatus=200');
  t.equal(res.statusCode, 200);
  t.equal(res.json().recommended, true);

  for (const q of ['rollbackstatus=200', 'rollbackStatus=302', 'rollbackStatus=100', 'okStatus=600', 'okStatus=abc', 'phase=monitor']) {
    res = await s.app.inject(`/rollback?${q}`);
    t.equal(res.statusCode, 400, `?${q} is rejected`);
    t.equal(res.json().error, 'RDY_BAD_REQUEST');
  }
});

t.test('POST /rollback and POST /readiness answer webhook callers as GET does, and change nothing', async (t) => {
  const s = await setup(t);
  await s.run('smoke');
  await s.deploy('3.1.0');
  s.setErrorRate(9);
  await s.run('error-rate');
  const post = (url: string) => s.app.inject({ method: 'POST', url, payload: FLAGGER_PAYLOAD });
  let res = await post('/rollback?rollbackStatus=200&okStatus=409');
  t.equal(res.statusCode, 200);
  t.equal(res.json().recommended, true);
  res = await post('/readiness?phase=verify');
  t.equal(res.statusCode, 200, 'verify checks pass');
  res = await post('/readiness?phase=monitor');
  t.equal(res.statusCode, 503);
  t.equal(res.json().ready, false);
  res = await s.app.inject({ method: 'POST', url: '/readiness?phase=nope', payload: FLAGGER_PAYLOAD });
  t.equal(res.statusCode, 400, 'filters are checked on POST too');
  // No write happened: still one deployment, no attestation.
  t.equal((await s.app.inject('/deployments')).json().deployments.length, 1);
  t.same((await s.app.inject('/attestations')).json().attestations ?? [], []);
});

t.test('/readiness?notReadyStatus=200 keeps the verdict in the body', async (t) => {
  const s = await setup(t);
  let res = await s.app.inject('/readiness?phase=verify&notReadyStatus=200');
  t.equal(res.statusCode, 200);
  t.equal(res.json().ready, false, 'pending is not ready, whatever the status');
  await s.run('smoke');
  res = await s.app.inject('/readiness?phase=verify&notReadyStatus=200');
  t.equal(res.statusCode, 200);
  t.equal(res.json().ready, true);
  res = await s.app.inject('/readiness?phase=monitor&notReadyStatus=301');
  t.equal(res.statusCode, 400);
});

t.test('the OpenAPI document describes the new routes and parameters', async (t) => {
  const s = await setup(t);
  const doc = (await s.app.inject('/docs')).json();
  t.ok(doc.paths['/readyz']?.get, '/readyz');
  t.ok(doc.paths['/rollback']?.get && doc.paths['/rollback']?.post, 'GET and POST /rollback');
  t.ok(doc.paths['/readiness']?.post, 'POST /readiness');
  const names = (op: { parameters?: { name: string }[] }) => (op.parameters ?? []).map((p) => p.name).sort();
  t.same(names(doc.paths['/rollback'].get), ['okStatus', 'rollbackStatus']);
  t.ok(names(doc.paths['/readiness'].get).includes('notReadyStatus'));
});
