// The store every backend shares (src/store/cached.ts), on the paths a shared backend (HA,
// PostgreSQL) and a durable local one take, against a scripted backend: a refresh publishes
// only news (others' records marked remote); results from older records never replace newer
// ones; fences travel with their results and a refused result is counted and replaced by the
// stored one; the records version is read before a write's version is claimed; a store that
// lost its identity is never tolerated; a refused record degrades the store until a ping
// proves it back; close stops every timer.
import t from 'tap';
import { CachedStore, type Backend, type Snapshot } from '../../src/store/cached.js';
import {
  StoreIdentityError,
  StoreUnavailableError,
  type Attestation,
  type CheckStatus,
  type Deployment,
  type RunResult,
  type StoreChange,
  type WriteFence,
  type WriteOutcome,
} from '../../src/store/types.js';

const empty = (): Snapshot => ({ statuses: [], attestations: [], deployments: [] });

/** A scripted backend; `shared` adds changes() (other replicas' writes) and versioned records. */
class ScriptedBackend implements Backend {
  readonly kind = 'scripted';
  down = false;
  openError: Error | undefined;
  changesError: Error | undefined;
  atOpen: Snapshot = empty();
  /** What the next changes() returns. */
  pending: Snapshot = empty();
  opened: unknown[] = [];
  since: number[] = [];
  writes: { messages: string[]; fences: (WriteFence | undefined)[] }[] = [];
  outcomes = new Map<string, WriteOutcome>();
  version = 0;
  pings = 0;
  closed = false;
  histories = 0;

  constructor(readonly shared: boolean) {
    if (shared) this.changes = this.#changes;
  }

  async open(opts?: unknown): Promise<Snapshot> {
    this.opened.push(opts);
    if (this.openError) throw this.openError;
    if (this.down) throw new Error('ECONNREFUSED (test)');
    return this.atOpen;
  }
  async writeStatus(s: CheckStatus, fence?: WriteFence): Promise<WriteOutcome | void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    this.writes.push({ messages: [s.message], fences: [fence] });
    return this.outcomes.get(s.message);
  }
  changes?: (since: number) => Promise<Snapshot>;
  async #changes(since: number): Promise<Snapshot> {
    this.since.push(since);
    if (this.changesError) throw this.changesError;
    const s = this.pending;
    this.pending = empty();
    return s;
  }
  async history(): Promise<RunResult[]> {
    this.histories++;
    return [];
  }
  async writeAttestation(): Promise<number | void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    return this.shared ? ++this.version : undefined;
  }
  async writeDeployment(): Promise<number | void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    return this.shared ? ++this.version : undefined;
  }
  async ping(): Promise<void> {
    this.pings++;
    if (this.down) throw new Error('ECONNREFUSED (test)');
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The same, writing each turn's results in one batch. */
class BatchBackend extends ScriptedBackend {
  async writeStatuses(batch: readonly CheckStatus[], fences?: readonly (WriteFence | undefined)[]): Promise<WriteOutcome[] | void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    this.writes.push({ messages: batch.map((s) => s.message), fences: [...(fences ?? [])] });
    return batch.map((s) => this.outcomes.get(s.message) ?? { written: true });
  }
}

function status(check: string, message: string, finishedAt: number, recordsVersion?: number): CheckStatus {
  const last: RunResult = { check, state: 'pass', message, startedAt: finishedAt - 1, finishedAt, durationMs: 1, conditions: [], ...(recordsVersion !== undefined && { recordsVersion }) };
  return { check, state: 'pass', message, last, streak: 1, runs: { pass: 1 } };
}
const att = (id: string, check: string, over: Partial<Attestation> = {}): Attestation => ({ id, check, by: 'Ada', role: 'lead', createdAt: 1, expiresAt: 2e12, ...over });
const dep = (id: string, at: number): Deployment => ({ id, version: id, at, createdAt: at, source: 'api' });

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function watch(store: CachedStore): StoreChange[] {
  const changes: StoreChange[] = [];
  store.onChange((c) => changes.push(c));
  return changes;
}

