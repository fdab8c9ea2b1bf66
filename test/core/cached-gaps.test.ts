// The store every backend shares (src/store/cached.ts), on the paths its other tests leave out
// (found by mutation testing, docs/mutation.md): the default bounds; a backend that throws
// something other than an Error; a backend without ping(); results queued meanwhile proving a
// backend back by themselves; a write still in flight while new results arrive or old ones are
// dropped; a dropped result leaving nothing behind; no retry once closed; an outage logged once.
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { CachedStore, type Backend, type Snapshot } from '../../src/store/cached.js';
import { StoreUnavailableError, type Attestation, type CheckStatus, type RunResult, type WriteFence } from '../../src/store/types.js';

const empty = (): Snapshot => ({ statuses: [], attestations: [], deployments: [] });

/** A scripted local backend; `gate` holds every status write until released. */
class GatedBackend implements Backend {
  readonly kind = 'gated';
  down: unknown = undefined;
  writes: { messages: string[]; fences: (WriteFence | undefined)[] }[] = [];
  pings = 0;
  version: number | undefined;
  since: number[] = [];
  #gate: Promise<void> | undefined;
  #release: (() => void) | undefined;
  /** Writes started (gated or not). */
  started = 0;

  hold(): void {
    this.#gate = new Promise((r) => (this.#release = r));
  }
  release(): void {
    this.#gate = undefined;
    this.#release?.();
  }
  async open(): Promise<Snapshot> {
    if (this.down !== undefined) throw this.down;
    return empty();
  }
  async writeStatuses(batch: readonly CheckStatus[], fences?: readonly (WriteFence | undefined)[]): Promise<void> {
    this.started++;
    if (this.#gate) await this.#gate;
    if (this.down !== undefined) throw this.down;
    this.writes.push({ messages: batch.map((s) => s.message), fences: [...(fences ?? [])] });
  }
  async writeStatus(): Promise<void> {
    throw new Error('unused: writeStatuses is there');
  }
  async history(): Promise<RunResult[]> {
    return [];
  }
  async writeAttestation(): Promise<number | void> {
    if (this.down !== undefined) throw this.down;
    return this.version;
  }
  async writeDeployment(): Promise<number | void> {
    if (this.down !== undefined) throw this.down;
    return this.version;
  }
  async ping(): Promise<void> {
    this.pings++;
    if (this.down !== undefined) throw this.down;
  }
  async close(): Promise<void> {}
}

/** The same without ping(): a backend that has no cheap round trip. */
class PinglessBackend extends GatedBackend {
  constructor() {
    super();
    (this as { ping?: unknown }).ping = undefined;
  }
}

function status(check: string, message: string, recordsVersion = 0): CheckStatus {
  const last: RunResult = { check, state: 'pass', message, startedAt: 1, finishedAt: 2, durationMs: 1, conditions: [], recordsVersion };
  return { check, state: 'pass', message, last, streak: 1, runs: { pass: 1 } };
}
const att = (id: string): Attestation => ({ id, check: 'c', by: 'Ada', role: 'lead', createdAt: 1, expiresAt: 2e12 });

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test('the default bounds: 10 000 results queued while down, written 500 per transaction when back', async (t) => {
  const backend = new GatedBackend();
  backend.down = new Error('ECONNREFUSED (test)');
  const store = new CachedStore(backend);
  t.teardown(() => store.close());
  await store.init({ tolerateDown: true });
  t.equal(store.health().ok, false, 'precondition: down at start');
  for (let i = 0; i <= 10_000; i++) await store.put(status(`c${i}`, `m${i}`));
  t.match(store.health(), { ok: false, queued: 10_000 });
  t.match(store.health().message, /10000 result\(s\) queued in memory, 1 dropped$/);
  backend.down = undefined;
  t.equal(await store.flush(60_000), true, 'drained');
  t.equal(backend.writes.length, 20, '500 per transaction');
  t.ok(backend.writes.every((w) => w.messages.length === 500));
  t.equal(backend.writes[0]!.messages[0], 'm1', 'the oldest was the one dropped');
  t.equal(backend.writes.at(-1)!.messages.at(-1), 'm10000');
});

t.test('a backend that throws something other than an Error: its words are the reason', async (t) => {
  const backend = new GatedBackend();
  backend.down = 'connection reset (a string, test)';
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  t.teardown(() => store.close());
  await t.rejects(store.addAttestation(att('a')), StoreUnavailableError);
  await t.rejects(store.addAttestation(att('a')), { message: 'the gated store is unavailable, nothing was saved: connection reset (a string, test)' });
  t.match(store.health(), { ok: false, message: 'gated store degraded: connection reset (a string, test); 0 result(s) queued in memory' });
  t.same(store.attestations(), []);
});

t.test('a backend without ping: a refused record degrades the store until a retry finds it back', async (t) => {
  const backend = new PinglessBackend();
  t.equal((backend as { ping?: unknown }).ping, undefined, 'precondition: no ping');
  const store = new CachedStore(backend, { preopened: true, retryMs: 20 });
  t.teardown(() => store.close());
  backend.down = new Error('ECONNREFUSED (test)');
  await t.rejects(store.addAttestation(att('a')), StoreUnavailableError);
  t.equal(store.health().ok, false);
  backend.down = undefined;
  await until(() => store.health().ok, 'back');
  t.equal(store.health().errors, 1, 'the retry itself did not fail');
});

t.test('queued results prove the backend back by being written: no extra ping', async (t) => {
  const backend = new GatedBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 20 });
  t.teardown(() => store.close());
  backend.down = new Error('ECONNREFUSED (test)');
  await store.put(status('a', 'a1'));
  await until(() => !store.health().ok, 'degraded');
  t.equal(store.health().queued, 1);
  backend.down = undefined;
  await until(() => store.health().ok, 'back');
  t.same(backend.writes.map((w) => w.messages), [['a1']]);
  t.equal(backend.pings, 0, 'the write was the proof');
});

