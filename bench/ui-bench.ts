// The status page at scale, in Debian's headless Chromium, and what serving it costs /readiness.
//
//   npx tsx bench/ui-bench.ts [checks=1000] [rounds=7]
//
// 1. Page: navigation start to "usable" (app.js has run: the `readiness-ui-ready` mark) for
//    the status page of N checks, alternated with an anchor: the same N rows as a bare HTML
//    table (no style sheet, no script) from a plain node:http server. Medians and the ratio.
// 2. /readiness while pages poll: /readiness latency with nobody looking, alternated with
//    10 open pages polling /ui/state every 2 s (the page's own rate, 5 requests/s) and one
//    full page load every 2 s, from a worker thread. Medians, p99 and the ratio.
// 3. The server's side alone: rendering `/` and answering /ui/state and /readiness (no
//    compression), wall and CPU time.
//
// Wall times depend on what else runs on the machine (here: other test suites on 2 cores), so
// part 1 also reports the CPU time each load costs, which does not: every Chromium process's
// (from /proc) plus this process's (the server), from navigation start to usable. On an idle
// machine a load takes about that long, less where Chromium's processes overlap.
import { createServer } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { chromium } from 'playwright-core';
import pino from 'pino';
import type { CheckDef } from '../src/config/types.js';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../test/helpers/browser.js';
import { checklistOf, scripted } from '../test/helpers/ui.js';

const N = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 7);
const log = pino({ level: 'silent' });
const sections = ['code-quality', 'configuration', 'database', 'infrastructure', 'observability', 'security', 'performance', 'disaster-recovery', 'documentation', 'compliance'];
const checks: CheckDef[] = Array.from({ length: N }, (_, i) =>
  scripted({
    id: `check-${i}`,
    title: `Checklist line ${i}: a measured property of the system stays within its bound`,
    section: sections[i % sections.length]!,
    severity: (['critical', 'high', 'medium', 'low'] as const)[i % 4],
    phase: (['pre-deploy', 'verify', 'monitor', 'post-deploy'] as const)[i % 4],
    expect: ['n < 900'],
    runbook: `https://runbooks.example.com/readiness/checks/check-${i}`,
    observe: () => ({ value: i, fields: { n: i } }),
  }),
);
const store = new MemoryStore();
const service = new Service({ file: 'bench', checklist: checklistOf('bench', checks), store, log });
for (const c of checks) await service.scheduler.runNow(c.id);
const app = await buildServer({ service, log });
const url = await app.listen({ port: 0, host: '127.0.0.1' });

// The anchor: the same rows, bare.
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const bare = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bare</title></head><body><table>${service
  .views()
  .map((v) => `<tr><td>${v.state}</td><td><a href="/checks/${v.def.id}">${esc(v.def.title)}</a> ${v.def.id}</td><td>${esc(v.message)}</td><td>${v.value ?? ''}</td><td><a href="${v.def.runbook}">runbook</a></td></tr>`)
  .join('')}</table></body></html>`;
const anchor = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(bare));
await new Promise<void>((r) => anchor.listen(0, '127.0.0.1', r));
const anchorUrl = `http://127.0.0.1:${(anchor.address() as { port: number }).port}/`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

