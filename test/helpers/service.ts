// Building blocks for tests that run real servers (PostgreSQL, Prometheus, Alertmanager):
// free ports, private temp directories, and a process wrapper that cannot outlive the test.
//
// Every service runs under a small sh wrapper that holds the read end of a pipe from the
// test process: when the test process exits for any reason (end, crash, tap's timeout
// SIGKILL), the pipe closes and the wrapper stops the service. scripts/test.sh adds a second
// net: it kills every process carrying its READINESS_TEST_RUN marker in the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What t.teardown needs: lets helpers take tap's Test without depending on its types. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A system user to run a service as (initdb and postgres refuse root). */
export interface RunAs {
  uid: number;
  gid: number;
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * The user a service should run as: `name` when this process is root (the service would
 * refuse root or should not have it), else undefined (run as ourselves).
 */
export function serviceUser(name: string): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`system user "${name}" does not exist (install the Debian package that creates it)`);
}

/** A new empty directory for one service, under scripts/test.sh's run directory when set. */
export function serviceDir(prefix: string, owner?: RunAs): string {
  const root = process.env.READINESS_TEST_TMPDIR || tmpdir();
  const dir = mkdtempSync(join(root, `${prefix}-`));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/** mkdir -p, owned by `owner`. */
export function ownedDir(path: string, owner?: RunAs, mode = 0o700): string {
  mkdirSync(path, { recursive: true, mode });
  if (owner) chownSync(path, owner.uid, owner.gid);
  return path;
}

export function removeDir(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

// $1: signal that stops the service; the rest: the command. fd 3 keeps the pipe from the test
// process (an asynchronous list's stdin would otherwise be /dev/null).
const WRAPPER = `
sig=$1; shift
exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
{ cat >/dev/null; kill -s "$sig" "$pid" 2>/dev/null; } <&3 &
watch=$!
exec 3<&-
wait "$pid"; rc=$?
kill "$watch" 2>/dev/null
exit $rc
`;

/** A service process started by spawnService. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the service has exited. */
  readonly exited: Promise<number | string>;
  /** True until the service has exited. */
  running(): boolean;
  /**
   * Stops the service with its stop signal (closing the wrapper's pipe) and waits for it;
   * after `killAfterMs` it is killed with SIGKILL.
   */
  stop(killAfterMs?: number): Promise<void>;
  /** The service's own pid (the wrapper's child running `command`), to signal it directly. */
  servicePid(): number | undefined;
}

export interface SpawnOptions {
  /** Run as this user (see serviceUser). */
  user?: RunAs;
  /** Appended stdout and stderr. */
  logFile: string;
  /** The signal that makes the service shut down cleanly (default SIGTERM). */
  stopSignal?: NodeJS.Signals;
  env?: NodeJS.ProcessEnv;
  /** Start from an empty environment (only `env`), as a container does, instead of this process's. */
  cleanEnv?: boolean;
  cwd?: string;
}

/** Starts a long-running service under the wrapper described at the top of this file. */
export function spawnService(command: string, args: readonly string[], opts: SpawnOptions): ServiceProcess {
  const log = openSync(opts.logFile, 'a');
  const child = spawn('sh', ['-c', WRAPPER, 'service-wrapper', (opts.stopSignal ?? 'SIGTERM').replace(/^SIG/, ''), command, ...args], {
    stdio: ['pipe', log, log],
    env: opts.cleanEnv ? { ...opts.env } : { ...process.env, ...opts.env },
    cwd: opts.cwd,
    ...(opts.user && { uid: opts.user.uid, gid: opts.user.gid }),
  });
  closeSync(log);
  // The wrapper's stdin is only a lifeline: never written, and EPIPE after it exited is fine.
  child.stdin?.on('error', () => {});
  let alive = true;
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, sig) => {
      alive = false;
      resolve(code ?? sig ?? -1);
    });
    child.on('error', () => {
      alive = false;
      resolve(-1);
    });
  });
  // The wrapper must not keep the test process alive: a forgotten stop() ends with the process.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return {
    child,
    exited,
    running: () => alive,
    async stop(killAfterMs = 10_000) {
      if (!alive) return;
      child.stdin?.end();
      const timer = setTimeout(() => {
        if (alive && child.pid) killTree(child.pid);
      }, killAfterMs);
      await exited;
      clearTimeout(timer);
    },
    servicePid() {
      if (!alive || !child.pid) return undefined;
      return childrenOf(child.pid).find((pid) => argv0(pid) === command);
    },
  };
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function argv0(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    return undefined;
  }
}

function killTree(pid: number): void {
  for (const c of childrenOf(pid)) killTree(c);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Runs a command to completion; rejects with its output when it exits non-zero. */
export function runCommand(command: string, args: readonly string[], opts: { user?: RunAs; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      timeout: opts.timeoutMs ?? 60_000,
      ...(opts.user && { uid: opts.user.uid, gid: opts.user.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Like runCommand, but a non-zero exit is an error carrying the command's output. */
export async function mustRun(command: string, args: readonly string[], opts: Parameters<typeof runCommand>[2] = {}): Promise<string> {
  const r = await runCommand(command, args, opts);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The last lines of a log file, for start-up failures. */
export function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, opts: { timeoutMs?: number; everyMs?: number; abortIf?: () => string | undefined } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    const abort = opts.abortIf?.();
    if (abort) throw new Error(`${what}: ${abort}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${opts.timeoutMs ?? 30_000} ms`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 50));
  }
}
