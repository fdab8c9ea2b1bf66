// Acknowledged writes win in HA: three real replicas on a real PostgreSQL 15. An attestation,
// a revocation or a deployment written through a replica that does not own the check, just
// before the owner's next run: the owner evaluates with records read before the write (its
// cache is refreshed once a second), and its result must not replace the one computed from
// the newer records, on any replica. The loop runs until that race has been hit (the owner's
// stale result refused) at least 20 times for revocations and 20 for attestations with
// READINESS_HA_SOAK=1 (the soak run, docs in the README's HA section); in CI, 3 times each and
// one deployment: the same assertions, at a cost of seconds.
import tap from 'tap';
import { sleep, startCluster, type Cluster, type Replica } from './helpers/ha.js';

const ATT = ['a1', 'a2', 'a3'];
const DUTY = 'd1';
const INTERVAL_S = 1;
const SOAK = process.env.READINESS_HA_SOAK === '1';
const HITS = SOAK ? 20 : 3;
const DEPLOY_HITS = SOAK ? 5 : 1;
/** How long before the owner's next run the write is sent. */
const LEAD_MS = 150;
/** After an acknowledged write, how long every replica is watched at least (a refresh is 1 s). */
const WATCH_MS = 2_000;

interface Detail {
  state: string;
  message: string;
  ranBy?: { replica: string };
  history: { startedAt: string }[];
}

const detail = async (r: Replica, id: string) => (await (await fetch(`${r.url}/checks/${id}?limit=1`)).json()) as Detail;

/** Lines in which the replica said it did not publish a result of this check (a stale owner run). */
function refusals(r: Replica, id: string): number {
  return r.output().split('\n').filter((l) => l.includes(`"check":"${id}"`) && l.includes('result not published')).length;
}

async function ownerOf(c: Cluster, id: string): Promise<Replica> {
  for (;;) {
    const owned = await c.ownership();
    const name = [...owned].find(([, checks]) => checks.includes(id))?.[0];
    if (name) return c.replicas.find((r) => r.name === name)!;
    await sleep(100);
  }
}

/** Waits until just before the owner's next run of `id` (one interval after its last start). */
async function untilJustBefore(owner: Replica, id: string): Promise<void> {
  const d = await detail(owner, id);
  const last = Date.parse(d.history[0]?.startedAt ?? '');
  let next = last + INTERVAL_S * 1000;
  while (next - LEAD_MS < Date.now()) next += INTERVAL_S * 1000;
  await sleep(next - LEAD_MS - Date.now());
}

/**
 * Watches every replica after a write was acknowledged: each must serve `want` once it has it
 * and never the older answer again, and the writer from the first sample on. It watches for
 * WATCH_MS at least (a refresh is 1 s: the owner's next run and every replica's refresh fall
 * in it) and until every replica serves it, up to `deadlineMs` (a loaded machine is slow to
 * refresh; that is not what is tested). Returns a description of each violation.
 */
async function watchAfterAck(c: Cluster, id: string, writer: Replica, want: (d: Detail) => boolean, deadlineMs: number): Promise<string[]> {
  const seen = new Map<string, boolean[]>(c.replicas.map((r) => [r.name, []]));
  const start = Date.now();
  for (;;) {
    const ds = await Promise.all(c.replicas.map((r) => detail(r, id)));
    ds.forEach((d, i) => seen.get(c.replicas[i]!.name)!.push(want(d)));
    const elapsed = Date.now() - start;
    if (elapsed >= deadlineMs || (elapsed >= WATCH_MS && [...seen.values()].every((s) => s.includes(true)))) break;
    await sleep(100);
  }
  const bad: string[] = [];
  const last = await Promise.all(c.replicas.map((r) => detail(r, id)));
  const row = await c.query<{ state: string; rv: string; by: string }>(
    "SELECT status->>'state' AS state, records_version AS rv, status->'last'->'ranBy'->>'replica' AS by FROM readiness_check_latest WHERE check_id = $1",
    [id],
  );
  const why = `; in the end ${last.map((d, i) => `${c.replicas[i]!.name} ${d.state} (ran by ${d.ranBy?.replica ?? '?'})`).join(', ')}, stored ${JSON.stringify(row[0])}`;
  for (const [name, s] of seen) {
    const first = s.indexOf(true);
    if (first < 0) bad.push(`${name} never served it in ${deadlineMs} ms${why}`);
    else if (s.slice(first).includes(false)) bad.push(`${name} served it, then the older answer again: ${s.map((x) => (x ? 'new' : 'old')).join(' ')}`);
    else if (name === writer.name && first !== 0) bad.push(`${name} acknowledged the write but served the older answer first`);
  }
  return bad;
}

