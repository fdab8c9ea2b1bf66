// The cost of one status write must not grow with the total history. Instead of timing
// writes, these tests record every statement a write runs against the history table and
// ask each database how it runs them: SQLite's query plan must search the (check_id, id)
// index, never scan the table; PostgreSQL's EXPLAIN ANALYZE must read the same number of
// history rows whether the table holds 10k or 200k rows of other checks.
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import { CachedStore } from '../src/store/cached.js';
import { PostgresBackend } from '../src/store/postgres.js';
import { SqliteBackend } from '../src/store/sqlite.js';
import type { CheckStatus } from '../src/store/types.js';

/** Enough writes of one check for any pruning schedule up to every 50th write to have run. */
const WRITES = 60;
/** Rows a check may hold above its limit between two prunes. */
const SLACK = 50;
import { startPostgres } from './helpers/postgres.js';

function status(check: string, n: number): CheckStatus {
  const at = 1_700_000_000_000 + n * 1000;
  const last = { check, state: 'pass' as const, message: `run ${n}`, startedAt: at - 5, finishedAt: at, durationMs: 5, conditions: [], value: n };
  return { check, state: 'pass', message: `run ${n}`, last, streak: 1, runs: { pass: n }, value: n };
}

interface Recorded {
  sql: string;
  args: unknown[];
}