t.test('a refresh publishes only news, marked remote; the records version only grows', async (t) => {
  const backend = new ScriptedBackend(true);
  backend.atOpen = { statuses: [status('a', 'a1', 10, 1)], attestations: [att('x', 'a')], deployments: [dep('d1', 100)], recordsVersion: 5 };
  const store = new CachedStore(backend, { refreshMs: 3_600_000 });
  t.teardown(() => store.close());
  const opened = watch(store);
  await store.init();
  t.same(backend.opened, [{}], 'opened without initStore');
  t.equal(store.recordsVersion(), 5, 'the snapshot\'s records version');
  t.same(opened, [{ kind: 'status', check: 'a' }, { kind: 'attestation', check: 'a' }, { kind: 'deployment' }], 'what was opened is news, not remote');

  // The same rows read back (copies), an older result, a lower version: nothing changes.
  const changes = watch(store);
  backend.pending = { statuses: [status('a', 'a1', 10, 1), status('a', 'a0', 5, 1)], attestations: [att('x', 'a')], deployments: [dep('d1', 100)], recordsVersion: 4 };
  await store.refresh();
  t.same(backend.since, [5], 'asked for records above the version held');
  t.same(changes, [], 'no news');
  t.equal(store.latest('a')!.message, 'a1');
  t.equal(store.recordsVersion(), 5, 'never lowered');

  // A newer result, a revocation, a changed expiry, a new and a moved deployment.
  backend.pending = {
    statuses: [status('a', 'a2', 20, 1), status('b', 'b1', 1, 0)],
    attestations: [att('x', 'a', { revokedAt: 7, revokedBy: 'Grace' }), att('y', 'b'), att('z', 'c')],
    deployments: [dep('d2', 200)],
    recordsVersion: 7,
  };
  await store.refresh();
  t.equal(store.recordsVersion(), 7);
  t.equal(store.latest('a')!.message, 'a2', 'the newer result replaces');
  t.equal(store.latest('b')!.message, 'b1');
  t.same(changes, [
    { kind: 'status', check: 'a' },
    { kind: 'status', check: 'b' },
    { kind: 'attestation', check: 'a', remote: true },
    { kind: 'attestation', check: 'b', remote: true },
    { kind: 'attestation', check: 'c', remote: true },
    { kind: 'deployment', remote: true },
  ]);
  t.equal(store.attestations('a')[0]!.revokedBy, 'Grace');
  t.same(store.deployments().map((d) => d.id), ['d2', 'd1']);

  changes.length = 0;
  backend.pending = { statuses: [], attestations: [att('y', 'b', { expiresAt: 3e12 })], deployments: [{ ...dep('d1', 300) }], recordsVersion: 7 };
  await store.refresh();
  t.same(changes, [{ kind: 'attestation', check: 'b', remote: true }, { kind: 'deployment', remote: true }], 'a new expiry and a moved deployment are news');
  t.same(store.deployments().map((d) => [d.id, d.at]), [['d1', 300], ['d2', 200]], 'the moved deployment is re-sorted, not duplicated');
  t.same(backend.since, [5, 5, 7]);

  // A known deployment read back beside a new one: the new one is news (some, not every).
  changes.length = 0;
  backend.pending = { statuses: [], attestations: [], deployments: [{ ...dep('d2', 200) }, dep('d3', 400)], recordsVersion: 7 };
  await store.refresh();
  t.same(changes, [{ kind: 'deployment', remote: true }], 'one new deployment among known ones is news');
  t.same(store.deployments().map((d) => d.id), ['d3', 'd1', 'd2']);
});

t.test('a local backend resumes the records version from the highest a stored result claims', async (t) => {
  const backend = new ScriptedBackend(false);
  backend.atOpen = { statuses: [status('a', 'a', 10, 4), status('b', 'b', 20, 2), status('c', 'c', 30)], attestations: [], deployments: [] };
  const store = new CachedStore(backend);
  t.teardown(() => store.close());
  await store.init();
  t.equal(store.recordsVersion(), 4);
  await store.refresh();
  t.same(backend.since, [], 'a local backend has nothing to refresh');

  // Each durable record is the next version: there is no other writer.
  await store.addDeployment(dep('d', 1));
  t.equal(store.recordsVersion(), 5);
  await store.addAttestation(att('x', 'a'));
  t.equal(store.recordsVersion(), 6);
  await store.revokeAttestation('x', 'Grace', 9);
  t.equal(store.recordsVersion(), 7);
  t.equal(await store.revokeAttestation('x', 'Linus', 10), store.attestations()[0], 'revoking again changes nothing');
  t.equal(store.recordsVersion(), 7, 'and counts nothing');
});

