// The service's own decisions (src/service.ts), in process: what a change invalidates and
// counts; which checks a change of records evaluates, where (HA ownership) and what it waits
// for; runs asked of another replica; the HA hooks it gives the lease manager; a rollout
// detected as a deployment (once, retried after a refusal); and what stop() releases.
import pino from 'pino';
import t from 'tap';
import type { Ownership } from '../../src/ha.js';
import { Service, type ServiceChange } from '../../src/service.js';
import { CachedStore, type Snapshot } from '../../src/store/cached.js';
import { MemoryBackend, MemoryStore } from '../../src/store/memory.js';
import type { CheckStatus, Deployment } from '../../src/store/types.js';
import { checklistOf, makeDef, type Script } from '../helpers/checks.js';
import { RequestingOwnership } from '../helpers/ownership.js';
import { until } from '../helpers/until.js';

const log = pino({ level: 'silent' });
const ok: Script = () => ({ fields: { ok: true } });

/** A check whose kind reads only records (as `attestation` does): any replica may evaluate it. */
function recordsOnlyDef(id: string, over: Parameters<typeof makeDef>[1] = {}) {
  const def = makeDef(ok, { id, expect: ['ok == true'], ...over });
  return Object.assign(def, { probe: { ...def.probe, recordsOnly: true } });
}

/** A memory backend that can be down, slow, and shared (changes(): other replicas' writes). */
class TestBackend extends MemoryBackend {
  down = false;
  closed = false;
  deploymentWrites = 0;
  slowDeployment: Promise<void> | undefined;
  pending: Snapshot = { statuses: [], attestations: [], deployments: [] };
  override async writeStatus(s: CheckStatus): Promise<void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    return super.writeStatus(s);
  }
  override async writeDeployment(): Promise<void> {
    this.deploymentWrites++;
    await this.slowDeployment;
    if (this.down) throw new Error('ECONNREFUSED (test)');
  }
  override async close(): Promise<void> {
    this.closed = true;
  }
}
class SharedBackend extends TestBackend {
  refreshes = 0;
  async changes(): Promise<Snapshot> {
    this.refreshes++;
    const s = this.pending;
    this.pending = { statuses: [], attestations: [], deployments: [] };
    return s;
  }
}

/** Records each start's checks and counts stops. */
class TestOwnership extends RequestingOwnership {
  started: string[][] = [];
  stops = 0;
  override async start(checks: readonly string[]): Promise<void> {
    this.started.push([...checks]);
  }
  override async stop(): Promise<void> {
    this.stops++;
  }
}

function statusAt(check: string, startedAt: number): CheckStatus {
  const last = { check, state: 'pass' as const, message: `ran at ${startedAt}`, startedAt, finishedAt: startedAt + 1, durationMs: 1, conditions: [] };
  return { check, state: 'pass', message: last.message, last, streak: 1, runs: { pass: 1 } };
}

t.test('changes: a status invalidates its view, other changes every view; records changes are counted', async (t) => {
  const defs = [makeDef(ok, { id: 'a', expect: ['ok == true'] }), makeDef(ok, { id: 'b', expect: ['ok == true'] })];
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store, log });
  t.teardown(() => service.stop(0));
  service.onChange(() => {
    throw new Error('a broken cache (test)');
  });
  const changes: ServiceChange[] = [];
  const off = service.onChange((c) => changes.push(c));
  service.views();
  const built = () => service.viewsBuilt();
  let n = built();
  const rebuilt = () => {
    service.views();
    const d = built() - n;
    n = built();
    return d;
  };
  t.equal(rebuilt(), 0, 'precondition: nothing changed, nothing rebuilt');
  t.equal(service.recordsVersion(), 0);

  await service.scheduler.runNow('a');
  t.equal(rebuilt(), 1, 'a result rebuilds its own view only');
  t.equal(service.recordsVersion(), 0, 'a result is not a records change');
  t.ok(changes.some((c) => c.kind === 'status' && c.check === 'a'), 'listeners hear it, past a throwing one');

  changes.length = 0;
  service.invalidate('b');
  t.same(changes, [{ kind: 'invalidate', check: 'b' }]);
  t.equal(rebuilt(), 1, 'invalidate(check): that view only');
  t.equal(service.recordsVersion(), 1);

  service.invalidate();
  t.same(changes, [{ kind: 'invalidate', check: 'b' }, { kind: 'invalidate' }], 'invalidate() names no check');
  t.equal(rebuilt(), 2, 'invalidate(): every view');
  t.equal(service.recordsVersion(), 2);

  await store.addDeployment({ id: 'd', version: '1', at: Date.now() - 1, createdAt: Date.now(), source: 'api' });
  t.equal(rebuilt(), 2, 'a deployment: every view');
  t.equal(service.recordsVersion(), 3);
  await store.addAttestation({ id: 'x', check: 'a', by: 'Ada', role: 'lead', createdAt: 1, expiresAt: 2e12 });
  t.equal(rebuilt(), 2, 'an attestation: every view');
  t.equal(service.recordsVersion(), 4);

  off();
  changes.length = 0;
  service.invalidate();
  t.same(changes, [], 'unsubscribed');
});

