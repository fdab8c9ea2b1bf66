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

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(CLI[0], [...CLI.slice(1), ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Starts `readiness serve` and resolves once it answers /healthz within `startTimeoutMs`:
 * generous by default, since on a loaded machine (several suites on 2 cores) start-up alone
 * can take 20 s. Killed in teardown.
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
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, output: () => out, exited };
}
