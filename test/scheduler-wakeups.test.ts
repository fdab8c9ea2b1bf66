// Wakeups cost more CPU than a tcp probe: the scheduler lets a slot start up to TIMER_SLACK_MS
// (at most a tenth of its interval) late so that slots due close together share one timer.
// Pinned by the timer the scheduler arms, read from a fixed clock, not by timing.
import pino from 'pino';
import t from 'tap';
import { jitterFor, Scheduler, TIMER_SLACK_MS } from '../src/scheduler.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from './helpers/checks.js';

const log = pino({ level: 'silent' });

/** The delays of the timers armed while `fn` runs. */
function armed(fn: () => void): number[] {
  const delays: number[] = [];
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((cb: () => void, ms?: number) => {
    delays.push(ms ?? 0);
    return real(cb, ms);
  }) as typeof setTimeout;
  try {
    fn();
  } finally {
    globalThis.setTimeout = real;
  }
  return delays;
}

t.test('the first wakeup waits for the slack after the earliest due slot', async (t) => {
  const defs = Array.from({ length: 40 }, (_, i) => makeDef(() => ({ fields: {} }), { id: `c-${i}`, intervalMs: 1000 }));
  const now = 1_000_000;
  const sched = new Scheduler(checklistOf(...defs), { store: new MemoryStore(), log, maxJitterMs: 1000, now: () => now });
  const delays = armed(() => sched.start());
  t.teardown(() => sched.stop(0));
  const earliest = Math.min(...defs.map((d) => jitterFor(d.id, 1000)));
  t.equal(TIMER_SLACK_MS, 20, 'slack as documented');
  t.same(delays, [earliest + TIMER_SLACK_MS], 'one timer, at the earliest slot plus the slack');
});

t.test('a short interval gets a tenth of it as slack, never more', async (t) => {
  const def = makeDef(() => ({ fields: {} }), { id: 'fast', intervalMs: 50 });
  const now = 5_000;
  const sched = new Scheduler(checklistOf(def), { store: new MemoryStore(), log, maxJitterMs: 0, now: () => now });
  const delays = armed(() => sched.start());
  t.teardown(() => sched.stop(0));
  t.same(delays, [5], '50 ms interval: 5 ms slack');
});

t.test('slots due within the slack start in one wakeup', async (t) => {
  // 30 checks whose slots fall within 15 ms: one timer runs them all.
  const starts: number[] = [];
  const defs = Array.from({ length: 30 }, (_, i) =>
    makeDef(
      () => {
        starts.push(i);
        return { fields: {} };
      },
      { id: `c-${i}`, intervalMs: 60_000 },
    ),
  );
  const sched = new Scheduler(checklistOf(...defs), { store: new MemoryStore(), log, maxJitterMs: 15, concurrency: 64 });
  let ticks = 0;
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((cb: () => void, ms?: number) =>
    real(() => {
      ticks++;
      cb();
    }, ms)) as typeof setTimeout;
  try {
    sched.start();
    const end = Date.now() + 10_000;
    while (starts.length < 30 && Date.now() < end) await new Promise((r) => setImmediate(r));
  } finally {
    globalThis.setTimeout = real;
  }
  await sched.stop(1000);
  t.equal(starts.length, 30, 'every check ran');
  t.ok(ticks >= 1 && ticks <= 3, `the scheduler's timer fired ${ticks} time(s) for 30 slots (harness timers included)`);
});
