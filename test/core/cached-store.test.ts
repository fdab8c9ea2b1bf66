// The store every backend shares (src/store/cached.ts), against a scripted local backend: a
// down backend queues results in order (bounded, the oldest dropped and counted), health
// says so, the queue drains in order once the backend is back; reads are served from memory;
// records are listed newest first; a revocation is idempotent.
import t from 'tap';
import { CachedStore, type Backend, type Snapshot } from '../../src/store/cached.js';
import type { Attestation, CheckStatus, Deployment, RunResult, StoreChange } from '../../src/store/types.js';

class ScriptedBackend implements Backend {
  readonly kind = 'scripted';
  down = false;
  written: string[] = [];
  snapshot: Snapshot = { statuses: [], attestations: [], deployments: [] };
  async open(): Promise<Snapshot> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    return this.snapshot;
  }
  async writeStatus(s: CheckStatus): Promise<void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
    this.written.push(`${s.check}:${s.message}`);
  }
  async history(check: string): Promise<RunResult[]> {
    return this.written.filter((w) => w.startsWith(`${check}:`)).map((w) => ({ check, message: w } as unknown as RunResult));
  }
  async writeAttestation(): Promise<void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
  }
  async writeDeployment(): Promise<void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
  }
  async ping(): Promise<void> {
    if (this.down) throw new Error('ECONNREFUSED (test)');
  }
  async close(): Promise<void> {}
}

let seq = 0;
function status(check: string, message: string, finishedAt = 1000 + ++seq): CheckStatus {
  return { check, state: 'pass', message, last: { check, state: 'pass', message, startedAt: finishedAt, finishedAt, durationMs: 1, conditions: [] }, streak: 1, runs: { pass: 1 } };
}

t.test('a down backend: results queue in order, bounded; health says so; the queue drains in order when back', async (t) => {
  const backend = new ScriptedBackend();
  const store = new CachedStore(backend, { maxQueue: 3, retryMs: 20 });
  const changes: StoreChange[] = [];
  store.onChange((c) => changes.push(c));
  backend.down = true;
  await store.init({ tolerateDown: true });
  t.match(store.health(), { ok: false, message: /^scripted store degraded: ECONNREFUSED \(test\); 0 result\(s\) queued in memory$/, errors: 1 });
  t.ok(changes.some((c) => c.kind === 'health'), 'the degradation is a change');

  for (const m of ['a1', 'a2', 'a3', 'a4']) await store.put(status('a', m));
  t.equal(store.latest('a')!.message, 'a4', 'served from memory while down');
  t.equal(store.health().queued, 3, 'bounded: the oldest was dropped');
  t.match(store.health().message, /3 result\(s\) queued in memory, 1 dropped$/);
  t.same(backend.written, []);

  backend.down = false;
  t.equal(await store.flush(5_000), true, 'the queue drains');
  t.same(backend.written, ['a:a2', 'a:a3', 'a:a4'], 'in order, without the dropped one');
  t.match(store.health(), { ok: true, message: 'scripted store', errors: 1 });
  t.equal(store.health().queued, undefined, 'nothing queued once back');
  t.equal(changes.filter((c) => c.kind === 'health').length, 2, 'degraded, then back');
  await store.close();
});

t.test('init without tolerateDown throws; with a snapshot it serves what was stored', async (t) => {
  const down = new ScriptedBackend();
  down.down = true;
  await t.rejects(new CachedStore(down).init(), /ECONNREFUSED/);

  const backend = new ScriptedBackend();
  const dep = (id: string, at: number, createdAt = at): Deployment => ({ id, version: id, at, createdAt, source: 'api' });
  const att = (id: string, check: string, createdAt: number): Attestation => ({ id, check, by: 'x', role: 'r', createdAt, expiresAt: createdAt + 1e9 });
  backend.snapshot = {
    statuses: [status('b', 'b-old', 10), status('b', 'b-new', 20), status('c', 'c1', 5)],
    attestations: [att('x1', 'b', 1), att('x2', 'c', 3), att('x3', 'b', 2)],
    deployments: [dep('d1', 100), dep('d3', 300), dep('d2', 200), dep('d2b', 200, 250)],
  };
  const store = new CachedStore(backend);
  await store.init();
  t.equal(store.latest('b')!.message, 'b-new', 'the newest result per check');
  t.equal(store.latest('c')!.message, 'c1');
  t.same(store.attestations().map((a) => a.id), ['x2', 'x3', 'x1'], 'newest first');
  t.same(store.attestations('b').map((a) => a.id), ['x3', 'x1'], 'one check\'s');
  t.same(store.deployments().map((d) => d.id), ['d3', 'd2b', 'd2', 'd1'], 'latest first; same instant: recorded later first');
  t.same(store.deployments(2).map((d) => d.id), ['d3', 'd2b']);
  store.retain(new Set(['c']));
  t.equal(store.latest('b'), undefined, 'retain forgets checks no longer in the checklist');
  t.equal(store.latest('c')!.message, 'c1');
  await store.close();
});

t.test('history writes this turn\'s results first; a revocation is idempotent', async (t) => {
  const backend = new ScriptedBackend();
  const store = new CachedStore(backend, { preopened: true });
  void store.put(status('h', 'h1'));
  t.same((await store.history('h', 10)).map((r) => r.message), ['h:h1'], 'the queued result is written before history is read');

  const a: Attestation = { id: 'a1', check: 'h', by: 'Ada', role: 'lead', createdAt: 1, expiresAt: 2e12 };
  await store.addAttestation(a);
  t.equal(await store.revokeAttestation('nope', 'Grace', 5), undefined, 'unknown id');
  const r1 = await store.revokeAttestation('a1', 'Grace', 5);
  t.match(r1, { id: 'a1', revokedAt: 5, revokedBy: 'Grace' });
  const r2 = await store.revokeAttestation('a1', 'Linus', 9);
  t.match(r2, { revokedAt: 5, revokedBy: 'Grace' }, 'a second revocation changes nothing');
  t.equal(store.attestations()[0]!.revokedBy, 'Grace');
  await store.close();
});
