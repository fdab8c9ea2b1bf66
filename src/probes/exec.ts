// exec: runs a configured program (a smoke-test script) with arguments and passes when it
// exits 0. No shell: the command and its args are passed as they are. The child gets an
// environment built from an allow-list, never the exporter's whole environment (which holds
// every other check's credentials). The check timeout kills the child's whole process group,
// so a script that started curl or a browser leaves nothing behind. Output (stdout and stderr
// interleaved) is kept up to a cap, from the end: the last lines are what explain a failure.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Type } from '@sinclair/typebox';
import { defineProbe, ProbeError, type Observation } from './types.js';
import { scrubSecrets } from './shared.js';

const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$';

const params = Type.Object(
  {
    command: Type.String({ minLength: 1, description: 'Program to run: a path (./scripts/smoke.sh, /usr/local/bin/smoke) or a name looked up in PATH. Run without a shell.' }),
    args: Type.Array(Type.String(), { default: [], description: 'Arguments, passed as they are (no shell expansion).' }),
    cwd: Type.Optional(Type.String({ minLength: 1, description: 'Working directory (default: the exporter\'s).' })),
    env: Type.Array(Type.String({ pattern: ENV_NAME, 'x-hint': 'an environment variable name' }), {
      default: [],
      description: "Names of the exporter's environment variables passed to the program (the allow-list). Their values are scrubbed from the output kept.",
    }),
    setEnv: Type.Optional(
      Type.Record(Type.String({ pattern: ENV_NAME }), Type.String(), { description: 'Variables set for the program (e.g. BASE_URL: "${API_URL}"). Not for secrets: pass those by name in env.' }),
    ),
    expectExitCodes: Type.Array(Type.Integer({ minimum: 0, maximum: 255 }), { default: [0], minItems: 1, description: 'Exit codes that pass (default 0).' }),
    maxOutputBytes: Type.Integer({ minimum: 1024, maximum: 16_777_216, default: 65_536, description: 'Keep at most this many bytes of output, the last ones (default 64 KiB).' }),
    tailLines: Type.Integer({ minimum: 0, maximum: 50, default: 5, description: 'Last lines of output quoted in the message.' }),
  },
  { additionalProperties: false },
);

/** Always passed, so a script finds its interpreter and tools; never secret. */
const BASE_ENV = ['PATH', 'LANG', 'LC_ALL', 'TZ'];
/** A grace period for the process group after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 500;
/** Values shorter than this are not scrubbed (they would blank out ordinary words). */
const MIN_SECRET_LENGTH = 6;
/** Longest message tail, so the harness's one-line cap keeps the head of the message. */
const TAIL_CHARS = 400;

