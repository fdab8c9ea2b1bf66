// npm run bench: runs every bench script that starts with the line `// @bench-row` (one per
// row of issue 14's table), one after the other with its default arguments, and prints each
// result line again at the end with the total wall time and the machine's load. A script
// that crashes fails the run; a goal not met does not (the line says NOT MET).
//
//   npm run bench [-- name-filter...]     e.g. npm run bench -- probe-cpu metrics
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2);
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
console.log(`bench: ${scripts.length} scripts (${scripts.join(', ')}), load ${load()}`);
for (const f of scripts) {
  const s0 = performance.now();
  console.log(`\n== ${f}`);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(DIR, f)], { stdio: ['ignore', 'pipe', 'inherit'] });
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
console.log(`\n== summary: ${((performance.now() - t0) / 1000).toFixed(0)} s in all, load ${load()}`);
for (const r of results) console.log(r);
if (failed.length) {
  console.log(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
