// A replica runs a check only while it can show it still holds the lease (src/ha.ts), against
// a real PostgreSQL 15 in one process: a lease round that PostgreSQL leaves unanswered does not
// extend the lease (the others take it once it expired), and a process that stalled while
// PostgreSQL was down runs nothing until PostgreSQL confirms its leases. Both held on the old
// code: a slow round switched to "disconnected" and kept every check however long it lasted, and
// a stall was not noticed at all.
import pino from 'pino';
import t from 'tap';
import { PgLeases } from '../src/ha.js';
import { migratedDatabase, startPostgres } from './helpers/postgres.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CHECKS = ['a', 'b', 'c', 'd'];
const TTL = 2_000;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Blocks this process's event loop (a stall: GC, CPU starvation, a SIGSTOP seen from inside). */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
}

t.test('lease lapses', async (t) => {
  const pg = await startPostgres(t);
  let n = 0;
  const fresh = async () => {
    const name = `lapse_${++n}`;
    return { url: await migratedDatabase(pg, name), name };
  };
  const replica = (url: string, id: string) => {
    const l = new PgLeases(url, { log, replicaId: id, ttlMs: TTL });
    t.teardown(() => l.stop());
    return l;
  };
  const leases = async (name: string) => pg.query<{ check_id: string; owner: string; epoch: string }>('SELECT check_id, owner, epoch FROM readiness_leases ORDER BY check_id', [], name);

  t.test('an unanswered lease round does not extend the lease: the holder stops before another may take it', async (t) => {
    const { url, name } = await fresh();
    const a = replica(url, 'a');
    await a.start(CHECKS);
    t.same(a.owned(), CHECKS, 'a holds every check');
    const b = replica(url, 'b');
    await b.start(CHECKS);
    // Hold a's heartbeat row: a's rounds wait in PostgreSQL (as under a slow or overloaded
    // server), b's go on, and a's leases expire there after the ttl.
    const blocker = await pg.connect(url);
    t.teardown(() => blocker.end().catch(() => {}));
    await blocker.query('BEGIN');
    await blocker.query("SELECT 1 FROM readiness_replicas WHERE id = 'a' FOR UPDATE");
    const blockedAt = Date.now();
    // Sample both every 20 ms: a check owned by both in one sample is a double run.
    const twice: string[] = [];
    let aStoppedAfter = -1;
    await until('b takes every check', () => {
      const [oa, ob] = [a.owned(), b.owned()];
      for (const id of oa) if (ob.includes(id)) twice.push(id);
      if (aStoppedAfter < 0 && oa.length === 0) aStoppedAfter = Date.now() - blockedAt;
      return ob.length === CHECKS.length;
    });
    const takenAfter = Date.now() - blockedAt;
    t.same(twice, [], 'no check owned by both in any sample');
    t.ok(aStoppedAfter >= 0 && aStoppedAfter < takenAfter, `a stopped running its checks (${aStoppedAfter} ms) before b took them (${takenAfter} ms)`);
    t.same(a.owned(), [], 'a runs nothing while its round is unanswered');
    t.equal(a.fence('a'), undefined, 'and has no fence to present');
    t.ok((await leases(name)).every((l) => l.owner === 'b' && l.epoch === '2'), 'b holds every lease under a new epoch');
    await blocker.query('ROLLBACK');
    // Answered at last, a finds its leases taken; it may get a fair share back, acquired anew.
    await until('a fair share each again', () => a.owned().length === 2 && b.owned().length === 2);
    for (const id of a.owned()) if (b.owned().includes(id)) twice.push(id);
    t.same(twice, [], 'no check owned by both afterwards');
    const now = await leases(name);
    t.ok(now.filter((l) => l.owner === 'a').every((l) => l.epoch === '3'), `a runs only leases it acquired again (epoch 3): ${JSON.stringify(now)}`);
  });

  t.test('a lease whose proof lapsed is kept when nobody took it: no churn after a slow round', async (t) => {
    const { url, name } = await fresh();
    const a = replica(url, 'a');
    await a.start(CHECKS);
    const before = await leases(name);
    const blocker = await pg.connect(url);
    t.teardown(() => blocker.end().catch(() => {}));
    await blocker.query('BEGIN');
    await blocker.query("SELECT 1 FROM readiness_replicas WHERE id = 'a' FOR UPDATE");
    await until('a pauses', () => a.owned().length === 0);
    await blocker.query('ROLLBACK');
    await until('a runs again', () => a.owned().length === CHECKS.length);
    t.same(await leases(name), before, 'the same leases, epochs unchanged');
  });

  t.test('a process that stalls while PostgreSQL is down runs nothing until PostgreSQL confirms its leases', async (t) => {
    const { url, name } = await fresh();
    const a = replica(url, 'a');
    await a.start(CHECKS);
    t.same(a.owned(), CHECKS, 'a holds every check');
    const before = await leases(name);
    await pg.stop('fast');
    await until('a notices PostgreSQL is gone', () => a.describe().disconnected === true);
    await sleep(TTL);
    t.same(a.owned(), CHECKS, 'with PostgreSQL down for a ttl and the process running, a keeps running its checks');
    // A stall of more than half a ttl: a replica that was stopped cannot tell how long
    // PostgreSQL has been back, nor whether another replica took its leases meanwhile.
    stall(TTL * 0.75);
    t.same(a.owned(), [], 'the first look after the stall: nothing is run (decided from the clock, before any timer ran)');
    await sleep(3 * a.renewMs);
    t.same(a.owned(), [], 'nor later while PostgreSQL is down');
    t.notOk(a.describe().disconnected, 'no longer running without PostgreSQL');
    await pg.start();
    await until('a confirms its leases', () => a.owned().length === CHECKS.length);
    t.same(await leases(name), before, 'confirmed by a renewal: the same leases, epochs unchanged');
  });

  t.test('a stall while connected: the leases lapse with their proof and are confirmed again', async (t) => {
    const { url } = await fresh();
    const a = replica(url, 'a');
    await a.start(CHECKS);
    stall(TTL);
    t.same(a.owned(), [], 'after a stall of a ttl nothing runs, though no timer noticed yet');
    await until('confirmed', () => a.owned().length === CHECKS.length, TTL * 2);
  });
});
