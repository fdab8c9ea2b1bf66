// The scheduler's decisions around a run, without waiting on its timer: what `readiness check`
// (runOnce) runs and shows, what start() schedules and carries over, what a run records
// (who ran it, the records version it read, a store that refuses, a harness that throws), and
// which process may run a check when ownership moves while it waits in the queue.
import pino from 'pino';
import t from 'tap';
import type { Ownership } from '../../src/ha.js';
import { runOnce, Scheduler } from '../../src/scheduler.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { CheckStatus, Records, WriteFence } from '../../src/store/types.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const pass = () => ({ fields: {} });

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function ownership(owns: (id: string) => boolean, epoch?: number): Ownership {
  return {
    replicaId: 'r1',
    owns,
    fence: () => (epoch === undefined ? undefined : { owner: 'r1', epoch }),
    owned: () => [],
    start: async () => {},
    stop: async () => {},
  };
}

t.test('runOnce: --only pulls in transitive dependencies, runs each once, shows only those', async (t) => {
  const net = makeDef(pass, { id: 'net' });
  const db = makeDef(pass, { id: 'db', dependsOn: ['net'] });
  const cache = makeDef(pass, { id: 'cache', dependsOn: ['net'] });
  const app = makeDef(pass, { id: 'app', dependsOn: ['db', 'cache'] });
  const other = makeDef(pass, { id: 'other' });
  const views = await runOnce(checklistOf(net, db, cache, app, other), { store: new MemoryStore(), log, only: ['app'] });
  t.same(views.map((v) => [v.def.id, v.state]), [['net', 'pass'], ['db', 'pass'], ['cache', 'pass'], ['app', 'pass']], 'in checklist order, the unwanted one left out');
  t.same([net, db, cache, app, other].map((d) => d.runs()), [1, 1, 1, 1, 0], 'a shared dependency runs once; the unwanted check never');
});

t.test('runOnce: dependencies finish before their dependants start', async (t) => {
  const order: string[] = [];
  const slow = makeDef(() => new Promise((r) => setTimeout(() => (order.push('db'), r({ fields: {} })), 50)), { id: 'db' });
  const app = makeDef(() => (order.push('app'), { fields: {} }), { id: 'app', dependsOn: ['db'] });
  await runOnce(checklistOf(app, slow), { store: new MemoryStore(), log });
  t.same(order, ['db', 'app']);
});

t.test('a dependency this scheduler does not know does not block', async (t) => {
  const app = makeDef(pass, { id: 'app', dependsOn: ['ghost'] });
  const sched = new Scheduler(checklistOf(app), { store: new MemoryStore(), log });
  t.teardown(() => sched.stop(0));
  t.equal((await sched.runNow('app'))?.state, 'pass');
});

t.test('start: once; unconfigured checks are neither run nor subscribed; tracking carries over', async (t) => {
  let subscribed = 0;
  const a = makeDef(pass, { id: 'a' });
  a.probe.subscribe = () => (subscribed++, () => {});
  const u = makeDef(pass, { id: 'u', unconfigured: 'environment variable X is not set' });
  u.probe.subscribe = () => (subscribed += 100, () => {});
  let clock = 1_000_000;
  const sched = new Scheduler(checklistOf(a, u), { store: new MemoryStore(), log, maxJitterMs: 0, now: () => clock });
  t.teardown(() => sched.stop(0));
  sched.start(new Map([['a', 5]]));
  clock += 1;
  sched.start();
  await until(() => a.runs() >= 1, 'the start-up run of a');
  t.equal(subscribed, 1, 'a subscribed once, u never');
  t.equal(u.runs(), 0, 'the unconfigured check never runs');
  t.equal(sched.runNow('u'), undefined, 'not even when asked');
  t.same([...sched.trackedSince()], [['a', 5], ['u', 1_000_000]], 'handed over, or since the first start');
  t.equal(sched.view('nope'), undefined);
  t.equal(sched.viewEntry('nope'), undefined);
  t.equal(sched.viewEntry('u')?.view.state, 'unconfigured');
  t.equal(sched.view('u')?.runs, undefined, 'no runs of its own: none shown');

  const fresh = new Scheduler(checklistOf(makeDef(pass, { id: 'f', intervalMs: 3_600_000 })), { store: new MemoryStore(), log, maxJitterMs: 3_600_000, now: () => 42 });
  t.teardown(() => fresh.stop(0));
  fresh.start();
  t.same([...fresh.trackedSince()], [['f', 42]], 'nothing handed over: tracked since start');
});

