// What the postgres kind's connection counts mean, and how many connections the exporter
// holds (issue 11, item 3), against a real PostgreSQL 15 and the real `readiness check` at
// --concurrency 1 and 8:
//
//  - max_connections = 11, 3 of them reserved for superusers: 8 for everyone else;
//  - the app holds 4 sessions (2 idle, 1 idle in transaction, 1 running a statement), and a
//    sampler (the test) 1 more, counting the exporter's sessions every few ms;
//  - a person counts client sessions with psql while the exporter is not connected: 5;
//  - the exporter runs 8 `ready` checks, 3 connection_usage checks (value: connections,
//    usage_percent, idle_in_transaction) and a query that keeps a pooled connection busy,
//    all on one database, as a non-superuser monitoring role (pg_monitor) sharing the 8
//    non-reserved slots: 3 are left for it.
//
// Every count must equal the person's, and the exporter must never hold more than 3
// connections, so no check is refused a slot.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import t from 'tap';
import { stringify } from 'yaml';
import type { ReadinessBody } from '../../src/state.js';
import { runCli } from '../helpers/cli.js';
import { startPostgres } from '../helpers/postgres.js';
import { removeDir, runCommand, serviceDir } from '../helpers/service.js';

const READY = Array.from({ length: 8 }, (_, i) => `ready-${i + 1}`);
const BOUND = 3;

const pgServer = await startPostgres(t, { settings: { max_connections: 11, superuser_reserved_connections: 3 } });
await pgServer.query(`CREATE ROLE app LOGIN PASSWORD 'app-pw'`);
await pgServer.query(`CREATE ROLE monitor LOGIN PASSWORD 'monitor-pw'`);
await pgServer.query('GRANT pg_monitor TO monitor');
const appUrl = pgServer.urlFor({ user: 'app', password: 'app-pw' });
const monitorUrl = pgServer.urlFor({ user: 'monitor', password: 'monitor-pw' });

// The app: 2 idle sessions, 1 idle in transaction, 1 running a long statement.
const app: pg.Client[] = [];
for (let i = 0; i < 4; i++) app.push(await pgServer.connect(appUrl));
await app[2]!.query('BEGIN');
await app[2]!.query('SELECT 1');
const running = app[3]!.query('SELECT pg_sleep(600)').catch(() => {});
t.teardown(async () => {
  await pgServer.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'`).catch(() => {});
  await running;
  await Promise.all(app.map((c) => c.end().catch(() => {})));
});

const dir = serviceDir('pg-connections');
t.teardown(() => removeDir(dir));
const file = join(dir, 'checklist.yaml');
const check = (id: string, w: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  id,
  title: id,
  section: 'database',
  severity: 'high',
  phase: 'pre-deploy',
  probe: 'postgres',
  target: 'postgres',
  with: w,
  ...extra,
});
writeFileSync(
  file,
  stringify({
    apiVersion: 'readiness/v1',
    checklist: 'pg-connections',
    targets: { postgres: { url: '${DATABASE_URL}' } },
    checks: [
      // Keeps one pooled connection busy while the counts are taken.
      check('busy-sibling', { measure: 'query', sql: 'SELECT 1 AS n FROM pg_sleep(0.5)' }),
      ...READY.map((id) => check(id, { measure: 'ready' })),
      check('usage-connections', { measure: 'connection_usage' }, { value: 'connections' }),
      check('usage-percent', { measure: 'connection_usage' }),
      check('usage-idle-in-transaction', { measure: 'connection_usage' }, { value: 'idle_in_transaction' }),
    ],
  }),
);

/** What a person types: psql, counting client sessions other than their own. */
async function personCounts(): Promise<{ connections: number; idleInTransaction: number; max: number }> {
  const sql =
    "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%'), current_setting('max_connections') " +
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
  const r = await runCommand('psql', [pgServer.url, '-Atc', sql]);
  if (r.code !== 0) throw new Error(`psql: ${r.stderr}`);
  const [connections, idleInTransaction, max] = r.stdout.trim().split('|').map(Number);
  return { connections: connections!, idleInTransaction: idleInTransaction!, max: max! };
}

/** Samples how many connections the exporter holds, every few ms, until stopped. */
async function sampleExporter(): Promise<{ stop: () => Promise<number> }> {
  const c = await pgServer.connect();
  let max = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'readiness-exporter'`);
      max = Math.max(max, Number(rows[0]!.n));
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      await c.end();
      return max;
    },
  };
}

for (const concurrency of [1, 8]) {
  t.test(`--concurrency ${concurrency}: the counts are the person's, and at most ${BOUND} connections are held`, async (t) => {
    t.same(await personCounts(), { connections: 4, idleInTransaction: 1, max: 11 }, 'precondition: psql sees the app and nothing else');
    const sampler = await sampleExporter();
    const person = await personCounts();
    t.equal(person.connections, 5, 'the app and the sampler');

    const ran = await runCli(['check', '-c', file, '--concurrency', String(concurrency), '--format', 'json'], { env: { DATABASE_URL: monitorUrl } });
    const held = await sampler.stop();
    t.equal(ran.code, 0, `every check passes: ${ran.stderr}`);
    const body = JSON.parse(ran.stdout) as ReadinessBody;
    const byId = new Map(body.checks!.map((c) => [c.id, c]));
    for (const id of READY) t.equal(byId.get(id)?.state, 'pass', `${id}: ${byId.get(id)?.message}`);
    t.equal(byId.get('busy-sibling')?.state, 'pass');

    t.equal(byId.get('usage-connections')?.value, person.connections, `connections: ${byId.get('usage-connections')?.message}`);
    t.equal(byId.get('usage-idle-in-transaction')?.value, person.idleInTransaction, 'idle_in_transaction');
    t.equal(byId.get('usage-percent')?.value, Math.round((person.connections / person.max) * 10_000) / 100, 'usage_percent');
    t.match(byId.get('usage-connections')?.message, `${person.connections} of ${person.max} connections (45.45%), 1 idle in transaction`);

    t.ok(held >= 1, `the sampler saw the exporter (${held})`);
    t.ok(held <= BOUND, `the exporter held at most ${BOUND} connections (${held})`);
    t.same(await personCounts(), { ...person, connections: 4 }, 'and left none behind');
  });
}

t.test("a sibling check on the same pool is the exporter's, not the app's: not counted", async (t) => {
  // Plenty of slots here (the superuser may use the reserved ones): only the count is in question.
  const { default: postgres } = await import('../../src/probes/postgres.js');
  const { makeCtx } = await import('../helpers/ctx.js');
  const run = (p: Record<string, unknown>) => postgres.run({ url: pgServer.url, ...p } as never, makeCtx({ timeoutMs: 5000 }));
  t.teardown(() => postgres.close?.());
  const person = await personCounts();
  const sibling = run({ measure: 'query', sql: 'SELECT 1 AS n FROM pg_sleep(0.5)' });
  await new Promise((r) => setTimeout(r, 100));
  const [usage] = await Promise.all([run({ measure: 'connection_usage' }), sibling]);
  t.match(usage.fields, { connections: person.connections, idle_in_transaction: person.idleInTransaction, exporter_connections: 2 }, usage.message ?? '');
});
