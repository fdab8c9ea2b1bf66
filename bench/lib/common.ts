// Shared by the bench/*.ts scripts (bench/run.ts runs the scripts, not this directory):
// starting the service and its anchors as child processes, reading a process's CPU time,
// alternating the two sides, and printing the one line each script ends with.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin/readiness.js');

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const HZ = 100;

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / HZ;
}

/** Resident memory of a process in MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `readiness-bench-${prefix}-`));
}

/** Polls `fn` until it returns a value other than undefined, or throws after `ms`. */
export async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`${what} did not happen within ${ms} ms${last ? `: ${String(last)}` : ''}`);
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns a process; its output is kept for error messages; stop() sends SIGTERM, then SIGKILL. */
export function start(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    pid: child.pid!,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface Serve extends Proc {
  url: string;
  dataDir: string;
}

/** `readiness serve` on a free port with this checklist text and data directory. */
/** Extra node flags for every serve a bench starts (diagnosis: `BENCH_SERVE_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/p'`). */
function serveNodeArgs(): string[] {
  return (process.env.BENCH_SERVE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

export async function startServe(checklistYaml: string, opts: { dataDir?: string; env?: NodeJS.ProcessEnv; args?: string[]; nodeArgs?: string[] } = {}): Promise<Serve> {
  const dir = tempDir('serve');
  const file = join(dir, 'checklist.yaml');
  writeFileSync(file, checklistYaml);
  const dataDir = opts.dataDir ?? join(dir, 'data');
  const port = await freePort();
  const p = start(process.execPath, [...(opts.nodeArgs ?? []), ...serveNodeArgs(), BIN, 'serve', '-c', file, '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--log-level', 'warn', ...(opts.args ?? [])], {
    env: { READINESS_HISTORY_LIMIT: '500', ...opts.env },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await until('serve listening', 60_000, async () => {
      if (p.child.exitCode !== null) throw new Error(`serve exited ${p.child.exitCode}: ${p.output()}`);
      const r = await fetch(`${url}/healthz`);
      return r.ok ? true : undefined;
    });
  } catch (err) {
    await p.stop();
    throw err;
  }
  return {
    ...p,
    url,
    dataDir,
    async stop() {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sums every sample of one metric family in a Prometheus text exposition. */
export function sumMetric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Runs `rounds` rounds of project then anchor, alternating (ABAB...), so drift in the
 * machine's load hits both sides alike. Returns each side's results in order.
 */
export async function alternate<T>(rounds: number, project: (round: number) => Promise<T>, anchor: (round: number) => Promise<T>): Promise<{ project: T[]; anchor: T[] }> {
  const out = { project: [] as T[], anchor: [] as T[] };
  for (let i = 0; i < rounds; i++) {
    // Which side goes first alternates too: ABBA.
    if (i % 2 === 0) {
      out.project.push(await project(i));
      out.anchor.push(await anchor(i));
    } else {
      out.anchor.push(await anchor(i));
      out.project.push(await project(i));
    }
  }
  return out;
}

export function load(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toPrecision(3));

/** An anchor of bench/lib/anchors.ts in a child process, on a free port, once it listens. */
export async function startAnchor(kind: 'prom-client' | 'fastify', arg: string): Promise<Proc & { url: string }> {
  const port = await freePort();
  const p = start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/lib/anchors.ts'), kind, String(port), arg]);
  try {
    await until(`${kind} anchor listening`, 60_000, async () => {
      if (p.child.exitCode !== null) throw new Error(`${kind} anchor exited ${p.child.exitCode}: ${p.output()}`);
      return p.output().includes('listening') ? true : undefined;
    });
  } catch (err) {
    await p.stop();
    throw err;
  }
  return { ...p, url: `http://127.0.0.1:${port}` };
}

/** A local TCP target that accepts and closes at once (what the tcp checks probe). */
export async function tcpTarget(): Promise<{ host: string; port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: '127.0.0.1',
    port: (server.address() as { port: number }).port,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** A checklist of `n` tcp checks against one port, spread over sections, severities and phases. */
export function tcpChecklist(n: number, port: number, opts: { interval: string; timeout?: string; name?: string }): string {
  const sections = ['security', 'database', 'performance', 'observability', 'documentation'];
  return [
    'apiVersion: readiness/v1',
    `checklist: ${opts.name ?? 'bench'}`,
    `defaults: { interval: ${opts.interval}, timeout: ${opts.timeout ?? '900ms'} }`,
    'checks:',
    ...Array.from({ length: n }, (_, i) =>
      [
        `  - id: tcp-${i}`,
        `    title: port ${i}`,
        `    section: ${sections[i % sections.length]}`,
        `    severity: ${['critical', 'high', 'medium', 'low'][i % 4]}`,
        `    phase: ${['pre-deploy', 'verify', 'monitor'][i % 3]}`,
        `    probe: tcp`,
        `    with: { host: 127.0.0.1, port: ${port}, connectTimeoutMs: 800 }`,
        `    expect: ["open == true"]`,
      ].join('\n'),
    ),
  ].join('\n');
}

/** Waits until every check of a running service has a result (none pending). */
export async function allRan(s: Serve, ms = 120_000): Promise<void> {
  await until('every check ran', ms, async () => {
    const body = (await (await fetch(`${s.url}/readiness`)).json()) as { summary: { pending: number } };
    return body.summary.pending === 0 ? true : undefined;
  });
}

/**
 * The line every bench script ends with. `lowerIsBetter`: the goal is ratio <= goal (CPU,
 * latency); otherwise ratio >= goal (throughput). `absolute` replaces the ratio goal by one
 * stated on the project's own number (e.g. "p50 <= 50 ms"), whether it was met decided by the
 * caller; the ratio is printed all the same.
 */
export function report(
  name: string,
  project: number,
  anchor: number,
  unit: string,
  goal: number,
  lowerIsBetter: boolean,
  ratio = project / anchor,
  absolute?: { goal: string; met: boolean },
): void {
  const ok = absolute ? absolute.met : lowerIsBetter ? ratio <= goal : ratio >= goal;
  const stated = absolute ? absolute.goal : `${lowerIsBetter ? '<=' : '>='} ${goal}`;
  console.log(`${name}: project ${fmt(project)} ${unit}, anchor ${fmt(anchor)} ${unit}, ratio ${ratio.toFixed(2)} (goal ${stated}) ${ok ? 'met' : 'NOT MET'} [load ${load()}]`);
}

/** Logs progress to stderr, so stdout keeps only the result lines. */
export function note(msg: string): void {
  process.stderr.write(`  ${msg}\n`);
}
