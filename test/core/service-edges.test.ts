// The service's decisions at their edges (src/service.ts), in process, found by mutation testing
// (docs/mutation.md): a SIGTERM while starting, a run asked of the owner of a check that has no
// result yet, a store with none of the optional hooks (pendingWrite, refresh, onChange), the
// time a detected rollout is recorded at, which rollouts are deployments, and an attestation
// that arrives while its check is being evaluated.
import pino from 'pino';
import t from 'tap';
import { Service } from '../../src/service.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { CheckStatus, Store } from '../../src/store/types.js';
import { checklistOf, makeDef, type Script } from '../helpers/checks.js';
import { RequestingOwnership } from '../helpers/ownership.js';
import { until } from '../helpers/until.js';

const log = pino({ level: 'silent' });
const ok: Script = () => ({ fields: { ok: true } });

/** A check whose kind reads only records (as `attestation` does): any replica may evaluate it. */
function recordsOnlyDef(id: string, script: Script = ok, over: Parameters<typeof makeDef>[1] = {}) {
  const def = makeDef(script, { id, expect: ['ok == true'], ...over });
  return Object.assign(def, { probe: { ...def.probe, recordsOnly: true } });
}

/** Owns what is in `mine`; `requestRun` calls `answer` (the owner's run), `start` waits for `starting`. */
/** Start waits for `starting` (a replica still claiming its checks). */
class TestOwnership extends RequestingOwnership {
  starting: Promise<void> | undefined;
  override async start(): Promise<void> {
    await this.starting;
  }
}

/**
 * A Store with only the required methods (the optional hooks pendingWrite, refresh and
 * onChange are left out, as the Store interface allows), backed by a MemoryStore.
 */
function plainStore(inner = new MemoryStore()): Store {
  return {
    kind: inner.kind,
    init: (o) => inner.init(o),
    put: (s, f) => inner.put(s, f),
    latest: (c) => inner.latest(c),
    history: (c, n) => inner.history(c, n),
    retain: (c) => inner.retain(c),
    recordsVersion: () => inner.recordsVersion(),
    attestations: (c) => inner.attestations(c),
    deployments: (n) => inner.deployments(n),
    addAttestation: (a) => inner.addAttestation(a),
    revokeAttestation: (id, by, at) => inner.revokeAttestation(id, by, at),
    addDeployment: (d) => inner.addDeployment(d),
    health: () => inner.health(),
    close: () => inner.close(),
  };
}

function statusAt(check: string, startedAt: number): CheckStatus {
  const last = { check, state: 'pass' as const, message: `ran at ${startedAt}`, startedAt, finishedAt: startedAt + 1, durationMs: 1, conditions: [] };
  return { check, state: 'pass', message: last.message, last, streak: 1, runs: { pass: 1 } };
}

t.test('a SIGTERM that arrives while starting is kept: the replica does not turn running', async (t) => {
  const ownership = new TestOwnership();
  let started!: () => void;
  ownership.starting = new Promise<void>((r) => (started = r));
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(makeDef(ok, { id: 'a', expect: ['ok == true'] })), store: new MemoryStore(), log, ownership });
  t.teardown(() => service.stop(0));
  const starting = service.start();
  t.equal(service.lifecycle, 'starting', 'precondition: start() is waiting for the leases');
  service.markStopping();
  started();
  await starting;
  t.equal(service.lifecycle, 'stopping', '/readyz stays 503');
});

t.test('a run asked of the owner of a check with no result yet: the first result is the answer', async (t) => {
  const target = makeDef(ok, { id: 'target', expect: ['ok == true'], timeoutMs: 1 });
  const store = new MemoryStore();
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(target), store, log, ownership });
  t.teardown(() => service.stop(0));
  t.equal(store.latest('target'), undefined, 'precondition: no result yet');
  ownership.answer = (id) => store.put(statusAt(id, 1000));
  t.equal(await service.runNow('target'), 'asked-owner');
  t.same(ownership.requests, ['target']);
  t.equal(target.runs(), 0, 'not probed here');
});

t.test('a run asked of an owner that never answers, no result yet: unanswered after the check\'s timeout plus 5 s', async (t) => {
  const target = makeDef(ok, { id: 'target', expect: ['ok == true'], timeoutMs: 1_500 });
  const store = new MemoryStore();
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(target), store, log, ownership });
  t.teardown(() => service.stop(0));
  const start = Date.now();
  t.equal(await service.runNow('target'), 'unanswered', 'still no result: not answered');
  t.ok(Date.now() - start >= 6_500, 'it waited the check\'s timeout (1.5 s) plus 5 s');
  t.same(ownership.requests, ['target']);
});

