// HA with real processes: three `readiness serve` replicas on one PostgreSQL. Each check
// runs on exactly one replica at a time, every replica serves the shared state, and when a
// replica is SIGKILLed its checks are taken over by the others.
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ReadinessBody } from '../src/state.js';
import { startServe } from './helpers/cli.js';
import { startPostgres } from './helpers/postgres.js';

const CHECKS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
const INTERVAL_S = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Health = { replica: { id: string; runs: string[] } };

t.test('three replicas share the checks, serve the same state, and fail over', async (t) => {
  const pg = await startPostgres(t);
  await pg.query('CREATE DATABASE readiness');
  const url = pg.urlFor({ database: 'readiness' });

  const hits = new Map<string, number[]>(CHECKS.map((c) => [c, []]));
  const app = createServer((req, res) => {
    hits.get((req.url ?? '').slice(1))?.push(Date.now());
    res.end('ok');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => app.close());
  const port = (app.address() as { port: number }).port;

  const dir = mkdtempSync(join(tmpdir(), 'readiness-ha-'));
  const file = join(dir, 'checklist.yaml');
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: ha
defaults: { interval: ${INTERVAL_S}s, timeout: 1s }
checks:
${CHECKS.map(
  (c) => `  - id: ${c}
    title: ${c}
    section: ha
    severity: high
    phase: verify
    probe: http
    with: { url: "http://127.0.0.1:${port}/${c}" }
    expect: ["status == 200"]
`,
).join('')}`,
  );

  const replicas = await Promise.all([0, 1, 2].map(() => startServe(t, ['-c', file], { READINESS_DATABASE_URL: url })));
  t.teardown(() => {
    if (!t.passing()) for (const r of replicas) t.comment(r.output().split('\n').filter((l) => /"level":(40|50)/.test(l)).join('\n'));
  });
  const health = async (r: { url: string }) => (await (await fetch(`${r.url}/healthz`)).json()) as Health;

  // Ownership settles into a partition of the checks.
  let owned: string[][] = [];
  for (let i = 0; i < 60; i++) {
    owned = (await Promise.all(replicas.map(health))).map((h) => h.replica.runs);
    const all = owned.flat();
    if (all.length === CHECKS.length && new Set(all).size === CHECKS.length && owned.every((o) => o.length === 2)) break;
    await sleep(250);
  }
  t.same(owned.flat().sort(), CHECKS, 'every check is owned by exactly one replica');
  t.same(owned.map((o) => o.length), [2, 2, 2], 'a fair share each');

  // Each check runs once per interval, not once per replica.
  for (const h of hits.values()) h.length = 0;
  const windowMs = 8_000;
  await sleep(windowMs);
  for (const [c, h] of hits) {
    t.ok(h.length >= windowMs / 1000 / INTERVAL_S - 1 && h.length <= windowMs / 1000 / INTERVAL_S + 1, `${c}: ${h.length} runs in ${windowMs / 1000}s at a ${INTERVAL_S}s interval`);
  }

  // Every replica serves the shared state.
  for (const r of replicas) {
    const body = (await (await fetch(`${r.url}/readiness`)).json()) as ReadinessBody;
    t.equal(body.summary.pass, CHECKS.length, `${r.url} sees all ${CHECKS.length} checks passing`);
  }

  // Kill one: its checks are taken over.
  const victim = replicas[0]!;
  const orphans = owned[0]!;
  const killedAt = Date.now();
  victim.child.kill('SIGKILL');
  await victim.exited;
  const survivors = replicas.slice(1);
  let takeoverMs = -1;
  for (let i = 0; i < 80; i++) {
    const resumed = orphans.every((c) => hits.get(c)!.some((ts) => ts > killedAt + 200));
    if (resumed) {
      takeoverMs = Date.now() - killedAt;
      break;
    }
    await sleep(250);
  }
  t.ok(takeoverMs > 0, `the orphaned checks ${orphans.join(', ')} ran again ${takeoverMs} ms after the kill`);
  t.comment(`takeover after SIGKILL: ${takeoverMs} ms (claim round 1 s, interval ${INTERVAL_S} s)`);
  const after = (await Promise.all(survivors.map(health))).map((h) => h.replica.runs);
  t.same(after.flat().sort(), CHECKS, 'the survivors own every check between them');
  t.equal(new Set(after.flat()).size, CHECKS.length, 'still no check on two replicas');
  for (const r of survivors) {
    const body = (await (await fetch(`${r.url}/readiness`)).json()) as ReadinessBody;
    t.equal(body.ready, true, 'no check went stale during the failover');
  }
  for (const r of survivors) r.child.kill('SIGTERM');
  for (const r of survivors) t.equal(await r.exited, 0);
});
