// @bench-row
// GET /metrics at 10,000 checks: p50 of the service's scrape (every check probing @30 s, so
// views change under the scrapes) against a bare prom-client registry holding 5 series per
// check (register.metrics() served over HTTP), alternated. Goal: p50 <= 50 ms (the issue's
// anchor took 314 ms). One scrape is also checked with `promtool check metrics`.
//
//   npx tsx bench/metrics-10k.ts [checks=10000] [scrapes-per-window=10] [rounds=2]
import { spawnSync } from 'node:child_process';
import { alternate, allRan, median, note, percentile, report, sleep, startAnchor, startServe, tcpChecklist, tcpTarget } from './lib/common.js';

const N = Number(process.argv[2] ?? 10_000);
const SCRAPES = Number(process.argv[3] ?? 10);
const ROUNDS = Number(process.argv[4] ?? 2);

/** SCRAPES sequential scrapes, timed to the last byte received (not decoded: the client's own cost is not the server's). */
async function scrapes(url: string): Promise<{ ms: number[]; bytes: number; text: string }> {
  const ms: number[] = [];
  let body = Buffer.alloc(0);
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = performance.now();
    body = Buffer.from(await (await fetch(`${url}/metrics`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer());
    ms.push(performance.now() - t0);
    await sleep(250);
  }
  return { ms, bytes: body.length, text: body.toString() };
}

note(`metrics-10k: ${N} tcp checks @30 s, ${SCRAPES} scrapes per window, ${ROUNDS} rounds`);
const target = await tcpTarget();
const serve = await startServe(tcpChecklist(N, target.port, { interval: '30s', name: 'bench-metrics' }), { args: ['--concurrency', '64'] });
const anchor = await startAnchor('prom-client', String(N));
try {
  await allRan(serve);
  note('every check has run once');
  let lastText = '';
  const res = await alternate(
    ROUNDS,
    async () => {
      const r = await scrapes(serve.url);
      lastText = r.text;
      note(`readiness-exporter: p50 ${median(r.ms).toFixed(1)} ms, p99 ${percentile(r.ms, 0.99).toFixed(1)} ms, ${(r.bytes / 2 ** 20).toFixed(1)} MiB`);
      return r.ms;
    },
    async () => {
      const r = await scrapes(anchor.url);
      note(`prom-client, 5 series per check: p50 ${median(r.ms).toFixed(1)} ms, ${(r.bytes / 2 ** 20).toFixed(1)} MiB`);
      return r.ms;
    },
  );
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: lastText, encoding: 'utf8' });
  note(`promtool check metrics: ${lint.status === 0 ? 'clean' : `exit ${lint.status}: ${(lint.stdout + lint.stderr).slice(0, 500)}`}`);
  const p = median(res.project.flat());
  const a = median(res.anchor.flat());
  report('/metrics p50 at 10k checks vs prom-client 5 series/check', p, a, 'ms', 50, true, p / a, { goal: 'project p50 <= 50 ms', met: p <= 50 && lint.status === 0 });
} finally {
  await anchor.stop();
  await serve.stop();
  target.close();
}
