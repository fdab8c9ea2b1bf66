// HA with real processes: three `readiness serve` replicas on one PostgreSQL 15, targets
// counting every probe. Each check runs on exactly one replica at a time, every replica serves
// the shared state, the runs counter sums to what the targets saw, a run asked of a replica
// that does not own the check is made by its owner, and when a replica is SIGKILLed its
// checks are taken over with no double run.
import tap from 'tap';
import { doubleRuns, sample, sleep, startCluster, watchOwnership } from './helpers/ha.js';
import type { ReadinessBody } from '../src/state.js';

const HTTP = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
const INTERVAL_S = 3;

tap.test('three replicas share the checks, serve the same state, count runs once, and fail over', async (t) => {
  const c = await startCluster(t, { http: HTTP, intervalS: INTERVAL_S });
  const slack = Math.max(10_000, c.startupMs);
  // The file's own bound (tap's default is 120 s), from the measured start-up.
  tap.setTimeout(4 * slack + 90_000);
  const shares = await c.settle(c.replicas, slack * 2);
  t.same([...shares.values()].map((s) => s.length), [2, 2, 2], 'a fair share each');
  const watch = watchOwnership(c, t);
  const from = Date.now();

  // Each check runs once per interval, not once per replica, and only by its owner.
  await sleep(4 * INTERVAL_S * 1000);
  for (const id of HTTP) {
    const ps = c.probes.filter((p) => p.check === id && p.at >= from);
    const owner = [...shares].find(([, checks]) => checks.includes(id))![0];
    t.ok(ps.length >= 3 && ps.length <= 5, `${id}: ${ps.length} runs in ${4 * INTERVAL_S} s at a ${INTERVAL_S} s interval`);
    t.same([...new Set(ps.map((p) => p.replica))], [owner], `${id}: probed by its owner ${owner} only`);
  }

  // Every replica serves the shared state, and says which replica ran each check.
  for (const r of c.replicas) {
    const body = (await (await fetch(`${r.url}/readiness`)).json()) as ReadinessBody;
    t.equal(body.summary.pass, HTTP.length, `${r.name} sees all ${HTTP.length} checks passing`);
    const d = (await (await fetch(`${r.url}/checks/c1`)).json()) as { ranBy?: { replica: string } };
    t.equal(d.ranBy?.replica, c.replicas.find((x) => shares.get(x.name)!.includes('c1'))!.id, `${r.name}: /checks/c1 names the replica that ran it`);
  }

  // readiness_check_runs_total counts the runs each process made: per replica it is what the
  // targets saw from that replica, so the sum over replicas is every run once (not three times).
  const count = (id: string, name?: string) => c.probes.filter((p) => p.check === id && (name === undefined || p.replica === name)).length;
  const seenBefore = new Map(c.replicas.flatMap((r) => HTTP.map((id) => [`${r.name}/${id}`, count(id, r.name)])));
  const scrapes = await Promise.all(c.replicas.map((r) => c.metrics(r)));
  const seenAfter = new Map(c.replicas.flatMap((r) => HTTP.map((id) => [`${r.name}/${id}`, count(id, r.name)])));
  // Every result counts: on a loaded machine a probe that reached its target can still end in
  // `error` (its answer came after the check's timeout), and it is one run all the same.
  const runsOf = (m: string, id: string) => ['pass', 'warn', 'fail', 'error'].reduce((n, result) => n + (sample(m, `readiness_check_runs_total{check="${id}",result="${result}"}`) ?? 0), 0);
  const mismatched: string[] = [];
  scrapes.forEach((m, i) => {
    const name = c.replicas[i]!.name;
    for (const id of HTTP) {
      const n = runsOf(m, id);
      if (n < seenBefore.get(`${name}/${id}`)! - 1 || n > seenAfter.get(`${name}/${id}`)!) mismatched.push(`${name} ${id}: exports ${n}, its probes at the target ${seenBefore.get(`${name}/${id}`)}`);
    }
    // No deployment recorded yet: the family has no sample on any replica (not a 0).
    t.notOk(/^readiness_deployment_timestamp_seconds /m.test(m), `${name}: no deployment timestamp before the first deployment`);
  });
  t.same(mismatched, [], 'each replica\'s readiness_check_runs_total is the probes the targets received from it');
  for (const id of HTTP) {
    const sum = scrapes.reduce((n, m) => n + runsOf(m, id), 0);
    t.ok(sum >= count(id) - 3 && sum <= count(id), `${id}: summed over the replicas ${sum}, probes at the target ${count(id)} (not ${3 * count(id)})`);
  }

  // POST /checks/:id/run through a replica that does not own the check: its owner runs it.
  const target = 'c1';
  const owner = c.replicas.find((r) => shares.get(r.name)!.includes(target))!;
  const other = c.replicas.find((r) => r !== owner)!;
  const asked = Date.now();
  const ran = await c.api(other, `/checks/${target}/run`, {});
  t.equal(ran.status, 200);
  const runProbes = c.probes.filter((p) => p.check === target && p.at >= asked);
  // A run someone asked for is one more run by design: leave it out of the double-run count.
  const requested = new Set(runProbes.slice(0, 1));
  t.ok(runProbes.length >= 1, 'the run was made');
  t.same([...new Set(runProbes.map((p) => p.replica))], [owner.name], `by the owner ${owner.name}, not by ${other.name}`);
  t.ok(Date.parse(ran.body.lastRun as string) >= asked - 1000, 'the answer carries the new run');

  // kill -9 one replica, between two of its probes (a probe in flight at the kill would be
  // lost with the process, and its check run again at once: see the README's HA section).
  const victim = c.replicas[0]!;
  const orphans = shares.get(victim.name)!;
  for (let i = 0; i < 100; i++) {
    const recent = c.probes.some((p) => orphans.includes(p.check) && p.at > Date.now() - 300);
    if (!recent && orphans.every((id) => (c.inFlight.get(id) ?? 0) === 0)) break;
    await sleep(50);
  }
  const killedAt = Date.now();
  victim.child.kill('SIGKILL');
  await victim.exited;
  const survivors = c.replicas.slice(1);
  watch.only(survivors);
  let takeoverMs = -1;
  while (Date.now() - killedAt < 5 * INTERVAL_S * 1000) {
    if (orphans.every((id) => c.probes.some((p) => p.check === id && p.at > killedAt && p.replica !== victim.name))) {
      takeoverMs = Date.now() - killedAt;
      break;
    }
    await sleep(100);
  }
  t.ok(takeoverMs > 0, `the orphaned checks ${orphans.join(', ')} ran again ${takeoverMs} ms after the kill`);
  t.comment(`takeover after SIGKILL: first runs ${takeoverMs} ms after the kill (interval ${INTERVAL_S} s)`);
  await c.settle(survivors, slack);
  await sleep(2 * INTERVAL_S * 1000);
  await watch.stop();
  const after = [...(await c.ownership(survivors)).values()].flat().sort();
  t.same(after, HTTP, 'the survivors own every check between them');
  t.same(watch.twice, [], `0 checks owned by two replicas in any sample (${watch.samples()} samples)`);
  const scheduled = c.probes.filter((p) => !requested.has(p));
  t.same(doubleRuns(scheduled, INTERVAL_S * 1000, from), [], `0 double runs counted at the targets (${scheduled.filter((p) => p.at >= from).length} scheduled probes)`);
  for (const r of survivors) {
    const body = (await (await fetch(`${r.url}/readiness`)).json()) as ReadinessBody;
    t.equal(body.ready, true, `${r.name}: no check went stale during the failover`);
  }
  for (const r of survivors) r.child.kill('SIGTERM');
  for (const r of survivors) t.equal(await r.exited, 0, `${r.name} stopped cleanly`);
});
