// Runs the real `readiness` command, the compiled one the package ships (bin/readiness.js
// over dist/bundle/), as a child process. scripts/test.sh builds first; a dist/ older than src/
// is refused so a test never passes against stale code.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './service.js';

export const CLI = [process.execPath, 'bin/readiness.js'] as const;

function newest(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return m;
}

/**
 * A port no earlier service of this test process had: fetch keeps idle keep-alive sockets,
 * and one left to a killed service on a reused port answers the next request with ECONNRESET.
 */
const usedPorts = new Set<number>();
async function unusedPort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (!usedPorts.has(p)) {
      usedPorts.add(p);
      return p;
    }
  }
}

let checked = false;
function assertBuilt(): void {
  if (checked) return;
  let built = 0;
  try {
    // The command runs the bundle, the build's last step (src/build/bundle.ts).
    built = statSync('dist/bundle/main.js').mtimeMs;
  } catch {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
  }
  if (built < newest('src')) throw new Error('dist/ is older than src/: run `npm run build` (npm test does it)');
  checked = true;
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The wall time of `readiness --version` now, measured once per test process: what one
 * start-up of the command costs on this machine under its current load (2 shared cores and
 * other suites beside this one can make it 10x a quiet machine's).
 */
let measured: Promise<number> | undefined;
export function measuredStartupMs(): Promise<number> {
  measured ??= (async () => {
    const t0 = performance.now();
    const r = await spawnCli(['--version'], {}, 600_000);
    if (r.code !== 0) throw new Error(`readiness --version exited ${r.code}: ${r.stderr}`);
    return performance.now() - t0;
  })();
  return measured;
}

/**
 * A deadline for something that costs about `startups` command start-ups, never shorter than
 * `floorMs`: deadlines scale with the machine's measured speed instead of being fixed guesses.
 */
export async function startupDeadline(startups: number, floorMs: number): Promise<number> {
  return Math.max(floorMs, Math.ceil(startups * (await measuredStartupMs())));
}

/**
 * Runs the command; killed after `timeoutMs` (default: 60 s, or 100 measured start-ups when
 * longer). `entry` is the file node runs (default bin/readiness.js, as users run it).
 */
export async function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; entry?: string } = {}): Promise<Ran> {
  assertBuilt();
  return spawnCli(args, opts.env ?? {}, opts.timeoutMs ?? (await startupDeadline(100, 60_000)), opts.entry);
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, entry: string = CLI[1]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLI[0], [entry, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Starts `readiness serve` and resolves once it answers /healthz. The deadline is derived from
 * the measured start-up of the command (100 of them: serving the shipped checklist costs about
 * ten on a quiet machine), never shorter than `startTimeoutMs`: on a loaded machine (several
 * suites on 2 cores) start-up alone has taken 20 s, and a fixed guess failed there. Killed in
 * teardown.
 */
export async function startServe(
  t: { teardown: (fn: () => unknown) => void },
  args: string[],
  env: NodeJS.ProcessEnv = {},
  startTimeoutMs = 60_000,
): Promise<{ child: ChildProcess; url: string; output: () => string; exited: Promise<number | null> }> {
  assertBuilt();
  const port = env.READINESS_PORT ? Number(env.READINESS_PORT) : await unusedPort();
  const child = spawn(CLI[0], [...CLI.slice(1), 'serve', '--host', '127.0.0.1', '--port', String(port), ...args], {
    env: { ...process.env, READINESS_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = `http://127.0.0.1:${port}`;
  const budget = await startupDeadline(100, startTimeoutMs);
  const deadline = Date.now() + budget;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode} before it answered /healthz:\n${out}`);
    if (Date.now() > deadline) throw new Error(`serve did not answer /healthz within ${budget} ms (100 measured start-ups of ${Math.round(await measuredStartupMs())} ms, at least ${startTimeoutMs}):\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, output: () => out, exited };
}
