// One suite, three stores: memory, the embedded SQLite file, and a real PostgreSQL 15.
// Durable stores keep everything across a reopen; PostgreSQL going down degrades the store,
// queues results in order, refuses (never fakes) durable writes, and drains when it is back.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CachedStore } from '../src/store/cached.js';
import { MemoryStore } from '../src/store/memory.js';
import { PostgresBackend, readMigrations } from '../src/store/postgres.js';
import { SqliteBackend } from '../src/store/sqlite.js';
import { StoreUnavailableError, type Attestation, type CheckStatus } from '../src/store/types.js';
import { startPostgres } from './helpers/postgres.js';

function status(check: string, n: number, state: 'pass' | 'fail' = 'pass'): CheckStatus {
  const at = 1_700_000_000_000 + n * 1000;
  const last = { check, state, message: `run ${n}`, startedAt: at - 5, finishedAt: at, durationMs: 5, conditions: [], value: n };
  return { check, state, message: `run ${n}`, last, streak: 1, runs: { [state]: n }, value: n };
}

function attestation(check: string, over: Partial<Attestation> = {}): Attestation {
  const now = Date.now();
  return { id: randomUUID(), check, by: 'Ada', role: 'security-lead', note: 'reviewed', createdAt: now, expiresAt: now + 86_400_000, ...over };
}

type Factory = () => Promise<{ store: CachedStore; reopen?: () => Promise<CachedStore> }>;

async function suite(t: Test, name: string, make: Factory) {
  t.test(`${name}: latest, history, attestations, deployments`, async (t) => {
    const { store, reopen } = await make();
    for (let i = 1; i <= 12; i++) await store.put(status('db', i, i === 12 ? 'fail' : 'pass'));
    await store.put(status('tls', 1));
    t.equal(store.latest('db')?.message, 'run 12');
    t.equal(store.latest('db')?.state, 'fail');
    const h = await store.history('db', 5);
    t.same(h.map((r) => r.message), ['run 12', 'run 11', 'run 10', 'run 9', 'run 8'], 'newest first, limited');
    const a = attestation('signoff-security', { release: '1.4.2', evidenceUrl: 'https://tickets/SEC-1' });
    await store.addAttestation(a);
    const b = attestation('signoff-security', { createdAt: a.createdAt + 1 });
    await store.addAttestation(b);
    t.same(store.attestations('signoff-security').map((x) => x.id), [b.id, a.id], 'newest first');
    const revoked = await store.revokeAttestation(a.id, 'Grace', 1_800_000_000_000);
    t.equal(revoked?.revokedBy, 'Grace');
    t.equal(await store.revokeAttestation('nope', 'x', 1), undefined);
    await store.addDeployment({ id: randomUUID(), version: '1.4.1', at: 1_000, createdAt: 1_000, source: 'api' });
    await store.addDeployment({ id: randomUUID(), version: '1.4.2', at: 2_000, createdAt: 2_000, source: 'cli', by: 'ci' });
    t.same(store.deployments().map((d) => d.version), ['1.4.2', '1.4.1']);
    t.equal(store.health().ok, true);
    if (!reopen) return store.close();
    await store.close();
    const again = await reopen();
    t.teardown(() => again.close());
    t.equal(again.latest('db')?.message, 'run 12', 'the last state survives a restart');
    t.equal(again.latest('db')?.last.finishedAt, status('db', 12).last.finishedAt);
    t.same((await again.history('db', 3)).map((r) => r.message), ['run 12', 'run 11', 'run 10']);
    const att = again.attestations('signoff-security');
    t.equal(att.length, 2);
    t.match(att.find((x) => x.id === a.id), { by: 'Ada', role: 'security-lead', note: 'reviewed', release: '1.4.2', evidenceUrl: 'https://tickets/SEC-1', revokedBy: 'Grace', revokedAt: 1_800_000_000_000 });
    t.same(again.deployments().map((d) => [d.version, d.by]), [['1.4.2', 'ci'], ['1.4.1', undefined]]);
  });
}

t.test('memory', async (t) => {
  await suite(t, 'memory', async () => ({ store: new MemoryStore() }));
});

t.test('sqlite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-sqlite-'));
  const file = join(dir, 'sub', 'readiness.sqlite');
  const open = async () => {
    const s = new CachedStore(new SqliteBackend(file, 50));
    await s.init();
    return s;
  };
  await suite(t, 'sqlite', async () => ({ store: await open(), reopen: open }));

  t.test('history is pruned to the limit', async (t) => {
    const s = new CachedStore(new SqliteBackend(join(dir, 'prune.sqlite'), 10));
    await s.init();
    t.teardown(() => s.close());
    for (let i = 1; i <= 120; i++) await s.put(status('x', i));
    const be = s.backend as SqliteBackend;
    const n = (be.db.prepare('SELECT count(*) AS n FROM check_history').get() as { n: number }).n;
    t.ok(n <= 10 + 50, `${n} rows kept (limit 10, pruned every 50 writes)`);
    t.equal((await s.history('x', 100)).length, 10);
  });

  t.test('a newer schema is refused, not clobbered', async (t) => {
    const f = join(dir, 'newer.sqlite');
    const s = new CachedStore(new SqliteBackend(f));
    await s.init();
    (s.backend as SqliteBackend).db.pragma('user_version = 99');
    await s.close();
    await t.rejects(new CachedStore(new SqliteBackend(f)).init(), /schema version 99, newer than this readiness-exporter knows/);
  });
});

