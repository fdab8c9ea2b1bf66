// dependsOn for every state of the dependency: a dependency that is fail, error, stale or
// unconfigured stops its dependants (an error naming the cause, the probe not run); pass and
// warn let them run, and so does pending (no verdict yet to block on). The clock is the
// scheduler's own, so staleness needs no waiting.
import pino from 'pino';
import t from 'tap';
import { Scheduler } from '../../src/scheduler.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Observation } from '../../src/probes/types.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const INTERVAL = 60_000;

const scripts: Record<string, () => Observation> = {
  pass: () => ({ fields: { n: 50 } }),
  warn: () => ({ fields: { n: 15 } }),
  fail: () => ({ fields: { n: 1 } }),
  error: () => ({ fields: {}, error: { reason: 'refused', message: 'connect ECONNREFUSED 127.0.0.1:5432' } }),
};

/** A dependency `db` brought into `state`, and its dependant `app`; returns app's view after app runs. */
async function dependantOf(state: string) {
  // Runs stamp their results with the real time: the scheduler's clock starts there.
  let clock = Date.now();
  const dbScript = scripts[state === 'stale' ? 'pass' : state] ?? scripts.pass!;
  const db = makeDef(dbScript, {
    id: 'db',
    expect: ['n >= 10'],
    warn: ['n >= 20'],
    intervalMs: INTERVAL,
    ...(state === 'unconfigured' && { unconfigured: 'environment variable DATABASE_URL is not set' }),
  });
  const app = makeDef(() => ({ fields: {} }), { id: 'app', dependsOn: ['db'], intervalMs: INTERVAL });
  const sched = new Scheduler(checklistOf(db, app), { store: new MemoryStore(), log, now: () => clock });
  if (state !== 'pending' && state !== 'unconfigured') await sched.runNow('db');
  if (state === 'stale') clock += 4 * INTERVAL;
  const dbView = sched.view('db')!;
  // The run's own status: app's view would be stale too at the advanced clock.
  const view = (await sched.runNow('app'))!;
  await sched.stop(0);
  return { dbView, view, appRuns: app.runs() };
}

t.test('a dependency that is not passing stops its dependants, whatever its state', async (t) => {
  for (const state of ['fail', 'error', 'stale', 'unconfigured']) {
    const { dbView, view, appRuns } = await dependantOf(state);
    t.equal(dbView.state, state, `precondition: db is ${state}`);
    t.match(view, { state: 'error', reason: 'dependency', message: `not run: depends on db, which is ${state}` }, `db ${state}: app blocked`);
    t.equal(appRuns, 0, `db ${state}: app's probe never ran`);
  }
});

t.test('a passing (pass or warn) or pending dependency lets its dependants run', async (t) => {
  for (const state of ['pass', 'warn', 'pending']) {
    const { dbView, view, appRuns } = await dependantOf(state);
    t.equal(dbView.state, state, `precondition: db is ${state}`);
    t.equal(view.state, 'pass', `db ${state}: app ran and passed`);
    t.equal(appRuns, 1);
  }
});

t.test('the first blocking dependency is named; every dependency is consulted', async (t) => {
  const a = makeDef(scripts.pass!, { id: 'a', expect: ['n >= 10'] });
  const b = makeDef(scripts.error!, { id: 'b' });
  const c = makeDef(scripts.fail!, { id: 'c', expect: ['n >= 10'] });
  const app = makeDef(() => ({ fields: {} }), { id: 'app', dependsOn: ['a', 'b', 'c'] });
  const sched = new Scheduler(checklistOf(a, b, c, app), { store: new MemoryStore(), log });
  t.teardown(() => sched.stop(0));
  for (const id of ['a', 'b', 'c']) await sched.runNow(id);
  await sched.runNow('app');
  t.equal(sched.view('app')!.message, 'not run: depends on b, which is error', 'a passes, b blocks first');
  t.equal(app.runs(), 0);
});
