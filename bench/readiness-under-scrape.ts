// @bench-row
// The gate never waits for a scrape: GET /readiness p99 at 10,000 checks (probing @30 s)
// while two scrapers (child processes) each GET /metrics every second, against the same
// process with no scraper, alternated in windows. /readiness is asked sequentially every
// 50 ms from this process. Goal: p99 <= 20 ms while scraped (issue 14 saw 1,840 ms).
//
//   npx tsx bench/readiness-under-scrape.ts [checks=10000] [window-seconds=10] [rounds=2]
import { join } from 'node:path';
import { alternate, allRan, note, percentile, report, ROOT, sleep, start, startServe, tcpChecklist, tcpTarget, type Proc } from './lib/common.js';

const N = Number(process.argv[2] ?? 10_000);
const WINDOW_S = Number(process.argv[3] ?? 10);
const ROUNDS = Number(process.argv[4] ?? 2);

async function sample(url: string): Promise<number[]> {
  const ms: number[] = [];
  const end = performance.now() + WINDOW_S * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    await (await fetch(`${url}/readiness`)).arrayBuffer();
    ms.push(performance.now() - t0);
    await sleep(50);
  }
  return ms;
}

note(`readiness-under-scrape: ${N} tcp checks @30 s, ${WINDOW_S} s windows, ${ROUNDS} rounds`);
const target = await tcpTarget();
const serve = await startServe(tcpChecklist(N, target.port, { interval: '30s', name: 'bench-gate' }), { args: ['--concurrency', '64'] });
try {
  await allRan(serve);
  note('every check has run once');
  // Warm-up, not counted: the first runs' writes settle and the paths get compiled.
  await sample(serve.url);
  const res = await alternate(
    ROUNDS,
    async () => {
      // Two scrapers, half a second apart.
      const scrapers: Proc[] = [];
      for (let i = 0; i < 2; i++) {
        scrapers.push(start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/lib/scraper.ts'), `${serve.url}/metrics`, '1000']));
        await sleep(500);
      }
      try {
        await sleep(1000);
        const ms = await sample(serve.url);
        note(`scraped by two every 1 s: /readiness p50 ${percentile(ms, 0.5).toFixed(1)} ms, p99 ${percentile(ms, 0.99).toFixed(1)} ms (${ms.length} requests)`);
        return ms;
      } finally {
        await Promise.all(scrapers.map((s) => s.stop()));
      }
    },
    async () => {
      const ms = await sample(serve.url);
      note(`no scraper: /readiness p50 ${percentile(ms, 0.5).toFixed(1)} ms, p99 ${percentile(ms, 0.99).toFixed(1)} ms (${ms.length} requests)`);
      return ms;
    },
  );
  const p = percentile(res.project.flat(), 0.99);
  const a = percentile(res.anchor.flat(), 0.99);
  report('/readiness p99 at 10k checks, scraped by two every 1 s vs no scrape', p, a, 'ms', 20, true, p / a, { goal: 'project p99 <= 20 ms', met: p <= 20 });
} finally {
  await serve.stop();
  target.close();
}
