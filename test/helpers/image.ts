// The container image without a Docker engine: the Dockerfile parsed as the builder reads it,
// its final stage laid out in a directory as the builder would (the same COPY sources, the
// context filtered by .dockerignore, production node_modules only), and a runner that starts
// the image's command there as its user, in a network namespace of its own (loopback only:
// the shipped checklist names public hosts, and no packet may leave this machine).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { serviceDir, spawnService, type ServiceProcess } from './service.js';

export interface Instruction {
  op: string;
  /** The arguments as written (continuations joined). */
  args: string;
  line: number;
  /** The comment lines right above the instruction. */
  comment: string;
}

export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Parses a Dockerfile: comments, `\` continuations, stages. */
export function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const lines = text.split('\n');
  const out: { args: Instruction[]; stages: Stage[] } = { args: [], stages: [] };
  let comment: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') {
      comment = [];
      continue;
    }
    if (raw.startsWith('#')) {
      comment.push(raw.replace(/^#\s?/, ''));
      continue;
    }
    const start = i;
    let full = raw;
    while (full.endsWith('\\') && i + 1 < lines.length) {
      full = `${full.slice(0, -1).trimEnd()} ${lines[++i]!.trim()}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    const ins: Instruction = { op: m[1]!.toUpperCase(), args: m[2]!, line: start + 1, comment: comment.join('\n') };
    comment = [];
    if (ins.op === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!f) throw new Error(`Dockerfile:${ins.line}: cannot read FROM ${ins.args}`);
      out.stages.push({ from: f[1]!, ...(f[2] && { name: f[2] }), instructions: [ins] });
    } else if (out.stages.length === 0) {
      out.args.push(ins);
    } else {
      out.stages.at(-1)!.instructions.push(ins);
    }
  }
  return out;
}

/** JSON (exec) form of ENTRYPOINT/CMD, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  return JSON.parse(args) as string[];
}

/** ARG defaults of a stage (and the global ones), for ${VAR} in LABEL/ENV. */
function argDefaults(ins: Instruction[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const i of ins.filter((x) => x.op === 'ARG')) {
    const [k, v] = i.args.split('=', 2);
    m.set(k!.trim(), v ?? '');
  }
  return m;
}

/** KEY=VALUE pairs of ENV and LABEL (quoted values, ${ARG} expanded with `vars`). */
export function keyValues(args: string, vars: Map<string, string> = new Map()): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g;
  for (const m of args.matchAll(re)) {
    let v = m[2]!;
    if (v.startsWith('"')) v = JSON.parse(v) as string;
    out.set(m[1]!, v.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => vars.get((a ?? b)!) ?? ''));
  }
  return out;
}

export interface FinalStage {
  stage: Stage;
  env: Map<string, string>;
  labels: Map<string, string>;
  workdir: string;
  user?: string;
  entrypoint: string[];
  cmd: string[];
  /** COPY instructions: sources (relative to the context or to the named stage) and destination. */
  copies: { from?: string; sources: string[]; dest: string; destIsDir: boolean; line: number }[];
  healthcheck?: Instruction;
}

export function finalStage(text: string): FinalStage {
  const { args, stages } = parseDockerfile(text);
  const stage = stages.at(-1)!;
  const vars = argDefaults([...args, ...stage.instructions]);
  const env = new Map<string, string>();
  const labels = new Map<string, string>();
  let workdir = '/';
  let user: string | undefined;
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  const copies: FinalStage['copies'] = [];
  let healthcheck: Instruction | undefined;
  for (const i of stage.instructions) {
    if (i.op === 'ENV') for (const [k, v] of keyValues(i.args, vars)) env.set(k, v);
    if (i.op === 'LABEL') for (const [k, v] of keyValues(i.args, vars)) labels.set(k, v);
    if (i.op === 'WORKDIR') workdir = resolve(workdir, i.args);
    if (i.op === 'USER') user = i.args;
    if (i.op === 'ENTRYPOINT') entrypoint = execForm(i.args) ?? ['/bin/sh', '-c', i.args];
    if (i.op === 'CMD') cmd = execForm(i.args) ?? ['/bin/sh', '-c', i.args];
    if (i.op === 'HEALTHCHECK') healthcheck = i;
    if (i.op === 'COPY') {
      const parts = i.args.split(/\s+/);
      const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
      const rest = parts.filter((p) => !p.startsWith('--'));
      copies.push({ ...(from && { from }), sources: rest.slice(0, -1), dest: resolve(workdir, rest.at(-1)!), destIsDir: rest.at(-1)!.endsWith('/') || rest.at(-1) === '.', line: i.line });
    }
  }
  return { stage, env, labels, workdir, ...(user && { user }), entrypoint, cmd, copies, ...(healthcheck && { healthcheck }) };
}