t.test('a shared write claims its version only after reading the records below it', async (t) => {
  const backend = new ScriptedBackend(true);
  const store = new CachedStore(backend, { refreshMs: 3_600_000 });
  t.teardown(() => store.close());
  await store.init();
  backend.version = 2; // another replica wrote versions 1 and 2
  backend.pending = { ...empty(), attestations: [att('theirs', 'b')], recordsVersion: 3 };
  const changes = watch(store);
  await store.addAttestation(att('mine', 'a'));
  t.same(backend.since, [0], 'read what is below version 3');
  t.equal(store.recordsVersion(), 3);
  t.same(store.attestations().map((a) => a.id).sort(), ['mine', 'theirs']);
  t.same(changes, [{ kind: 'attestation', check: 'a' }, { kind: 'attestation', check: 'b', remote: true }], 'its own write is not remote');

  // Already holding the version: no read.
  backend.version = 0;
  await store.addDeployment(dep('d', 5));
  t.same(backend.since, [0], 'no read for a version already held');
  t.equal(store.recordsVersion(), 3);

  // A failed read after a durable write: the write stands.
  backend.version = 10;
  backend.changesError = new Error('read failed (test)');
  await store.addDeployment(dep('e', 6));
  t.same(store.deployments().map((d) => d.id), ['e', 'd']);
  t.equal(store.recordsVersion(), 3, 'not claimed without the read');
});

t.test('results from older records never replace newer ones', async (t) => {
  await t.test('shared backend: records version, then end of run; a records-only re-evaluation without the lease needs newer records', async (t) => {
    const backend = new BatchBackend(true);
    const store = new CachedStore(backend, { preopened: true, refreshMs: 3_600_000 });
    t.teardown(() => store.close());
    await store.put(status('c', 'v2', 100, 2));
    await store.put(status('c', 'v1-later', 200, 1));
    t.equal(store.latest('c')!.message, 'v2', 'older records lose, however late the run');
    t.match(store.health().discarded, { superseded: 1, fenced: 0 });
    await store.put(status('c', 'v2-earlier', 50, 2));
    t.equal(store.latest('c')!.message, 'v2', 'same records: the earlier run loses');
    await store.put(status('c', 'v2-same', 100, 2));
    t.equal(store.latest('c')!.message, 'v2-same', 'same records, same end: the newcomer wins');
    await store.put(status('c', 'ro', 300, 2), { recordsOnly: true });
    t.equal(store.latest('c')!.message, 'v2-same', 'records-only without a lease: same records add nothing');
    await store.put(status('c', 'ro-leased', 300, 2), { recordsOnly: true, lease: { owner: 'r1', epoch: 1 } });
    t.equal(store.latest('c')!.message, 'ro-leased', 'with the lease: the later run wins');
    await store.put(status('c', 'ro-newer', 1, 3), { recordsOnly: true });
    t.equal(store.latest('c')!.message, 'ro-newer', 'records-only with newer records wins');
    t.match(store.health().discarded, { superseded: 3 });
    t.same(backend.writes.flatMap((w) => w.messages), ['v2', 'v2-same', 'ro-leased', 'ro-newer'], 'what lost was never written');
  });

  await t.test('local backend: only the records version orders (a clock stepped back changes nothing)', async (t) => {
    const backend = new ScriptedBackend(false);
    const store = new CachedStore(backend, { preopened: true });
    t.teardown(() => store.close());
    await store.put(status('c', 'first', 1000, 1));
    await store.put(status('c', 'clock-back', 10, 1));
    t.equal(store.latest('c')!.message, 'clock-back', 'same records: the later put wins whatever its clock');
    await store.put(status('c', 'older-records', 5000, 0));
    t.equal(store.latest('c')!.message, 'clock-back');
    await store.put(status('d', 'no-version', 1));
    await store.put(status('d', 'no-version-2', 1));
    t.equal(store.latest('d')!.message, 'no-version-2', 'no version is version 0');
    t.match(store.health(), { ok: true, discarded: { superseded: 1, fenced: 0 } });
  });
});

