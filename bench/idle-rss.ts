// @bench-row
// Idle resident memory of `readiness serve` (issue 14), alternated in one run with its anchor,
// prometheus-blackbox-exporter (Debian's package) idling with its default modules:
//   - the shipped checklist (probes/offgridflow.yaml), goal <= 130 MiB;
//   - the shipped checklist without its Kubernetes, AWS and PostgreSQL checks, goal <= 80 MiB.
//
//   npx tsx bench/idle-rss.ts [rounds=1] [settle seconds=10]     (npm run bench -- idle-rss)
//
// Each side starts, answers its health endpoint, runs for `settle` seconds (every check of
// the checklist runs at least once in that time, with whatever this machine's environment
// configures: the variables below are not set), and its RSS is read from /proc three times a
// second apart; the median is the round's figure. Prints `NAME: project X MiB, anchor Y MiB,
// ratio R (goal <= G MiB)`: the goal is on the project's MiB, the ratio says how far from a
// Go exporter it is. READINESS_BIN=dist/main.js measures the unbundled build.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument, type YAMLMap, type YAMLSeq } from 'yaml';
import { freePort, load, median, ROOT, rssMiB, sleep } from './lib/common.js';

const BIN = process.env.READINESS_BIN ? join(ROOT, process.env.READINESS_BIN) : join(ROOT, 'bin', 'readiness.js');
const BLACKBOX = process.env.BLACKBOX_BIN ?? '/usr/bin/prometheus-blackbox-exporter';
const rounds = Number(process.argv[2] ?? 1);
const settleMs = Number(process.argv[3] ?? 10) * 1000;
const dir = mkdtempSync(join(tmpdir(), 'readiness-bench-rss-'));

/** The shipped checklist without the checks that need Kubernetes, AWS or PostgreSQL (and what depends on them). */
function withoutHeavyChecks(): string {
  const doc = parseDocument(readFileSync(join(ROOT, 'probes', 'offgridflow.yaml'), 'utf8'));
  const checks = doc.get('checks') as YAMLSeq<YAMLMap>;
  const heavy = (c: YAMLMap): boolean => {
    const probe = String(c.get('probe'));
    const w = c.get('with') as YAMLMap | undefined;
    if (['kubernetes', 'postgres', 's3'].includes(probe)) return true;
    if (probe === 'credential' && w?.get('provider') === 'aws') return true;
    return probe === 'report' && String(w?.get('source') ?? '').startsWith('s3://');
  };
  let items = checks.items.filter((c) => !heavy(c));
  // Drop checks whose dependencies were dropped, until none is left dangling.
  for (let changed = true; changed; ) {
    const ids = new Set(items.map((c) => String(c.get('id'))));
    const before = items.length;
    items = items.filter((c) => ((c.get('dependsOn') as YAMLSeq | undefined)?.items ?? []).every((d) => ids.has(String((d as { value?: unknown }).value ?? d))));
    changed = items.length !== before;
  }
  checks.items = items;
  const file = join(dir, 'no-k8s-aws-pg.yaml');
  writeFileSync(file, doc.toString());
  return file;
}

interface Side {
  child: ChildProcess;
  healthUrl: string;
  output: () => string;
}

function started(cmd: string, args: string[], healthUrl: string, env: NodeJS.ProcessEnv): Side {
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => (out = (out + b.toString()).slice(-8000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, healthUrl, output: () => out };
}

/** RSS in MiB of one side once idle: started, healthy, `settle` seconds on, median of three reads. */
async function idleRss(side: Side): Promise<number> {
  const exited = new Promise<void>((r) => side.child.once('exit', () => r()));
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (side.child.exitCode !== null) throw new Error(`exited ${side.child.exitCode}: ${side.output()}`);
      if (Date.now() > deadline) throw new Error(`not healthy within 120 s: ${side.output()}`);
      if (await fetch(side.healthUrl).then((r) => r.ok, () => false)) break;
      await sleep(200);
    }
    await sleep(settleMs);
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      const rss = rssMiB(side.child.pid!);
      if (Number.isNaN(rss)) throw new Error(`no VmRSS for ${side.child.pid}`);
      samples.push(rss);
      await sleep(1000);
    }
    return median(samples);
  } finally {
    side.child.kill('SIGTERM');
    const t = setTimeout(() => side.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }
}

async function project(checklist: string, round: number): Promise<number> {
  const port = await freePort();
  const data = join(dir, `data-${round}-${port}`);
  // A user's environment, not this process's: no variable configures a skipped check.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, READINESS_LOG_LEVEL: 'warn' };
  return idleRss(started(process.execPath, [BIN, 'serve', '-c', checklist, '--port', String(port), '--host', '127.0.0.1', '--data-dir', data], `http://127.0.0.1:${port}/healthz`, env));
}

async function anchor(): Promise<number> {
  const port = await freePort();
  const cfg = join(dir, 'blackbox.yml');
  writeFileSync(cfg, 'modules:\n  http_2xx:\n    prober: http\n  tcp_connect:\n    prober: tcp\n');
  return idleRss(started(BLACKBOX, [`--config.file=${cfg}`, `--web.listen-address=127.0.0.1:${port}`], `http://127.0.0.1:${port}/-/healthy`, { PATH: process.env.PATH }));
}

const cases: [string, string, number][] = [
  ['idle RSS, no Kubernetes/AWS/PostgreSQL checks', withoutHeavyChecks(), 80],
  ['idle RSS, shipped checklist', join(ROOT, 'probes', 'offgridflow.yaml'), 130],
];

console.error(`  ${rounds} rounds, ${settleMs / 1000} s settle, ${BIN.replace(ROOT, '')}, load ${load()}`);
try {
  for (const [name, checklist, goal] of cases) {
    const p: number[] = [];
    const a: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternated, ABBA, so drift in the machine's load hits both sides alike.
      if (i % 2 === 0) {
        p.push(await project(checklist, i));
        a.push(await anchor());
      } else {
        a.push(await anchor());
        p.push(await project(checklist, i));
      }
    }
    const pm = median(p);
    const am = median(a);
    console.log(`${name}: project ${pm.toFixed(1)} MiB, anchor ${am.toFixed(1)} MiB, ratio ${(pm / am).toFixed(2)} (goal <= ${goal} MiB) ${pm <= goal ? 'met' : 'NOT MET'} [load ${load()}]`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