/**
 * .dockerignore as the builder applies it: patterns in order, the last match wins, `!`
 * re-includes; a pattern matching a directory matches everything below it.
 */
export function dockerignore(text: string): ((path: string) => boolean) & { prunes(dir: string): boolean } {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const body = pat
        .split('/')
        .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/');
      return { negate, re: new RegExp(`^${body}(/.*)?$`), first: pat.split('/')[0]! };
    });
  const ignored = (path: string) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate;
    return excluded;
  };
  // An ignored top-level directory no `!` rule can reach into: the builder never sends it.
  const prunes = (dir: string) => !dir.includes('/') && ignored(dir) && !rules.some((r) => r.negate && (r.first === dir || /[*?[]/.test(r.first)));
  return Object.assign(ignored, { prunes });
}

/** The files of the build context: the directory without what .dockerignore leaves out. */
function contextFiles(root: string, ignored: ReturnType<typeof dockerignore>): string[] {
  const out: string[] = [];
  const rec = (rel: string) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!ignored.prunes(p)) rec(p);
      } else if (!ignored(p)) out.push(p);
    }
  };
  rec('');
  return out;
}

function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name), base) : [relative(base, join(dir, e.name))]));
}

/** Hard-links (same filesystem) or copies one file, creating its directory. */
function place(src: string, dest: string): void {
  mkdirSync(dirname(dest), { recursive: true });
  try {
    linkSync(src, dest);
  } catch {
    cpSync(src, dest);
  }
}

/** Every file of the package at `dir`, without its nested node_modules (listed on their own). */
function packageFiles(dir: string): string[] {
  const out: string[] = [];
  const rec = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name === 'node_modules' && d === dir) continue;
        rec(p);
      } else if (e.isFile()) out.push(p);
    }
  };
  rec(dir);
  return out;
}

export interface StagedImage extends FinalStage {
  /** Package directories `npm ls --omit=dev` listed: what the image's node_modules holds. */
  prodPackages: string[];
  /** The directory playing the image's WORKDIR. */
  app: string;
  /** Maps a path inside the image to the staged directory (WORKDIR and below only). */
  hostPath(p: string): string;
  /** Files the build stage's COPY brought in, relative to `app`. */
  files: string[];
}

/**
 * Lays out the final stage in a new directory: `COPY --from=build /app/X` takes X from this
 * checkout as the build stage makes it (dist/ from `npm run build`, node_modules pruned to
 * what `npm ls --omit=dev` lists), every other COPY takes its sources from the context as
 * .dockerignore leaves it. A COPY whose source the context lacks fails, as the builder does.
 */