t.test('fences travel with their results; a refused result is counted and the stored one served', async (t) => {
  const backend = new BatchBackend(true);
  const store = new CachedStore(backend, { preopened: true, refreshMs: 3_600_000, maxBatch: 2 });
  t.teardown(() => store.close());
  const theirs = status('f', 'theirs', 500, 0);
  backend.outcomes.set('f1', { written: false, reason: 'fenced', current: theirs });
  backend.outcomes.set('g1', { written: false, reason: 'superseded' });
  const fence: WriteFence = { lease: { owner: 'r1', epoch: 3 } };
  const changes = watch(store);
  await Promise.all([store.put(status('f', 'f1', 10), fence), store.put(status('g', 'g1', 10)), store.put(status('h', 'h1', 10))]);
  t.same(backend.writes, [
    { messages: ['f1', 'g1'], fences: [fence, undefined] },
    { messages: ['h1'], fences: [undefined] },
  ], 'at most maxBatch per write, each with its fence');
  t.equal(store.latest('f'), theirs, 'fenced: the stored result is served');
  t.equal(store.latest('g'), undefined, 'superseded with nothing to show: nothing served');
  t.equal(store.latest('h')!.message, 'h1');
  t.match(store.health(), { ok: true, discarded: { fenced: 1, superseded: 1 } });
  t.same(changes.filter((c) => c.kind === 'status').map((c) => (c as { check: string }).check), ['f', 'g', 'h', 'f', 'g'], 'each refusal is a change');
  t.equal(store.pendingWrite('f'), false);

  // A refused result already replaced here by a newer one: the newer one stays.
  backend.outcomes.set('k1', { written: false, reason: 'fenced', current: status('k', 'k-theirs', 1) });
  const k1 = store.put(status('k', 'k1', 10), fence);
  const k2 = store.put(status('k', 'k2', 20));
  await Promise.all([k1, k2]);
  t.equal(store.latest('k')!.message, 'k2');
  t.match(store.health().discarded, { fenced: 2 });
});

t.test('a backend without batch writes gets each result with its fence, in order', async (t) => {
  const backend = new ScriptedBackend(true);
  const store = new CachedStore(backend, { preopened: true, refreshMs: 3_600_000 });
  t.teardown(() => store.close());
  backend.outcomes.set('b', { written: false, reason: 'fenced' });
  const fence: WriteFence = { lease: { owner: 'r1', epoch: 1 } };
  await Promise.all([store.put(status('a', 'a', 1)), store.put(status('b', 'b', 1), fence)]);
  t.same(backend.writes, [
    { messages: ['a'], fences: [undefined] },
    { messages: ['b'], fences: [fence] },
  ]);
  t.equal(store.latest('b'), undefined, 'refused: not served');
  t.equal(store.latest('a')!.message, 'a');
  t.match(store.health().discarded, { fenced: 1, superseded: 0 });
});

t.test('opening: a store that is not the one it was is never tolerated; initStore reaches open', async (t) => {
  const lost = new ScriptedBackend(true);
  lost.openError = new StoreIdentityError('not the store this replica used (test)');
  await t.rejects(new CachedStore(lost).init({ tolerateDown: true }), StoreIdentityError);

  const down = new ScriptedBackend(true);
  down.down = true;
  const tolerant = new CachedStore(down, { retryMs: 3_600_000 });
  await tolerant.init({ tolerateDown: true, initStore: true });
  t.equal(tolerant.health().ok, false, 'down at start: degraded, not thrown');
  t.same(down.opened, [{ initStore: true }]);
  await t.rejects(tolerant.init(), /ECONNREFUSED/, 'without tolerateDown a down backend throws');
  t.same(down.opened, [{ initStore: true }, { initStore: true }], 'initStore is kept for later opens');
  down.down = false;
  await tolerant.close();
  t.equal(down.closed, true);
});

t.test('a store opened later: results are acknowledged at once and written after the first retry opens it', async (t) => {
  const backend = new ScriptedBackend(false);
  const store = new CachedStore(backend, { retryMs: 20 });
  t.teardown(() => store.close());
  await store.put(status('a', 'a1', 1));
  t.equal(store.latest('a')!.message, 'a1', 'served at once');
  t.equal(store.pendingWrite('a'), true);
  t.equal(store.pendingWrite('b'), false);
  t.same(await store.history('a', 10), [], 'history does not wait for a store not open yet');
  t.same(backend.opened, [], 'history did not open it');
  await until(() => backend.writes.length === 1, 'the retry writes the result');
  t.same(backend.opened, [{}]);
  t.same(backend.writes[0]!.messages, ['a1']);
  t.equal(store.pendingWrite('a'), false);
});