t.test('a cron check keeps its cron slots: a recent run is not repeated on the interval', async (t) => {
  const store = new MemoryStore();
  const recent = makeDef(pass, { id: 'recent', schedule: '0 0 1 1 *', intervalMs: 100 });
  const now = Date.now();
  await store.put({ check: 'recent', state: 'pass', message: 'ok', last: { check: 'recent', state: 'pass', message: 'ok', startedAt: now, finishedAt: now, durationMs: 0, conditions: [] }, streak: 1, runs: { pass: 1 } });
  const first = makeDef(pass, { id: 'first', schedule: '0 0 1 1 *', intervalMs: 100 });
  const sched = new Scheduler(checklistOf(recent, first), { store, log, maxJitterMs: 0 });
  t.teardown(() => sched.stop(0));
  sched.start();
  await until(() => first.runs() === 1, 'the start-up run of the cron check without a result');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(recent.runs(), 0, 'the recent one waits for January, not 100 ms');
  t.equal(first.runs(), 1, 'and the other ran once');
});

t.test('runOnce: a name that is no check runs nothing', async (t) => {
  const a = makeDef(pass, { id: 'a' });
  t.same(await runOnce(checklistOf(a), { store: new MemoryStore(), log, only: ['nope'] }), []);
  t.equal(a.runs(), 0);
});

t.test('the probe reads other checks\' values and the records through the scheduler', async (t) => {
  const att = [{ id: 1 }] as unknown as ReturnType<Records['attestations']>;
  const dep = [{ id: 2 }] as unknown as ReturnType<Records['deployments']>;
  const records: Records = { attestations: () => att, deployments: () => dep };
  const a = makeDef(() => ({ value: 5, fields: {} }), { id: 'a' });
  const seen: unknown[] = [];
  const b = makeDef((ctx) => (seen.push(ctx.valueOf('a'), ctx.valueOf('never'), ctx.records!.attestations('b'), ctx.records!.deployments(1)), { fields: {} }), { id: 'b' });
  const sched = new Scheduler(checklistOf(a, b), { store: new MemoryStore(), log, records });
  t.teardown(() => sched.stop(0));
  await sched.runNow('a');
  await sched.runNow('b');
  t.same(seen, [5, undefined, att, dep]);
  t.equal(seen[2], att);
  t.equal(seen[3], dep);
});

t.test('a view is frozen: later runs do not change what it showed', async (t) => {
  const a = makeDef(pass, { id: 'a' });
  const sched = new Scheduler(checklistOf(a), { store: new MemoryStore(), log });
  t.teardown(() => sched.stop(0));
  await sched.runNow('a');
  const before = sched.view('a')!;
  await sched.runNow('a');
  t.same(before.runs, { pass: 1 });
  t.same(sched.view('a')!.runs, { pass: 2 });
});

t.test('what a run records: who ran it, and the records version of its first read', async (t) => {
  let version = 41;
  const records: Records = { attestations: () => [], deployments: () => [], recordsVersion: () => ++version };
  const reader = makeDef((ctx) => (ctx.records!.attestations('reader'), ctx.records!.deployments(1), { fields: {} }), { id: 'reader' });
  const plain = makeDef(pass, { id: 'plain' });
  const own = new Scheduler(checklistOf(reader, plain), { store: new MemoryStore(), log, records, ownership: ownership(() => true, 7) });
  t.teardown(() => own.stop(0));
  const r = (await own.runNow('reader'))!;
  t.equal(r.last.recordsVersion, 42, 'the first read\'s version, not the second\'s');
  t.same(r.last.ranBy, { replica: 'r1', epoch: 7 });
  const p = (await own.runNow('plain'))!;
  t.notOk('recordsVersion' in p.last, 'no reads, no version');

  const noLease = new Scheduler(checklistOf(plain), { store: new MemoryStore(), log, ownership: ownership(() => true) });
  t.teardown(() => noLease.stop(0));
  t.same((await noLease.runNow('plain'))!.last.ranBy, { replica: 'r1' }, 'no lease: no epoch');
  const solo = new Scheduler(checklistOf(plain), { store: new MemoryStore(), log });
  t.teardown(() => solo.stop(0));
  t.notOk('ranBy' in (await solo.runNow('plain'))!.last, 'no HA: no ranBy');

  const bare: Records = { attestations: () => [], deployments: () => [] };
  const unversioned = new Scheduler(checklistOf(reader), { store: new MemoryStore(), log, records: bare });
  t.teardown(() => unversioned.stop(0));
  t.equal((await unversioned.runNow('reader'))!.last.recordsVersion, 0, 'records without versions read as 0');
});

