// The scheduler: concurrency cap, no overlap, jitter, staleness, dependencies, shutdown.
import pino from 'pino';
import t from 'tap';
import type { CheckDef } from '../src/config/types.js';
import { jitterFor, runOnce, Scheduler, type SchedulerOptions } from '../src/scheduler.js';
import { MemoryStore } from '../src/store/memory.js';
import { viewCheck } from '../src/state.js';
import { checklistOf, makeDef } from './helpers/checks.js';
import { until } from './helpers/until.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A passing check that records when each of its runs started. */
function startRecorder(over: Parameters<typeof makeDef>[1]) {
  const starts: number[] = [];
  const def = makeDef(() => {
    starts.push(Date.now());
    return { fields: {} };
  }, over);
  return { def, starts };
}

/**
 * How long a test waits for what it needs before it gives up: it only bounds a hang (a
 * scheduler that never gets there). The tests wait for the runs they count, never for a
 * fixed time, so a loaded machine makes them slower, not wrong.
 */
const DEADLINE_MS = 10_000;

/**
 * A scheduler over `checks` (no start-up jitter) run until `cond` holds (at most DEADLINE_MS),
 * then stopped with `stopMs` for runs in flight.
 */
async function runUntil(
  checks: CheckDef[],
  cond: (sched: Scheduler) => boolean,
  what: string,
  { stopMs = 1000, ...opts }: Partial<SchedulerOptions> & { stopMs?: number } = {},
) {
  const sched = new Scheduler(checklistOf(...checks), { store: new MemoryStore(), log, maxJitterMs: 0, ...opts });
  sched.start();
  try {
    await until(() => cond(sched), what, DEADLINE_MS);
  } finally {
    await sched.stop(stopMs);
  }
  return sched;
}

t.test('the global cap bounds concurrent runs', async (t) => {
  let now = 0;
  let max = 0;
  const script = async () => {
    now++;
    max = Math.max(max, now);
    await sleep(40);
    now--;
    return { fields: {} };
  };
  const defs = Array.from({ length: 10 }, (_, i) => makeDef(script, { id: `c${i}` }));
  const views = await runOnce(checklistOf(...defs), { store: new MemoryStore(), log, concurrency: 3 });
  t.equal(max, 3, 'never more than 3 at once');
  t.equal(views.filter((v) => v.state === 'pass').length, 10, 'all ran');
});

t.test('a check never overlaps itself; the skipped slot is counted', async (t) => {
  let inflight = 0;
  let overlapped = false;
  const def = makeDef(
    async () => {
      inflight++;
      if (inflight > 1) overlapped = true;
      await sleep(130);
      inflight--;
      return { fields: {} };
    },
    { intervalMs: 50, timeoutMs: 50 },
  );
  // timeout > interval is rejected by the loader; here the probe ignores its signal on purpose.
  def.timeoutMs = 1000;
  // Three runs of 130 ms at a 50 ms interval: slots came due while each was going. Stops at
  // once if a run overlaps another (the assertion below then says so).
  const sched = await runUntil([def], (s) => overlapped || (def.runs() >= 3 && s.stats.skipped >= 2), 'three runs and two skipped slots');
  t.notOk(overlapped, 'no overlap');
  t.ok(def.runs() >= 2, `ran ${def.runs()} times`);
  t.ok(sched.stats.skipped >= 2, `skipped ${sched.stats.skipped} slots`);
});

t.test('slots stay on the schedule: no drift from run duration', async (t) => {
  const starts: number[] = [];
  const def = makeDef(
    async () => {
      starts.push(Date.now());
      await sleep(40);
      return { fields: {} };
    },
    { intervalMs: 100, timeoutMs: 90 },
  );
  // Eight runs, seven gaps: anchored, a gap is 100 ms plus how much later the machine started
  // the second run than the first; among seven, one is near 100 ms on a loaded machine too
  // (the old fixed 560 ms window sometimes held only three runs, two gaps).
  await runUntil([def], () => starts.length >= 8, 'eight runs', { stopMs: 500 });
  t.ok(starts.length >= 8, `${starts.length} runs`);
  // With drift (next = end + interval) every gap is at least 40 + 100 ms: a timer never fires
  // before its time. Anchored, a run that started late is followed by a shorter gap back onto
  // the slot, so some gap is near 100 ms however late the machine's timers fire (a mean would
  // not hold on a loaded machine: every late timer adds to it).
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  t.ok(Math.min(...gaps) < 130, `gaps ${gaps.join(', ')} ms: the shortest stays near the 100 ms interval`);
});