/** Keeps the last `cap` bytes written to it. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  total = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.cap) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    // Drop a partial UTF-8 sequence at the cut.
    return all.subarray(Math.max(0, all.length - this.cap)).toString('utf8').replace(/^\uFFFD+/, '');
  }
}

/** The last `n` non-empty lines, joined on one line. */
function lastLines(text: string, n: number): string {
  if (n === 0) return '';
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const tail = lines.slice(-n).join(' | ');
  return tail.length > TAIL_CHARS ? `...${tail.slice(-TAIL_CHARS)}` : tail;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    // Negative pid: the whole process group (the child is its leader: detached).
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export default defineProbe({
  kind: 'exec',
  description: 'Runs a program (a smoke-test script); exit code 0 passes. Reports the exit code, duration and the last lines of output.',
  params,
  secretParams: ['setEnv'],
  // The allow-listed variables' values reach the program, and a program may print them.
  secrets: (p, env) => p.env.map((n) => env[n] ?? ''),
  fields: {
    exit_code: { type: 'number', description: 'Exit code; absent when the program was killed by a signal. Also the check value.' },
    signal: { type: 'string', description: 'Signal that ended the program (SIGKILL, ...), when one did.' },
    duration_ms: { type: 'number', unit: 'ms', description: 'From start to exit.' },
    output: { type: 'string', description: 'stdout and stderr, each in the order written (read from two pipes: a line of one may come before an earlier line of the other), the last maxOutputBytes of them, allow-listed values scrubbed.' },
    output_bytes: { type: 'number', description: 'Bytes written in total (before the cap).' },
  },

  validate(p) {
    const problems: string[] = [];
    if (p.command.includes('/') && !existsSync(p.command)) problems.push(`command ${p.command} does not exist`);
    if (p.cwd !== undefined && !existsSync(p.cwd)) problems.push(`cwd ${p.cwd} does not exist`);
    const both = Object.keys(p.setEnv ?? {}).filter((k) => p.env.includes(k));
    if (both.length > 0) problems.push(`${both.join(', ')} in both env and setEnv`);
    return problems;
  },

  async run(p, ctx): Promise<Observation> {
    const { signal } = ctx;
    const childEnv: NodeJS.ProcessEnv = {};
    for (const name of BASE_ENV) if (ctx.env[name] !== undefined) childEnv[name] = ctx.env[name];
    const secrets: string[] = [];
    for (const name of p.env) {
      const v = ctx.env[name];
      if (v === undefined) continue;
      childEnv[name] = v;
      if (v.length >= MIN_SECRET_LENGTH) secrets.push(v);
    }
    Object.assign(childEnv, p.setEnv);
    // Longest first, so a secret that contains another is scrubbed whole.
    secrets.sort((a, b) => b.length - a.length);

    const shown = [p.command, ...p.args].join(' ');
    const tail = new Tail(p.maxOutputBytes);
    const started = performance.now();
    const child = spawn(p.command, p.args, { cwd: p.cwd, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => tail.push(c));
    child.stderr.on('data', (c: Buffer) => tail.push(c));

    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    signal.addEventListener('abort', onAbort, { once: true });

    type End = { code: number | null; sig: NodeJS.Signals | null } | { err: NodeJS.ErrnoException };
    const end = await new Promise<End>((resolve) => {
      child.once('error', (err) => resolve({ err }));
      child.once('exit', (code, sig) => resolve({ code, sig }));
      if (signal.aborted) onAbort();
    });
    signal.removeEventListener('abort', onAbort);
    const durationMs = performance.now() - started;

    if ('err' in end) {
      clearTimeout(killTimer);
      const hint = end.err.code === 'ENOENT' ? ' (not found)' : end.err.code === 'EACCES' ? ' (not executable)' : '';
      return { fields: {}, error: { reason: 'error', message: `cannot run ${p.command}: ${end.err.code ?? end.err.message}${hint}` } };
    }
    // The program exited; output still in the pipes arrives before they close. A background
    // process that inherited them would hold them open: kill the rest of the group, then wait.
    await new Promise<void>((resolve) => {
      if (child.stdout.closed && child.stderr.closed) return resolve();
      const t = setTimeout(() => {
        killGroup(child.pid, 'SIGKILL');
        child.stdout.destroy();
        child.stderr.destroy();
        resolve();
      }, 200);
      child.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
    killGroup(child.pid, 'SIGKILL');
    clearTimeout(killTimer);

    const output = scrubSecrets(tail.text(), secrets);
    const last = lastLines(output, p.tailLines);
    const said = last ? `; last output: ${last}` : '; no output';
    if (signal.aborted) {
      throw new ProbeError('timeout', `${shown}: still running at the check timeout (${ctx.timeoutMs} ms), killed${said}`);
    }
    const fields: Record<string, unknown> = { duration_ms: durationMs, output, output_bytes: tail.total };
    if (end.code !== null) fields.exit_code = end.code;
    if (end.sig !== null) fields.signal = end.sig;
    const took = `in ${(durationMs / 1000).toFixed(1)} s`;
    if (end.code !== null && p.expectExitCodes.includes(end.code)) {
      return { value: end.code, fields, message: `${shown} exited ${end.code} ${took}${said}` };
    }
    const how = end.code !== null ? `exited ${end.code}` : `was killed by ${end.sig}`;
    const want = p.expectExitCodes.length === 1 ? `exit code ${p.expectExitCodes[0]}` : `exit code ${p.expectExitCodes.join(' or ')}`;
    return {
      ...(end.code !== null && { value: end.code }),
      fields,
      failure: { reason: 'condition', message: `${shown} ${how} ${took} (expected ${want})${said}` },
    };
  },
});