t.test('records changed: the checks that read them are evaluated, records-only ones awaited', async (t) => {
  let release!: () => void;
  const slow = new Promise<void>((r) => (release = r));
  const att = recordsOnlyDef('att', { kind: 'attestation' });
  const mon = makeDef(async () => (await slow, { fields: { ok: true } }), { id: 'mon', phase: 'monitor', expect: ['ok == true'] });
  const pre = makeDef(ok, { id: 'pre', expect: ['ok == true'] });
  const other = recordsOnlyDef('other', { kind: 'attestation-like' });
  const unconf = makeDef(ok, { id: 'unconf', phase: 'monitor', unconfigured: 'FOO is not set' });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(att, mon, pre, other, unconf), store: new MemoryStore(), log });
  t.teardown(async () => {
    release();
    await service.stop(0);
  });
  const runs = () => ({ att: att.runs(), mon: mon.runs(), pre: pre.runs(), other: other.runs(), unconf: unconf.runs() });

  await service.recordsChanged({ attestations: new Set(['att']), deployment: false }, true);
  t.same(runs(), { att: 1, mon: 0, pre: 0, other: 0, unconf: 0 }, 'an attestation: its check only');
  t.equal(service.scheduler.view('att')!.state, 'pass', 'evaluated before recordsChanged resolved');

  await service.recordsChanged({ attestations: new Set(['unconf']), deployment: true }, false);
  t.same(runs(), { att: 2, mon: 1, pre: 0, other: 0, unconf: 0 }, 'a deployment: attestation and monitor checks, never an unconfigured one');
  t.equal(service.scheduler.view('mon')!.state, 'pending', 'a target probe is started, not waited for');
  release();
  await until(() => service.scheduler.view('mon')!.state === 'pass', 'the monitor check to finish');
});

t.test('records changed, HA: records-only checks where the write was made or owned; target probes only by their owner', async (t) => {
  const att = recordsOnlyDef('att', { kind: 'attestation' });
  const mon = makeDef(ok, { id: 'mon', phase: 'monitor', expect: ['ok == true'] });
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(att, mon), store: new MemoryStore(), log, ownership });
  t.teardown(() => service.stop(0));
  const deployed = { attestations: new Set<string>(), deployment: true };
  const runs = () => [att.runs(), mon.runs()];

  await service.recordsChanged(deployed, false);
  t.same(runs(), [0, 0], 'owns nothing, wrote nothing: nothing runs here');
  await service.recordsChanged(deployed, true);
  t.same(runs(), [1, 0], 'the write was made here: the records-only check is evaluated here; the target is not probed');
  ownership.mine.add('mon').add('att');
  await service.recordsChanged(deployed, false);
  await until(() => mon.runs() === 1, 'the owned monitor check to run');
  t.same(runs(), [2, 1], 'owned: both run here');
});