export function stageImage(root = process.cwd(), dockerfile = 'Dockerfile'): StagedImage {
  const fs = finalStage(readFileSync(join(root, dockerfile), 'utf8'));
  const ignored = dockerignore(existsSync(join(root, '.dockerignore')) ? readFileSync(join(root, '.dockerignore'), 'utf8') : '');
  const staged = serviceDir('image');
  // The image's root is world-traversable, as in a real image; mkdtemp made it 0700.
  chmodSync(staged, 0o755);
  const app = join(staged, fs.workdir);
  mkdirSync(app, { recursive: true });
  const buildWorkdir = '/app';
  let prodPackages: string[] | undefined;
  let context: string[] | undefined;
  const files: string[] = [];
  for (const c of fs.copies) {
    for (const src of c.sources) {
      const destDir = c.destIsDir || c.sources.length > 1 || src.includes('*') ? c.dest : undefined;
      if (c.from) {
        const rel = relative(buildWorkdir, resolve(buildWorkdir, src));
        const abs = join(root, rel);
        if (!existsSync(abs)) throw new Error(`Dockerfile:${c.line}: ${src} does not exist in the build stage (${abs})`);
        const target = join(staged, destDir ? join(destDir, rel.split('/').at(-1)!) : c.dest);
        if (rel === 'node_modules') {
          if (!prodPackages) {
            const r = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
            prodPackages = r.stdout.split('\n').filter((l) => l.includes('/node_modules/'));
            if (prodPackages.length < 20) throw new Error(`npm ls --omit=dev listed ${prodPackages.length} packages:\n${r.stderr}`);
          }
          for (const pkg of prodPackages) for (const f of packageFiles(pkg)) place(f, join(target, relative(abs, f)));
        } else if (statSync(abs).isDirectory()) {
          for (const f of walk(abs)) place(join(abs, f), join(target, f));
        } else place(abs, target);
      } else {
        const re = new RegExp(`^${src.replace(/\/+$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
        const all = (context ??= contextFiles(root, ignored));
        const matched = all.filter((f) => re.test(f) || f.split('/').some((_, i, a) => re.test(a.slice(0, i + 1).join('/'))));
        if (matched.length === 0) throw new Error(`Dockerfile:${c.line}: COPY ${src}: no such file in the build context (after .dockerignore)`);
        const base = src.includes('*') ? '' : src.replace(/\/+$/, '');
        for (const f of matched) {
          const rest = src.includes('*') ? f.split('/').at(-1)! : relative(base, f) || f.split('/').at(-1)!;
          place(join(root, f), join(staged, destDir ?? c.dest, rest));
          files.push(relative(app, join(staged, destDir ?? c.dest, rest)));
        }
      }
    }
  }
  const hostPath = (p: string) => (p === fs.workdir || p.startsWith(`${fs.workdir}/`) ? join(app, relative(fs.workdir, p)) : join(staged, p));
  return { ...fs, app, hostPath, files, prodPackages: prodPackages ?? [] };
}

/** uid:gid of a numeric USER (what the image runs as), when this process may switch to it. */
export function imageUser(user: string | undefined): { uid: number; gid: number } | undefined {
  if (!user || process.getuid?.() !== 0) return undefined;
  const [u, g] = user.split(':');
  if (!/^\d+$/.test(u!)) throw new Error(`USER ${user} is not numeric`);
  return { uid: Number(u), gid: Number(g ?? u) };
}

/** Makes a directory writable by the image's user (what a volume mount gives it). */
export function writableFor(dir: string, user?: { uid: number; gid: number }): string {
  mkdirSync(dir, { recursive: true });
  if (user) chownSync(dir, user.uid, user.gid);
  return dir;
}

/**
 * Starts `argv` in a new network namespace with only loopback up, as the image's user.
 * Requests reach it through `fetchInside` (a node process joining the namespace).
 */
export function startIsolated(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; user?: { uid: number; gid: number }; logFile: string }): ServiceProcess {
  // Exactly this environment, as a container has: `env -i` drops what the test runner adds to
  // every child it spawns (tap rewrites NODE_OPTIONS and adds its own variables).
  const env: Record<string, string> = { PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` };
  for (const [k, v] of Object.entries(opts.env)) if (v !== undefined) env[k] = v;
  if (process.env.READINESS_TEST_RUN) env.READINESS_TEST_RUN = process.env.READINESS_TEST_RUN; // scripts/test.sh's cleanup marker
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const script = [
    'ip link set lo up',
    `exec ${opts.user ? `setpriv --reuid=${opts.user.uid} --regid=${opts.user.gid} --clear-groups ` : ''}env -i ${Object.entries(env).map(([k, v]) => q(`${k}=${v}`)).join(' ')} "$@"`,
  ].join(' && ');
  return spawnService('unshare', ['--net', 'sh', '-c', script, 'isolated', ...argv], {
    logFile: opts.logFile,
    cwd: opts.cwd,
    env: { PATH: env.PATH, ...(env.READINESS_TEST_RUN && { READINESS_TEST_RUN: env.READINESS_TEST_RUN }) },
    cleanEnv: true,
  });
}

/** The pid of the isolated process (the wrapper's child that lives in another network namespace). */
export function isolatedPid(p: ServiceProcess): number | undefined {
  const own = readlinkOr('/proc/self/ns/net');
  const wrapper = p.child.pid;
  if (!wrapper) return undefined;
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${wrapper}/task/${wrapper}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return undefined;
  }
  return kids.find((k) => {
    const ns = readlinkOr(`/proc/${k}/ns/net`);
    return ns !== undefined && ns !== own;
  });
}

function readlinkOr(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

export interface InsideAnswer {
  url: string;
  status?: number;
  body?: string;
  error?: string;
}

/** GETs each URL from inside the network namespace of `pid`, polling until `until` is met. */
export async function fetchInside(pid: number, urls: string[], opts: { untilStatus?: number; timeoutMs?: number } = {}): Promise<InsideAnswer[]> {
  const code = `
const [urls, until, deadline] = JSON.parse(process.argv[1]);
const one = async (url) => { try { const r = await fetch(url, { signal: AbortSignal.timeout(5000) }); return { url, status: r.status, body: await r.text() }; } catch (e) { return { url, error: String(e.cause?.code ?? e.message) }; } };
(async () => {
  for (;;) {
    const res = await Promise.all(urls.map(one));
    if (until === null || res.every((r) => r.status === until) || Date.now() > deadline) { process.stdout.write(JSON.stringify(res)); return; }
    await new Promise((r) => setTimeout(r, 200));
  }
})();`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  return new Promise((resolvePromise, reject) => {
    const child = spawn('nsenter', ['--target', String(pid), '--net', process.execPath, '-e', code, JSON.stringify([urls, opts.untilStatus ?? null, deadline])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`nsenter client exited ${code}: ${err}`));
      resolvePromise(JSON.parse(out) as InsideAnswer[]);
    });
  });
}