t.test('a result put while a write is in flight is written when it ends, without a retry', async (t) => {
  const backend = new GatedBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  t.teardown(() => store.close());
  backend.hold();
  const first = store.put(status('a', 'a1'));
  await until(() => backend.started === 1, 'the first write started');
  const second = store.put(status('b', 'b1'));
  await new Promise((r) => setImmediate(r));
  t.equal(backend.started, 1, 'one write at a time');
  backend.release();
  await first;
  await until(() => backend.writes.length === 2, 'the second result written');
  await second;
  t.same(backend.writes.map((w) => w.messages), [['a1'], ['b1']]);
  t.equal(store.pendingWrite('b'), false);
});

t.test('results dropped from a full queue while a write is in flight: the rest is still written', async (t) => {
  const backend = new GatedBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000, maxQueue: 3 });
  t.teardown(() => store.close());
  backend.hold();
  const puts = ['a', 'b', 'c'].map((c) => store.put(status(c, `${c}1`)));
  await until(() => backend.started === 1, 'the write of a, b, c started');
  // a and b are dropped from the queue (already in the write), c stays, d and e are new.
  const later = ['d', 'e'].map((c) => store.put(status(c, `${c}1`)));
  t.equal(store.health().message, 'gated store', 'precondition: not degraded');
  backend.release();
  await Promise.all([...puts, ...later]);
  t.equal(await store.flush(20_000), true);
  t.same(backend.writes.map((w) => w.messages), [['a1', 'b1', 'c1'], ['d1', 'e1']], 'd and e written once, after the batch');
  for (const c of ['a', 'b', 'c', 'd', 'e']) t.equal(store.pendingWrite(c), false, `${c} not pending`);
});

t.test('a result dropped from a full queue leaves no fence behind', async (t) => {
  const backend = new GatedBackend();
  backend.down = new Error('ECONNREFUSED (test)');
  const store = new CachedStore(backend, { retryMs: 3_600_000, maxQueue: 1 });
  t.teardown(() => store.close());
  await store.init({ tolerateDown: true });
  const fence: WriteFence = { lease: { owner: 'r1', epoch: 1 } };
  const a = status('a', 'a1');
  await store.put(a, fence);
  await store.put(status('b', 'b1'), fence); // drops a and its fence
  await store.put(a); // the same result again, this time without a lease: drops b
  t.equal(store.health().queued, 1);
  backend.down = undefined;
  t.equal(await store.flush(20_000), true);
  t.same(backend.writes, [{ messages: ['a1'], fences: [undefined] }], 'written without the dropped put\'s fence');
});