t.test('records another replica wrote are evaluated here; our own writes are not evaluated twice', async (t) => {
  const att = recordsOnlyDef('att', { kind: 'attestation' });
  const mon = makeDef(ok, { id: 'mon', phase: 'monitor', expect: ['ok == true'] });
  const backend = new SharedBackend();
  const store = new CachedStore(backend, { preopened: true, refreshMs: 3_600_000 });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(att, mon), store, log });
  t.teardown(() => service.stop(0));

  await store.addAttestation({ id: 'mine', check: 'att', by: 'Ada', role: 'lead', createdAt: 1, expiresAt: 2e12 });
  await store.addDeployment({ id: 'mine', version: '1', at: Date.now(), createdAt: Date.now(), source: 'api' });
  await new Promise((r) => setTimeout(r, 50));
  t.same([att.runs(), mon.runs()], [0, 0], 'a local write: the writer evaluates (not the change hook)');

  backend.pending = { statuses: [], attestations: [{ id: 'theirs', check: 'att', by: 'Grace', role: 'lead', createdAt: 2, expiresAt: 2e12 }], deployments: [] };
  await store.refresh();
  await until(() => att.runs() === 1, 'the remote attestation to be evaluated');
  t.equal(mon.runs(), 0, 'an attestation does not run monitor checks');

  backend.pending = { statuses: [], attestations: [], deployments: [{ id: 'theirs', version: '2', at: Date.now() + 1, createdAt: Date.now(), source: 'api' }] };
  await store.refresh();
  await until(() => mon.runs() === 1 && att.runs() === 2, 'the remote deployment to run the monitor and attestation checks');
});

t.test('runNow: here when it may; else asks the owner and waits for a newer result; refuses what cannot run', async (t) => {
  const target = makeDef(ok, { id: 'target', expect: ['ok == true'], timeoutMs: 1 });
  const att = recordsOnlyDef('att', { kind: 'attestation' });
  const unconf = makeDef(ok, { id: 'unconf', unconfigured: 'FOO is not set' });
  const backend = new SharedBackend();
  const store = new CachedStore(backend, { preopened: true, refreshMs: 3_600_000 });
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(target, att, unconf), store, log, ownership });
  t.teardown(() => service.stop(0));

  t.equal(await service.runNow('att'), 'ran', 'records-only: evaluated here');
  t.equal(att.runs(), 1);
  await t.rejects(service.runNow('nope'), /^shutting down$/, 'unknown check');
  await t.rejects(service.runNow('unconf'), /^shutting down$/, 'unconfigured');
  t.same(ownership.requests, [], 'neither is asked of an owner');

  await store.put(statusAt('target', 1000));
  ownership.answer = (id) => (backend.pending = { statuses: [statusAt(id, 2000)], attestations: [], deployments: [] });
  t.equal(await service.runNow('target'), 'asked-owner', 'the owner answered: its result was read back');
  t.same(ownership.requests, ['target']);
  t.equal(target.runs(), 0, 'not probed here');
  t.equal(store.latest('target')!.last.startedAt, 2000);

  ownership.answer = (id) => (backend.pending = { statuses: [statusAt(id, 2000)], attestations: [], deployments: [] });
  const start = Date.now();
  t.equal(await service.runNow('target'), 'unanswered', 'no newer result than the one held: unanswered');
  t.ok(Date.now() - start >= 5_000, 'after the check\'s timeout plus 5 s');
  t.ok(backend.refreshes >= 2, 'reading the shared store while waiting');

  ownership.mine.add('target');
  t.equal(await service.runNow('target'), 'ran', 'owned: probed here');
  t.equal(target.runs(), 1);

  await service.scheduler.stop(0);
  ownership.mine.delete('target');
  await t.rejects(service.runNow('att'), /^shutting down$/, 'stopping: a check it may run is not asked of an owner either');
  t.same(ownership.requests, ['target', 'target']);
});

t.test('runNow: without a way to ask the owner, a check owned elsewhere is refused', async (t) => {
  const target = makeDef(ok, { id: 'target', expect: ['ok == true'] });
  const ownership = new TestOwnership();
  const noAsk: Ownership = Object.assign(ownership, { requestRun: undefined });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(target), store: new MemoryStore(), log, ownership: noAsk });
  t.teardown(() => service.stop(0));
  await t.rejects(service.runNow('target'), /^shutting down$/);
  t.equal(target.runs(), 0);
});

