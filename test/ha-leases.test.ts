// The lease rules of src/ha.ts against a real PostgreSQL 15, in one process (the
// three-process tests are test/ha*.test.ts): a restart changes no lease, a lease whose holder
// stopped renewing is taken only after it expired and only by a replica whose session is
// older than the ttl, and a holder whose session died while the taker's lived is replaced at once.
import pino from 'pino';
import t from 'tap';
import { PgLeases, type Acquired } from '../src/ha.js';
import { migratedDatabase, startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CHECKS = ['a', 'b', 'c', 'd'];
const TTL = 2_000;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test('leases', async (t) => {
  const pg = await startPostgres(t);
  let n = 0;
  const fresh = async () => {
    const name = `leases_${++n}`;
    return { url: await migratedDatabase(pg, name), name };
  };
  const replica = (url: string, id: string) => {
    const l = new PgLeases(url, { log, replicaId: id, ttlMs: TTL });
    const acquired: Acquired[] = [];
    l.onAcquire = (list) => acquired.push(...list);
    t.teardown(() => l.stop());
    return Object.assign(l, { acquired });
  };

  t.test('a PostgreSQL restart moves nothing', async (t) => {
    const { url, name } = await fresh();
    const a = replica(url, 'a');
    const b = replica(url, 'b');
    await Promise.all([a.start(CHECKS), b.start(CHECKS)]);
    await until('a fair share each', () => a.owned().length === 2 && b.owned().length === 2);
    const epochs = await pg.query('SELECT check_id, owner, epoch FROM readiness_leases ORDER BY check_id', [], name);
    const [ownedA, ownedB] = [a.owned(), b.owned()];
    const acquiredBefore = a.acquired.length + b.acquired.length;
    for (const mode of ['fast', 'immediate'] as const) {
      await pg.stop(mode);
      await sleep(TTL + 500);
      t.same([a.owned(), b.owned()], [ownedA, ownedB], `${mode}: with PostgreSQL down for longer than the ttl, each keeps running what it held`);
      await pg.start();
      await until('both renewed', () => !a.describe().disconnected && !b.describe().disconnected);
      await sleep(TTL);
      t.same([a.owned(), b.owned()], [ownedA, ownedB], `${mode}: after the restart each holds exactly what it held`);
    }
    t.same(await pg.query('SELECT check_id, owner, epoch FROM readiness_leases ORDER BY check_id', [], name), epochs, 'no lease changed owner or epoch');
    t.equal(a.acquired.length + b.acquired.length, acquiredBefore, 'nothing was acquired again');
  });

  t.test('an expired lease of a live session is taken only by a replica settled for a ttl', async (t) => {
    const { url, name } = await fresh();
    // A "hung" holder: its session is open (like a SIGSTOPped process) but it renews nothing.
    const ghost = await pg.connect(url);
    await ghost.query(
      `INSERT INTO readiness_replicas (id, started_at, heartbeat_at, backend_pid, backend_start)
       SELECT 'ghost', now(), now(), pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
    );
    await pg.query("INSERT INTO readiness_leases SELECT id, 'ghost', 7, now() - interval '1 second', now() FROM unnest($1::text[]) id", [CHECKS], name);
    const started = Date.now();
    const b = replica(url, 'b');
    await b.start(CHECKS);
    t.same(b.owned(), [], 'a replica whose own session is younger than the ttl does not take expired leases: after a restart their holders may not have renewed yet');
    await until('takeover', () => b.owned().length === CHECKS.length, TTL * 4);
    const waited = Date.now() - started;
    t.ok(waited >= TTL - 100, `taken once its session was a ttl old (${waited} ms)`);
    const rows = await pg.query<{ owner: string; epoch: string }>('SELECT owner, epoch FROM readiness_leases', [], name);
    t.ok(rows.every((r) => r.owner === 'b' && r.epoch === '8'), 'each epoch grew by one: the old holder is fenced');
    await ghost.end();
  });

  t.test('a holder whose session ended while the taker\'s lived is replaced at once', async (t) => {
    const { url, name } = await fresh();
    const b = replica(url, 'b');
    await b.start([]);
    await sleep(100);
    const ghost = await pg.connect(url);
    await ghost.query(
      `INSERT INTO readiness_replicas (id, started_at, heartbeat_at, backend_pid, backend_start)
       SELECT 'ghost', now(), now(), pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
    );
    await pg.query("INSERT INTO readiness_leases SELECT id, 'ghost', 1, now() + interval '1 hour', now() FROM unnest($1::text[]) id", [CHECKS], name);
    await b.start(CHECKS);
    await sleep(3 * b.renewMs);
    t.same(b.owned(), [], 'the holder is alive (its session is open): its leases stand');
    await ghost.end();
    const killed = Date.now();
    await until('takeover', () => b.owned().length === CHECKS.length, TTL * 4);
    t.ok(Date.now() - killed < TTL, `taken ${Date.now() - killed} ms after the holder's session ended, before its lease expired`);
    t.same(
      b.acquired.map((x) => x.check).sort(),
      CHECKS,
      'handed to the scheduler as acquired',
    );
  });

  t.test('a replica stopping gives its leases back at once', async (t) => {
    const { url } = await fresh();
    const a = replica(url, 'a');
    await a.start(CHECKS);
    await until('a holds all', () => a.owned().length === CHECKS.length);
    const fence = a.fence('a');
    t.match(fence, { owner: 'a', epoch: 1 }, 'the fencing token of a held lease');
    const b = replica(url, 'b');
    await b.start(CHECKS);
    await a.stop();
    t.same(a.owned(), [], 'a runs nothing after stop');
    const stopped = Date.now();
    await until('b takes over', () => b.owned().length === CHECKS.length, TTL * 4);
    t.ok(Date.now() - stopped < TTL, `released leases are taken before any would expire (${Date.now() - stopped} ms)`);
    t.match(b.fence('a'), { owner: 'b', epoch: 2 });
  });
});