t.test('a store without the optional hooks: handing over, asking the owner and stopping all work', async (t) => {
  const a = makeDef(ok, { id: 'a', expect: ['ok == true'], timeoutMs: 1 });
  const inner = new MemoryStore();
  const store = plainStore(inner);
  t.equal(store.pendingWrite, undefined, 'precondition: no pendingWrite');
  t.equal(store.refresh, undefined, 'precondition: no refresh');
  t.equal(store.onChange, undefined, 'precondition: no onChange');
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(a), store, log, ownership });

  t.equal(ownership.canRelease!('a'), true, 'idle, nothing it could know of to write: may be handed over');
  ownership.answer = (id) => inner.put(statusAt(id, 1000));
  t.equal(await service.runNow('a'), 'asked-owner', 'the owner\'s result is read without a refresh');
  ownership.mine.add('a');
  t.equal(await service.runNow('a'), 'ran');
  t.equal(service.views()[0]!.state, 'pass', 'views are built without change events');
  await service.stop(0);
  t.equal(service.lifecycle, 'stopping');
});

t.test('stopped, without HA: a run is refused as shutting down', async (t) => {
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(makeDef(ok, { id: 'a', expect: ['ok == true'] })), store: new MemoryStore(), log });
  await service.stop(0);
  await t.rejects(service.runNow('a'), /^shutting down$/);
});

t.test('a detected rollout is recorded at the rollout\'s end when the probe knows it, else now', async (t) => {
  const past = Math.floor(Date.now() / 1000) - 600;
  let fields: Record<string, unknown> = { ok: true, version: '1.0.0', rolled_out_at: past };
  const roll = makeDef(() => ({ fields }), { id: 'roll', phase: 'deploy', expect: ['ok == true'], marksDeployment: true });
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(roll), store, log });
  t.teardown(() => service.stop(0));

  await service.scheduler.runNow('roll');
  await until(() => store.deployments().length === 1, 'the first deployment');
  t.match(store.deployments()[0], { version: '1.0.0', at: past * 1000, source: 'kubernetes' }, 'at the rollout\'s end, ten minutes ago');

  fields = { ok: true, version: '1.0.1' };
  const before = Date.now();
  await service.scheduler.runNow('roll');
  await until(() => store.deployments().length === 2, 'the second deployment');
  const d = store.deployments()[0]!;
  t.equal(d.version, '1.0.1');
  t.ok(d.at >= before && d.at <= Date.now(), 'no rollout time: now');
  t.equal(d.createdAt, d.at, 'recorded when it was seen');
});

t.test('only a passing marksDeployment check records a deployment', async (t) => {
  let ok = false;
  const roll = makeDef(() => ({ fields: { ok, version: '3.0.0' } }), { id: 'roll', phase: 'deploy', expect: ['ok == true'], marksDeployment: true });
  const other = makeDef(() => ({ fields: { ok: true, version: '9.9.9' } }), { id: 'other', phase: 'deploy', expect: ['ok == true'] });
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(roll, other), store, log });
  t.teardown(() => service.stop(0));

  await service.scheduler.runNow('other');
  t.equal(service.scheduler.view('other')!.state, 'pass', 'precondition: it passes with a version');
  await service.scheduler.runNow('roll');
  t.equal(service.scheduler.view('roll')!.state, 'fail', 'precondition: the rollout fails with a version');
  await new Promise((r) => setTimeout(r, 50));
  t.same(store.deployments(), [], 'a failing rollout, or a check that does not mark deployments: no deployment');

  ok = true;
  await service.scheduler.runNow('roll');
  await until(() => store.deployments().length === 1, 'the passing rollout\'s deployment');
  t.equal(store.deployments()[0]!.version, '3.0.0');
});

t.test('HA: a rollout detected here evaluates the records-only checks here, owned or not', async (t) => {
  const roll = makeDef(() => ({ fields: { ok: true, version: '5.0.0' } }), { id: 'roll', phase: 'deploy', expect: ['ok == true'], marksDeployment: true });
  const att = recordsOnlyDef('att', ok, { kind: 'attestation' });
  const store = new MemoryStore();
  const ownership = new TestOwnership();
  ownership.mine.add('roll');
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(roll, att), store, log, ownership });
  t.teardown(() => service.stop(0));
  await service.scheduler.runNow('roll');
  await until(() => store.deployments().length === 1, 'the deployment');
  await until(() => att.runs() === 1, 'the attestation check evaluated here, where the deployment was written');
  t.equal(service.scheduler.view('att')!.state, 'pass');
});

t.test('an attestation that arrives while its check is evaluated: evaluated again after, and awaited', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const att = recordsOnlyDef('att', async (_ctx, run) => (run === 1 && (await gate), { fields: { ok: true } }), { kind: 'attestation' });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(att), store: new MemoryStore(), log });
  t.teardown(async () => {
    release();
    await service.stop(0);
  });
  const first = service.scheduler.runNow('att');
  await until(() => att.runs() === 1, 'the first evaluation to start');
  let done = false;
  const changed = service.recordsChanged({ attestations: new Set(['att']), deployment: false }, true).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(done, false, 'waits for an evaluation that started after the attestation');
  release();
  await first;
  await changed;
  t.equal(att.runs(), 2, 'the run in flight (begun before the attestation) does not answer for it');
});