// ---- 1. the page in Chromium
const TICK_MS = 1000 / 100; // USER_HZ: /proc times are in 1/100 s on Linux
/** CPU time (ms) of every process descending from this one: the browser and its helpers. */
function childrenCpuMs(): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
      parent.set(Number(d), Number(f[1]));
      ticks.set(Number(d), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])); // utime stime cutime cstime
    } catch {
      // gone meanwhile
    }
  }
  const mine = (pid: number): boolean => {
    for (let p = parent.get(pid), hops = 0; p !== undefined && hops < 20; p = parent.get(p), hops++) if (p === process.pid) return true;
    return false;
  };
  let sum = 0;
  for (const [pid, n] of ticks) if (mine(pid)) sum += n;
  return sum * TICK_MS;
}
const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const profile = mkdtempSync(join(tmpdir(), 'ui-bench-'));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1440, height: 900 } });
const page = await ctx.newPage();
const usable: number[] = [];
const bareLoaded: number[] = [];
const usableCpu: number[] = [];
const bareCpu: number[] = [];
let transfer = 0;
// First loads are reported on their own: the anchor's in the fresh browser (a new renderer
// process), then the page's (its server and script not run yet). Then the rounds are measured.
await page.goto(anchorUrl, { waitUntil: 'domcontentloaded' });
const coldBrowser = await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).domContentLoadedEventEnd);
const coldC0 = childrenCpuMs() + ownCpuMs();
await page.goto(url);
await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
const coldCpu = childrenCpuMs() + ownCpuMs() - coldC0;
const cold = await page.evaluate(() => performance.getEntriesByName('readiness-ui-ready')[0]!.startTime);
for (let r = 0; r < ROUNDS; r++) {
  await page.goto('about:blank');
  let c0 = childrenCpuMs() + ownCpuMs();
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.ready === '1');
  usableCpu.push(childrenCpuMs() + ownCpuMs() - c0);
  const m = await page.evaluate(() => ({
    ready: performance.getEntriesByName('readiness-ui-ready')[0]!.startTime,
    transfer: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).transferSize,
  }));
  usable.push(m.ready);
  transfer = m.transfer;
  await page.goto('about:blank');
  c0 = childrenCpuMs() + ownCpuMs();
  await page.goto(anchorUrl, { waitUntil: 'domcontentloaded' });
  bareCpu.push(childrenCpuMs() + ownCpuMs() - c0);
  bareLoaded.push(await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).domContentLoadedEventEnd));
}
await ctx.close();
rmSync(profile, { recursive: true, force: true });
console.log(`${N} checks, ${ROUNDS} alternated rounds`);
console.log(`page usable (app.js ran)     median ${median(usable).toFixed(0)} ms  (max ${Math.max(...usable).toFixed(0)}), ${(transfer / 1024).toFixed(0)} KiB transferred`);
console.log(`anchor: bare table loaded    median ${median(bareLoaded).toFixed(0)} ms  (max ${Math.max(...bareLoaded).toFixed(0)}), ${(bare.length / 1024).toFixed(0)} KiB uncompressed`);
console.log(`ratio page/anchor            ${(median(usable) / median(bareLoaded)).toFixed(2)}`);
console.log(`page usable, each round      ${usable.map((x) => x.toFixed(0)).join(', ')} ms; first loads: the anchor in the fresh browser ${coldBrowser.toFixed(0)} ms, then the page ${cold.toFixed(0)} ms (${coldCpu.toFixed(0)} ms CPU)`);
console.log(`CPU to usable (all processes) median ${median(usableCpu).toFixed(0)} ms  (max ${Math.max(...usableCpu).toFixed(0)}); anchor median ${median(bareCpu).toFixed(0)} ms; ratio ${(median(usableCpu) / median(bareCpu)).toFixed(2)}`);

// ---- 2. /readiness with and without pages polling
async function readinessLatencies(ms: number): Promise<number[]> {
  const out: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = performance.now();
    const res = await fetch(`${url}/readiness`);
    await res.arrayBuffer();
    out.push(performance.now() - s);
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}
// The viewers run in a worker thread: their fetches, decompression and parsing must not run on
// the server's event loop, or the bench would charge the clients' work to the server.
const VIEWERS = `
const { workerData, parentPort } = require('node:worker_threads');
const { url, count } = workerData;
let stop = false;
parentPort.on('message', () => { stop = true; });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const loops = Array.from({ length: count }, async (_, i) => {
  await sleep((i * 2000) / count);
  while (!stop) {
    await (await fetch(url + '/ui/state', { headers: { 'accept-encoding': 'gzip' } })).arrayBuffer();
    await sleep(2000);
  }
});
const pageLoads = (async () => {
  while (!stop) {
    await (await fetch(url, { headers: { accept: 'text/html', 'accept-encoding': 'br, gzip' } })).arrayBuffer();
    await sleep(2000);
  }
})();
Promise.all([...loops, pageLoads]).then(() => process.exit(0));
`;
function viewers(count: number): () => Promise<void> {
  const w = new Worker(VIEWERS, { eval: true, workerData: { url, count } });
  return async () => {
    w.postMessage('stop');
    await new Promise((r) => w.once('exit', r));
  };
}
const quiet: number[] = [];
const busy: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  quiet.push(...(await readinessLatencies(3000)));
  const stop = viewers(10);
  busy.push(...(await readinessLatencies(3000)));
  await stop();
}
console.log(`/readiness, nobody looking   p50 ${median(quiet).toFixed(2)} ms  p99 ${pct(quiet, 0.99).toFixed(2)} ms  (${quiet.length} requests)`);
console.log(`/readiness, 10 pages polling p50 ${median(busy).toFixed(2)} ms  p99 ${pct(busy, 0.99).toFixed(2)} ms  (${busy.length} requests)`);
console.log(`ratio polling/quiet          p50 ${(median(busy) / median(quiet)).toFixed(2)}  p99 ${(pct(busy, 0.99) / pct(quiet, 0.99)).toFixed(2)}`);

// ---- 3. the server's side alone
async function serverTime(path: string, headers: Record<string, string>): Promise<{ wall: number[]; cpu: number[] }> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < 30; i++) {
    const s = performance.now();
    const c = ownCpuMs();
    await app.inject({ url: path, headers });
    cpu.push(ownCpuMs() - c);
    wall.push(performance.now() - s);
  }
  return { wall, cpu };
}
const render = await serverTime('/', { accept: 'text/html' });
const state = await serverTime('/ui/state', {});
const readiness = await serverTime('/readiness', {});
for (const [what, r] of [['render /', render], ['/ui/state (shared 1 s)', state], ['/readiness', readiness]] as const) {
  console.log(`server: ${what.padEnd(24)} p50 ${median(r.wall).toFixed(1)} ms wall, ${median(r.cpu).toFixed(1)} ms CPU`);
}
await app.close();
anchor.close();
