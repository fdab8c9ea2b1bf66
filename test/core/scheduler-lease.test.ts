// HA: a run is fenced by the lease it started under. When the lease moves on (another replica
// took the check over with a newer epoch) before the probe is sent, or while the probe is
// running, the run sends nothing more and publishes nothing: the store keeps what it had, no
// status is announced and the run is not counted. With the lease still held, the probe is
// asked the same question and the result carries the epoch it ran under.
import pino from 'pino';
import t from 'tap';
import type { Fence, Ownership } from '../../src/ha.js';
import { Scheduler } from '../../src/scheduler.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { CheckStatus } from '../../src/store/types.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });

/** Owns every check; fence() answers from `epochs` in turn (the last one repeats). */
function ownership(epochs: number[]): Ownership & { asked: () => number } {
  let asked = 0;
  return {
    replicaId: 'r1',
    owns: () => true,
    fence: (): Fence => ({ owner: 'r1', epoch: epochs[Math.min(asked++, epochs.length - 1)]! }),
    owned: () => [],
    start: async () => {},
    stop: async () => {},
    asked: () => asked,
  };
}

/** A store holding an earlier pass of `id`, so "kept what it had" is visible. */
async function seeded(id: string): Promise<{ store: MemoryStore; before: CheckStatus }> {
  const store = new MemoryStore();
  const run = { check: id, state: 'pass' as const, message: 'earlier pass', startedAt: 1, finishedAt: 2, durationMs: 1, conditions: [] };
  await store.put({ check: id, state: 'pass', message: 'earlier pass', last: run, streak: 1, runs: { pass: 1 } });
  const before = store.latest(id)!;
  t.equal(before.message, 'earlier pass', 'precondition: the earlier status is stored');
  return { store, before };
}

t.test('the lease moved on before the probe was sent: not sent, nothing published, not counted', async (t) => {
  const def = makeDef(() => ({ fields: { ok: false } }), { expect: ['ok == true'] });
  const { store, before } = await seeded(def.id);
  const own = ownership([7, 8]); // started under epoch 7; another replica holds epoch 8 by the time the probe would be sent
  const published: CheckStatus[] = [];
  const sched = new Scheduler(checklistOf(def), { store, log, ownership: own, onStatus: (_d, s) => published.push(s) });
  const got = await sched.runNow(def.id);
  t.ok(own.asked() >= 2, 'the fence was asked again before the probe');
  t.equal(def.runs(), 0, 'the probe was never sent');
  t.equal(got, before, 'the run answers with what the store had');
  t.equal(store.latest(def.id), before, 'the store keeps its earlier status');
  t.same(published, [], 'no status announced');
  t.equal(sched.view(def.id)?.runs, undefined, 'the refused run is not counted');
  await sched.stop(0);
});

t.test('the lease moved on while the probe ran: its result is dropped', async (t) => {
  let answer: boolean | undefined;
  const def = makeDef((ctx) => {
    answer = ctx.stillOwner?.();
    return { fields: { ok: false } };
  }, { expect: ['ok == true'] });
  const { store, before } = await seeded(def.id);
  const own = ownership([7, 7, 9]); // fence at start, before the probe (held), then from inside the probe (moved)
  const published: CheckStatus[] = [];
  const sched = new Scheduler(checklistOf(def), { store, log, ownership: own, onStatus: (_d, s) => published.push(s) });
  const got = await sched.runNow(def.id);
  t.equal(def.runs(), 1, 'precondition: the probe ran');
  t.equal(answer, false, 'the probe was told the lease is gone');
  t.equal(got, before, 'the run answers with what the store had');
  t.equal(store.latest(def.id)?.state, 'pass', 'the failing result was not written');
  t.same(published, [], 'no status announced');
  t.equal(sched.view(def.id)?.runs, undefined, 'not counted');
  await sched.stop(0);
});

t.test('the lease held throughout: the probe sees it, the result is published with its epoch', async (t) => {
  let answer: boolean | undefined;
  const def = makeDef((ctx) => {
    answer = ctx.stillOwner?.();
    return { fields: { ok: false } };
  }, { expect: ['ok == true'] });
  const { store } = await seeded(def.id);
  const own = ownership([7]);
  const published: CheckStatus[] = [];
  const sched = new Scheduler(checklistOf(def), { store, log, ownership: own, onStatus: (_d, s) => published.push(s) });
  const got = await sched.runNow(def.id);
  t.equal(answer, true, 'the probe can ask whether the lease is still held');
  t.equal(got?.state, 'fail');
  t.same(got?.last.ranBy, { replica: 'r1', epoch: 7 });
  t.equal(store.latest(def.id)?.state, 'fail', 'written');
  t.equal(published.length, 1, 'announced once');
  t.same(sched.view(def.id)?.runs, { fail: 1 }, 'counted');
  await sched.stop(0);
});
