// An HA cluster for tests: a real PostgreSQL 15, three (or more) real `readiness serve`
// processes sharing it, and target servers that count every probe they receive, per check
// and per replica (each replica puts its name in the probe's URL), so double runs are
// counted where they happen and not from the exporter's own numbers.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServe } from './cli.js';
import { listenHttp } from './listeners.js';
import { startPostgres, type PostgresServer } from './postgres.js';
import type { Teardown } from './service.js';

export const TOKEN = 'ha-test-token';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One probe as a target saw it. */
export interface Probe {
  check: string;
  /** The replica's name (HA_REPLICA of the process that sent it). */
  replica: string;
  /** When the request arrived (ms). */
  at: number;
}

export interface Replica {
  name: string;
  /** The id the replica leases under (from /healthz). */
  id: string;
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export interface Health {
  status: string;
  store: { ok: boolean; message: string };
  replica: { id: string; runs: string[]; disconnected?: boolean };
}

export interface Lease extends Record<string, unknown> {
  check_id: string;
  owner: string | null;
  epoch: number;
  acquired_at: Date;
}

export interface ClusterOptions {
  /** Checks probing an HTTP target (ids). */
  http: string[];
  /** Checks of kind attestation (ids), answered by role "qa". */
  attestation?: string[];
  /** Attestation checks that are post-deployment duties (dueAfterDeploy: 1h). */
  duties?: string[];
  intervalS: number;
  /** READINESS_HA_LEASE_TTL (default: the service's). */
  leaseTtl?: string;
  replicas?: number;
  /** Interval of the attestation checks (default intervalS). */
  attestationIntervalS?: number;
}

export interface Cluster {
  pg: PostgresServer;
  /** The readiness database's URL. */
  url: string;
  replicas: Replica[];
  probes: Probe[];
  /** Requests each target is answering now, per check. */
  inFlight: Map<string, number>;
  /** Longest start-up of a replica, ms: deadlines derive from it. */
  startupMs: number;
  /** Holds the answers of one check's target for `ms` (0: answer at once). */
  hold(check: string, ms: number): void;
  /** Called for every probe as it arrives. */
  onProbe?: (p: Probe) => void;
  health(r: Replica): Promise<Health>;
  /** Which checks each reachable replica runs, asked at once. */
  ownership(rs?: Replica[]): Promise<Map<string, string[]>>;
  leases(): Promise<Lease[]>;
  query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  metrics(r: Replica): Promise<string>;
  /** Polls until every check is owned by exactly one of `rs` with fair shares; returns the shares. */
  settle(rs: Replica[], timeoutMs: number): Promise<Map<string, string[]>>;
  api(r: Replica, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

/**
 * Every two probes of one check sent by two replicas less than half an interval apart, as the
 * targets saw them: a check run by two replicas (what HA must prevent). One replica's own
 * probes are not compared: its scheduler starts a check's runs at least half an interval apart
 * (src/scheduler.ts, #noBunching; test/scheduler.test.ts), but the target sees each start plus
 * the time until the request is written, which on a loaded machine varies by a second (seen:
 * one replica's consecutive probes 0.53 s apart at a 3 s interval, load average 40), so the
 * target cannot tell a late send from a double start. closestSameReplica reports that spacing.
 */
export function doubleRuns(probes: readonly Probe[], intervalMs: number, from = 0): { check: string; a: Probe; b: Probe }[] {
  const byCheck = new Map<string, Probe[]>();
  for (const p of probes) if (p.at >= from) (byCheck.get(p.check) ?? byCheck.set(p.check, []).get(p.check)!).push(p);
  const out: { check: string; a: Probe; b: Probe }[] = [];
  for (const [check, ps] of byCheck) {
    ps.sort((x, y) => x.at - y.at);
    for (let i = 1; i < ps.length; i++) {
      const [a, b] = [ps[i - 1]!, ps[i]!];
      if (a.replica !== b.replica && b.at - a.at < intervalMs / 2) out.push({ check, a, b });
    }
  }
  return out;
}

/** The closest two probes of one check by one replica (ms): the schedule's spacing as the targets saw it. */
export function closestSameReplica(probes: readonly Probe[], from = 0): number {
  const last = new Map<string, number>();
  let min = Infinity;
  for (const p of [...probes].filter((p) => p.at >= from).sort((x, y) => x.at - y.at)) {
    const key = `${p.check} ${p.replica}`;
    const prev = last.get(key);
    if (prev !== undefined) min = Math.min(min, p.at - prev);
    last.set(key, p.at);
  }
  return min;
}

/** Largest gap between two probes of each check (and from `from` to its first, and its last to `to`). */
export function largestGap(probes: readonly Probe[], check: string, from: number, to: number): number {
  const ts = probes.filter((p) => p.check === check && p.at >= from && p.at <= to).map((p) => p.at);
  let gap = 0;
  let prev = from;
  for (const at of ts.sort((a, b) => a - b)) {
    gap = Math.max(gap, at - prev);
    prev = at;
  }
  return Math.max(gap, to - prev);
}

/** A sample value of a metric family in an exposition (labels as written), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}

export async function startCluster(t: Teardown & { comment: (s: string) => void; passing: () => boolean }, o: ClusterOptions): Promise<Cluster> {
  const pg = await startPostgres(t);
  await pg.query('CREATE DATABASE readiness');
  const url = pg.urlFor({ database: 'readiness' });

  const probes: Probe[] = [];
  const inFlight = new Map<string, number>();
  const holds = new Map<string, number>();
  const cluster = { onProbe: undefined } as Partial<Cluster>;
  const target = await listenHttp((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const check = u.pathname.slice(1);
    const p: Probe = { check, replica: u.searchParams.get('r') ?? '?', at: Date.now() };
    probes.push(p);
    inFlight.set(check, (inFlight.get(check) ?? 0) + 1);
    cluster.onProbe?.(p);
    const answer = () => {
      inFlight.set(check, inFlight.get(check)! - 1);
      res.end('ok');
    };
    const hold = holds.get(check) ?? 0;
    if (hold > 0) setTimeout(answer, hold);
    else answer();
  });
  t.teardown(() => target.close());

  const dir = mkdtempSync(join(process.env.READINESS_TEST_TMPDIR || tmpdir(), 'readiness-ha-'));
  const file = join(dir, 'checklist.yaml');
  const check = (id: string, body: string) => `  - id: ${id}
    title: ${id}
    section: ha
    severity: high
    phase: verify
${body}`;
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: ha
defaults: { interval: ${o.intervalS}s, timeout: 1s }
checks:
${o.http.map((id) => check(id, `    probe: http\n    with: { url: "${target.url}/${id}?r=\${HA_REPLICA}" }\n    expect: ["status == 200"]\n`)).join('')}${(o.attestation ?? [])
      .map((id) => check(id, `    probe: attestation\n    interval: ${o.attestationIntervalS ?? o.intervalS}s\n    with: { roles: [qa], maxAge: 1d }\n`))
      .join('')}${(o.duties ?? [])
      .map((id) => check(id, `    probe: attestation\n    interval: ${o.attestationIntervalS ?? o.intervalS}s\n    with: { roles: [qa], maxAge: 1d, dueAfterDeploy: 1h }\n`))
      .join('')}`,
  );

  const env = {
    READINESS_DATABASE_URL: url,
    READINESS_API_TOKEN: TOKEN,
    ...(o.leaseTtl && { READINESS_HA_LEASE_TTL: o.leaseTtl }),
  };
  const names = Array.from({ length: o.replicas ?? 3 }, (_, i) => `r${i + 1}`);
  const t0 = Date.now();
  // Start-up is bounded generously: on a loaded machine it is slow, and that is not what is tested.
  const started = await Promise.all(names.map((name) => startServe(t, ['-c', file], { ...env, HA_REPLICA: name }, 120_000)));
  const startupMs = Date.now() - t0;
  t.comment(`${names.length} replicas started in ${startupMs} ms (PostgreSQL in ${Math.round(pg.startupMs)} ms)`);
  const replicas: Replica[] = [];
  for (const [i, s] of started.entries()) {
    const h = (await (await fetch(`${s.url}/healthz`)).json()) as Health;
    replicas.push({ name: names[i]!, id: h.replica.id, url: s.url, child: s.child, output: s.output, exited: s.exited });
  }
  t.teardown(() => {
    if (t.passing()) return;
    for (const r of replicas) t.comment(`--- ${r.name} (${r.id}) warnings:\n${r.output().split('\n').filter((l) => /"level":(40|50)|"msg":"(leases|gave|result not)/.test(l)).slice(-40).join('\n')}`);
  });

  const health = async (r: Replica) => (await (await fetch(`${r.url}/healthz`, { signal: AbortSignal.timeout(5_000) })).json()) as Health;
  const ownership = async (rs = replicas) => new Map(await Promise.all(rs.map(async (r) => [r.name, (await health(r)).replica.runs] as const)));
  const query = async <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => pg.query<R>(sql, params, 'readiness');
  return Object.assign(cluster, {
    pg,
    url,
    replicas,
    probes,
    inFlight,
    startupMs,
    hold: (c: string, ms: number) => void holds.set(c, ms),
    health,
    ownership,
    query,
    leases: async () => (await query<Omit<Lease, 'epoch'> & { epoch: string }>('SELECT check_id, owner, epoch, acquired_at FROM readiness_leases ORDER BY check_id')).map((l) => ({ ...l, epoch: Number(l.epoch) })),
    metrics: async (r: Replica) => (await fetch(`${r.url}/metrics`)).text(),
    async settle(rs: Replica[], timeoutMs: number) {
      const all = [...o.http, ...(o.attestation ?? []), ...(o.duties ?? [])];
      const fair = Math.ceil(all.length / rs.length);
      const deadline = Date.now() + timeoutMs;
      let owned = new Map<string, string[]>();
      for (;;) {
        owned = await ownership(rs);
        const flat = [...owned.values()].flat();
        if (flat.length === all.length && new Set(flat).size === all.length && [...owned.values()].every((o) => o.length <= fair)) return owned;
        if (Date.now() > deadline) throw new Error(`ownership did not settle in ${timeoutMs} ms: ${JSON.stringify([...owned])}`);
        await sleep(200);
      }
    },
    async api(r: Replica, path: string, body?: unknown) {
      const res = await fetch(`${r.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  }) as Cluster;
}

/**
 * Samples which replica runs what every `everyMs`, asking all reachable replicas at once:
 * counts checks owned by two replicas in one sample, and changes of owner between samples.
 */
export function watchOwnership(c: Cluster, t: Teardown, everyMs = 250) {
  const twice: { at: number; check: string; owners: string[] }[] = [];
  const changes: { at: number; check: string; from: string | undefined; to: string | undefined }[] = [];
  let last = new Map<string, string>();
  let reachable = c.replicas;
  let stopped = false;
  let samples = 0;
  const loop = (async () => {
    while (!stopped) {
      const rs = reachable;
      const owned = await c.ownership(rs).catch(() => undefined);
      if (owned && rs === reachable) {
        samples++;
        const now = new Map<string, string>();
        const at = Date.now();
        for (const [name, checks] of owned) {
          for (const check of checks) {
            const other = now.get(check);
            if (other) twice.push({ at, check, owners: [other, name] });
            now.set(check, name);
          }
        }
        if (samples > 1) for (const check of new Set([...last.keys(), ...now.keys()])) if (last.get(check) !== now.get(check)) changes.push({ at, check, from: last.get(check), to: now.get(check) });
        last = now;
      }
      await sleep(everyMs);
    }
  })();
  // A failed assertion must not leave the loop keeping the test process alive.
  t.teardown(async () => {
    stopped = true;
    await loop;
  });
  return {
    twice,
    changes,
    samples: () => samples,
    /** Sample only these replicas from now on (one is stopped or dead). */
    only(rs: Replica[]) {
      reachable = rs;
      samples = 0;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
