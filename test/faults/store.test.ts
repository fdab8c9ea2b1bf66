// Faults in the store, with the real `readiness serve` and real files or a real PostgreSQL:
// an embedded store file emptied, swapped, reset or replaced by garbage (an error at start,
// exit 2, unless --init-store); a PostgreSQL database dropped and recreated under a running
// service (writes refused, never made into the wrong store); PostgreSQL frozen by SIGSTOP
// (writes answered 503 within the deadline, nothing written after it, a 201 always durable).
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { CachedStore } from '../../src/store/cached.js';
import { SqliteBackend } from '../../src/store/sqlite.js';
import { runCli, startServe } from '../helpers/cli.js';
import { writeAttestationAndTcpChecklist } from '../helpers/checklists.js';
import { postgresOnce, type PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/service.js';
import { faultSuite } from '../helpers/faults.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-store-'));
const TOKEN = 'faults-store-token';
const file = writeAttestationAndTcpChecklist(dir, 'faults-store');

/** A data directory holding an embedded store with `n` attestations, written and closed. */
async function storeWith(n: number): Promise<{ dataDir: string; db: string }> {
  const dataDir = mkdtempSync(join(dir, 'data-'));
  const db = join(dataDir, 'readiness.sqlite');
  const store = new CachedStore(new SqliteBackend(db));
  await store.init();
  const now = Date.now();
  for (let i = 0; i < n; i++) await store.addAttestation({ id: randomUUID(), check: 'dr-runbook-reviewed', by: `person ${i}`, role: 'devops-lead', createdAt: now + i, expiresAt: now + 86_400_000 });
  await store.close();
  return { dataDir, db };
}

const serveOnce = (dataDir: string, extra: string[] = []) => runCli(['serve', '-c', file, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...extra], { timeoutMs: 90_000 });

const suite = faultSuite(t, 'store');

// The file's one PostgreSQL: each case has a database of its own on it, and the cases run one
// after another (the freeze is over when its case ends).
const sharedPostgres = postgresOnce(t);

suite.fault('embedded store emptied (truncated to 0 bytes): refused at start, then --init-store starts anew and keeps the old file', 180_000, async (t) => {
  const { dataDir, db } = await storeWith(150);
  t.ok(existsSync(`${db}.id`), 'the store wrote its identity marker');
  truncateSync(db, 0);
  const r = await serveOnce(dataDir);
  t.equal(r.code, 2, 'exit 2');
  t.match(r.stderr, `the store file ${db} is empty (0 bytes)`);
  t.match(r.stderr, '--init-store', 'and says what to do');

  const svc = await startServe(t, ['-c', file, '--data-dir', dataDir, '--init-store'], { READINESS_API_TOKEN: TOKEN });
  const att = (await (await fetch(`${svc.url}/attestations`)).json()) as { attestations: unknown[] };
  t.same(att.attestations, [], 'a new, empty store');
  t.ok(
    readdirSync(dataDir).some((f) => f.startsWith('readiness.sqlite.broken-')),
    'the emptied file was moved aside, not deleted',
  );
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0);
});

suite.fault('embedded store swapped for another store\'s file: refused at start', 120_000, async (t) => {
  const a = await storeWith(3);
  const b = await storeWith(1);
  copyFileSync(b.db, a.db);
  const r = await serveOnce(a.dataDir);
  t.equal(r.code, 2);
  t.match(r.stderr, /the store file .*readiness\.sqlite holds store [0-9a-f-]{36}, but .*readiness\.sqlite\.id says store [0-9a-f-]{36} lived there \(the file was swapped\)/);
});

suite.fault('embedded store reset (a new, empty database in its place): refused at start', 120_000, async (t) => {
  const { dataDir, db } = await storeWith(3);
  unlinkSync(db);
  const fresh = new Database(db);
  fresh.exec('CREATE TABLE unrelated (x)');
  fresh.close();
  const r = await serveOnce(dataDir);
  t.equal(r.code, 2);
  t.match(r.stderr, `the store file ${db} is a new, empty database, but ${db}.id says store`);
});

suite.fault('embedded store file removed: refused at start', 120_000, async (t) => {
  const { dataDir, db } = await storeWith(3);
  unlinkSync(db);
  const r = await serveOnce(dataDir);
  t.equal(r.code, 2);
  t.match(r.stderr, `the store file ${db} is missing`);
});

