// How long a scrape and a /readiness answer take with a large checklist, over real HTTP.
// Every check has run once, so every metric family is fully populated.
//
//   npx tsx bench/scrape-bench.ts [checks=500] [requests=200]
import pino from 'pino';
import { buildServer } from '../src/http/server.js';
import { runOnce } from '../src/scheduler.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistOf, makeDef } from '../test/helpers/checks.js';

const N = Number(process.argv[2] ?? 500);
const R = Number(process.argv[3] ?? 200);
const log = pino({ level: 'silent' });
const sections = ['security', 'database', 'performance', 'observability', 'documentation'];
const defs = Array.from({ length: N }, (_, i) =>
  makeDef(() => ({ value: i, fields: { n: i } }), {
    id: `check-${i}`,
    section: sections[i % sections.length]!,
    severity: (['critical', 'high', 'medium', 'low'] as const)[i % 4],
    phase: (['pre-deploy', 'verify', 'monitor'] as const)[i % 3],
    expect: ['n > 10'],
  }),
);
const checklist = checklistOf(...defs);
const store = new MemoryStore();
const t0 = performance.now();
await runOnce(checklist, { store, log, concurrency: 64 });
const runAll = performance.now() - t0;
const service = new Service({ file: 'bench', checklist, store, log });
const app = await buildServer({ service, log });
const url = await app.listen({ port: 0, host: '127.0.0.1' });

async function time(path: string) {
  const lat: number[] = [];
  let bytes = 0;
  for (let i = 0; i < R; i++) {
    const s = performance.now();
    const res = await fetch(`${url}${path}`);
    bytes = (await res.arrayBuffer()).byteLength;
    lat.push(performance.now() - s);
  }
  lat.sort((a, b) => a - b);
  const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(1);
  console.log(`${path.padEnd(28)} p50 ${p(0.5).padStart(6)} ms  p99 ${p(0.99).padStart(6)} ms  body ${(bytes / 1024).toFixed(0)} KiB`);
}

console.log(`${N} checks, ${R} sequential requests each; running every check once took ${runAll.toFixed(0)} ms`);
await time('/metrics');
await time('/readiness');
await time('/readiness?phase=pre-deploy');
await time('/checks');
await app.close();
