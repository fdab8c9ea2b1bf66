// HA across PostgreSQL restarts: three real replicas on a real PostgreSQL 15, restarted five
// times with a fast shutdown and five times with an immediate one (what `pg_ctl restart -m
// fast|immediate` sends the postmaster: SIGINT, SIGQUIT). Every session dies with the server;
// each replica must keep running what it held while the server is away, reclaim exactly
// that when it is back, and no check may run twice, move, or be owned by two replicas. In CI
// one restart of each mode; five of each with READINESS_HA_SOAK=1 (the soak run).
import tap from 'tap';
import { doubleRuns, largestGap, sleep, startCluster, watchOwnership } from './helpers/ha.js';

const INTERVAL_S = 3;
const HTTP = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9'];
const EACH = process.env.READINESS_HA_SOAK === '1' ? 5 : 1;
const MODES = [...Array<'fast'>(EACH).fill('fast'), ...Array<'immediate'>(EACH).fill('immediate')];

tap.test(`PostgreSQL restarts (fast and immediate, ${EACH} each) move no check`, async (t) => {
  const c = await startCluster(t, { http: HTTP, intervalS: INTERVAL_S });
  // Deadlines derive from the measured start-up: on a loaded machine everything is slower.
  const slack = Math.max(10_000, c.startupMs);
  // The file's own bound (tap's default is 120 s), from the measured start-up.
  tap.setTimeout(MODES.length * 4 * slack + 60_000);
  const shares = await c.settle(c.replicas, slack * 2);
  t.same([...shares.values()].map((s) => s.length), [3, 3, 3], 'a fair share each');
  const before = await c.leases();
  t.equal(before.length, HTTP.length, 'one lease per check');

  const watch = watchOwnership(c, t);
  const from = Date.now();
  const restarts: { mode: string; downMs: number; backMs: number }[] = [];
  for (const mode of MODES) {
    const t0 = Date.now();
    await c.pg.stop(mode);
    const down = Date.now();
    await sleep(500);
    await c.pg.start();
    const up = Date.now();
    // Back: every replica renewed its leases (no longer disconnected) and its store is up.
    const deadline = Date.now() + slack;
    for (;;) {
      const hs = await Promise.all(c.replicas.map((r) => c.health(r)));
      if (hs.every((h) => !h.replica.disconnected && h.store.ok)) break;
      if (Date.now() > deadline) throw new Error(`replicas not back ${slack} ms after the restart: ${JSON.stringify(hs)}`);
      await sleep(100);
    }
    restarts.push({ mode, downMs: up - down, backMs: Date.now() - t0 });
    // Let an interval pass with the server up: a late reshuffle would show here.
    await sleep(INTERVAL_S * 1000);
  }
  const to = Date.now();
  await watch.stop();
  t.comment(`restarts (down ms, until every replica renewed ms): ${restarts.map((r) => `${r.mode} ${r.downMs}/${r.backMs}`).join(', ')}`);

  t.ok(watch.samples() > 5 * MODES.length, `ownership sampled throughout (${watch.samples()} samples)`);
  t.same(watch.twice, [], '0 checks owned by two replicas in any sample');
  t.same(watch.changes, [], '0 ownership changes: no replica went away');
  const after = await c.leases();
  t.same(
    after.map((l) => [l.check_id, l.owner, l.epoch]),
    before.map((l) => [l.check_id, l.owner, l.epoch]),
    'every lease has the owner and the epoch it had before the restarts (no takeover at all)',
  );
  const doubles = doubleRuns(c.probes, INTERVAL_S * 1000, from);
  t.same(doubles, [], `0 double runs counted at the targets (${c.probes.filter((p) => p.at >= from).length} probes)`);
  for (const id of HTTP) {
    const gap = largestGap(c.probes, id, from, to);
    // A restart must not stop probing: no check may go a stale bound (3 intervals) without a run.
    t.ok(gap < 3 * INTERVAL_S * 1000, `${id}: probed throughout, largest gap ${gap} ms`);
  }
  const byReplica = new Map<string, Set<string>>();
  for (const p of c.probes.filter((p) => p.at >= from)) (byReplica.get(p.replica) ?? byReplica.set(p.replica, new Set()).get(p.replica)!).add(p.check);
  for (const [name, checks] of shares) t.same([...(byReplica.get(name) ?? [])].sort(), [...checks].sort(), `${name} probed exactly the checks it held`);

  for (const r of c.replicas) r.child.kill('SIGTERM');
  for (const r of c.replicas) t.equal(await r.exited, 0, `${r.name} stopped cleanly`);
});