/** Records the SQL and arguments of every better-sqlite3 statement run while `fn` runs. */
async function recordSqlite(fn: () => Promise<void>): Promise<Recorded[]> {
  const probe = new Database(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as { run: (...a: unknown[]) => unknown };
  probe.close();
  const run = proto.run;
  const seen: Recorded[] = [];
  proto.run = function (this: { source: string }, ...args: unknown[]) {
    seen.push({ sql: this.source, args });
    return run.apply(this, args);
  };
  try {
    await fn();
  } finally {
    proto.run = run;
  }
  return seen;
}

t.test('sqlite: every statement of a status write searches the history by index', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-scale-'));
  const limit = 50;
  const store = new CachedStore(new SqliteBackend(join(dir, 'readiness.sqlite'), limit));
  await store.init();
  t.teardown(() => store.close());
  const db = (store.backend as SqliteBackend).db;
  // 20k rows of 400 other checks, and the written check already at its limit.
  db.transaction(() => {
    const ins = db.prepare('INSERT INTO check_history (check_id, result, finished_at) VALUES (?, ?, ?)');
    for (let i = 0; i < 20_000; i++) ins.run(`other-${i % 400}`, '{}', i);
    for (let i = 0; i < limit; i++) ins.run('x', '{}', i);
  })();

  const seen = await recordSqlite(async () => {
    for (let i = 1; i <= WRITES; i++) await store.put(status('x', i));
    await store.flush();
  });
  t.equal(store.health().ok, true, 'every write succeeded');
  const history = [...new Map(seen.filter((s) => /check_history/.test(s.sql)).map((s) => [s.sql, s])).values()];
  t.ok(history.some((s) => /^\s*INSERT/i.test(s.sql)), 'the appends were recorded');
  t.ok(history.some((s) => /^\s*DELETE/i.test(s.sql)), `a prune ran within ${WRITES} writes of the check`);
  for (const s of history) {
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${s.sql}`).all(...s.args) as { detail: string }[]).map((r) => r.detail);
    t.notOk(
      plan.some((d) => /^SCAN check_history\b/.test(d)),
      `${s.sql.replace(/\s+/g, ' ').slice(0, 60)}... never scans the whole history: ${plan.join(' | ')}`,
    );
  }

  const count = (check: string) => (db.prepare('SELECT count(*) AS n FROM check_history WHERE check_id = ?').get(check) as { n: number }).n;
  t.ok(count('x') >= limit && count('x') < limit + SLACK, `the written check keeps ${limit}..${limit + SLACK - 1} rows (has ${count('x')})`);
  t.equal(count('other-0'), 50, "another check's rows are not touched by this check's prune");
  t.same(
    (await store.history('x', 3)).map((r) => r.message),
    [WRITES, WRITES - 1, WRITES - 2].map((n) => `run ${n}`),
    'the newest rows are the ones kept',
  );
});

t.test('sqlite: a check over its limit after a restart is pruned at its first write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-scale-'));
  const file = join(dir, 'readiness.sqlite');
  const big = new CachedStore(new SqliteBackend(file, 500));
  await big.init();
  for (let i = 1; i <= 120; i++) await big.put(status('x', i));
  await big.close();
  const small = new CachedStore(new SqliteBackend(file, 10));
  await small.init();
  t.teardown(() => small.close());
  await small.put(status('x', 121));
  await small.flush();
  const n = ((small.backend as SqliteBackend).db.prepare("SELECT count(*) AS n FROM check_history WHERE check_id = 'x'").get() as { n: number }).n;
  t.equal(n, 10, 'the lowered limit holds from the first write');
});

/** History rows a statement reads, from EXPLAIN ANALYZE: every scan node on the history table. */
function historyRowsRead(plan: Record<string, unknown>): number {
  let n = 0;
  const walk = (node: Record<string, unknown>) => {
    if (node['Relation Name'] === 'readiness_check_history' && /Scan/.test(String(node['Node Type']))) {
      n += Number(node['Actual Rows'] ?? 0) * Number(node['Actual Loops'] ?? 1) + Number(node['Rows Removed by Filter'] ?? 0) + Number(node['Rows Removed by Index Recheck'] ?? 0);
    }
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  walk(plan);
  return n;
}

t.test('postgres: a write reads as many history rows at 200k rows as at 10k', async (t) => {
  const server = await startPostgres(t);
  const limit = 50;
  const measure = async (others: number) => {
    const name = `scale_${others}`;
    await server.query(`CREATE DATABASE ${name}`);
    const url = server.urlFor({ database: name });
    const store = new CachedStore(new PostgresBackend(url, { historyLimit: limit }));
    await store.init();
    // 4000 other checks, none over the limit: nothing of theirs is pruned, so the table keeps its size.
    await server.query(
      `INSERT INTO readiness_check_history (check_id, result, finished_at)
         SELECT 'other-' || (i % 4000), '{}', now() FROM generate_series(1, $1) i`,
      [others],
      name,
    );
    await server.query(`INSERT INTO readiness_check_history (check_id, result, finished_at) SELECT 'x', '{}', now() FROM generate_series(1, ${limit})`, [], name);
    await server.query('ANALYZE readiness_check_history', [], name);

    // Every DELETE/UPDATE/SELECT a write runs against the history, with its arguments.
    const seen: Recorded[] = [];
    const query = pg.Client.prototype.query;
    pg.Client.prototype.query = function (this: pg.Client, ...a: unknown[]) {
      const [text, values] = a as [unknown, unknown];
      if (typeof text === 'string' && /readiness_check_history/.test(text) && !/^\s*INSERT/i.test(text)) seen.push({ sql: text, args: (values as unknown[]) ?? [] });
      return (query as (...x: unknown[]) => unknown).apply(this, a);
    } as typeof query;
    try {
      for (let i = 1; i <= WRITES; i++) await store.put(status('x', i));
      await store.flush();
    } finally {
      pg.Client.prototype.query = query;
    }
    t.equal(store.health().ok, true, `${others}: every write succeeded`);
    await store.close();
    t.ok(seen.length > 0, `${others}: the prune ran within ${WRITES} writes`);

    const c = await server.connect(url);
    let rows = 0;
    try {
      for (const s of seen) {
        await c.query('BEGIN');
        const r = await c.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${s.sql}`, s.args);
        await c.query('ROLLBACK');
        const plan = (r.rows[0] as { 'QUERY PLAN': { Plan: Record<string, unknown> }[] })['QUERY PLAN'][0]!.Plan;
        rows = Math.max(rows, historyRowsRead(plan));
      }
      const kept = await c.query<{ n: string }>("SELECT count(*) AS n FROM readiness_check_history WHERE check_id = 'x'");
      t.ok(Number(kept.rows[0]!.n) >= limit && Number(kept.rows[0]!.n) < limit + SLACK, `${others}: the check keeps ${limit}..${limit + SLACK - 1} rows (${kept.rows[0]!.n})`);
    } finally {
      await c.end();
    }
    return rows;
  };
  const small = await measure(10_000);
  const large = await measure(200_000);
  t.ok(small > 0, `the prune reads the check's own rows (${small})`);
  t.ok(small <= 2 * limit, `it reads about one check's rows, not the table: ${small} rows at 10k total`);
  t.ok(large <= small * 2, `the same at 200k total rows: ${large} vs ${small}`);
});

t.test('the results of one event-loop turn are written by one transaction', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-scale-'));
  const backend = new SqliteBackend(join(dir, 'readiness.sqlite'), 50);
  const batches: number[] = [];
  const write = backend.writeStatuses?.bind(backend);
  t.ok(write, 'the embedded store writes batches');
  backend.writeStatuses = async (batch) => {
    batches.push(batch.length);
    return write!(batch);
  };
  const store = new CachedStore(backend);
  await store.init();
  t.teardown(() => store.close());
  const done = Array.from({ length: 200 }, (_, i) => store.put(status(`c-${i % 20}`, i + 1)));
  await Promise.all(done);
  t.same(batches, [200], '200 results of one turn: one transaction');
  t.equal(store.health().ok, true);
  t.same((await store.history('c-3', 20)).map((r) => r.message), Array.from({ length: 10 }, (_, k) => `run ${200 - 16 - 20 * k}`), 'in order, per check');
  await store.put(status('c-0', 1000));
  t.same(batches, [200, 1], 'a later result is its own transaction');
});
