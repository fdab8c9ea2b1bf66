// The rollback verdict (issue 11, item 2): inside the window after a deployment, a gating
// monitor-phase check that cannot show it is healthy (fail, error, no data, stale) is a rollback
// cause once its failAfter is met; unconfigured and pending checks are not. /readiness,
// /metrics and Service.rollbackCauses give one verdict. The same question against a real
// Prometheus and a killed app is test/outage.test.ts.
import pino from 'pino';
import t from 'tap';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { cannotShowHealthy } from '../src/state.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef, type Script } from './helpers/checks.js';

const log = pino({ level: 'silent' });
const TOKEN = 'rollback-test-token';

const ok: Script = () => ({ fields: { ok: true } });
const bad: Script = () => ({ fields: { ok: false } });
const refused: Script = () => ({ fields: {}, error: { reason: 'refused', message: 'connect ECONNREFUSED 10.0.0.1:9090' } });
const noData: Script = () => ({ fields: { series: 0 }, noData: true, message: 'the query returned an empty vector (no series matched)' });

function monitor(id: string, script: Script, over: Parameters<typeof makeDef>[1] = {}) {
  return makeDef(script, { id, phase: 'monitor', section: 'monitor', expect: ['ok == true'], ...over });
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const defs = [
    monitor('m-fail', bad),
    monitor('m-error', refused),
    monitor('m-nodata-error', noData),
    monitor('m-nodata-fail', noData, { onNoData: 'fail' }),
    monitor('m-nodata-pass', noData, { onNoData: 'pass' }),
    monitor('m-stale', ok, { intervalMs: 1_000, timeoutMs: 1_000 }),
    monitor('m-unconfigured', ok, { unconfigured: 'environment variable PROMETHEUS_URL is not set' }),
    monitor('m-pending', ok),
    monitor('m-fail-after-2', refused, { failAfter: 2 }),
    monitor('m-ok', ok),
    monitor('m-advisory', bad, { gate: false }),
    makeDef(bad, { id: 'predeploy-fail', phase: 'pre-deploy' }),
  ];
  const store = new MemoryStore();
  const service = new Service({ file: 'x', checklist: checklistOf(...defs), store, log });
  const app = await buildServer({ service, log, apiToken: TOKEN });
  t.teardown(async () => {
    await app.close();
    await service.stop(0);
  });
  const runAll = async () => {
    for (const d of defs) if (!d.unconfigured && d.id !== 'm-pending') await runAgain(service, d.id);
  };
  return { service, app, runAll, store };
}

/** Runs a check once more: after the previous run's bookkeeping, so runNow does not join it. */
async function runAgain(service: Service, id: string) {
  await new Promise((r) => setImmediate(r));
  await service.scheduler.runNow(id);
}

const ids = (vs: { def: { id: string } }[]) => vs.map((v) => v.def.id).sort();

t.test('before any deployment nothing is a rollback cause', async (t) => {
  const { service, runAll, app } = await setup(t);
  await runAll();
  t.same(service.rollbackCauses(), []);
  t.equal((await app.inject('/readiness?phase=monitor')).json().rollback, undefined, 'no deployment: no rollback question yet');
  t.match((await app.inject('/metrics')).body, /^readiness_rollback_recommended 0$/m);
});

t.test('inside the window: fail, error, no data and stale recommend a rollback; unconfigured and pending do not', async (t) => {
  const { service, runAll, app, store } = await setup(t);
  // Recorded in the store directly: POST /deployments would also run every monitor check at once.
  await store.addDeployment({ id: 'd1', version: '1.4.2', at: Date.now(), createdAt: Date.now(), source: 'api' });
  await runAll();
  const views = service.views();
  const byId = new Map(views.map((v) => [v.def.id, v]));
  // Preconditions: each check is in the state its name says.
  t.match(byId.get('m-nodata-error'), { state: 'error', reason: 'no-data' });
  t.match(byId.get('m-nodata-fail'), { state: 'fail', reason: 'no-data' });
  t.equal(byId.get('m-nodata-pass')!.state, 'pass');
  t.equal(byId.get('m-unconfigured')!.state, 'unconfigured');
  t.equal(byId.get('m-pending')!.state, 'pending');
  t.match(byId.get('m-fail-after-2'), { state: 'error', status: { streak: 1 } }, 'first result: no earlier state to hold it');

  const expected = ['m-error', 'm-fail', 'm-nodata-error', 'm-nodata-fail'];
  t.same(ids(service.rollbackCauses(views)), expected);
  t.notOk(cannotShowHealthy(byId.get('m-fail-after-2')!), 'failAfter 2 not met after one error');

  // The second error meets failAfter.
  await runAgain(service, 'm-fail-after-2');
  t.same(ids(service.rollbackCauses()), [...expected, 'm-fail-after-2'].sort());

  // A check with no completed run for 3 intervals (a stuck scheduler) goes stale: a cause too.
  const later = Date.now() + 4_000;
  const staleView = service.views(later).find((v) => v.def.id === 'm-stale')!;
  t.equal(staleView.state, 'stale');
  t.ok(ids(service.rollbackCauses(service.views(later))).includes('m-stale'));

  // /readiness?phase=monitor and /metrics say the same.
  const res = await app.inject('/readiness?phase=monitor');
  t.equal(res.statusCode, 503);
  const body = res.json();
  t.equal(body.rollback.recommended, true);
  t.same([...body.rollback.failing].sort(), [...expected, 'm-fail-after-2'].sort());
  t.match((await app.inject('/metrics')).body, /^readiness_rollback_recommended 1$/m);
});

t.test('failAfter holds a passing check through one bad run; a held failing state stays a cause', async (t) => {
  let good = true;
  const def = monitor('m-flaky', () => ({ fields: { ok: good } }), { failAfter: 2, passAfter: 2 });
  const service = new Service({ file: 'x', checklist: checklistOf(def), store: new MemoryStore(), log });
  t.teardown(() => service.stop(0));
  await service.opts.store.addDeployment({ id: 'd1', version: '1', at: Date.now(), createdAt: Date.now(), source: 'api' });
  await runAgain(service, 'm-flaky');
  good = false;
  await runAgain(service, 'm-flaky');
  t.equal(service.scheduler.view('m-flaky')!.state, 'pass', 'one bad run is held by failAfter 2');
  t.same(service.rollbackCauses(), []);
  await runAgain(service, 'm-flaky');
  t.equal(service.scheduler.view('m-flaky')!.state, 'fail');
  t.same(ids(service.rollbackCauses()), ['m-flaky']);
  good = true;
  await runAgain(service, 'm-flaky');
  t.equal(service.scheduler.view('m-flaky')!.state, 'fail', 'one good run is held by passAfter 2');
  t.same(ids(service.rollbackCauses()), ['m-flaky'], 'still a cause while held');
  await runAgain(service, 'm-flaky');
  t.same(service.rollbackCauses(), []);
});

t.test('after the window closes nothing is a cause', async (t) => {
  const { service, runAll, store } = await setup(t);
  await store.addDeployment({ id: 'd0', version: '1.4.1', at: Date.now() - 3 * 3_600_000, createdAt: Date.now(), source: 'api' });
  await runAll();
  t.same(service.rollbackCauses(), []);
});
