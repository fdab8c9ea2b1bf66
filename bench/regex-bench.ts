// Regular expressions against hostile target text (issue 12, item 4).
//
// Per match, on inputs that make backtracking explode (`(a+)+$` against a...a!): V8's
// RegExp (exponential: only tiny inputs are measurable), re2js inline (linear, on the
// caller's thread) and SafeRegex.test (re2js in the worker for inputs over 16 KiB), with
// the longest event-loop stall seen during each.
// /readiness latency while such checks run is bench/readiness-regex.ts (an `npm run bench` row).
//
//   npx tsx bench/regex-bench.ts
import { closeRegexWorker, SafeRegex } from '../src/regex.js';

const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 1)} ms`;

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

console.log('# one match on hostile input (wall time; longest event-loop stall)\n');
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