suite.fault('embedded store overwritten with garbage: refused at start, naming the file', 120_000, async (t) => {
  const { dataDir, db } = await storeWith(3);
  writeFileSync(db, Buffer.alloc(8192, 0x5a));
  const r = await serveOnce(dataDir);
  t.equal(r.code, 2);
  t.match(r.stderr, `the store file ${db} cannot be opened`);
  t.match(r.stderr, '--init-store');
});

/** SIGSTOP (or SIGCONT) to the postmaster and every backend: the whole server frozen. */
function signalPostgres(pg: PostgresServer, sig: 'SIGSTOP' | 'SIGCONT'): number {
  const postmaster = Number(readFileSync(join(pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const tree = (pid: number): number[] => {
    let kids: number[] = [];
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      // gone
    }
    return [pid, ...kids.flatMap(tree)];
  };
  const pids = tree(postmaster);
  for (const pid of pids) process.kill(pid, sig);
  return pids.length;
}

const post = (url: string, path: string, body: unknown) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

suite.fault('PostgreSQL frozen by SIGSTOP: writes get 503 within the deadline, nothing lands after it, a 201 is durable', 240_000, async (t) => {
  const pg = await sharedPostgres();
  const db = 'readiness_frozen';
  await pg.query(`CREATE DATABASE ${db}`);
  const svc = await startServe(t, ['-c', file], { READINESS_API_TOKEN: TOKEN, READINESS_DATABASE_URL: pg.urlFor({ database: db }), READINESS_STORE_TIMEOUT: '2s' });
  t.teardown(() => {
    signalPostgres(pg, 'SIGCONT');
    if (!t.passing()) t.comment(svc.output().slice(-4000));
  });
  t.equal((await post(svc.url, '/attestations', { check: 'dr-runbook-reviewed', by: 'Before Freeze', role: 'devops-lead' })).status, 201);

  t.ok(signalPostgres(pg, 'SIGSTOP') >= 2, 'postmaster and backends stopped');
  // Frozen for at most 20 s (room for a loaded machine), and thawed as soon as everything to be
  // seen while frozen has been seen: the writes ran after their deadline either way.
  let thawed = false;
  const frozenFor = 20_000;
  let thawNow = () => {};
  const thaw = new Promise<void>((resolve) => {
    const timer = setTimeout(() => thawNow(), frozenFor);
    thawNow = () => {
      if (thawed) return;
      clearTimeout(timer);
      signalPostgres(pg, 'SIGCONT');
      thawed = true;
      resolve();
    };
  });
  const [att, dep] = await Promise.all([
    post(svc.url, '/attestations', { check: 'dr-runbook-reviewed', by: 'During Freeze', role: 'devops-lead' }),
    post(svc.url, '/deployments', { version: 'frozen-1' }),
  ]);
  t.notOk(thawed, `both writes were answered while PostgreSQL was still frozen (it is frozen for ${frozenFor / 1000} s; the deadline is 2 s)`);
  t.equal(att.status, 503);
  t.match(await att.json(), { error: 'RDY_STORE_UNAVAILABLE', message: /nothing was saved.*did not complete the attestation write within 2000 ms/ });
  t.equal(dep.status, 503);
  t.match(await dep.json(), { error: 'RDY_STORE_UNAVAILABLE' });
  const ready = await fetch(`${svc.url}/readiness`);
  t.ok([200, 503].includes(ready.status), '/readiness answers while the store is frozen');
  t.match(await ready.json(), { store: { ok: false } }, 'and shows the store degraded');
  thawNow();
  await thaw;

  // The frozen backends had the writes in their socket buffers: once they have run them and
  // gone, nothing of a 503 may be in the database.
  await waitFor(
    'the abandoned sessions to end',
    async () => {
      const rows = await pg.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'readiness-exporter' AND state = 'active' AND pid <> pg_backend_pid()",
        [],
        db,
      );
      return rows[0]!.n === '0' ? true : undefined;
    },
    { timeoutMs: 30_000, everyMs: 200 },
  );
  await new Promise((r) => setTimeout(r, 1000));
  const names = (await pg.query<{ by_name: string }>('SELECT by_name FROM readiness_attestations ORDER BY created_at', [], db)).map((r) => r.by_name);
  t.same(names, ['Before Freeze'], 'the attestation answered 503 was not written, not even after PostgreSQL resumed');
  const deps = await pg.query('SELECT version FROM readiness_deployments', [], db);
  t.same(deps, [], 'nor the deployment');

  // Back: a 201 is durable (in the database when the answer arrives).
  const after = await waitFor(
    'a write to succeed after the thaw',
    async () => {
      const r = await post(svc.url, '/attestations', { check: 'dr-runbook-reviewed', by: 'After Thaw', role: 'devops-lead' });
      return r.status === 201 ? ((await r.json()) as { attestation: { id: string } }) : undefined;
    },
    { timeoutMs: 30_000, everyMs: 500 },
  );
  const row = await pg.query('SELECT by_name FROM readiness_attestations WHERE id = $1', [after.attestation.id], db);
  t.same(row, [{ by_name: 'After Thaw' }], 'the 201 is in the database');
  svc.child.kill('SIGTERM');
  t.equal(await svc.exited, 0);
});

suite.fault('PostgreSQL database dropped and recreated under a running service: writes refused, never made into the new one', 240_000, async (t) => {
  const pg = await sharedPostgres();
  await pg.query('CREATE DATABASE readiness');
  const url = pg.urlFor({ database: 'readiness' });
  const env = { READINESS_API_TOKEN: TOKEN, READINESS_DATABASE_URL: url };
  const svc = await startServe(t, ['-c', file], env);
  t.teardown(() => {
    if (!t.passing()) t.comment(svc.output().slice(-4000));
  });
  t.equal((await post(svc.url, '/attestations', { check: 'dr-runbook-reviewed', by: 'Original', role: 'devops-lead' })).status, 201);
  const storeId = /"storeId":"([0-9a-f-]{36})"/.exec(svc.output())?.[1];
  t.ok(storeId, `the store id is logged at start (${storeId})`);

  // Drop it (kicking the service's sessions) and recreate it with the store's tables, as a
  // restore into the wrong database or a second replica starting on an empty one would.
  await pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'readiness' AND pid <> pg_backend_pid()");
  await pg.query('DROP DATABASE readiness WITH (FORCE)');
  await pg.query('CREATE DATABASE readiness');
  const m = await runCli(['migrate'], { env: { READINESS_DATABASE_URL: url } });
  t.equal(m.code, 0, m.stderr);

  const refused = await waitFor(
    'a write to be refused',
    async () => {
      const r = await post(svc.url, '/attestations', { check: 'dr-runbook-reviewed', by: 'After Reset', role: 'devops-lead' });
      if (r.status === 201) return { status: 201, body: await r.json() };
      return r.status === 503 ? { status: 503, body: (await r.json()) as { message: string } } : undefined;
    },
    { timeoutMs: 30_000, everyMs: 300 },
  );
  t.equal(refused.status, 503, 'the write is refused');
  t.match(refused.body, { message: new RegExp(`the PostgreSQL store was replaced: it holds store [0-9a-f-]{36}, not store ${storeId}`) });
  const health = (await (await fetch(`${svc.url}/readiness`)).json()) as { store?: { ok: boolean; message: string } };
  t.match(health.store, { ok: false, message: /store was replaced/ }, '/readiness says why');
  await waitFor('store_up 0', async () => ((await (await fetch(`${svc.url}/metrics`)).text()).includes('readiness_exporter_store_up 0') ? true : undefined), { timeoutMs: 10_000 });
  const rows = await pg.query('SELECT count(*)::int AS n FROM readiness_check_latest', [], 'readiness');
  t.same(rows, [{ n: 0 }], 'no check result was written into the new database either');
  svc.child.kill('SIGTERM');
  await svc.exited;

  // Pinned with READINESS_STORE_ID, a start on the replaced database is an error.
  const pinned = await runCli(['serve', '-c', file, '--port', '0', '--host', '127.0.0.1'], { env: { ...env, READINESS_STORE_ID: storeId! }, timeoutMs: 90_000 });
  t.equal(pinned.code, 2);
  t.match(pinned.stderr, `but READINESS_STORE_ID expects ${storeId}`);
});