tap.test('an attestation, a revocation or a deployment acknowledged by any replica is never undone', async (t) => {
  const c = await startCluster(t, { http: [], attestation: ATT, duties: [DUTY], intervalS: INTERVAL_S });
  const slack = Math.max(10_000, c.startupMs);
  // The file's own bound (tap's default is 120 s), from the measured start-up.
  tap.setTimeout(4 * slack + (SOAK ? 480_000 : 150_000));
  await c.settle(c.replicas, slack * 2);

  const hits = { attest: 0, revoke: 0, deploy: 0 };
  const tries = { attest: 0, revoke: 0, deploy: 0 };
  const undone: string[] = [];
  const budget = Date.now() + (SOAK ? 300_000 : 60_000);

  const race = async (id: string) => {
    while ((hits.attest < HITS || hits.revoke < HITS) && Date.now() < budget && undone.length === 0) {
      for (const kind of ['attest', 'revoke'] as const) {
        const owner = await ownerOf(c, id);
        const writer = c.replicas.find((r) => r !== owner)!;
        const before = refusals(owner, id);
        await untilJustBefore(owner, id);
        tries[kind]++;
        let res;
        if (kind === 'attest') {
          res = await c.api(writer, '/attestations', { check: id, by: `Tester ${tries.attest}`, role: 'qa' });
          if (res.status !== 201) throw new Error(`attest: ${res.status} ${JSON.stringify(res.body)}`);
          pending.set(id, (res.body.attestation as { id: string }).id);
          t.equal((res.body.check as { state: string }).state, 'pass', `${id}: the writer answers with the attested state`, { diagnostic: false });
        } else {
          res = await c.api(writer, `/attestations/${pending.get(id)}/revoke`, { by: 'Revoker' });
          if (res.status !== 200) throw new Error(`revoke: ${res.status} ${JSON.stringify(res.body)}`);
        }
        const want = kind === 'attest' ? (d: Detail) => d.state === 'pass' : (d: Detail) => d.state === 'fail' && /revoked/.test(d.message);
        const bad = await watchAfterAck(c, id, writer, want, slack);
        undone.push(...bad.map((b) => `${id} ${kind} #${tries[kind]}: ${b}`));
        if (refusals(owner, id) > before) hits[kind]++;
      }
    }
  };
  const pending = new Map<string, string>();
  await Promise.all(ATT.map(race));
  t.same(undone, [], `0 acknowledged writes undone (${tries.attest} attestations, ${tries.revoke} revocations through a replica that did not own the check)`);
  t.ok(hits.revoke >= HITS, `the race was hit for revocations: ${hits.revoke} of ${tries.revoke} (need ${HITS})`);
  t.ok(hits.attest >= HITS, `the race was hit for attestations: ${hits.attest} of ${tries.attest} (need ${HITS})`);
  t.comment(`race hits: revoke ${hits.revoke}/${tries.revoke}, attest ${hits.attest}/${tries.attest}`);

  // Deployments: a post-deployment duty attested before a deployment no longer counts after it.
  const deployUndone: string[] = [];
  while (hits.deploy < DEPLOY_HITS && tries.deploy < 4 * DEPLOY_HITS && deployUndone.length === 0) {
    const owner = await ownerOf(c, DUTY);
    const writer = c.replicas.find((r) => r !== owner)!;
    const a = await c.api(owner, '/attestations', { check: DUTY, by: 'Duty Doer', role: 'qa' });
    t.equal(a.status, 201, 'duty attested', { diagnostic: false });
    await sleep(1_500);
    const before = refusals(owner, DUTY);
    await untilJustBefore(owner, DUTY);
    tries.deploy++;
    const version = `v${tries.deploy}`;
    const d = await c.api(writer, '/deployments', { version });
    if (d.status !== 201) throw new Error(`deploy: ${d.status} ${JSON.stringify(d.body)}`);
    const bad = await watchAfterAck(c, DUTY, writer, (x) => x.message.includes(`after deployment ${version}`), slack);
    deployUndone.push(...bad.map((b) => `deployment ${version}: ${b}`));
    if (refusals(owner, DUTY) > before) hits.deploy++;
  }
  t.same(deployUndone, [], `0 acknowledged deployments undone (${tries.deploy} through a replica that did not own the duty)`);
  t.ok(hits.deploy >= DEPLOY_HITS, `the race was hit for deployments: ${hits.deploy} of ${tries.deploy} (need ${DEPLOY_HITS})`);

  // The shared store holds the newest answer for every check.
  const rows = await c.query<{ check_id: string; state: string; rv: string }>("SELECT check_id, status->>'state' AS state, records_version AS rv FROM readiness_check_latest ORDER BY check_id");
  const version = Number((await c.query<{ version: string }>('SELECT version FROM readiness_records_version'))[0]!.version);
  for (const r of rows.filter((x) => ATT.includes(x.check_id))) t.equal(r.state, 'fail', `${r.check_id}: stored as revoked`);
  t.ok(
    rows.every((r) => Number(r.rv) <= version),
    'no stored result claims records newer than the store has',
  );
  for (const r of c.replicas) r.child.kill('SIGTERM');
  for (const r of c.replicas) t.equal(await r.exited, 0, `${r.name} stopped cleanly`);
});