t.test('start-up jitter is deterministic and spreads checks', async (t) => {
  t.equal(jitterFor('a', 30_000), jitterFor('a', 30_000));
  t.equal(jitterFor('a', 0), 0);
  const offsets = new Set(Array.from({ length: 200 }, (_, i) => jitterFor(`check-${i}`, 30_000)));
  t.ok(offsets.size > 190, `${offsets.size} distinct offsets for 200 checks`);
  for (const o of offsets) t.ok(o >= 0 && o < 30_000);
});

t.test('a probe that throws is a result; the scheduler keeps going', async (t) => {
  const bad = makeDef(() => {
    throw new Error('boom');
  }, { id: 'bad', intervalMs: 40, timeoutMs: 30 });
  const good = makeDef(() => ({ fields: {} }), { id: 'good', intervalMs: 40, timeoutMs: 30 });
  const store = new MemoryStore();
  // Two results of each stored: the scheduler went on after the first throw.
  const stored = (id: string) => Object.values(store.latest(id)?.runs ?? {}).reduce((a, b) => a + b, 0);
  await runUntil([bad, good], () => stored('bad') >= 2 && stored('good') >= 2, 'two results of each check', { store });
  t.equal(store.latest('bad')?.state, 'error');
  t.equal(store.latest('bad')?.message, 'boom');
  t.equal(store.latest('good')?.state, 'pass');
  t.ok(bad.runs() >= 2 && good.runs() >= 2);
});

t.test('dependsOn: a failing dependency stops the run and names the cause', async (t) => {
  const db = makeDef(() => ({ fields: { ok: false } }), { id: 'db', expect: ['ok == true'] });
  const app = makeDef(() => ({ fields: {} }), { id: 'app', dependsOn: ['db'] });
  const views = await runOnce(checklistOf(db, app), { store: new MemoryStore(), log, only: ['app'] });
  const v = views.find((x) => x.def.id === 'app')!;
  t.equal(v.state, 'error');
  t.equal(v.reason, 'dependency');
  t.equal(v.message, 'not run: depends on db, which is fail');
  t.equal(app.runs(), 0, 'the dependent probe never ran');
  t.equal(db.runs(), 1, '--only pulled in the dependency');
});

t.test('pending, then stale after three intervals without a completed run', async (t) => {
  const def = makeDef(() => ({ fields: {} }), { intervalMs: 1000 });
  t.equal(viewCheck(def, undefined, 2_000, 0).state, 'pending');
  t.equal(viewCheck(def, undefined, 3_001, 0).state, 'stale');
  const store = new MemoryStore();
  await runOnce(checklistOf(def), { store, log });
  const st = store.latest('c1')!;
  const at = st.last.finishedAt;
  t.equal(viewCheck(def, st, at + 2_999, at).state, 'pass');
  const stale = viewCheck(def, st, at + 3_001, at);
  t.equal(stale.state, 'stale');
  t.match(stale.message, /more than 3 intervals ago \(last state pass\)/);
  const unconf = makeDef(() => ({ fields: {} }), { unconfigured: 'environment variable X is not set' });
  t.equal(viewCheck(unconf, undefined, 0, 0).state, 'unconfigured');
});

