// @bench-row
// GET /readiness throughput at 500 checks, 32 connections kept busy (closed loop, undici),
// against a bare fastify server answering the same bytes (the service's own /readiness body,
// captured first), alternated. Goal: >= 0.8x the fastify server. The load generator is this
// process, the same for both sides; both servers are child processes. Each side's CPU per
// request (from /proc) is printed too: on a loaded machine it moves less than req/s.
//
// The anchor probes nothing, so by default the checks (tcp) run once at start and not again
// during the windows (interval 1h): the row compares the serving paths. With a shorter
// interval (e.g. 10s: 50 probes and store writes a second on the same event loop) the
// service's share of a loaded machine's CPU also pays for its probing; bench/README.md
// records both.
//
//   npx tsx bench/readiness-throughput.ts [checks=500] [window-seconds=8] [rounds=2] [connections=32] [interval=1h]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { alternate, allRan, cpuSeconds, median, note, report, sleep, startAnchor, startServe, tcpChecklist, tcpTarget, tempDir } from './lib/common.js';

const N = Number(process.argv[2] ?? 500);
const WINDOW_S = Number(process.argv[3] ?? 8);
const ROUNDS = Number(process.argv[4] ?? 2);
const CONNECTIONS = Number(process.argv[5] ?? 32);
const INTERVAL = process.argv[6] ?? '1h';

/** Requests per second answered with 200 over WINDOW_S seconds, after a 1 s warm-up, and the server's CPU per request. */
async function load(origin: string, pid: number): Promise<{ rps: number; cpuUs: number }> {
  const pool = new Pool(origin, { connections: CONNECTIONS, pipelining: 1 });
  let ok = 0;
  let bad = 0;
  let counting = false;
  let stop = false;
  const loops = Array.from({ length: CONNECTIONS }, async () => {
    while (!stop) {
      try {
        const res = await pool.request({ method: 'GET', path: '/readiness' });
        await res.body.dump();
        if (res.statusCode === 200) {
          if (counting) ok++;
        } else bad++;
      } catch {
        bad++;
      }
    }
  });
  await sleep(1000);
  counting = true;
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  counting = false;
  const c1 = cpuSeconds(pid);
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(loops);
  await pool.close();
  if (bad > 0) note(`${origin}: ${bad} requests failed or not 200`);
  return { rps: ok / elapsed, cpuUs: ((c1 - c0) * 1e6) / ok };
}

note(`readiness-throughput: ${N} tcp checks @${INTERVAL}, ${CONNECTIONS} connections, ${WINDOW_S} s windows, ${ROUNDS} rounds`);
const target = await tcpTarget();
const serve = await startServe(tcpChecklist(N, target.port, { interval: INTERVAL, name: 'bench-throughput' }), { args: ['--concurrency', '64'] });
let anchor: Awaited<ReturnType<typeof startAnchor>> | undefined;
try {
  await allRan(serve);
  const res0 = await fetch(`${serve.url}/readiness`);
  if (res0.status !== 200) throw new Error(`/readiness answered ${res0.status}: every check should pass`);
  const file = join(tempDir('fastify'), 'readiness.json');
  writeFileSync(file, Buffer.from(await res0.arrayBuffer()));
  anchor = await startAnchor('fastify', file);
  const a = anchor;
  // Warm-up, not counted: the service has just started its first runs and nothing is compiled yet.
  await load(serve.url, serve.pid);
  await load(a.url, a.pid);
  const res = await alternate(
    ROUNDS,
    async () => {
      const r = await load(serve.url, serve.pid);
      note(`readiness-exporter: ${r.rps.toFixed(0)} req/s, ${r.cpuUs.toFixed(1)} µs CPU/request`);
      return r;
    },
    async () => {
      const r = await load(a.url, a.pid);
      note(`fastify, same bytes: ${r.rps.toFixed(0)} req/s, ${r.cpuUs.toFixed(1)} µs CPU/request`);
      return r;
    },
  );
  const cpu = (xs: { cpuUs: number }[]) => median(xs.map((x) => x.cpuUs));
  note(`CPU per request: project ${cpu(res.project).toFixed(1)} µs, anchor ${cpu(res.anchor).toFixed(1)} µs, ratio ${(cpu(res.project) / cpu(res.anchor)).toFixed(2)}`);
  const probing = INTERVAL === '1h' ? 'no probing in the windows' : `checks probing @${INTERVAL}`;
  report(`/readiness throughput at ${N} checks (${probing}) vs bare fastify`, median(res.project.map((r) => r.rps)), median(res.anchor.map((r) => r.rps)), 'req/s', 0.8, false);
} finally {
  await anchor?.stop();
  await serve.stop();
  target.close();
}
