// @bench-row
// Steady state as fast as the first minute: 1,000 tcp checks @1 s against a local listener,
// once with every check at its history limit (500 stored results each, 500k rows) and once
// with an empty store, alternated. Reports the share of scheduled runs that completed and the
// service's CPU per probe (user + system, from /proc), both sides in the same run.
//
//   npx tsx bench/steady-state-tcp.ts [checks=1000] [window-seconds=10] [rounds=2]
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { CachedStore } from '../src/store/cached.js';
import { SqliteBackend } from '../src/store/sqlite.js';
import type { CheckStatus, RunResult } from '../src/store/types.js';
import { alternate, cpuSeconds, median, note, percentile, report, sleep, startServe, sumMetric, tempDir, until, type Serve } from './lib/common.js';

const N = Number(process.argv[2] ?? 1000);
const WINDOW_S = Number(process.argv[3] ?? 10);
const ROUNDS = Number(process.argv[4] ?? 2);
const LIMIT = 500;

// The target: accepts and closes at once.
const sockets = new Set<Socket>();
const target = createServer((s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
  s.on('error', () => {});
  s.end();
});
await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
const port = (target.address() as { port: number }).port;

const yaml = [
  'apiVersion: readiness/v1',
  'checklist: bench-steady-state',
  'defaults: { interval: 1s, timeout: 900ms }',
  'checks:',
  ...Array.from({ length: N }, (_, i) =>
    [
      `  - id: tcp-${i}`,
      `    title: port ${i}`,
      `    section: security`,
      `    severity: ${['critical', 'high', 'medium', 'low'][i % 4]}`,
      `    phase: pre-deploy`,
      `    probe: tcp`,
      `    with: { host: 127.0.0.1, port: ${port}, connectTimeoutMs: 800 }`,
      `    expect: ["open == true"]`,
    ].join('\n'),
  ),
].join('\n');

/** A data directory whose store holds LIMIT results for every check, as after ~8 minutes. */
async function fullStore(): Promise<string> {
  const dir = join(tempDir('full'), 'data');
  const backend = new SqliteBackend(join(dir, 'readiness.sqlite'), LIMIT);
  const store = new CachedStore(backend);
  await store.init();
  const db = backend.db;
  const t0 = Date.now() - LIMIT * 1000;
  db.transaction(() => {
    const hist = db.prepare('INSERT INTO check_history (check_id, result, finished_at) VALUES (?, ?, ?)');
    const latest = db.prepare('INSERT INTO check_latest (check_id, status, finished_at) VALUES (?, ?, ?)');
    for (let i = 0; i < N; i++) {
      const check = `tcp-${i}`;
      let last!: RunResult;
      for (let k = 0; k < LIMIT; k++) {
        const at = t0 + k * 1000;
        last = { check, state: 'pass', message: `127.0.0.1:${port} is open (connected in 0.3 ms)`, startedAt: at - 1, finishedAt: at, durationMs: 0.9, conditions: [{ source: 'open == true', ok: true, text: 'open == true is true (open = true)' }], value: 1 };
        hist.run(check, JSON.stringify(last), at);
      }
      const st: CheckStatus = { check, state: 'pass', message: last.message, last, streak: LIMIT, runs: { pass: LIMIT }, value: 1 };
      latest.run(check, JSON.stringify(st), last.finishedAt);
    }
  })();
  await store.close();
  return dir;
}

interface Sample {
  completion: number;
  cpuPerProbeMs: number;
  probesPerS: number;
  readinessP99: number;
}

async function runsTotal(s: Serve): Promise<number> {
  return sumMetric(await (await fetch(`${s.url}/metrics`)).text(), 'readiness_check_runs_total');
}

async function measure(s: Serve): Promise<Sample> {
  // Warm-up: every check has run at least once in this process.
  await until('every check ran', 60_000, async () => {
    const body = (await (await fetch(`${s.url}/readiness`)).json()) as { summary: { pending: number } };
    return body.summary.pending === 0 ? true : undefined;
  });
  await sleep(3000);
  const runs0 = await runsTotal(s);
  const cpu0 = cpuSeconds(s.pid);
  const t0 = performance.now();
  // /readiness latency while probing, sampled 5 times a second.
  const lat: number[] = [];
  const end = t0 + WINDOW_S * 1000;
  while (performance.now() < end) {
    const a = performance.now();
    await (await fetch(`${s.url}/readiness`)).arrayBuffer();
    lat.push(performance.now() - a);
    await sleep(200);
  }
  const cpu1 = cpuSeconds(s.pid);
  const elapsed = (performance.now() - t0) / 1000;
  const runs = (await runsTotal(s)) - runs0;
  return { completion: runs / (N * elapsed), cpuPerProbeMs: ((cpu1 - cpu0) * 1000) / runs, probesPerS: runs / elapsed, readinessP99: percentile(lat, 0.99) };
}

note(`steady-state-tcp: ${N} tcp checks @1 s, history limit ${LIMIT}, ${WINDOW_S} s windows, ${ROUNDS} rounds`);
const full = await fullStore();
note(`filled the store: ${N * LIMIT} history rows`);
const side = (name: string, dataDir: () => string) => async () => {
  const s = await startServe(yaml, { dataDir: dataDir(), args: ['--concurrency', '64'] });
  try {
    const r = await measure(s);
    note(`${name}: ${r.probesPerS.toFixed(0)} probes/s (${(r.completion * 100).toFixed(1)}% of runs), ${r.cpuPerProbeMs.toFixed(3)} ms CPU/probe, /readiness p99 ${r.readinessP99.toFixed(1)} ms`);
    return r;
  } finally {
    await s.stop();
  }
};
const res = await alternate(ROUNDS, side('full store', () => full), side('empty store', () => join(tempDir('empty'), 'data')));
target.close();
for (const s of sockets) s.destroy();

const pick = (xs: Sample[], k: keyof Sample) => median(xs.map((x) => x[k]));
report('steady-state tcp completion (full store vs empty)', pick(res.project, 'completion') * 100, pick(res.anchor, 'completion') * 100, '% of runs', 0.95, false);
report('steady-state tcp CPU/probe (full store vs empty)', pick(res.project, 'cpuPerProbeMs'), pick(res.anchor, 'cpuPerProbeMs'), 'ms', 1.2, true);
