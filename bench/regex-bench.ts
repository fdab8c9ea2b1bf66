// Regular expressions against hostile target text (issue 12, item 4).
//
// 1. Per match, on inputs that make backtracking explode (`(a+)+$` against a...a!): V8's
//    RegExp (exponential: only tiny inputs are measurable), re2js inline (linear, on the
//    caller's thread) and SafeRegex.test (re2js in the worker for inputs over 16 KiB), with
//    the longest event-loop stall seen during each.
// 2. /readiness latency of a real `readiness serve` (from dist/: run `npm run build` first)
//    while a check runs `body =~ "(a+)+$"` every second against a ~1 MiB hostile body,
//    against the anchor: the same service and body with a check that has no regex. The two
//    services are measured alternately in one run; the ratio is what to compare.
//
//   npx tsx bench/regex-bench.ts [seconds per round=8] [rounds=3]
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeRegexWorker, SafeRegex } from '../src/regex.js';

const SECONDS = Number(process.argv[2] ?? 8);
const ROUNDS = Number(process.argv[3] ?? 3);
const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 1)} ms`;
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

/** Wall time of `fn` and the longest gap between 1 ms ticks meanwhile: how long the event loop was held. */
async function stall<T>(fn: () => Promise<T> | T): Promise<{ wall: number; stall: number; out: T }> {
  let last = performance.now();
  let worst = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 5));
  last = performance.now();
  const t0 = last;
  const out = await fn();
  const wall = performance.now() - t0;
  // The tick that was held up runs now and records the gap.
  await new Promise((r) => setTimeout(r, 5));
  clearInterval(tick);
  return { wall, stall: worst, out };
}

console.log('# 1. one match on hostile input (wall time; longest event-loop stall)\n');
console.log('| engine | pattern | input | wall | stall | matched |');
console.log('|---|---|---|---|---|---|');
for (const n of [18, 20, 22, 24]) {
  const re = /(a+)+$/;
  const text = `${'a'.repeat(n)}!`;
  const r = await stall(() => re.test(text));
  console.log(`| V8 RegExp | \`(a+)+$\` | ${n} a + ! | ${ms(r.wall)} | ${ms(r.stall)} | ${r.out} |`);
}
const MiB = (1 << 20) - 64;
for (const [pattern, text, label] of [
  ['(a+)+$', `${'a'.repeat(64)}!`, '64 a + !'],
  ['(a+)+$', `${'a'.repeat(16 * 1024 - 1)}!`, '16 KiB'],
  ['(a+)+$', `${'a'.repeat(MiB)}!`, '1 MiB'],
  ['(?i)error|fail', 'x'.repeat(MiB), '1 MiB'],
  ['^(a|aa)+$', `${'a'.repeat(MiB)}!`, '1 MiB'],
] as const) {
  const re = SafeRegex.compile(pattern);
  const inline = await stall(() => re.testSync(text));
  console.log(`| re2js inline | \`${pattern}\` | ${label} | ${ms(inline.wall)} | ${ms(inline.stall)} | ${inline.out} |`);
  await re.test('x'.repeat(20_000)); // the worker is up
  const off = await stall(() => re.test(text));
  console.log(`| SafeRegex.test (worker over 16 KiB) | \`${pattern}\` | ${label} | ${ms(off.wall)} | ${ms(off.stall)} | ${off.out} |`);
}
await closeRegexWorker();

console.log(`\n# 2. /readiness while a check matches a hostile 1 MiB body every second (${ROUNDS} rounds of ${SECONDS} s each, alternated)\n`);
const body = `${'a'.repeat(MiB)}!`;
const target = createServer((_req, res) => res.end(body));
await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
const targetUrl = `http://127.0.0.1:${(target.address() as { port: number }).port}/`;
const dir = mkdtempSync(join(tmpdir(), 'regex-bench-'));

function checklistFile(name: string, expect: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: regex-bench
checks:
${[0, 1, 2, 3]
  .map(
    (i) => `  - id: body-${i}
    title: Body ${i}
    section: verify
    severity: high
    phase: verify
    probe: http
    with: { url: "${targetUrl}" }
    expect: [${JSON.stringify(expect)}]
    interval: 1s
    timeout: 900ms
`,
  )
  .join('')}`,
  );
  return file;
}

async function startServe(name: string, file: string): Promise<{ url: string; child: ChildProcess }> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(process.execPath, ['bin/readiness.js', 'serve', '-c', file, '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(dir, `data-${name}`)], {
    stdio: 'ignore',
    env: { ...process.env, READINESS_LOG_LEVEL: 'error' },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child };
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not start`);
}

const services = {
  regex: await startServe('regex', checklistFile('regex', 'body =~ "(a+)+$"')),
  anchor: await startServe('anchor', checklistFile('anchor', 'status == 200')),
};
// Let both run their checks a few times first.
await new Promise((r) => setTimeout(r, 3000));
const lat: Record<keyof typeof services, number[]> = { regex: [], anchor: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const name of ['regex', 'anchor'] as const) {
    const end = performance.now() + SECONDS * 1000;
    while (performance.now() < end) {
      const s = performance.now();
      const res = await fetch(`${services[name].url}/readiness`);
      await res.arrayBuffer();
      lat[name].push(performance.now() - s);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
console.log('| service | requests | p50 | p99 | max |');
console.log('|---|---|---|---|---|');
for (const name of ['regex', 'anchor'] as const) {
  const xs = lat[name];
  console.log(`| ${name === 'regex' ? '`body =~ "(a+)+$"` on 1 MiB, 4 checks, 1 s' : 'anchor: `status == 200`, same body'} | ${xs.length} | ${ms(q(xs, 0.5))} | ${ms(q(xs, 0.99))} | ${ms(Math.max(...xs))} |`);
}
console.log(`\nratio regex/anchor: p50 ${(q(lat.regex, 0.5) / q(lat.anchor, 0.5)).toFixed(2)}, p99 ${(q(lat.regex, 0.99) / q(lat.anchor, 0.99)).toFixed(2)}`);
for (const s of Object.values(services)) s.child.kill('SIGTERM');
target.close();