t.test('a closed store schedules no retry: no round trip after close', async (t) => {
  const closing = new GatedBackend();
  closing.down = new Error('ECONNREFUSED (test)');
  const store = new CachedStore(closing, { preopened: true, retryMs: 30 });
  // Two refusals: one retry, not two.
  await t.rejects(store.addAttestation(att('a')), StoreUnavailableError);
  await t.rejects(store.addAttestation(att('b')), StoreUnavailableError);
  await store.close();
  await t.rejects(store.addAttestation(att('c')), StoreUnavailableError, 'refused after close too');
  // Closed while healthy (no retry pending), then refused.
  const healthy = new GatedBackend();
  const closedHealthy = new CachedStore(healthy, { preopened: true, retryMs: 30 });
  await closedHealthy.close();
  healthy.down = new Error('ECONNREFUSED (test)');
  await t.rejects(closedHealthy.addAttestation(att('d')), StoreUnavailableError);

  // A store degraded after the one above retries with the same delay: once it has pinged, any
  // retry of the closed store (scheduled earlier) would have fired already.
  const control = new GatedBackend();
  control.down = new Error('ECONNREFUSED (test)');
  const open = new CachedStore(control, { preopened: true, retryMs: 30 });
  t.teardown(() => open.close());
  await t.rejects(open.addAttestation(att('a')), StoreUnavailableError);
  await until(() => control.pings >= 2, 'the open store retries');
  t.equal(closing.pings, 0, 'the closed store never retried');
  t.equal(healthy.pings, 0, 'nor the one closed while healthy');
});

t.test('an outage is logged once, however many writes fail during it; the next outage again', async (t) => {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const backend = new GatedBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 20, log });
  t.teardown(() => store.close());
  const outages = () => lines.filter((l) => l.msg === 'gated store unavailable: results are queued in memory').length;
  backend.down = new Error('ECONNREFUSED (test)');
  await t.rejects(store.addAttestation(att('a')));
  backend.down = new Error('ETIMEDOUT (test)');
  await t.rejects(store.addAttestation(att('b')));
  await until(() => backend.pings >= 2, 'retries fail too');
  t.equal(outages(), 1, 'one line for the outage');
  t.equal(store.health().errors! >= 4, true, 'every failure counted');
  backend.down = undefined;
  await until(() => store.health().ok, 'back');
  backend.down = new Error('ECONNREFUSED again (test)');
  await t.rejects(store.addAttestation(att('c')));
  t.equal(outages(), 2, 'a new outage is a new line');
  t.equal(lines.filter((l) => l.level === 50).length, 2, 'at error level');
});

t.test('a shared write at the version already held reads nothing more', async (t) => {
  const backend = new GatedBackend();
  const changes = async (since: number): Promise<Snapshot> => {
    backend.since.push(since);
    return { ...empty(), recordsVersion: 3 };
  };
  (backend as Backend).changes = changes;
  const store = new CachedStore(backend, { refreshMs: 3_600_000 });
  t.teardown(() => store.close());
  await store.init();
  await store.refresh();
  t.equal(store.recordsVersion(), 3, 'precondition: version 3 held');
  t.same(backend.since, [0]);
  backend.version = 3;
  await store.addAttestation(att('a'));
  t.same(backend.since, [0], 'no read for the version held');
  backend.version = 4;
  await store.addAttestation(att('b'));
  t.same(backend.since, [0, 3], 'a newer version is read up to');
});

t.test('flushing an empty queue returns at once, whatever its deadline', async (t) => {
  const backend = new GatedBackend();
  const store = new CachedStore(backend, { preopened: true });
  t.teardown(() => store.close());
  await store.put(status('a', 'a1'));
  // A deadline far past tap's limit: a flush that waited for it would fail the file.
  t.equal(await store.flush(3_600_000), true);
  t.same(backend.writes.map((w) => w.messages), [['a1']]);
});