t.test('stop waits for runs in flight up to the deadline, then aborts them', async (t) => {
  let sawAbort = false;
  let started = false;
  const def = makeDef(
    (ctx) =>
      new Promise((resolve) => {
        started = true;
        ctx.signal.addEventListener('abort', () => {
          sawAbort = true;
          resolve({ fields: {}, error: { reason: 'timeout', message: 'aborted' } });
        });
      }),
    { timeoutMs: 10_000 },
  );
  const store = new MemoryStore();
  const sched = new Scheduler(checklistOf(def), { store, log, maxJitterMs: 0 });
  sched.start();
  await until(() => started, 'the run to start', DEADLINE_MS);
  const t0 = Date.now();
  await sched.stop(100);
  t.ok(Date.now() - t0 < 2000, 'stop returned after the deadline');
  t.ok(sawAbort, 'the run in flight was aborted');
  t.equal(store.latest('c1')?.state, 'error', 'its result was still recorded');
});

t.test('cron checks run once at start-up, then on their schedule', async (t) => {
  const def = makeDef(() => ({ fields: {} }), { schedule: '0 0 1 1 *', intervalMs: 365 * 86_400_000 });
  const store = new MemoryStore();
  // After the start-up run's result, a little longer: the next cron firing is on 1 January, so
  // a second run could only come from a slot wrongly due at once (the start-up slot again, or
  // a cron slot computed in the past), which the timer fires within its 20 ms slack. 200 ms is
  // ten of those; a loaded machine can only make the window see fewer runs, never more.
  const sched = new Scheduler(checklistOf(def), { store, log, maxJitterMs: 0 });
  sched.start();
  try {
    await until(() => store.latest('c1') !== undefined, 'the start-up run', DEADLINE_MS);
    await sleep(200);
  } finally {
    await sched.stop(100);
  }
  t.equal(def.runs(), 1);
  t.equal(store.latest('c1')?.state, 'pass');
});

t.test('watch-backed kinds: a change notification runs the check now, debounced', async (t) => {
  let notify: (() => void) | undefined;
  let unsubscribed = false;
  const def = makeDef(() => ({ fields: {} }), { intervalMs: 3_600_000, timeoutMs: 1000 });
  def.probe.subscribe = (_p, n) => {
    notify = n;
    return () => {
      unsubscribed = true;
    };
  };
  const sched = new Scheduler(checklistOf(def), { store: new MemoryStore(), log, maxJitterMs: 0 });
  sched.start();
  await until(() => def.runs() >= 1 && !sched.busy(def.id), 'the start-up run', DEADLINE_MS);
  t.equal(def.runs(), 1, 'the start-up run');
  t.ok(notify, 'subscribed');
  for (let i = 0; i < 5; i++) notify!();
  await until(() => def.runs() >= 2 && !sched.busy(def.id), 'the run the notifications asked for', DEADLINE_MS);
  // Then a window for a run too many: notifications not folded into one would start theirs
  // when their own 200 ms debounce ends (at the same time as the one that ran) or right after
  // the run in flight, so 300 ms after that run ended covers both; the hourly slot is far off.
  await sleep(300);
  t.equal(def.runs(), 2, 'five notifications in a burst became one run, long before the hourly slot');
  await sched.stop(100);
  t.ok(unsubscribed, 'unsubscribed on stop');
});

t.test('a check with a recent stored run continues its cadence instead of running again at start', async (t) => {
  const { def, starts } = startRecorder({ intervalMs: 1_000, timeoutMs: 500 });
  const store = new MemoryStore();
  const last = Date.now() - 300;
  await store.put({ check: def.id, state: 'pass', message: 'ok', last: { check: def.id, state: 'pass', message: 'ok', startedAt: last, finishedAt: last + 5, durationMs: 5, conditions: [] }, streak: 1, runs: { pass: 1 } });
  await runUntil([def], () => starts.length >= 1, 'the first run', { store });
  t.ok(starts.length >= 1, 'it ran');
  t.ok(starts[0]! - last >= 950, `the first run came one interval after the stored one (${starts[0]! - last} ms), not at once`);
});