t.test('HA hooks: a check is handed over only with nothing in flight and nothing to write; run requests run it', async (t) => {
  let release!: () => void;
  let slow = new Promise<void>((r) => (release = r));
  const a = makeDef(async () => (await slow, { fields: { ok: true } }), { id: 'a', expect: ['ok == true'] });
  const backend = new TestBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  const ownership = new TestOwnership();
  ownership.mine.add('a');
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(a), store, log, ownership });
  t.teardown(async () => {
    release();
    await service.stop(0);
  });
  t.equal(ownership.canRelease!('a'), true, 'idle: may be handed over');
  ownership.onRunRequest!('a');
  await until(() => a.runs() === 1, 'the requested run to start');
  t.equal(ownership.canRelease!('a'), false, 'a run in flight: kept');
  release();
  await until(() => !service.scheduler.busy('a'), 'the run to finish');
  await store.flush();
  t.equal(ownership.canRelease!('a'), true, 'finished and written');

  backend.down = true;
  slow = Promise.resolve();
  await service.scheduler.runNow('a');
  await until(() => !store.health().ok, 'the write to fail');
  t.equal(store.pendingWrite('a'), true, 'precondition: the result waits to be written');
  t.equal(ownership.canRelease!('a'), false, 'an unwritten result: kept');

  t.type(ownership.onAcquire, 'function');
  ownership.onRunRequest!('nope'); // a request for a check not here is ignored
});

t.test('start, then stop: leases taken and given back, the store closed, its changes no longer heard', async (t) => {
  const a = makeDef(ok, { id: 'a', expect: ['ok == true'] });
  const backend = new TestBackend();
  const store = new CachedStore(backend, { preopened: true });
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(a), store, log, ownership });
  t.equal(service.lifecycle, 'starting');
  const changes: string[] = [];
  service.onChange((c) => changes.push(c.kind));
  await service.start();
  t.equal(service.lifecycle, 'running');
  t.same(ownership.started, [['a']], 'leases claimed for the checklist\'s checks');
  t.same(changes, ['reload'], 'start-up is a change');
  await service.stop(0);
  t.equal(service.lifecycle, 'stopping');
  t.equal(ownership.stops, 1, 'leases given back');
  t.equal(backend.closed, true, 'store closed');
  changes.length = 0;
  await store.addDeployment({ id: 'late', version: '1', at: Date.now(), createdAt: Date.now(), source: 'api' });
  t.same(changes, [], 'the store\'s changes are no longer heard');
});

t.test('a rollout seen passing becomes a deployment: once while in flight, timed no later than now, retried after a refusal', async (t) => {
  let version = '2.0.0';
  const future = Math.floor(Date.now() / 1000) + 3600;
  const roll = makeDef(() => ({ fields: { ok: true, version, rolled_out_at: future } }), { id: 'roll', phase: 'deploy', expect: ['ok == true'], marksDeployment: true });
  const mon = makeDef(ok, { id: 'mon', phase: 'monitor', expect: ['ok == true'] });
  const backend = new TestBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(roll, mon), store, log });
  t.teardown(() => service.stop(0));

  // Refused: nothing recorded, and the next pass tries again.
  backend.down = true;
  await service.scheduler.runNow('roll');
  await until(() => backend.deploymentWrites === 1 && !store.health().ok, 'the refused write');
  await new Promise((r) => setTimeout(r, 20));
  t.same(store.deployments(), []);
  backend.down = false;

  // Slow: passes while the write is in flight do not write it again.
  let finish!: () => void;
  backend.slowDeployment = new Promise<void>((r) => (finish = r));
  const before = Date.now();
  await service.scheduler.runNow('roll');
  await service.scheduler.runNow('roll');
  t.equal(backend.deploymentWrites, 2, 'retried once, not once per pass');
  finish();
  await until(() => store.deployments().length === 1, 'the deployment to be recorded');
  const [d] = store.deployments() as [Deployment];
  t.match(d, { version: '2.0.0', by: 'check roll', source: 'kubernetes' });
  t.ok(d.at >= before && d.at <= Date.now(), 'a rollout time in the future is clamped to now');
  await until(() => mon.runs() === 1, 'the monitor check evaluated for the new deployment');

  // Recorded: the same version is not recorded again.
  backend.slowDeployment = undefined;
  await service.scheduler.runNow('roll');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(backend.deploymentWrites, 2, 'the latest deployment has this version already');
  version = '2.0.1';
  await service.scheduler.runNow('roll');
  await until(() => store.deployments().length === 2, 'the next version');
  t.same(store.deployments().map((x) => x.version), ['2.0.1', '2.0.0']);
});