t.test('a store that refuses a write: counted, and the status is still handed on', async (t) => {
  class Refusing extends MemoryStore {
    override put(s: CheckStatus, f?: WriteFence): Promise<void> {
      void super.put(s, f);
      return Promise.reject(new Error('disk full'));
    }
  }
  const seen: CheckStatus[] = [];
  const a = makeDef(pass, { id: 'a' });
  const sched = new Scheduler(checklistOf(a), { store: new Refusing(), log, onStatus: (def, s) => def.id === 'a' && seen.push(s) });
  t.teardown(() => sched.stop(0));
  const s = await sched.runNow('a');
  t.equal(s?.state, 'pass');
  t.equal(seen.length, 1, 'onStatus got it');
  t.equal(seen[0], s);
  await until(() => sched.stats.storeErrors === 1, 'the refusal to be counted');
  await sched.runNow('a');
  await until(() => sched.stats.storeErrors === 2, 'the second refusal');
});

t.test('a harness failure is an error result; the scheduler keeps going', async (t) => {
  const a = makeDef(pass, { id: 'a' });
  // load throwing synchronously escapes runCheck's own handling: the scheduler's catch.
  const broken = { ...a, probe: { ...a.probe, load: () => { throw new Error('boom'); } } };
  const sched = new Scheduler(checklistOf(broken), { store: new MemoryStore(), log });
  t.teardown(() => sched.stop(0));
  const s = (await sched.runNow('a'))!;
  t.match(s, { state: 'error', reason: 'error', message: 'Error: boom' });
  t.equal(s.last.durationMs, 0);
  t.same(s.last.conditions, []);
  t.equal(s.last.check, 'a');
  t.ok(s.last.startedAt > 0 && s.last.finishedAt === s.last.startedAt);
  t.equal((await sched.runNow('a'))?.state, 'error', 'and runs again');
});

t.test('ownership moved while the run waited: not run, the store\'s status returned; records-only checks run anywhere', async (t) => {
  let release: (() => void) | undefined;
  const blocker = makeDef(() => new Promise((r) => (release = () => r({ fields: {} }))), { id: 'blocker' });
  const moved = makeDef(pass, { id: 'moved' });
  let mine = true;
  const sched = new Scheduler(checklistOf(blocker, moved), { store: new MemoryStore(), log, concurrency: 1, ownership: ownership((id) => id !== 'moved' || mine) });
  t.teardown(() => sched.stop(0));
  const first = sched.runNow('blocker')!;
  const queued = sched.runNow('moved');
  t.ok(queued, 'precondition: owned when asked, so queued');
  await until(() => release !== undefined, 'the blocker to start');
  mine = false;
  release!();
  await first;
  t.equal(await queued, undefined, 'the store has no status of it: nothing');
  t.equal(moved.runs(), 0, 'it did not run here');

  const rec = makeDef(pass, { id: 'rec' });
  rec.probe.recordsOnly = true;
  const other = new Scheduler(checklistOf(rec), { store: new MemoryStore(), log, ownership: ownership(() => false, 3) });
  t.teardown(() => other.stop(0));
  const s = await other.runNow('rec');
  t.equal(rec.runs(), 1, 'a records-only check runs on a replica that does not own it');
  t.same(s?.last.ranBy, { replica: 'r1' }, 'without an epoch: it holds no lease');
});