t.test('postgres', async (t) => {
  const pg = await startPostgres(t);
  let db = 0;
  const fresh = async () => {
    const name = `store_${++db}`;
    await pg.query(`CREATE DATABASE ${name}`);
    return pg.urlFor({ database: name });
  };
  const url1 = await fresh();
  const open = async (url: string, opts = {}) => {
    const s = new CachedStore(new PostgresBackend(url, { connectTimeoutMs: 1000, statementTimeoutMs: 2000 }), { retryMs: 200, refreshMs: 200, ...opts });
    await s.init();
    return s;
  };
  await suite(t, 'postgres', async () => ({ store: await open(url1), reopen: () => open(url1) }));

  t.test('migrations are versioned and applied once, even by replicas starting together', async (t) => {
    const url = await fresh();
    const stores = await Promise.all([open(url), open(url), open(url)]);
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    const rows = await pg.query<{ version: number; name: string }>('SELECT version, name FROM readiness_schema_migrations ORDER BY version', [], url.split('/').pop()!.split('?')[0]);
    t.same(rows, [
      { version: 1, name: '001_initial' },
      { version: 2, name: '002_replica_backend_pid' },
      { version: 3, name: '003_ha_leases_records_version' },
      { version: 4, name: '004_store_identity' },
    ]);
    t.same(
      rows,
      readMigrations().map((m) => ({ version: m.version, name: m.name })),
    );
  });

  t.test('replicas see each other\'s writes', async (t) => {
    const url = await fresh();
    const a = await open(url);
    const b = await open(url);
    t.teardown(() => Promise.all([a.close(), b.close()]));
    await a.put(status('shared', 7));
    const att = attestation('signoff-qa');
    await a.addAttestation(att);
    const deadline = Date.now() + 5000;
    while ((!b.latest('shared') || b.attestations('signoff-qa').length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    t.equal(b.latest('shared')?.message, 'run 7');
    t.equal(b.attestations('signoff-qa')[0]?.id, att.id);
  });

  t.test('a result computed from older records never replaces one from newer records', async (t) => {
    const url = await fresh();
    const a = await open(url);
    const b = await open(url);
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const withRv = (n: number, rv: number, state: 'pass' | 'fail' = 'pass') => {
      const s = status('att', n, state);
      s.last.recordsVersion = rv;
      return s;
    };
    await a.put(withRv(1, 5, 'fail'));
    await a.flush();
    // b computed later (n=2) but from records version 4: refused in the database and in b's cache.
    await b.refresh();
    await b.put(withRv(2, 4));
    await b.flush();
    t.equal(b.latest('att')?.state, 'fail', 'b keeps serving the result from newer records');
    const row = await pg.query<{ state: string; rv: string }>("SELECT status->>'state' AS state, records_version AS rv FROM readiness_check_latest WHERE check_id = 'att'", [], url.split('/').pop()!.split('?')[0]);
    t.same(row, [{ state: 'fail', rv: '5' }], 'the database kept the result from records version 5');
    t.equal(b.health().discarded?.superseded, 1, 'counted as superseded');
    // A records-only re-evaluation without a lease wins only with strictly newer records.
    await b.put(withRv(3, 5), { recordsOnly: true });
    await b.flush();
    t.equal((await b.history('att', 1))[0]?.message, 'run 1', 'same records, no lease: not published');
    await b.put(withRv(4, 6), { recordsOnly: true });
    await b.flush();
    t.equal((await b.history('att', 1))[0]?.message, 'run 4', 'newer records: published');
    await a.refresh();
    t.equal(a.latest('att')?.message, 'run 4', 'and every replica serves it');
  });

  t.test('a result is published only under the lease it ran with (fencing)', async (t) => {
    const url = await fresh();
    const db = url.split('/').pop()!.split('?')[0];
    const s = await open(url);
    t.teardown(() => s.close());
    await pg.query("INSERT INTO readiness_leases (check_id, owner, epoch, expires_at, acquired_at) VALUES ('f', 'replica-a', 1, now() + interval '1 minute', now())", [], db);
    await s.put(status('f', 1), { lease: { owner: 'replica-a', epoch: 1 } });
    await s.flush();
    t.equal((await s.history('f', 5)).length, 1, 'published under the current lease');
    await pg.query("UPDATE readiness_leases SET owner = 'replica-b', epoch = 2 WHERE check_id = 'f'", [], db);
    await s.put(status('f', 2, 'fail'), { lease: { owner: 'replica-a', epoch: 1 } });
    await s.flush();
    t.same((await s.history('f', 5)).map((r) => r.message), ['run 1'], 'not published once the lease moved on');
    t.equal(s.latest('f')?.message, 'run 1', 'the cache serves what the database holds again');
    t.equal(s.health().discarded?.fenced, 1, 'counted as fenced');
    await s.put(status('f', 3), { lease: { owner: 'replica-b', epoch: 2 } });
    await s.flush();
    t.equal((await s.history('f', 1))[0]?.message, 'run 3', 'the new holder publishes');
  });

  t.test('records versions: a writer reads what others wrote before its own write', async (t) => {
    const url = await fresh();
    const a = await open(url, { refreshMs: 60_000 });
    const b = await open(url, { refreshMs: 60_000 });
    t.teardown(() => Promise.all([a.close(), b.close()]));
    const v0 = a.recordsVersion();
    await a.addAttestation(attestation('signoff-a'));
    t.ok(a.recordsVersion() > v0, `the version grows with a write (${v0} -> ${a.recordsVersion()})`);
    await b.addDeployment({ id: randomUUID(), version: '1.0', at: Date.now(), createdAt: Date.now(), source: 'api' });
    t.ok(b.recordsVersion() > a.recordsVersion(), 'the next write gets the next version');
    t.equal(b.attestations('signoff-a').length, 1, 'b read a\'s attestation (an older version) with its own write');
  });

  t.test('PostgreSQL down: results queue in order, durable writes are refused, the queue drains', async (t) => {
    const url = await fresh();
    const s = await open(url);
    t.teardown(() => s.close());
    await s.put(status('q', 1));
    await pg.stop('fast');
    for (let i = 2; i <= 30; i++) await s.put(status('q', i));
    t.equal(s.latest('q')?.message, 'run 30', 'served from memory meanwhile');
    const h = s.health();
    t.equal(h.ok, false);
    t.match(h.message, /postgres store degraded: .*; 29 result\(s\) queued in memory/);
    await t.rejects(s.addAttestation(attestation('signoff-qa')), StoreUnavailableError, 'an attestation is never acknowledged while the database is down');
    await t.rejects(s.addDeployment({ id: randomUUID(), version: 'x', at: 1, createdAt: 1, source: 'api' }), StoreUnavailableError);
    await pg.start();
    t.ok(await s.flush(15_000), 'queue drained');
    t.equal(s.health().ok, true);
    const rows = await pg.query<{ n: string }>(`SELECT count(*) AS n FROM readiness_check_history WHERE check_id = 'q'`, [], url.split('/').pop()!.split('?')[0]);
    t.equal(Number(rows[0]!.n), 30, 'every result written, none lost');
    t.same((await s.history('q', 3)).map((r) => r.message), ['run 30', 'run 29', 'run 28'], 'in order');
  });

  t.test('a database down at start degrades instead of failing (tolerateDown)', async (t) => {
    const s = new CachedStore(new PostgresBackend('postgres://x:y@127.0.0.1:1/none', { connectTimeoutMs: 300 }), { retryMs: 100 });
    await t.rejects(s.init(), /ECONNREFUSED|connect/);
    const s2 = new CachedStore(new PostgresBackend('postgres://x:y@127.0.0.1:1/none', { connectTimeoutMs: 300 }), { retryMs: 100 });
    await s2.init({ tolerateDown: true });
    t.equal(s2.health().ok, false);
    await s2.put(status('z', 1));
    t.equal(s2.latest('z')?.message, 'run 1');
    await s2.close();
    await s.close().catch(() => {});
  });
});

t.test('a refused durable write while down, then recovery: the store notices and writes again', async (t) => {
  const pg = await startPostgres(t);
  await pg.query('CREATE DATABASE r');
  const s = new CachedStore(new PostgresBackend(pg.urlFor({ database: 'r' }), { connectTimeoutMs: 500 }), { retryMs: 100 });
  await s.init();
  t.teardown(() => s.close());
  await pg.stop('fast');
  await t.rejects(s.addDeployment({ id: randomUUID(), version: 'x', at: 1, createdAt: 1, source: 'api' }), StoreUnavailableError);
  await new Promise((r) => setTimeout(r, 400));
  t.equal(s.health().ok, false, 'still degraded: the retry pinged the database and it is down');
  await pg.start();
  for (let i = 0; i < 100 && !s.health().ok; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(s.health().ok, true, 'back once a ping succeeds');
  await s.put(status('after', 1));
  await s.put(status('after', 2));
  t.same((await s.history('after', 5)).map((r) => r.message), ['run 2', 'run 1'], 'later writes are not stuck behind a finished drain');
});
