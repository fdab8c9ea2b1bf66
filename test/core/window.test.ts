// The post-deploy window (Service.deploymentWindow and the views read through it) at its
// edges: it opens at the deployment's instant and closes exactly monitorWindow later; monitor
// checks gate only inside it, other phases always; and views cached before an edge are not
// served after it (the cache expires at the window's edges, not only on changes).
import pino from 'pino';
import t from 'tap';
import { Service } from '../../src/service.js';
import { MemoryStore } from '../../src/store/memory.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const bad = () => ({ fields: { ok: false } });

async function setup(t: { teardown: (fn: () => unknown) => void }) {
  const defs = [
    makeDef(bad, { id: 'm', phase: 'monitor', expect: ['ok == true'] }),
    makeDef(bad, { id: 'm-advisory', phase: 'monitor', gate: false, expect: ['ok == true'] }),
    makeDef(bad, { id: 'pre', phase: 'pre-deploy', expect: ['ok == true'] }),
  ];
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store, log });
  t.teardown(() => service.stop(0));
  for (const d of defs) await service.scheduler.runNow(d.id);
  return { service, store, windowMs: service.checklist().monitorWindowMs };
}

const gating = (service: Service, now: number) => Object.fromEntries(service.views(now).map((v) => [v.def.id, v.gating]));

t.test('no deployment: the window is closed and monitor checks do not gate', async (t) => {
  const { service } = await setup(t);
  const now = Date.now();
  t.same(service.deploymentWindow(now), { open: false });
  t.same(gating(service, now), { m: false, 'm-advisory': false, pre: true });
  t.same(service.rollbackCauses(service.views(now)), []);
  t.equal(service.rollbackRecommended(service.views(now)), false);
});

t.test('the window opens at the deployment and closes monitorWindow later, exactly', async (t) => {
  const { service, store, windowMs } = await setup(t);
  t.equal(windowMs, 2 * 3_600_000, 'precondition: a 2h window');
  const at = Date.now() + 60_000; // recorded for a minute from now: before it, the window is not open yet
  await store.addDeployment({ id: 'd1', version: '1.0.0', at, createdAt: Date.now(), source: 'api' });
  const endsAt = at + windowMs;
  const w = (now: number) => service.deploymentWindow(now);
  t.match(w(at - 1), { open: false, endsAt, deployment: { version: '1.0.0' } }, 'one ms before the deployment');
  t.match(w(at), { open: true, endsAt }, 'at the deployment');
  t.match(w(endsAt - 1), { open: true }, 'one ms before the end');
  t.match(w(endsAt), { open: false }, 'at the end');

  // The views follow, read in time order through the same cache.
  t.same(gating(service, at - 1), { m: false, 'm-advisory': false, pre: true });
  t.same(gating(service, at), { m: true, 'm-advisory': false, pre: true }, 'a gating monitor check gates inside the window');
  t.same(gating(service, endsAt - 1), { m: true, 'm-advisory': false, pre: true });
  t.same(gating(service, endsAt), { m: false, 'm-advisory': false, pre: true }, 'and not after it, though nothing else changed');

  // So does the rollback verdict.
  t.same(service.rollbackCauses(service.views(at - 1)), []);
  t.same(service.rollbackCauses(service.views(at)).map((v) => v.def.id), ['m']);
  t.equal(service.rollbackRecommended(service.views(at)), true);
  t.same(service.rollbackCauses(service.views(endsAt)), []);
});

t.test('the latest deployment decides the window', async (t) => {
  const { service, store, windowMs } = await setup(t);
  const now = Date.now();
  await store.addDeployment({ id: 'old', version: '1', at: now - 3 * windowMs, createdAt: now - 3 * windowMs, source: 'api' });
  t.equal(service.deploymentWindow(now).open, false, 'an old deployment: closed');
  await store.addDeployment({ id: 'new', version: '2', at: now - 1000, createdAt: now, source: 'api' });
  t.match(service.deploymentWindow(now), { open: true, deployment: { version: '2' } });
  t.equal(gating(service, now).m, true, 'the new deployment reopened the window for the cached views too');
});
