// `readiness serve` holds V8's optimizing compiler off while it starts and turns it back on
// once the service runs (src/startup-flags.ts; bench/idle-rss.ts measures the memory saved).
// Observed, not timed: a child process with V8's natives syntax asks whether a hot function
// was optimized, before and after serveStarted(), and and with the operator's own --no-opt.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';

const dir = mkdtempSync(join(tmpdir(), 'readiness-startup-flags-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const flags = pathToFileURL(resolve('dist/startup-flags.js')).href;

// Calls `hot` until V8 reports it optimized (bit 16 of %GetOptimizationStatus) or a bounded
// number of calls passed: with the compiler off it never is; with it on it is within far fewer.
const script = join(dir, 'probe.mjs');
writeFileSync(
  script,
  `import { serveStarting, serveStarted, optimizerDeferred } from ${JSON.stringify(flags)};
function hot(x) { let s = 0; for (let i = 0; i < 4; i++) s += (i * x) % 7; return s; }
function warm(f, calls) {
  for (let n = 0; n < calls; n++) {
    f(n);
    if (n % 1000 === 0 && (%GetOptimizationStatus(f) & 16) !== 0) return true;
  }
  return (%GetOptimizationStatus(f) & 16) !== 0;
}
serveStarting();
const deferred = optimizerDeferred();
const during = warm(hot, 2e6);
serveStarted();
const after = warm(hot, 2e6);
serveStarted();
console.log(JSON.stringify({ deferred, during, after, deferredAfter: optimizerDeferred() }));
`,
);

function run(nodeArgs: string[]): { deferred: boolean; during: boolean; after: boolean; deferredAfter: boolean } {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', ...nodeArgs, script], { env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`probe exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ReturnType<typeof run>;
}

t.test('the optimizing compiler is off while serve starts and on once it runs', async (t) => {
  // Precondition: without serveStarting(), this function does get optimized in this many calls.
  const plain = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', `function hot(x) { let s = 0; for (let i = 0; i < 4; i++) s += (i * x) % 7; return s; }
for (let n = 0; n < 2e6 && (%GetOptimizationStatus(hot) & 16) === 0; n++) hot(n);
console.log((%GetOptimizationStatus(hot) & 16) !== 0);`], { encoding: 'utf8', timeout: 120_000 });
  t.equal(plain.stdout.trim(), 'true', `a hot function is optimized within 2e6 calls: ${plain.stderr}`);

  const r = run([]);
  t.equal(r.deferred, true, 'serveStarting() defers the optimizer');
  t.equal(r.during, false, 'nothing is optimized before the service has started');
  t.equal(r.after, true, 'serveStarted() turns the optimizer back on');
  t.equal(r.deferredAfter, false);
});

t.test("the operator's own choice stands", async (t) => {
  const off = run(['--no-opt']);
  t.equal(off.deferred, false, 'node --no-opt: nothing to defer');
  t.equal(off.after, false, 'node --no-opt: serveStarted() does not turn on what the operator turned off');
  const on = run(['--opt']);
  t.equal(on.deferred, false, 'node --opt: the operator asked for it, it is not held off');
  t.equal(on.during, true);
});

// The young generation: kept at its initial size while serve starts, free to grow (V8's factor 2)
// once it runs. Observed through the new space's size after the same allocation churn, before
// and after serveStarted(): a runtime change of the growth factor takes effect.
const young = join(dir, 'young.mjs');
writeFileSync(
  young,
  `import { getHeapSpaceStatistics } from 'node:v8';
import { serveStarting, serveStarted } from ${JSON.stringify(flags)};
const size = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
const keep = [];
function churn() {
  for (let r = 0; r < 60; r++) {
    const a = [];
    for (let i = 0; i < 20000; i++) a.push({ i, s: 'x' + i });
    keep.push(a);
    if (keep.length > 20) keep.shift();
  }
}
const initial = size();
if (process.argv[2] !== 'plain') serveStarting();
churn();
const starting = size();
serveStarted();
churn();
console.log(JSON.stringify({ initial, starting, started: size() }));
`,
);

function youngRun(args: string[], nodeArgs: string[] = []): { initial: number; starting: number; started: number } {
  const r = spawnSync(process.execPath, [...nodeArgs, young, ...args], { env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`probe exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ReturnType<typeof youngRun>;
}

t.test('the young generation stays small while serve starts and grows once it runs', async (t) => {
  const MiB = 1 << 20;
  // Precondition: the same churn grows the young generation of a plain process well past 8 MiB.
  const plain = youngRun(['plain']);
  t.ok(plain.starting > 8 * MiB, `a plain process grows its new space (${plain.initial / MiB} -> ${plain.starting / MiB} MiB)`);

  const r = youngRun([]);
  t.ok(r.starting <= Math.max(r.initial, 4 * MiB), `held at about its initial size while starting (${r.initial / MiB} -> ${r.starting / MiB} MiB)`);
  t.ok(r.started > 8 * MiB, `free to grow once started (${r.started / MiB} MiB)`);

  // The operator's own sizing stands: serveStarting() does not hold it.
  const own = youngRun([], ['--semi-space-growth-factor=4']);
  t.ok(own.starting > 8 * MiB, `node --semi-space-growth-factor=4: not held (${own.starting / MiB} MiB)`);
});
