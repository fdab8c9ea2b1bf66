// @bench-row
// GET /readiness throughput at 500 checks (tcp @10 s), 32 connections kept busy (closed
// loop, undici), against a bare fastify server answering the same bytes (the service's own
// /readiness body, captured first), alternated. Goal: >= 0.8x the fastify server. The load
// generator is this process, the same for both sides; both servers are child processes.
//
//   npx tsx bench/readiness-throughput.ts [checks=500] [window-seconds=8] [rounds=2] [connections=32]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { alternate, allRan, median, note, report, sleep, startAnchor, startServe, tcpChecklist, tcpTarget, tempDir } from './lib/common.js';

const N = Number(process.argv[2] ?? 500);
const WINDOW_S = Number(process.argv[3] ?? 8);
const ROUNDS = Number(process.argv[4] ?? 2);
const CONNECTIONS = Number(process.argv[5] ?? 32);

/** Requests per second answered with 200 over WINDOW_S seconds, after a 1 s warm-up. */
async function load(origin: string): Promise<number> {
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
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(loops);
  await pool.close();
  if (bad > 0) note(`${origin}: ${bad} requests failed or not 200`);
  return ok / elapsed;
}

note(`readiness-throughput: ${N} tcp checks @10 s, ${CONNECTIONS} connections, ${WINDOW_S} s windows, ${ROUNDS} rounds`);
const target = await tcpTarget();
const serve = await startServe(tcpChecklist(N, target.port, { interval: '10s', name: 'bench-throughput' }), { args: ['--concurrency', '64'] });
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
  await load(serve.url);
  await load(a.url);
  const res = await alternate(
    ROUNDS,
    async () => {
      const r = await load(serve.url);
      note(`readiness-exporter: ${r.toFixed(0)} req/s`);
      return r;
    },
    async () => {
      const r = await load(a.url);
      note(`fastify, same bytes: ${r.toFixed(0)} req/s`);
      return r;
    },
  );
  report('/readiness throughput at 500 checks vs bare fastify', median(res.project), median(res.anchor), 'req/s', 0.8, false);
} finally {
  await anchor?.stop();
  await serve.stop();
  target.close();
}
