// npm run bench: runs every bench script that starts with the line `// @bench-row` (one per
// row of issue 14's table), one after the other with the arguments below, and prints each
// result line again at the end with the total wall time and the machine's load. A script
// that crashes fails the run; a goal not met does not (the line says NOT MET).
//
//   npm run bench [-- name-filter...]     e.g. npm run bench -- probe-cpu metrics
//   npm run bench -- --full [name-filter...]   each script with its own (longer) defaults
//
// The whole run must stay under 10 minutes on the project's loaded 2-core machine (issue 14),
// so `npm run bench` gives the windowed scripts shorter windows than their own defaults (ARGS
// below): still two rounds each, so project and anchor alternate ABBA, and still thousands of
// probes or hundreds of requests per window. A script not listed runs with its defaults.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const full = process.argv.includes('--full');
const filters = process.argv.slice(2).filter((a) => a !== '--full');
/** Seconds the whole run may take (the summary says so when it ran longer). */
const BUDGET_S = 600;
/** Arguments for `npm run bench` (without --full), as each script's header comment documents them. */
const ARGS: Record<string, string[]> = {
  'steady-state-tcp.ts': ['1000', '6', '2'], // checks, window seconds, rounds
  'probe-cpu-http.ts': ['200', '6', '2'], // checks, window seconds, rounds
  'probe-cpu-tcp.ts': ['200', '6', '2'],
  'metrics-10k.ts': ['10000', '6', '2'], // checks, scrapes per window, rounds
  'readiness-under-scrape.ts': ['10000', '6', '2'], // checks, window seconds, rounds
  'readiness-throughput.ts': ['500', '5', '2'], // checks, window seconds, rounds
};
const scripts = readdirSync(DIR)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .filter((f) => readFileSync(join(DIR, f), 'utf8').startsWith('// @bench-row'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const results: string[] = [];
const failed: string[] = [];
const t0 = performance.now();
console.log(`bench: ${scripts.length} scripts (${scripts.join(', ')})${full ? ', their own defaults' : ''}, load ${load()}`);
for (const f of scripts) {
  const s0 = performance.now();
  const args = full ? [] : (ARGS[f] ?? []);
  console.log(`\n== ${f}${args.length ? ` ${args.join(' ')}` : ''}`);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(DIR, f), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout.on('data', (b: Buffer) => {
      process.stdout.write(b);
      buf += b.toString();
    });
    child.on('exit', (c) => {
      for (const line of buf.split('\n')) if (/: project .*, anchor .*, ratio /.test(line)) results.push(line);
      resolve(c);
    });
  });
  console.log(`   (${f}: ${((performance.now() - s0) / 1000).toFixed(0)} s${code === 0 ? '' : `, exit ${code}`})`);
  if (code !== 0) failed.push(f);
}
const total = (performance.now() - t0) / 1000;
console.log(`\n== summary: total wall time ${total.toFixed(0)} s (${(total / 60).toFixed(1)} min${total > BUDGET_S ? `, over the ${BUDGET_S / 60}-minute budget` : ''}), load ${load()}`);
for (const r of results) console.log(r);
if (failed.length) {
  console.log(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