t.test('refreshes run every refreshMs; only a store that lost its identity degrades on refresh', async (t) => {
  const backend = new ScriptedBackend(true);
  const store = new CachedStore(backend, { refreshMs: 10, retryMs: 3_600_000 });
  await store.init();
  await until(() => backend.since.length >= 2, 'two refreshes');
  backend.changesError = new Error('blip (test)');
  const n = backend.since.length;
  await until(() => backend.since.length >= n + 2, 'refreshes go on after an error');
  t.equal(store.health().ok, true, 'a failed refresh is a blip');
  backend.changesError = new StoreIdentityError('the database was replaced (test)');
  await until(() => !store.health().ok, 'degraded');
  t.match(store.health().message, /^scripted store degraded: the database was replaced \(test\); 0 result\(s\) queued in memory$/);
  await store.close();
  const m = backend.since.length;
  await new Promise((r) => setTimeout(r, 100));
  t.ok(backend.since.length <= m + 1, 'no refreshes after close');
});

t.test('a refused record degrades the store; a ping proves it back; errors are counted', async (t) => {
  const backend = new ScriptedBackend(false);
  const store = new CachedStore(backend, { preopened: true, retryMs: 20 });
  t.teardown(() => store.close());
  const changes = watch(store);
  backend.down = true;
  await t.rejects(store.addAttestation(att('x', 'a')), StoreUnavailableError);
  await t.rejects(store.addDeployment(dep('d', 1)), /^the scripted store is unavailable, nothing was saved: ECONNREFUSED \(test\)$/);
  t.same(store.attestations(), []);
  t.same(store.deployments(), []);
  t.equal(store.recordsVersion(), 0, 'nothing written, nothing counted');
  t.match(store.health(), { ok: false, errors: 2 });
  t.equal(store.health().message, 'scripted store degraded: ECONNREFUSED (test); 0 result(s) queued in memory');
  t.equal(changes.filter((c) => c.kind === 'health').length, 1, 'the same failure again is no new change');
  await until(() => backend.pings >= 2, 'the retry pings');
  t.equal(store.health().ok, false, 'a failed ping keeps it degraded');
  t.ok(store.health().errors! >= 3, 'and is counted');
  backend.down = false;
  await until(() => store.health().ok, 'back');
  t.equal(changes.filter((c) => c.kind === 'health').length, 2);
  t.equal(store.health().queued, undefined);
  await store.addDeployment(dep('d', 1));
  t.same(store.deployments().map((d) => d.id), ['d']);
});

t.test('while degraded: flush gives up at its deadline and history reads the backend without writing', async (t) => {
  const backend = new ScriptedBackend(false);
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  backend.down = true;
  await store.put(status('a', 'a1', 1));
  await until(() => !store.health().ok, 'degraded');
  t.equal(store.health().queued, 1);
  t.equal(await store.flush(50), false, 'still queued at the deadline');
  t.same(await store.history('a', 5), []);
  t.equal(backend.histories, 1);
  t.same(backend.writes, []);
  backend.down = false;
  t.equal(await store.flush(5_000), true);
  t.same(backend.writes.map((w) => w.messages), [['a1']]);
  await store.close();
});

t.test('a change listener that throws stops neither the others nor the write; unsubscribe stops one', async (t) => {
  const backend = new ScriptedBackend(false);
  const store = new CachedStore(backend, { preopened: true });
  t.teardown(() => store.close());
  store.onChange(() => {
    throw new Error('broken cache (test)');
  });
  const seen: string[] = [];
  const off = store.onChange((c) => seen.push(c.kind));
  await store.put(status('a', 'a1', 1));
  t.same(seen, ['status']);
  t.equal(store.latest('a')!.message, 'a1');
  off();
  await store.put(status('a', 'a2', 2));
  t.same(seen, ['status'], 'unsubscribed');
  await store.flush();
  t.same(backend.writes.map((w) => w.messages[0]), ['a1', 'a2']);
});