t.test('a check handed over (HA) continues the cadence of the run another replica made', async (t) => {
  const { def, starts } = startRecorder({ intervalMs: 1_000, timeoutMs: 500 });
  // A witness this replica owns from the start, due at start-up with the check (no jitter, no
  // stored run): its result shows the timer fired the slot in which the check would have run.
  const witness = makeDef(() => ({ fields: {} }), { id: 'w', intervalMs: 1_000, timeoutMs: 500 });
  let mine = false;
  const ownership = {
    replicaId: 'r-test',
    owns: (id: string) => id === witness.id || mine,
    fence: () => undefined,
    owned: () => (mine ? [def.id, witness.id] : [witness.id]),
    start: async () => {},
    stop: async () => {},
  };
  const store = new MemoryStore();
  const sched = new Scheduler(checklistOf(def, witness), { store, log, maxJitterMs: 0, ownership });
  sched.start();
  await until(() => store.latest(witness.id) !== undefined, 'the witness run', DEADLINE_MS);
  // The check's slot came in the same tick as the witness's (and before it); 50 ms more lets
  // a run wrongly started there reach its probe. Its next slot is an interval (1 s) away.
  await sleep(50);
  t.equal(starts.length, 0, 'not run while another replica owns it');
  const lastElsewhere = Date.now() - 200;
  mine = true;
  sched.acquired([{ check: def.id, lastStartedAt: lastElsewhere }]);
  try {
    await until(() => starts.length >= 1, 'the run after the takeover', DEADLINE_MS);
  } finally {
    await sched.stop(1000);
  }
  t.ok(starts.length >= 1, 'it ran once taken over');
  t.ok(starts[0]! - lastElsewhere >= 950, `one interval after the other replica's run (${starts[0]! - lastElsewhere} ms)`);
  const overdue = makeDef(() => ({ fields: {} }), { id: 'c2', intervalMs: 60_000 });
  const s2 = new Scheduler(checklistOf(overdue), { store: new MemoryStore(), log, maxJitterMs: 0, ownership: { ...ownership, owns: () => true } });
  s2.start();
  s2.acquired([{ check: 'c2', lastStartedAt: Date.now() - 120_000 }]);
  // "At once": within the deadline, a sixth of the minute its old cadence would wait.
  try {
    await until(() => overdue.runs() >= 1, 'the overdue run', DEADLINE_MS);
  } finally {
    await s2.stop(1000);
  }
  t.equal(overdue.runs(), 1, 'an overdue check taken over runs at once');
});

t.test('runs are counted per process for readiness_check_runs_total, kept across schedulers', async (t) => {
  let ok = true;
  const def = makeDef(() => ({ fields: { ok } }), { expect: ['ok == true'] });
  const runCounts = new Map();
  const store = new MemoryStore();
  const a = new Scheduler(checklistOf(def), { store, log, runCounts });
  await a.runNow(def.id);
  ok = false;
  await a.runNow(def.id);
  await a.stop(0);
  const b = new Scheduler(checklistOf(def), { store, log, runCounts });
  await b.runNow(def.id);
  t.same(b.view(def.id)?.runs, { pass: 1, fail: 2 }, 'what this process ran, across a reload');
  await b.stop(0);
  const fresh = new Scheduler(checklistOf(def), { store, log });
  t.equal(fresh.view(def.id)?.runs, undefined, 'another process (no runs of its own) exports none, whatever the shared state says');
  t.same(fresh.view(def.id)?.status?.runs, { pass: 1, fail: 2 }, 'the shared total stays in the status');
});

t.test('a run that starts late takes its slot: the next is not half an interval behind it', async (t) => {
  const { def, starts } = startRecorder({ intervalMs: 400, timeoutMs: 300 });
  // The first run waits for its client library (as a lazily loaded kind does), 300 ms.
  let loaded = false;
  def.probe = {
    ...def.probe,
    load: async () => {
      if (!loaded) await sleep(300);
      loaded = true;
    },
  };
  const sched = await runUntil([def], () => starts.length >= 3, 'three runs');
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  t.ok(starts.length >= 3, `ran ${starts.length} times`);
  t.ok(
    gaps.every((g) => g >= 200),
    `no two runs less than half an interval apart: ${gaps.join(', ')} ms`,
  );
  t.ok(sched.stats.skipped >= 1, 'the slot the late run took is counted as skipped');
});