t.test('a refresh: a result that ended at the same instant from newer records replaces the one held', async (t) => {
  const backend = new GatedBackend();
  let pending: Snapshot = empty();
  (backend as Backend).changes = async () => {
    const s = pending;
    pending = empty();
    return s;
  };
  const at = (message: string, recordsVersion: number): CheckStatus => ({ ...status('a', message, recordsVersion), last: { ...status('a', message, recordsVersion).last, finishedAt: 10 } });
  const store = new CachedStore(backend, { refreshMs: 3_600_000 });
  t.teardown(() => store.close());
  await store.init();
  pending = { ...empty(), statuses: [at('v1', 1)], recordsVersion: 1 };
  await store.refresh();
  t.equal(store.latest('a')!.message, 'v1', 'precondition: v1 held');
  const seen: string[] = [];
  store.onChange((c) => seen.push(c.kind));
  pending = { ...empty(), statuses: [at('v2', 2)], recordsVersion: 2 };
  await store.refresh();
  t.equal(store.latest('a')!.message, 'v2', 'same end, newer records: replaced');
  t.same(seen, ['status'], 'and published');
  pending = { ...empty(), statuses: [at('v2-echo', 2)], recordsVersion: 2 };
  await store.refresh();
  t.equal(store.latest('a')!.message, 'v2', 'same end, same records: the one held stays (an echo is no news)');
  t.same(seen, ['status']);
});

t.test('a refresh in flight when the store closes is the last one', async (t) => {
  const backend = new GatedBackend();
  let calls = 0;
  let release: (() => void) | undefined;
  (backend as Backend).changes = async () => {
    calls++;
    if (calls === 2) await new Promise<void>((r) => (release = r));
    return empty();
  };
  const store = new CachedStore(backend, { refreshMs: 5 });
  await store.init();
  await until(() => release !== undefined, 'the second refresh in flight');
  await store.close();
  release!();
  // An open store refreshing at the same pace: once it has refreshed twice, a refresh the closed
  // store scheduled after its last one would have run.
  const control = new GatedBackend();
  let controlCalls = 0;
  (control as Backend).changes = async () => {
    controlCalls++;
    return empty();
  };
  const open = new CachedStore(control, { refreshMs: 5 });
  t.teardown(() => open.close());
  await open.init();
  await until(() => controlCalls >= 2, 'the open store refreshes');
  t.equal(calls, 2, 'no refresh after close');
});

t.test('history while degraded reads the backend without starting a write, even once it is back', async (t) => {
  const backend = new GatedBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 3_600_000 });
  t.teardown(() => {
    backend.release();
    return store.close();
  });
  backend.down = new Error('ECONNREFUSED (test)');
  await store.put(status('a', 'a1'));
  await until(() => !store.health().ok, 'degraded');
  const started = backend.started;
  backend.down = undefined;
  backend.hold(); // a write now would not return until released
  let done = false;
  const h = store.history('a', 5).then((r) => {
    done = true;
    return r;
  });
  await until(() => done || backend.started > started, 'history, or a write');
  t.equal(backend.started, started, 'no write started');
  backend.release();
  t.same(await h, []);
  t.equal(store.health().queued, 1, 'still queued for the retry');
});

t.test('a change listener that throws is logged, with the change it failed on', async (t) => {
  const lines: { level: number; msg: string; change?: unknown; err?: { message: string } }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const store = new CachedStore(new GatedBackend(), { preopened: true, log: pino({ level: 'info' }, sink) });
  t.teardown(() => store.close());
  store.onChange(() => {
    throw new Error('broken cache (test)');
  });
  await store.put(status('a', 'a1'));
  t.equal(store.latest('a')!.message, 'a1', 'the result is kept');
  const failed = lines.filter((l) => l.msg === 'store change listener failed');
  t.equal(failed.length, 1);
  t.match(failed[0], { level: 50, change: { kind: 'status', check: 'a' }, err: { message: 'broken cache (test)' } });
});

t.test('once opened by init, a put is written at once and the backend is opened once', async (t) => {
  let opens = 0;
  const backend = new GatedBackend();
  const open = backend.open.bind(backend);
  backend.open = async () => {
    opens++;
    return open();
  };
  // No retry within the test: a put that waited for one would never be written.
  const store = new CachedStore(backend, { retryMs: 3_600_000 });
  t.teardown(() => store.close());
  await store.init();
  t.equal(opens, 1, 'precondition: init opened the backend');
  await store.put(status('c1', 'first'));
  await until(() => backend.writes.length === 1, 'the first write');
  await store.put(status('c1', 'second'));
  await until(() => backend.writes.length === 2, 'the second write');
  t.same(backend.writes.map((w) => w.messages), [['first'], ['second']]);
  t.equal(opens, 1, 'opened once: a write after the open does not open again');
  t.equal(store.health().ok, true);
});
