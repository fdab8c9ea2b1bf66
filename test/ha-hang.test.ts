// HA with a hung replica: SIGSTOP one of three real replicas for five intervals, then
// SIGCONT. Its PostgreSQL session stays open (a paused process keeps its sockets), so only the
// lease expiry can tell it is gone: its checks must be taken over within two intervals, and
// once it resumes it must not publish the result of the run it had in flight (the fencing
// epoch changed), nor probe a check it no longer owns.
import tap from 'tap';
import { closestSameReplica, doubleRuns, sleep, startCluster, watchOwnership, type Probe } from './helpers/ha.js';

const INTERVAL_S = 3;
const TTL_S = 3;
const HOLD_MS = 600;
const STOP_AFTER_MS = 150;
const HTTP = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];

tap.test('a hung replica loses its checks within two intervals and cannot publish when it resumes', async (t) => {
  const c = await startCluster(t, { http: HTTP, intervalS: INTERVAL_S, leaseTtl: `${TTL_S}s` });
  const slack = Math.max(10_000, c.startupMs);
  // The file's own bound (tap's default is 120 s), from the measured start-up.
  tap.setTimeout(6 * slack + 120_000);
  const shares = await c.settle(c.replicas, slack * 2);
  t.same([...shares.values()].map((s) => s.length), [2, 2, 2], 'a fair share each');

  const victim = c.replicas[0]!;
  const others = c.replicas.slice(1);
  const watch = watchOwnership(c, t);
  const from = Date.now();

  // Stop the victim while one of its runs is in flight: the targets hold their answers for
  // HOLD_MS, and the test stops the victim STOP_AFTER_MS after its next probe (of whichever
  // check it runs now: on a loaded machine ownership may have moved since it settled) arrives.
  // Not at the arrival itself: the victim's other check is due at the same instant, and a stop
  // sent right then lands while that run writes its request. A stop between the lease's last
  // answer and the write system call cannot be caught inside the process (see gatedConnect in
  // src/probes/http.ts); its result is fenced, but the target would count the request after
  // SIGCONT. The pause lets such runs finish sending. Both timers are this process's, so the
  // stop is always sent before the held answer: the run stays in flight.
  for (const id of HTTP) c.hold(id, HOLD_MS);
  let waiting: NodeJS.Timeout | undefined;
  const inflight = await new Promise<Probe | undefined>((resolve) => {
    waiting = setTimeout(() => resolve(undefined), 4 * INTERVAL_S * 1000 + slack);
    c.onProbe = (p) => {
      if (p.replica === victim.name) {
        c.onProbe = undefined;
        setTimeout(() => {
          victim.child.kill('SIGSTOP');
          resolve(p);
        }, STOP_AFTER_MS);
      }
    };
  });
  clearTimeout(waiting);
  const stoppedAt = Date.now();
  t.teardown(() => {
    if (victim.child.exitCode === null) victim.child.kill('SIGCONT');
  });
  if (!inflight) throw new Error(`${victim.name} sent no probe for ${4 * INTERVAL_S + slack / 1000} s: ${JSON.stringify([...(await c.ownership()).entries()])}`);
  watch.only(others);
  // What it held when it stopped: nobody can take a lease of a stopped replica before it
  // expires (its session stays open), so this read is the state at the stop.
  const before = new Map((await c.leases()).map((l) => [l.check_id, l]));
  const held = [...before.values()].filter((l) => l.owner === victim.id).map((l) => l.check_id);
  const slow = inflight.check;
  t.ok(held.length > 0, `it held ${held.join(', ')} when it stopped, probing ${slow}`);

  // Takeover: the others report running every check the victim held (then PostgreSQL shows
  // each of those leases with another owner and a higher epoch: the victim is fenced).
  let takeoverMs = -1;
  while (Date.now() - stoppedAt < 5 * INTERVAL_S * 1000) {
    const theirs = [...(await c.ownership(others)).values()].flat();
    if (held.every((id) => theirs.includes(id))) {
      takeoverMs = Date.now() - stoppedAt;
      break;
    }
    await sleep(100);
  }
  t.ok(takeoverMs >= 0, `the hung replica's checks ${held.join(', ')} were taken over`);
  t.ok(takeoverMs >= 0 && takeoverMs <= 2 * INTERVAL_S * 1000, `within two intervals: ${takeoverMs} ms after SIGSTOP (lease ttl ${TTL_S} s, interval ${INTERVAL_S} s)`);
  t.comment(`takeover of a hung replica: ${takeoverMs} ms after SIGSTOP`);
  const taken = new Map((await c.leases()).map((l) => [l.check_id, l]));
  t.ok(
    held.every((id) => taken.get(id)?.owner !== victim.id && taken.get(id)!.epoch > before.get(id)!.epoch),
    'each lease it held has a new owner and a higher epoch',
  );

  // Five intervals stopped in all; the others keep every check running meanwhile.
  await sleep(Math.max(0, stoppedAt + 5 * INTERVAL_S * 1000 - Date.now()));
  const owned = [...(await c.ownership(others)).values()].flat().sort();
  t.same(owned, [...HTTP].sort(), 'while it is stopped, the others run every check');
  const resumedAt = Date.now();
  victim.child.kill('SIGCONT');
  watch.only(c.replicas);
  for (const id of HTTP) c.hold(id, 0);

  // After it resumes: wait for it to notice, then a few intervals of normal running.
  const deadline = Date.now() + slack;
  let discarded = 0;
  while (Date.now() < deadline) {
    const m = await c.metrics(victim);
    discarded = Number(/readiness_exporter_results_discarded_total\{reason="fenced"\} (\d+)/.exec(m)?.[1] ?? 0);
    if (discarded > 0) break;
    await sleep(100);
  }
  t.ok(discarded >= 1, `the resumed replica counted its in-flight result as fenced (${discarded})`);
  await sleep(3 * INTERVAL_S * 1000);
  await watch.stop();
  const to = Date.now();

  // No result published by the fenced replica: nothing from its old epochs ended after the takeover.
  const rows = await c.query<{ check_id: string; started: string; finished: Date; epoch: string | null }>(
    `SELECT check_id, result->>'startedAt' AS started, finished_at AS finished, result->'ranBy'->>'epoch' AS epoch
       FROM readiness_check_history WHERE result->'ranBy'->>'replica' = $1`,
    [victim.id],
  );
  const late = rows.filter((r) => held.includes(r.check_id) && Number(r.epoch) === before.get(r.check_id)!.epoch && r.finished.getTime() >= stoppedAt);
  t.same(late, [], 'no result of the hung replica under its old leases was published after it stopped');
  t.notOk(
    rows.some((r) => r.check_id === slow && Math.abs(Number(r.started) - inflight.at) < 1_000),
    `the run in flight at SIGSTOP (${slow}, started ${new Date(inflight.at).toISOString()}) was not published`,
  );

  // After resuming, it probes only checks whose lease it (re)acquired before the probe. (Its
  // probes that arrive between the stop and SIGCONT were sent before it stopped: a stopped
  // process sends nothing; its run of another check in step with the one in flight, say.)
  const leases = await c.leases();
  const sentBeforeStop = c.probes.filter((p) => p.replica === victim.name && p.at > inflight.at && p.at < resumedAt);
  t.comment(`probes of the victim that arrived after the one it was stopped at and before SIGCONT: ${sentBeforeStop.map((p) => `${p.check} +${p.at - inflight.at} ms`).join(', ') || 'none'}`);
  const afterResume = c.probes.filter((p) => p.replica === victim.name && p.at >= resumedAt);
  for (const p of afterResume) {
    const l = leases.find((x) => x.check_id === p.check)!;
    t.ok(l.owner === victim.id && l.acquired_at.getTime() <= p.at + 50, `after resuming it probed ${p.check} only under a lease it acquired again`);
  }
  t.comment(`the resumed replica probed ${afterResume.length} time(s) after SIGCONT, all under new leases`);
  const refused = victim.output().split('\n').filter((l) => l.includes('lost before its probe sent')).length;
  t.comment(`runs it started before the stop and refused to send after SIGCONT: ${refused}`);

  t.same(watch.twice, [], `0 checks owned by two replicas in any sample (${watch.samples()} samples after resume)`);
  const doubles = doubleRuns(c.probes, INTERVAL_S * 1000, from);
  t.same(doubles, [], `0 double runs counted at the targets (${c.probes.filter((p) => p.at >= from && p.at <= to).length} probes)`);
  t.comment(`closest two probes of one check by one replica: ${closestSameReplica(c.probes, from)} ms (interval ${INTERVAL_S * 1000} ms)`);
  t.ok(resumedAt - stoppedAt >= 5 * INTERVAL_S * 1000, 'stopped for five intervals');

  for (const r of c.replicas) r.child.kill('SIGTERM');
  for (const r of c.replicas) t.equal(await r.exited, 0, `${r.name} stopped cleanly`);
});
