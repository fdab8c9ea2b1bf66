// @bench-row
// CLI start-up (issue 14): the wall time of `readiness --version`, `--help`, `gate` (against a
// service that is ready) and `validate` of the shipped checklist, each alternated with its
// anchor `node -e 0` in one run, so the machine's load hits both sides alike.
//
//   npx tsx bench/startup.ts [rounds=7]     (npm run bench -- startup)
//
// Prints one line per command: `NAME: project X ms, anchor Y ms, ratio R (goal <= 2)`, medians
// of the rounds. The commands run as users run them: `node bin/readiness.js ...` (the bundle
// `npm run build` writes), so build first.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The command to time; READINESS_BIN=dist/main.js times the unbundled build instead. */
const BIN = process.env.READINESS_BIN ? join(ROOT, process.env.READINESS_BIN) : join(ROOT, 'bin', 'readiness.js');
const rounds = Number(process.argv[2] ?? 7);
const GOAL = 2;

if (!existsSync(join(ROOT, 'dist', 'bundle', 'main.js'))) {
  console.error('bench/startup.ts: dist/bundle/main.js is missing: run `npm run build` first');
  process.exit(2);
}

/**
 * Wall time of one process, from spawn to exit, in ms; its exit status must be `expect`. Async:
 * the stub service below answers gate from this process's event loop.
 */
async function wall(args: string[], expect: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  // Only the variables a user would have: no tsx loader or coverage hooks from this process.
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== expect) throw new Error(`node ${args.join(' ')} exited ${code} (expected ${expect}): ${err}`);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

// A service whose /readiness says ready, as `readiness serve` answers it: gate's one request.
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ready: true, status: 'ready', failing: [] }));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

const commands: [string, string[], number][] = [
  ['startup --version', ['--version'], 0],
  ['startup --help', ['--help'], 0],
  ['startup gate', ['gate', '--url', url, '--timeout', '10s'], 0],
  ['startup validate', ['validate'], 0],
];

console.error(`  ${rounds} rounds per command, load ${load()}`);
for (const [name, args, expect] of commands) {
  const project: number[] = [];
  const anchor: number[] = [];
  // One warm-up of each side (page cache), then project and anchor alternated, ABBA.
  await wall([BIN, ...args], expect);
  await wall(['-e', '0'], 0);
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      project.push(await wall([BIN, ...args], expect));
      anchor.push(await wall(['-e', '0'], 0));
    } else {
      anchor.push(await wall(['-e', '0'], 0));
      project.push(await wall([BIN, ...args], expect));
    }
  }
  const p = median(project);
  const a = median(anchor);
  const ratio = p / a;
  console.log(`${name}: project ${p.toFixed(0)} ms, anchor ${a.toFixed(0)} ms, ratio ${ratio.toFixed(2)} (goal <= ${GOAL}) ${ratio <= GOAL ? 'met' : 'NOT MET'} [load ${load()}]`);
}
server.close();
