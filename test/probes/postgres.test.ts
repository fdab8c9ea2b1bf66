// The postgres probe kind against real PostgreSQL 15 servers (test/helpers/postgres.ts).
// Every measurement gets its passing and failing condition created for real: connections
// filled, a session left idle in transaction, an index dropped, a migration marked dirty,
// pg_sleep statements, WAL archived and failing, the server stopped mid-run, a wrong password,
// and a port that accepts TCP but never answers. Checks go through the real loader (so every
// condition used here validates at load) and the real harness.
import { chownSync, existsSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { stringify } from 'yaml';
import { loadChecklist } from '../../src/config/load.js';
import { formatDiagnostic, type CheckDef } from '../../src/config/types.js';
import { runCheck } from '../../src/harness.js';
import postgres, { type PostgresParams } from '../../src/probes/postgres.js';
import type { RunResult } from '../../src/store/types.js';
import { makeTestPki } from '../helpers/certs.js';
import { makeCtx } from '../helpers/ctx.js';
import { pgIsReady, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { removeDir, serviceDir } from '../helpers/service.js';

const log = pino({ level: 'silent' });

interface Spec {
  with: Record<string, unknown>;
  expect?: string[];
  warn?: string[];
  timeout?: string;
  onNoData?: 'fail' | 'error' | 'pass';
}

function checklistText(spec: Spec): string {
  return stringify({
    apiVersion: 'readiness/v1',
    checklist: 'postgres-test',
    targets: { postgres: { url: '${DATABASE_URL}' } },
    checks: [
      {
        id: 'pg-check',
        title: 'PostgreSQL test check',
        section: 'database',
        severity: 'high',
        phase: 'pre-deploy',
        probe: 'postgres',
        target: 'postgres',
        with: spec.with,
        ...(spec.expect && { expect: spec.expect }),
        ...(spec.warn && { warn: spec.warn }),
        ...(spec.timeout && { timeout: spec.timeout }),
        ...(spec.onNoData && { onNoData: spec.onNoData }),
      },
    ],
  });
}

/** Loads one check through the real loader; throws with the diagnostics when it does not load. */
function load(spec: Spec, env: NodeJS.ProcessEnv): CheckDef {
  const r = loadChecklist(checklistText(spec), 'postgres-test.yaml', env);
  if (!r.ok) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.checklist.checks[0]!;
}

/** The load diagnostics of one check (empty when it loads). */
function diagnose(spec: Spec, env: NodeJS.ProcessEnv = { DATABASE_URL: 'postgres://app:pw@db.internal:5432/app' }): string[] {
  const r = loadChecklist(checklistText(spec), 'postgres-test.yaml', env);
  return r.ok ? [] : r.diagnostics.map((d) => d.message);
}

/** Loads and runs one check against `url` through the real harness. */
async function check(url: string, spec: Spec, values: Record<string, number> = {}): Promise<RunResult> {
  const def = load(spec, { DATABASE_URL: url });
  return runCheck(def, { log, env: {}, latestValue: (id) => values[id] });
}

/** Runs the probe directly, for its fields (the harness keeps only state, reason and value). */
function observe(p: Partial<PostgresParams> & Pick<PostgresParams, 'measure' | 'url'>, timeoutMs = 5000) {
  return postgres.run(p as PostgresParams, makeCtx({ timeoutMs }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asserts the state (and reason) of a run, showing its message when it differs. */
/** tap's subtest type (the last overload of t.test takes only the callback). */
type TestT = Parameters<Parameters<typeof t.test>[0]>[0];

function is(tt: TestT, r: RunResult, state: RunResult['state'], reason?: string, what = '') {
  tt.equal(r.state, state, `${what}${what ? ': ' : ''}${state}${reason ? `/${reason}` : ''} (${r.message})`);
  if (reason !== undefined) tt.equal(r.reason, reason, `reason ${reason}`);
}

t.teardown(() => postgres.close?.());

const main: PostgresServer = await startPostgres(t);
t.comment(`main server: port ${main.port}, started in ${main.startupMs.toFixed(0)} ms`);
await main.query(`CREATE ROLE monitor LOGIN PASSWORD 'monitor-pw'`);
await main.query('CREATE DATABASE app');
const appUrl = main.urlFor({ database: 'app' });

t.test('checklist rows load, and wrong ones are rejected with a reason', async (t) => {
  const env = { DATABASE_URL: 'postgres://app:pw@db.internal:5432/app' };
  const good: Spec[] = [
    { with: { measure: 'ready' } },
    { with: { measure: 'connection_headroom', replicas: 10, poolSize: 25 }, expect: ['headroom >= 0'] },
    { with: { measure: 'connection_headroom', replicas: 'k8s-hpa-api', poolSize: '25' }, expect: ['headroom >= 0'] },
    { with: { measure: 'connection_usage' }, expect: ['usage_percent < 80', 'idle_in_transaction_max_seconds < 60'] },
    { with: { measure: 'connection_usage', replicas: 4, poolSize: 25, role: 'offgridflow' }, expect: ['pool_usage_percent < 80'] },
    { with: { measure: 'indexes', indexes: ['public.idx_a'], foreignKeys: 'true' }, expect: ['missing == 0', 'unindexed_foreign_keys == 0', 'len(missing_indexes) == 0'] },
    { with: { measure: 'slow_queries', top: 20 }, expect: ['max_mean_ms < 200ms'] },
    { with: { measure: 'migrations', compareUrl: 'postgres://x:y@prod:5432/app', minVersion: '20240101' }, expect: ['dirty == false', 'behind == false', 'compare_dirty == false'] },
    { with: { measure: 'wal_archive_age' }, expect: ['age_seconds < 1h', 'failing == false'] },
    { with: { measure: 'query', sql: 'SELECT count(*) AS pending FROM jobs', args: [] }, expect: ['row.pending < 100', 'value < 100'] },
    { with: { measure: 'ready', sslmode: 'verify-full', sslrootcert: '/etc/ssl/db-ca.pem', statementTimeoutMs: 2000, connectTimeoutMs: '1500' } },
  ];
  for (const spec of good) t.same(diagnose(spec, env), [], `loads: ${JSON.stringify(spec.with)} ${JSON.stringify(spec.expect ?? [])}`);

  const bad: [Spec, RegExp][] = [
    [{ with: { measure: 'readiness' } }, /"measure" must be one of ready, connection_headroom, .*got "readiness"/],
    [{ with: { measure: 'indexes' } }, /measure indexes needs "indexes" \(schema-qualified names\), "foreignKeys: true", or both/],
    [{ with: { measure: 'ready', sql: 'SELECT 1' } }, /"sql" does not apply to measure ready; it takes no other parameters/],
    [{ with: { measure: 'connection_headroom', replicas: 3 } }, /measure connection_headroom needs "poolSize"/],
    [{ with: { measure: 'connection_headroom', replicas: 'Not An Id', poolSize: 5 } }, /"replicas" must be a number or the id of a check/],
    [{ with: { measure: 'indexes', indexes: ['idx_without_schema'] } }, /expected a schema-qualified index name/],
    [{ with: { measure: 'ready', sslmode: 'prefer' } }, /"sslmode" must be one of disable, require, verify-ca, verify-full/],
    [{ with: { measure: 'ready', tiemout: 5 } }, /unknown key "tiemout"/],
    [{ with: { measure: 'connection_usage' }, expect: ['usage_pct < 80'] }, /usage_pct/],
    [{ with: { measure: 'ready', sslcert: '/c.pem' } }, /"sslcert" and "sslkey" go together/],
  ];
  for (const [spec, re] of bad) {
    const msgs = diagnose(spec, env);
    t.match(msgs.join('\n'), re, `rejected: ${JSON.stringify(spec.with)} ${JSON.stringify(spec.expect ?? [])}`);
  }
  const prefer = diagnose({ with: { measure: 'ready' } }, { DATABASE_URL: 'postgres://app:s3cret-pw@db:5432/app?sslmode=prefer' });
  t.match(prefer.join('\n'), /sslmode=prefer in the URL is not supported/, 'an unsupported sslmode in the URL is a load error');
  t.notMatch(prefer.join('\n'), /s3cret-pw/, 'without the password');
});

t.test('the examples in docs/probes/postgres.md load', async (t) => {
  const md = readFileSync(new URL('../../docs/probes/postgres.md', import.meta.url), 'utf8');
  const block = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('checks:'));
  t.ok(block, 'the docs have an example checklist');
  // The headroom example reads replicas from the HPA check: a stand-in so dependsOn resolves.
  const stub = ['  - id: k8s-hpa-api', '    title: HPA stand-in', '    section: infrastructure', '    severity: low', '    phase: pre-deploy', '    probe: tcp', '    with: { host: 127.0.0.1, port: 1 }', ''].join('\n');
  const text = `apiVersion: readiness/v1\nchecklist: docs-example\n${block!}${stub}`;
  const r = loadChecklist(text, 'docs/probes/postgres.md', { DATABASE_URL: 'postgres://a:b@db:5432/app', STAGING_DATABASE_URL: 'postgres://a:b@staging:5432/app' });
  t.same(r.ok ? [] : r.diagnostics.map(formatDiagnostic), []);
  if (r.ok) t.equal(r.checklist.checks.filter((c) => c.kind === 'postgres').length, 8, 'every postgres example');
});

t.test('ready matches pg_isready: up, bad credentials, rejecting, down, and back up', async (t) => {
  const pg = await startPostgres(t);
  t.comment(`lifecycle server started in ${pg.startupMs.toFixed(0)} ms`);
  const good = { measure: 'ready' as const, url: pg.url };
  const badUrl = pg.urlFor({ password: 'wrong-password-123' });

  // Up.
  t.equal(await pgIsReady(pg.port), 0, 'pg_isready: accepting connections');
  let obs = await observe(good);
  t.equal(obs.fields.status, 'accepting');
  t.equal(obs.error, undefined);
  t.match(String(obs.fields.server_version), /^15\./);
  is(t, await check(pg.url, { with: { measure: 'ready' }, expect: ['latency_ms < 2s'] }), 'pass');

  // Up, but the credentials are refused: pg_isready does not log in, the probe must.
  t.equal(await pgIsReady(pg.port, { user: 'postgres' }), 0, 'pg_isready with a bad password still says accepting');
  obs = await observe({ measure: 'ready', url: badUrl });
  t.equal(obs.fields.status, 'accepting', 'the probe agrees the server accepts connections');
  t.equal(obs.error?.reason, 'auth');
  const auth = await check(badUrl, { with: { measure: 'ready' } });
  is(t, auth, 'error', 'auth', 'bad password');
  t.notMatch(auth.message, /wrong-password-123/, 'the password is not in the message');
  t.notMatch(auth.message, /postgres:\/\//, 'nor the URL');

  // Rejecting: a standby without hot_standby answers "starting up" (57P03) forever.
  await pg.stop();
  writeFileSync(join(pg.dataDir, 'standby.signal'), '');
  const { uid, gid } = statSync(pg.dataDir);
  chownSync(join(pg.dataDir, 'standby.signal'), uid, gid);
  pg.configure({ hot_standby: false });
  await pg.start('rejecting');
  t.equal(await pgIsReady(pg.port), 1, 'pg_isready: rejecting connections');
  obs = await observe(good);
  t.equal(obs.fields.status, 'rejecting');
  is(t, await check(pg.url, { with: { measure: 'ready' } }), 'error', 'refused', 'rejecting');

  // Down.
  await pg.stop();
  unlinkSync(join(pg.dataDir, 'standby.signal'));
  pg.configure({ hot_standby: true });
  t.equal(await pgIsReady(pg.port), 2, 'pg_isready: no response');
  obs = await observe(good);
  t.equal(obs.fields.status, 'no_response');
  is(t, await check(pg.url, { with: { measure: 'ready' } }), 'error', 'refused', 'down');

  // Back up: the same probe (and its process) carries on.
  await pg.start();
  t.equal(await pgIsReady(pg.port), 0);
  is(t, await check(pg.url, { with: { measure: 'ready' } }), 'pass', undefined, 'back up');
});

t.test('a port that accepts TCP and never answers: timeout within the bound', async (t) => {
  const sockets = new Set<net.Socket>();
  const hang = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    hang.close();
  });
  const port = (hang.address() as net.AddressInfo).port;
  const url = `postgres://postgres:hang-pw@127.0.0.1:${port}/postgres`;

  // Bounded by connectTimeoutMs, well inside the check timeout.
  let t0 = performance.now();
  let r = await check(url, { with: { measure: 'ready', connectTimeoutMs: 500 }, timeout: '5s' });
  let took = performance.now() - t0;
  is(t, r, 'error', 'timeout', 'ready, connectTimeoutMs 500');
  t.ok(took >= 450 && took < 1500, `gave up after ${took.toFixed(0)} ms`);

  // Bounded by the check timeout when that is shorter than the connect timeout (pooled path).
  t0 = performance.now();
  r = await check(url, { with: { measure: 'connection_usage', connectTimeoutMs: 10_000 }, timeout: '1s' });
  took = performance.now() - t0;
  is(t, r, 'error', 'timeout', 'connection_usage, check timeout 1s');
  t.ok(took < 1500, `gave up after ${took.toFixed(0)} ms`);
  t.equal(await pgIsReady(port, { timeoutS: 1 }), 2, 'pg_isready: no response either');
});

t.test('server stopped mid-run: error/refused, then recovers', async (t) => {
  const pg = await startPostgres(t);
  const usage: Spec = { with: { measure: 'connection_usage' }, expect: ['usage_percent < 80'] };
  is(t, await check(pg.url, usage), 'pass', undefined, 'before');

  // Stopped while a statement runs: the server terminates the session (57P01).
  const slow = check(pg.url, { with: { measure: 'query', sql: 'SELECT pg_sleep(5) IS NULL AS slept' }, timeout: '10s' });
  await sleep(400);
  const t0 = performance.now();
  await pg.stop();
  const r = await slow;
  is(t, r, 'error', 'refused', 'stopped during a query');
  t.ok(performance.now() - t0 < 2000, 'reported at once, not at the timeout');

  // Stopped: the pool's idle connections died with it; nothing crashed.
  is(t, await check(pg.url, usage), 'error', 'refused', 'while down');
  await pg.start();
  is(t, await check(pg.url, usage), 'pass', undefined, 'after restart');
});

t.test('wrong password on a pooled measurement: auth, no secret in the message', async (t) => {
  const url = main.urlFor({ user: 'monitor', password: 'not-the-password' });
  const r = await check(url, { with: { measure: 'connection_usage' } });
  is(t, r, 'error', 'auth');
  t.match(r.message, /password authentication failed for user "monitor"/);
  t.notMatch(r.message, /not-the-password/);
});

t.test('connection_headroom: max_connections vs replicas x poolSize + 20', async (t) => {
  // max_connections is 100: 3 x 25 + 20 = 95 fits, 4 x 25 + 20 = 120 does not.
  const spec = (replicas: number | string): Spec => ({ with: { measure: 'connection_headroom', replicas, poolSize: 25 }, expect: ['headroom >= 0'] });
  let r = await check(main.url, spec(3));
  is(t, r, 'pass');
  t.equal(r.value, 5, 'headroom 100 - 95');
  r = await check(main.url, spec(4));
  is(t, r, 'fail', 'condition');
  t.equal(r.value, -20);

  // Replicas read from another check's value (the HPA's maxReplicas).
  is(t, await check(main.url, spec('k8s-hpa-api'), { 'k8s-hpa-api': 3 }), 'pass', undefined, 'replicas from a check');
  is(t, await check(main.url, spec('k8s-hpa-api'), { 'k8s-hpa-api': 6 }), 'fail', 'condition', 'replicas from a check');
  is(t, await check(main.url, spec('k8s-hpa-api')), 'error', 'dependency', 'that check has no value yet');

  const obs = await observe({ measure: 'connection_headroom', url: main.url, replicas: 3, poolSize: 25 });
  t.match(obs.fields, { max_connections: 100, replicas: 3, pool_size: 25, reserve: 20, required_connections: 95, headroom: 5 });
});

t.test('connection_usage: filled past 80%, idle in transaction, privileges, pool usage', async (t) => {
  const pg = await startPostgres(t, { settings: { max_connections: 25 } });
  await pg.query(`CREATE ROLE monitor LOGIN PASSWORD 'monitor-pw'`);
  await pg.query(`CREATE ROLE app LOGIN PASSWORD 'app-pw'`);
  const spec: Spec = { with: { measure: 'connection_usage' }, expect: ['usage_percent < 80', 'idle_in_transaction_max_seconds < 60'] };
  const obs0 = await observe({ measure: 'connection_usage', url: pg.url });
  t.equal(obs0.fields.max_connections, 25);
  is(t, await check(pg.url, spec), 'pass', undefined, 'idle server');

  // Fill to 21 of 25 (84%) sessions besides the probe's own.
  const held = [];
  const base = (await observe({ measure: 'connection_usage', url: pg.url })).fields.connections as number;
  for (let i = base; i < 21; i++) held.push(await pg.connect());
  const full = await check(pg.url, spec);
  is(t, full, 'fail', 'condition', 'filled');
  t.ok((full.value ?? 0) >= 80, `usage ${full.value}%`);
  t.match(full.message, /usage_percent < 80 is false/);
  await Promise.all(held.map((c) => c.end()));
  is(t, await check(pg.url, spec), 'pass', undefined, 'released');

  // A session idle in transaction: 1.5 s old here, so "< 1s" fails as "< 60" would after a minute.
  const tx = await pg.connect();
  await tx.query('BEGIN');
  await tx.query('SELECT 1');
  await sleep(1500);
  const strict: Spec = { with: { measure: 'connection_usage' }, expect: ['usage_percent < 80', 'idle_in_transaction_max_seconds < 1s'] };
  const stuck = await check(pg.url, strict);
  is(t, stuck, 'fail', 'condition', 'idle in transaction');
  t.match(stuck.message, /idle_in_transaction_max_seconds < 1s is false/);
  const obs = await observe({ measure: 'connection_usage', url: pg.url });
  t.equal(obs.fields.idle_in_transaction, 1);
  t.ok((obs.fields.idle_in_transaction_max_seconds as number) >= 1.4);
  await tx.query('COMMIT');
  is(t, await check(pg.url, strict), 'pass', undefined, 'committed');

  // A role without pg_read_all_stats cannot see other roles' sessions: error, not a pass.
  const other = await pg.connect();
  const monitorUrl = pg.urlFor({ user: 'monitor', password: 'monitor-pw' });
  const hidden = await check(monitorUrl, spec);
  is(t, hidden, 'error', 'auth', 'without pg_read_all_stats');
  t.match(hidden.message, /pg_read_all_stats/);
  await pg.query('GRANT pg_read_all_stats TO monitor');
  is(t, await check(monitorUrl, spec), 'pass', undefined, 'with pg_read_all_stats');
  await other.end();

  // Pool usage: the app role's busy sessions against replicas x poolSize.
  const appUrl = pg.urlFor({ user: 'app', password: 'app-pw' });
  const busy = [];
  for (let i = 0; i < 4; i++) {
    const c = await pg.connect(appUrl);
    await c.query('BEGIN');
    busy.push(c);
  }
  const idleApp = await pg.connect(appUrl);
  const pool: Spec = { with: { measure: 'connection_usage', replicas: 1, poolSize: 5, role: 'app' }, expect: ['pool_usage_percent < 80'] };
  const p80 = await check(monitorUrl, pool);
  is(t, p80, 'fail', 'condition', '4 of 5 busy');
  t.equal(p80.value, (await observe({ measure: 'connection_usage', url: pg.url })).value, 'value stays usage_percent');
  const pobs = await observe({ measure: 'connection_usage', url: monitorUrl, replicas: 1, poolSize: 5, role: 'app' });
  t.match(pobs.fields, { pool_in_use: 4, pool_capacity: 5, pool_usage_percent: 80 });
  is(t, await check(monitorUrl, { ...pool, with: { ...pool.with, replicas: 2 } }), 'pass', undefined, '4 of 10 busy');
  await Promise.all([...busy, idleApp].map((c) => c.end()));
});

t.test('indexes: present, dropped, invalid, not an index; foreign keys without an index', async (t) => {
  await main.query(
    `CREATE TABLE orgs (id bigint PRIMARY KEY, name text);
     CREATE TABLE emissions (id bigint PRIMARY KEY, org_id bigint REFERENCES orgs (id), scope int, kg numeric);
     CREATE INDEX idx_emissions_org_id ON emissions (org_id, scope);
     INSERT INTO orgs VALUES (1, 'a'), (2, 'a');`,
    [],
    'app',
  );
  const wanted = ['public.idx_emissions_org_id', 'public.orgs_pkey', 'public.emissions_pkey'];
  const spec: Spec = { with: { measure: 'indexes', indexes: wanted, foreignKeys: true }, expect: ['missing == 0', 'unindexed_foreign_keys == 0'] };
  let r = await check(appUrl, spec);
  is(t, r, 'pass', undefined, 'all there');
  t.match(r.message, /all 3 indexes exist; every foreign key is indexed/);

  await main.query('DROP INDEX idx_emissions_org_id', [], 'app');
  r = await check(appUrl, spec);
  is(t, r, 'fail', 'condition', 'dropped');
  const obs = await observe({ measure: 'indexes', url: appUrl, indexes: wanted, foreignKeys: true });
  t.match(obs.fields, { expected: 3, present: 2, missing: 1, missing_indexes: ['public.idx_emissions_org_id'], unindexed_foreign_keys: 1 });
  t.match(String((obs.fields.unindexed_foreign_key_names as string[])[0]), /emissions\.emissions_org_id_fkey \(org_id\)/);

  // An index whose column order does not start with the key does not cover it; one that does, does.
  await main.query('CREATE INDEX idx_emissions_scope_org ON emissions (scope, org_id)', [], 'app');
  t.equal((await observe({ measure: 'indexes', url: appUrl, indexes: wanted, foreignKeys: true })).fields.unindexed_foreign_keys, 1, '(scope, org_id) does not cover org_id');
  await main.query('CREATE INDEX idx_emissions_org_id ON emissions (org_id)', [], 'app');
  is(t, await check(appUrl, spec), 'pass', undefined, 'recreated');

  // A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an invalid index behind: it does not count.
  await t.rejects(main.query('CREATE UNIQUE INDEX CONCURRENTLY idx_orgs_name ON orgs (name)', [], 'app'), /could not create unique index/);
  const inv = await observe({ measure: 'indexes', url: appUrl, indexes: ['public.idx_orgs_name', 'public.orgs'] });
  t.match(inv.fields, { missing: 2, invalid: 1, missing_indexes: ['public.orgs (not an index)', 'public.idx_orgs_name (invalid)'] });
  is(t, await check(appUrl, { with: { measure: 'indexes', indexes: ['public.idx_orgs_name'] }, expect: ['missing == 0'] }), 'fail', 'condition', 'invalid index');

  // Foreign keys alone, with no list: the generic row of the shipped checklist.
  const fkOnly = await check(appUrl, { with: { measure: 'indexes', foreignKeys: true }, expect: ['unindexed_foreign_keys == 0'] });
  is(t, fkOnly, 'pass', undefined, 'foreign keys only');
  t.equal(fkOnly.message, 'every foreign key is indexed');
});

t.test('slow_queries: pg_sleep statements, missing extension, missing privilege, not preloaded', async (t) => {
  await main.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', [], 'app');
  await main.query('SELECT pg_stat_statements_reset()', [], 'app');
  const spec: Spec = { with: { measure: 'slow_queries', top: 20 }, expect: ['max_mean_ms < 100ms'] };
  const app = await main.connect(appUrl);
  for (let i = 0; i < 5; i++) await app.query('SELECT count(*) FROM orgs WHERE id = $1', [i]);
  let r = await check(appUrl, spec);
  is(t, r, 'pass', undefined, 'fast statements');

  for (let i = 0; i < 2; i++) await app.query('SELECT pg_sleep($1)', [0.3]);
  r = await check(appUrl, spec);
  is(t, r, 'fail', 'condition', 'pg_sleep(0.3)');
  t.ok((r.value ?? 0) >= 300, `mean ${r.value} ms`);
  const obs = await observe({ measure: 'slow_queries', url: appUrl });
  const { queryid } = (await main.query<{ queryid: string }>(`SELECT queryid::text FROM pg_stat_statements WHERE query LIKE 'SELECT pg_sleep%'`, [], 'app'))[0]!;
  t.equal(obs.fields.worst_queryid, queryid, 'the worst statement is the pg_sleep one');
  t.match(obs.message, new RegExp(`queryid ${queryid}`), 'named in the message');
  t.equal(obs.fields.worst_calls, 2);
  // Ranked by total time: with top 1 only the heaviest statement counts.
  t.ok(((await observe({ measure: 'slow_queries', url: appUrl, top: 1 })).fields.max_mean_ms as number) >= 300);
  await app.end();

  // The extension is not created in this database.
  r = await check(main.url, spec);
  is(t, r, 'error', 'error', 'no extension');
  t.match(r.message, /pg_stat_statements is not installed in this database/);

  // A role without pg_read_all_stats would see other roles' statements hidden.
  const monitorApp = main.urlFor({ user: 'monitor', password: 'monitor-pw', database: 'app' });
  r = await check(monitorApp, spec);
  is(t, r, 'error', 'auth', 'no pg_read_all_stats');
  t.match(r.message, /lacks pg_read_all_stats/);
  await main.query('GRANT pg_read_all_stats TO monitor');
  t.teardown(() => main.query('REVOKE pg_read_all_stats FROM monitor'));
  is(t, await check(monitorApp, spec), 'fail', 'condition', 'with pg_read_all_stats it measures');

  // Created but not preloaded: the view itself refuses.
  const bare = await startPostgres(t, { settings: { shared_preload_libraries: '' } });
  await bare.query('CREATE EXTENSION pg_stat_statements');
  r = await check(bare.url, spec);
  is(t, r, 'error', 'error', 'not preloaded');
  t.match(r.message, /shared_preload_libraries/);

  // Nothing recorded yet: no-data, never a pass.
  await main.query('SELECT pg_stat_statements_reset()', [], 'app');
  is(t, await check(appUrl, { ...spec, with: { measure: 'slow_queries', minCalls: 1000 } }), 'error', 'no-data', 'no statement with 1000 calls');
});

t.test('migrations: version, dirty flag, staging against production', async (t) => {
  await main.query('CREATE DATABASE staging');
  const stagingUrl = main.urlFor({ database: 'staging' });
  for (const db of ['app', 'staging']) {
    await main.query('CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)', [], db);
  }
  await main.query('INSERT INTO schema_migrations VALUES (20240301120000, false)', [], 'app');

  const clean: Spec = { with: { measure: 'migrations' }, expect: ['dirty == false'] };
  let r = await check(appUrl, clean);
  is(t, r, 'pass', undefined, 'clean');
  t.equal(r.value, 20240301120000);

  await main.query('UPDATE schema_migrations SET dirty = true', [], 'app');
  r = await check(appUrl, clean);
  is(t, r, 'fail', 'condition', 'dirty');
  t.match(r.message, /dirty == false is false/);
  await main.query('UPDATE schema_migrations SET dirty = false', [], 'app');

  // Staging must be at least where production is, and at least the release's version.
  const current: Spec = { with: { measure: 'migrations', compareUrl: appUrl, minVersion: 20240301120000 }, expect: ['behind == false', 'dirty == false', 'compare_dirty == false'] };
  is(t, await check(stagingUrl, current), 'error', 'no-data', 'staging has run no migration');
  await main.query('INSERT INTO schema_migrations VALUES (20240201000000, false)', [], 'staging');
  r = await check(stagingUrl, current);
  is(t, r, 'fail', 'condition', 'staging behind');
  t.match(r.message, /behind == false is false/);
  await main.query('UPDATE schema_migrations SET version = 20240401000000', [], 'staging');
  r = await check(stagingUrl, current);
  is(t, r, 'pass', undefined, 'staging ahead');
  const obs = await observe({ measure: 'migrations', url: stagingUrl, compareUrl: appUrl });
  t.match(obs.fields, { version: 20240401000000, compare_version: 20240301120000, behind: false, dirty: false, compare_dirty: false });
  t.notMatch(obs.message ?? '', /postgres:\/\//, 'URLs are not in the message');
  is(t, await check(stagingUrl, { ...current, with: { ...current.with, minVersion: 20250101000000 } }), 'fail', 'condition', 'below the release');

  // The compared database unreachable: error, naming which side.
  r = await check(stagingUrl, { ...current, with: { ...current.with, compareUrl: main.urlFor({ database: 'app', password: 'nope-nope' }) } });
  is(t, r, 'error', 'auth', 'compared database refuses');
  t.match(r.message, /^compared database: /);

  // No such table: error with the server's words.
  r = await check(main.url, clean);
  is(t, r, 'error', 'error', 'no table');
  t.match(r.message, /relation "schema_migrations" does not exist/);
});

t.test('wal_archive_age: archived, old, failing, and archiving off', async (t) => {
  const pg = await startPostgres(t, { archive: true });
  const spec: Spec = { with: { measure: 'wal_archive_age' }, expect: ['age_seconds < 1h', 'failing == false'] };
  let r = await check(pg.url, spec);
  is(t, r, 'fail', 'no-data', 'nothing archived yet');

  const archived = async (n: number) => {
    for (let i = 0; i < 100; i++) {
      const [s] = await pg.query<{ archived_count: string; failed_count: string }>('SELECT archived_count, failed_count FROM pg_stat_archiver');
      if (Number(s!.archived_count) >= n) return;
      await sleep(50);
    }
    throw new Error('WAL was not archived');
  };
  await pg.query('CREATE TABLE t (x int); INSERT INTO t VALUES (1); SELECT pg_switch_wal();');
  await archived(1);
  t.ok(readdirSync(pg.archiveDir).length >= 1, 'the segment is in the archive directory');
  r = await check(pg.url, spec);
  is(t, r, 'pass', undefined, 'just archived');
  t.ok((r.value ?? 99) < 5, `age ${r.value}s`);

  // Old: 1.5 s here stands for the 1 h of the RPO line.
  await sleep(1500);
  r = await check(pg.url, { ...spec, expect: ['age_seconds < 1s'] });
  is(t, r, 'fail', 'condition', 'older than the bound');

  // Failing: the archive command breaks; the next segment cannot be archived.
  await pg.query("ALTER SYSTEM SET archive_command = 'false'");
  await pg.query('SELECT pg_reload_conf()');
  await sleep(200);
  await pg.query('INSERT INTO t VALUES (2); SELECT pg_switch_wal();');
  for (let i = 0; i < 100; i++) {
    const [s] = await pg.query<{ failed_count: string }>('SELECT failed_count FROM pg_stat_archiver');
    if (Number(s!.failed_count) >= 1) break;
    await sleep(50);
  }
  r = await check(pg.url, spec);
  is(t, r, 'fail', 'condition', 'archive_command failing');
  t.match(r.message, /failing == false is false/);
  const obs = await observe({ measure: 'wal_archive_age', url: pg.url });
  t.match(obs.fields, { archive_mode: 'on', failing: true });
  t.ok((obs.fields.failed_count as number) >= 1);

  // Fixed: the pending segment is archived and the check recovers.
  await pg.query('ALTER SYSTEM RESET archive_command');
  await pg.query('SELECT pg_reload_conf()');
  await archived(2);
  is(t, await check(pg.url, spec), 'pass', undefined, 'fixed');

  // archive_mode off: fail, never "no archiving, no problem".
  r = await check(main.url, spec);
  is(t, r, 'fail', 'no-data', 'archive_mode off');
  t.match(r.message, /archive_mode is off/);
});

t.test('query: one row, read only, one statement, bounded by statementTimeoutMs', async (t) => {
  const count: Spec = { with: { measure: 'query', sql: 'SELECT count(*) AS orgs, max(name) AS top FROM orgs' }, expect: ['row.orgs >= 2', 'value >= 2', 'row.top == "a"'] };
  let r = await check(appUrl, count);
  is(t, r, 'pass');
  t.equal(r.value, 2);
  is(t, await check(appUrl, { ...count, expect: ['row.orgs > 5'] }), 'fail', 'condition');
  is(t, await check(appUrl, { with: { measure: 'query', sql: 'SELECT $1::int + 1 AS n', args: ['41'] }, expect: ['value == 42'] }), 'pass', undefined, 'args');

  // Writes are refused by the READ ONLY transaction, and nothing is written.
  r = await check(appUrl, { with: { measure: 'query', sql: "INSERT INTO orgs VALUES (99, 'x') RETURNING id" } });
  is(t, r, 'error', 'error', 'insert');
  t.match(r.message, /read-only transaction/);
  r = await check(appUrl, { with: { measure: 'query', sql: 'SELECT 1; DELETE FROM orgs' } });
  is(t, r, 'error', 'error', 'a second statement');
  t.match(r.message, /multiple commands/);
  r = await check(appUrl, { with: { measure: 'query', sql: 'COMMIT' } });
  t.not(r.state, 'pass', 'COMMIT does not end the read-only transaction early');
  t.same(await main.query('SELECT count(*)::int AS n FROM orgs', [], 'app'), [{ n: 2 }], 'orgs untouched');

  is(t, await check(appUrl, { with: { measure: 'query', sql: 'SELECT id FROM orgs WHERE id < 0' } }), 'error', 'no-data', 'no rows');
  is(t, await check(appUrl, { with: { measure: 'query', sql: 'SELECT id FROM orgs WHERE id < 0' }, onNoData: 'pass' }), 'pass', undefined, 'no rows, onNoData pass');
  r = await check(appUrl, { with: { measure: 'query', sql: 'SELECT id FROM orgs' } });
  is(t, r, 'error', 'error', 'two rows');
  t.match(r.message, /returned 2 rows/);

  const t0 = performance.now();
  r = await check(appUrl, { with: { measure: 'query', sql: 'SELECT pg_sleep(5)', statementTimeoutMs: 300 }, timeout: '10s' });
  is(t, r, 'error', 'timeout', 'statement timeout');
  t.ok(performance.now() - t0 < 2000, 'cancelled by the server at 300 ms');
  t.match(r.message, /statement timeout/);

  // The check timeout bounds the statement even without statementTimeoutMs.
  r = await check(appUrl, { with: { measure: 'query', sql: 'SELECT pg_sleep(5)' }, timeout: '700ms' });
  is(t, r, 'error', 'timeout', 'check timeout');
});

t.test('TLS: require, verify-full, verify-ca, and the failures', async (t) => {
  const pki = makeTestPki();
  const pg = await startPostgres(t, { tls: { cert: pki.valid.cert + pki.ca.cert, key: pki.valid.key } });
  const dir = serviceDir('pg-ca');
  t.teardown(() => removeDir(dir));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, pki.ca.cert);
  const ready = (w: Record<string, unknown>) => check(pg.url, { with: { measure: 'ready', ...w } });

  is(t, await ready({ sslmode: 'require' }), 'pass', undefined, 'require');
  is(t, await ready({ sslmode: 'verify-full', sslrootcert: caFile }), 'pass', undefined, 'verify-full with the CA');
  is(t, await ready({ sslmode: 'verify-ca', sslrootcert: caFile }), 'pass', undefined, 'verify-ca with the CA');
  is(t, await check(pg.urlFor({ params: { sslmode: 'verify-full', sslrootcert: caFile } }), { with: { measure: 'ready' } }), 'pass', undefined, 'sslmode in the URL');
  is(t, await ready({ sslmode: 'verify-full' }), 'error', 'tls', 'verify-full against the system CAs');
  is(t, await ready({ sslmode: 'verify-full', sslrootcert: join(dir, 'missing.pem') }), 'error', 'tls', 'unreadable CA file');
  is(t, await check(main.url, { with: { measure: 'ready', sslmode: 'require' } }), 'error', 'tls', 'server without TLS');
  // The pooled path uses the same TLS settings.
  is(t, await check(pg.url, { with: { measure: 'connection_usage', sslmode: 'verify-full', sslrootcert: caFile }, expect: ['usage_percent < 80'] }), 'pass', undefined, 'pooled over TLS');
  const { ssl } = (await pg.query<{ ssl: boolean }>(`SELECT bool_and(s.ssl) AS ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'readiness-exporter'`))[0]!;
  t.equal(ssl, true, "the probe's pooled session is encrypted");
});

t.test('one small pool per connection, shared by checks, closed by close()', async (t) => {
  const specs: Spec[] = [
    { with: { measure: 'connection_usage' } },
    { with: { measure: 'connection_headroom', replicas: 1, poolSize: 1 } },
    { with: { measure: 'query', sql: 'SELECT pg_sleep(0.2) IS NULL AS x' } },
    { with: { measure: 'query', sql: 'SELECT 1 AS x' } },
    { with: { measure: 'wal_archive_age' } },
  ];
  await Promise.all([...specs, ...specs].map((s) => check(main.url, s)));
  const sessions = async () => Number((await main.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'readiness-exporter' AND datname = 'postgres'`))[0]!.n);
  const n = await sessions();
  t.ok(n >= 1 && n <= 2, `10 concurrent checks used ${n} connection(s)`);
  await postgres.close?.();
  for (let i = 0; i < 40 && (await sessions()) > 0; i++) await sleep(25);
  t.equal(await sessions(), 0, 'close() ended them');
  is(t, await check(main.url, specs[0]!), 'pass', undefined, 'a new pool after close()');
});

t.test('the helper leaves nothing behind', async (t) => {
  const pg = await startPostgres({ teardown: () => {} });
  const pid = Number((await pg.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid);
  t.ok(pid > 0);
  await pg.stop();
  t.notOk(pg.running(), 'stopped');
  t.notOk(existsSync(join(pg.dataDir, 'postmaster.pid')), 'postmaster.pid removed by a clean shutdown');
  t.equal(await pgIsReady(pg.port, { timeoutS: 1 }), 2);
  removeDir(join(pg.dataDir, '..'));
});
