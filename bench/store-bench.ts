// Embedded store choice, measured: better-sqlite3 (WAL, synchronous=FULL) against PGlite
// (PostgreSQL compiled to WASM, persisted to a directory), doing what the service does on
// every check result: upsert the latest status and append to the history, durably.
//
//   npm install --no-save @electric-sql/pglite   # only for this comparison
//   npx tsx bench/store-bench.ts [writes=2000]
//
// Prints open time, write latency percentiles and resident memory for each.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachedStore } from '../src/store/cached.js';
import { SqliteBackend } from '../src/store/sqlite.js';
import type { CheckStatus } from '../src/store/types.js';

const N = Number(process.argv[2] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'store-bench-'));

function status(i: number): CheckStatus {
  const at = Date.now();
  const last = { check: `check-${i % 200}`, state: 'pass' as const, message: `days_left >= 30 is true (days_left = ${i})`, startedAt: at - 12, finishedAt: at, durationMs: 12, conditions: [{ source: 'days_left >= 30', ok: true, text: 'x' }], value: i };
  return { check: last.check, state: 'pass', message: last.message, last, streak: i, runs: { pass: i }, value: i };
}

function pct(xs: number[], p: number): string {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(3);
}

async function measure(name: string, open: () => Promise<unknown>, write: (s: CheckStatus) => Promise<unknown>, close: () => Promise<unknown>) {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  await open();
  const openMs = performance.now() - t0;
  const lat: number[] = [];
  const w0 = performance.now();
  for (let i = 0; i < N; i++) {
    const s = performance.now();
    await write(status(i));
    lat.push(performance.now() - s);
  }
  const total = performance.now() - w0;
  const rss = (process.memoryUsage().rss - rss0) / 1048576;
  await close();
  console.log(`${name.padEnd(22)} open ${openMs.toFixed(0).padStart(5)} ms  writes/s ${(N / (total / 1000)).toFixed(0).padStart(6)}  p50 ${pct(lat, 50)} ms  p99 ${pct(lat, 99)} ms  +RSS ${rss.toFixed(1)} MiB`);
}

const sqlite = new CachedStore(new SqliteBackend(join(dir, 'readiness.sqlite')));
await measure('better-sqlite3 (FULL)', () => sqlite.init(), (s) => sqlite.put(s), () => sqlite.close());

let pglite: { PGlite: new (dir: string) => { waitReady: Promise<void>; exec(q: string): Promise<unknown>; query(q: string, p: unknown[]): Promise<unknown>; transaction<T>(fn: (tx: { query(q: string, p: unknown[]): Promise<unknown> }) => Promise<T>): Promise<T>; close(): Promise<void> } } | undefined;
try {
  pglite = (await import('@electric-sql/pglite' as string)) as typeof pglite;
} catch {
  console.log('PGlite not installed: npm install --no-save @electric-sql/pglite');
}
if (pglite) {
  const db = new pglite.PGlite(join(dir, 'pglite'));
  await measure(
    'PGlite (dir)',
    async () => {
      await db.waitReady;
      await db.exec(`CREATE TABLE latest (check_id text PRIMARY KEY, status jsonb, finished_at timestamptz);
                     CREATE TABLE history (id bigserial PRIMARY KEY, check_id text, result jsonb, finished_at timestamptz);`);
    },
    (s) =>
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO latest VALUES ($1, $2, $3) ON CONFLICT (check_id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at', [s.check, JSON.stringify(s), new Date(s.last.finishedAt)]);
        await tx.query('INSERT INTO history (check_id, result, finished_at) VALUES ($1, $2, $3)', [s.check, JSON.stringify(s.last), new Date(s.last.finishedAt)]);
      }),
    () => db.close(),
  );
}
