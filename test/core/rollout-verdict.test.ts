// What /rollback and /readiness say about the latest deployment (src/http/rollout.ts and
// readinessBody in src/http/answers.ts), word for word: the verdict message in each case
// (counts, plurals, a cause with and without a reason, the window closed, no deployment), the
// deployment block's instants, the store block only when degraded, and which `verbose`
// values list the checks.
import pino from 'pino';
import t from 'tap';
import { readinessBody } from '../../src/http/answers.js';
import { buildServer } from '../../src/http/server.js';
import { Service } from '../../src/service.js';
import { CachedStore } from '../../src/store/cached.js';
import { MemoryBackend } from '../../src/store/memory.js';
import type { CheckStatus } from '../../src/store/types.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const HOUR = 3_600_000;

class DownableBackend extends MemoryBackend {
  down = false;
  override async writeStatus(s: CheckStatus & { last: CheckStatus['last'] }): Promise<void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    return super.writeStatus(s);
  }
}

async function setup(t: { teardown: (fn: () => unknown) => void }) {
  const bad = () => ({ fields: { ok: false } });
  const defs = [
    makeDef(bad, { id: 'm1', section: 'mon', phase: 'monitor', expect: ['ok == true'] }),
    makeDef(bad, { id: 'm2', section: 'mon', phase: 'monitor', expect: ['ok == true'] }),
    makeDef(() => ({ fields: { ok: true } }), { id: 'pre', section: 'pre', phase: 'pre-deploy', expect: ['ok == true'] }),
  ];
  const backend = new DownableBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store, log });
  const app = await buildServer({ service, log });
  t.teardown(async () => {
    await app.close();
    await service.stop(0);
  });
  const deploy = (version: string, at: number) => store.addDeployment({ id: version, version, at, createdAt: at, source: 'api' });
  const rollback = async (q = '') => {
    const res = await app.inject(`/rollback${q}`);
    return { code: res.statusCode, body: res.json() };
  };
  return { service, store, backend, app, deploy, rollback, runAll: () => Promise.all(defs.map((d) => service.scheduler.runNow(d.id))) };
}

t.test('/rollback: the message and blocks in each case', async (t) => {
  const s = await setup(t);
  await s.runAll();
  let r = await s.rollback();
  t.same([r.code, r.body.recommended, r.body.message], [200, false, 'no deployment recorded yet: nothing to roll back']);
  t.notOk('deployment' in r.body);
  t.notOk('store' in r.body, 'a healthy store is not mentioned');
  t.equal(r.body.checklist, 'test');
  t.ok(Math.abs(Date.parse(r.body.evaluatedAt) - Date.now()) < 60_000, 'evaluatedAt is now');

  const at = Date.now() - 1000;
  await s.deploy('3.0.0', at);
  r = await s.rollback();
  t.equal(r.code, 503);
  t.equal(r.body.message, 'roll back 3.0.0: 2 monitor checks not healthy inside the post-deploy window: m1 (fail: condition), m2 (fail: condition)');
  t.same(r.body.causes.map((c: { id: string }) => c.id), ['m1', 'm2']);
  t.same(r.body.deployment, { version: '3.0.0', at: new Date(at).toISOString(), windowOpen: true, windowEndsAt: new Date(at + 2 * HOUR).toISOString() });

  // One cause, and one whose result carries no reason.
  const now = Date.now();
  const last = { check: 'm1', state: 'pass' as const, message: 'ok', startedAt: now, finishedAt: now, durationMs: 1, conditions: [] };
  await s.store.put({ check: 'm1', state: 'pass', message: 'ok', last, streak: 1, runs: { pass: 1 } });
  await s.store.put({ check: 'm2', state: 'fail', message: 'down', last: { ...last, check: 'm2', state: 'fail', message: 'down' }, streak: 1, runs: { fail: 1 } });
  r = await s.rollback();
  t.equal(r.body.message, 'roll back 3.0.0: 1 monitor check not healthy inside the post-deploy window: m2 (fail)');

  await s.store.put({ check: 'm2', state: 'pass', message: 'ok', last: { ...last, check: 'm2', finishedAt: now + 1 }, streak: 1, runs: { pass: 1 } });
  r = await s.rollback('?okStatus=202');
  t.same([r.code, r.body.recommended, r.body.message], [202, false, 'no rollback recommended for 3.0.0: no gating monitor check is a rollback cause']);

  // A store that cannot write: said in the body.
  s.backend.down = true;
  await s.service.scheduler.runNow('pre');
  await s.store.flush(50);
  r = await s.rollback();
  t.match(r.body.store, { ok: false, message: /^memory store degraded: ECONNREFUSED \(test\)/ });
});

t.test('/rollback after the window closed', async (t) => {
  const s = await setup(t);
  const at = Date.now() - 3 * HOUR;
  await s.deploy('2.9.0', at);
  await s.runAll();
  const r = await s.rollback();
  t.same([r.code, r.body.recommended, r.body.causes], [200, false, []]);
  t.equal(r.body.message, 'no rollback recommended: the post-deploy window of 2.9.0 is closed');
  t.same(r.body.deployment, { version: '2.9.0', at: new Date(at).toISOString(), windowOpen: false, windowEndsAt: new Date(at + 2 * HOUR).toISOString() });
});

t.test('readinessBody: filters, verbose, the store, deployment and rollback blocks', async (t) => {
  const s = await setup(t);
  await s.runAll();
  const now = Date.now();
  let body = readinessBody(s.service, {}, now);
  t.equal(body.ready, true, 'monitor checks do not gate without a deployment');
  t.notOk('deployment' in body);
  t.notOk('rollback' in body);
  t.notOk('store' in body);
  t.equal(body.evaluatedAt, new Date(now).toISOString());

  for (const v of ['1', 'true']) t.equal(readinessBody(s.service, { verbose: v }, now).checks?.length, 3, `verbose=${v} lists the checks`);
  for (const v of [undefined, '', '0', 'false', 'yes', 'TRUE']) t.notOk('checks' in readinessBody(s.service, v === undefined ? {} : { verbose: v }, now), `verbose=${v} does not`);

  t.throws(() => readinessBody(s.service, { phase: 'nope' }, now), { code: 'RDY_BAD_FILTER', message: /^bad filter: unknown phase "nope"/ });
  t.equal(readinessBody(s.service, { section: 'pre' }, now).summary.total, 1, 'filters apply');

  const at = now - 1000;
  await s.deploy('4.0.0', at);
  body = readinessBody(s.service, { section: 'pre' }, now);
  t.same(body.deployment, { version: '4.0.0', at: new Date(at).toISOString(), windowOpen: true, windowEndsAt: new Date(at + 2 * HOUR).toISOString() });
  t.same(body.rollback, { recommended: true, failing: ['m1', 'm2'] }, 'the rollback verdict ignores the filters');
  t.equal(body.ready, true, 'the filtered checks are ready');
  body = readinessBody(s.service, {}, now + 3 * HOUR);
  t.same(body.rollback, { recommended: false, failing: [] }, 'window closed: nothing to roll back');
  t.equal(body.deployment!.windowOpen, false);

  s.backend.down = true;
  await s.service.scheduler.runNow('pre');
  await s.store.flush(50);
  t.match(readinessBody(s.service, {}, now).store, { ok: false, message: /^memory store degraded: / });
});
