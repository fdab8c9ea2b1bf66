// The PostgreSQL store (READINESS_DATABASE_URL): shared by replicas, versioned SQL
// migrations from migrations/postgres applied at start, other replicas' writes read back
// through change_seq. A database outage degrades the store; it never stops probing.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Backend, Snapshot } from './cached.js';
import { pruneEvery, serialise, supersedes, type Attestation, type CheckStatus, type Deployment, type RunResult, type WriteFence, type WriteOutcome } from './types.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/postgres/', import.meta.url));
/** Serialises migrations across replicas starting at once (an arbitrary, fixed key). */
const MIGRATION_LOCK = 7_274_700;
/** Everything of one check older than its `$2` newest rows; both halves walk (check_id, id DESC). */
export const PRUNE_SQL = `DELETE FROM readiness_check_history WHERE check_id = $1 AND id <= (
  SELECT id FROM readiness_check_history WHERE check_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)`;

/** Reads back a little before the cursor: sequence values can commit out of order. */
const CHANGE_LAG = 1000;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.split('_')[0]), name: f.replace(/\.sql$/, ''), sql: readFileSync(`${dir}/${f}`, 'utf8') }));
}

/** Applies pending migrations in one transaction; returns the names applied. */
export async function migrate(client: pg.ClientBase, migrations = readMigrations()): Promise<string[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS readiness_schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM readiness_schema_migrations')).rows.map((r) => r.version));
    const newest = Math.max(0, ...done);
    if (newest > Math.max(0, ...migrations.map((m) => m.version))) {
      throw new Error(`the database has schema version ${newest}, newer than this readiness-exporter knows: upgrade it`);
    }
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO readiness_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.name);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

const ts = (ms: number | undefined) => (ms === undefined ? null : new Date(ms));
const ms = (d: Date | null) => (d === null ? undefined : d.getTime());

interface AttRow {
  id: string;
  check_id: string;
  by_name: string;
  role: string;
  note: string | null;
  evidence_url: string | null;
  release: string | null;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_by: string | null;
  change_seq: string;
}

function attestationFrom(r: AttRow): Attestation {
  const a: Attestation = { id: r.id, check: r.check_id, by: r.by_name, role: r.role, createdAt: r.created_at.getTime(), expiresAt: r.expires_at.getTime() };
  if (r.note !== null) a.note = r.note;
  if (r.evidence_url !== null) a.evidenceUrl = r.evidence_url;
  if (r.release !== null) a.release = r.release;
  if (r.revoked_at !== null) a.revokedAt = ms(r.revoked_at)!;
  if (r.revoked_by !== null) a.revokedBy = r.revoked_by;
  return a;
}

interface DepRow {
  id: string;
  version: string;
  at: Date;
  created_at: Date;
  by_name: string | null;
  source: Deployment['source'];
  change_seq: string;
}

function deploymentFrom(r: DepRow): Deployment {
  const d: Deployment = { id: r.id, version: r.version, at: r.at.getTime(), createdAt: r.created_at.getTime(), source: r.source };
  if (r.by_name !== null) d.by = r.by_name;
  return d;
}

export interface PostgresBackendOptions {
  historyLimit?: number;
  /** Per-statement bound so a stuck database cannot hang a write (default 5 s). */
  statementTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export class PostgresBackend implements Backend {
  readonly kind = 'postgres';
  readonly pool: pg.Pool;
  #cursor = 0;
  /** Writes per check since its last prune (see pruneEvery). */
  readonly #sincePrune = new Map<string, number>();
  readonly historyLimit: number;

  constructor(
    readonly url: string,
    opts: PostgresBackendOptions = {},
  ) {
    this.historyLimit = opts.historyLimit ?? 500;
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 3_000,
      statement_timeout: opts.statementTimeoutMs ?? 5_000,
      application_name: 'readiness-exporter',
    });
    // A client losing its connection must not crash the process, idle (pool 'error') or
    // checked out between two queries (the client's own 'error'): the next query fails instead.
    this.pool.on('error', () => {});
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  async open(): Promise<Snapshot> {
    const client = await this.pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
    this.#cursor = 0;
    return this.changes(-1);
  }

  /**
   * Statuses by change_seq, and the records above `recordsSince` read in one snapshot with
   * the records version: the snapshot then holds every record written at a version <= it.
   */
  async changes(recordsSince: number): Promise<Snapshot> {
    const from = Math.max(0, this.#cursor - CHANGE_LAG);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await client.query<{ version: string }>('SELECT version FROM readiness_records_version');
      const att = await client.query<AttRow>('SELECT * FROM readiness_attestations WHERE records_version > $1', [recordsSince]);
      const dep = await client.query<DepRow>('SELECT * FROM readiness_deployments WHERE records_version > $1 ORDER BY at DESC LIMIT 1000', [recordsSince]);
      const latest = await client.query<{ status: CheckStatus; change_seq: string }>('SELECT status, change_seq FROM readiness_check_latest WHERE change_seq > $1', [from]);
      await client.query('COMMIT');
      for (const r of latest.rows) this.#cursor = Math.max(this.#cursor, Number(r.change_seq));
      return {
        statuses: latest.rows.map((r) => r.status),
        attestations: att.rows.map(attestationFrom),
        deployments: dep.rows.map(deploymentFrom),
        recordsVersion: Number(version.rows[0]?.version ?? 0),
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async writeStatus(s: CheckStatus, fence?: WriteFence): Promise<WriteOutcome> {
    return (await this.writeStatuses([s], [fence]))[0]!;
  }

  /**
   * A batch of results in one transaction and a fixed number of statements. The leases the
   * runs started under are locked (FOR SHARE: a takeover that commits first wins, one that
   * comes later waits for this commit) and so are the checks' latest rows; each result is
   * then published only if its fence still holds and it supersedes what is stored (see
   * supersedes: newer records first, then the later run). The latest row of each check gets
   * its newest published result, every published run is appended to the history in order,
   * then the checks due for pruning are pruned.
   */
  async writeStatuses(batch: readonly CheckStatus[], fences: readonly (WriteFence | undefined)[] = []): Promise<WriteOutcome[]> {
    const checks = [...new Set(batch.map((s) => s.check))].sort();
    const json = new Map(batch.map((s) => [s, serialise(s)]));
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const leases = new Map<string, { owner: string | null; epoch: number }>();
      if (fences.some((f) => f?.lease)) {
        const rows = await client.query<{ check_id: string; owner: string | null; epoch: string }>(
          'SELECT check_id, owner, epoch FROM readiness_leases WHERE check_id = ANY($1) ORDER BY check_id FOR SHARE',
          [checks],
        );
        for (const r of rows.rows) leases.set(r.check_id, { owner: r.owner, epoch: Number(r.epoch) });
      }
      const stored = await client.query<{ check_id: string; status: CheckStatus }>('SELECT check_id, status FROM readiness_check_latest WHERE check_id = ANY($1) ORDER BY check_id FOR UPDATE', [checks]);
      const current = new Map(stored.rows.map((r) => [r.check_id, r.status]));
      const outcomes: WriteOutcome[] = [];
      const published: CheckStatus[] = [];
      const rejected: [number, 'fenced' | 'superseded'][] = [];
      for (const [i, s] of batch.entries()) {
        const f = fences[i] ?? {};
        const lease = f.lease && leases.get(s.check);
        const cur = current.get(s.check);
        if (f.lease && (lease?.owner !== f.lease.owner || lease.epoch !== f.lease.epoch)) rejected.push([i, 'fenced']);
        else if (cur && !supersedes(s.last, cur.last, f.recordsOnly === true && !f.lease)) rejected.push([i, 'superseded']);
        else {
          current.set(s.check, s);
          published.push(s);
        }
        outcomes[i] = { written: true };
      }
      for (const [i, reason] of rejected) {
        const cur = current.get(batch[i]!.check);
        outcomes[i] = { written: false, reason, ...(cur && { current: cur }) };
      }
      const latest = checks.map((c) => current.get(c)!).filter((s) => published.includes(s));
      const due: string[] = [];
      for (const s of published) {
        const n = (this.#sincePrune.get(s.check) ?? Infinity) + 1;
        const prune = n >= pruneEvery(this.historyLimit);
        this.#sincePrune.set(s.check, prune ? 0 : n);
        if (prune && !due.includes(s.check)) due.push(s.check);
      }
      if (latest.length > 0) {
        // The guard holds for a row another replica inserted meanwhile (a new row cannot be locked before).
        await client.query(
          `INSERT INTO readiness_check_latest AS l (check_id, status, finished_at, records_version)
           SELECT * FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[], $4::bigint[])
           ON CONFLICT (check_id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at, records_version = excluded.records_version,
             change_seq = nextval('readiness_change_seq')
           WHERE (excluded.records_version, excluded.finished_at) >= (l.records_version, l.finished_at)`,
          [latest.map((s) => s.check), latest.map((s) => json.get(s)![0]), latest.map((s) => ts(s.last.finishedAt)), latest.map((s) => s.last.recordsVersion ?? 0)],
        );
        await client.query(
          `INSERT INTO readiness_check_history (check_id, result, finished_at)
           SELECT c, r, f FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[]) WITH ORDINALITY AS b(c, r, f, i) ORDER BY i`,
          [published.map((s) => s.check), published.map((s) => json.get(s)![1]), published.map((s) => ts(s.last.finishedAt))],
        );
      }
      // Per check, by index: a write costs the same whatever the total history.
      for (const check of due) await client.query(PRUNE_SQL, [check, this.historyLimit]);
      await client.query('COMMIT');
      return outcomes;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async history(check: string, limit: number): Promise<RunResult[]> {
    const r = await this.pool.query<{ result: RunResult }>('SELECT result FROM readiness_check_history WHERE check_id = $1 ORDER BY id DESC LIMIT $2', [check, Math.min(limit, this.historyLimit)]);
    return r.rows.map((x) => x.result);
  }

  async writeAttestation(a: Attestation): Promise<number> {
    return this.#recordWrite(
      `INSERT INTO readiness_attestations (id, check_id, by_name, role, note, evidence_url, release, created_at, expires_at, revoked_at, revoked_by, records_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by, records_version = excluded.records_version,
         change_seq = nextval('readiness_change_seq')`,
      [a.id, a.check, a.by, a.role, a.note ?? null, a.evidenceUrl ?? null, a.release ?? null, ts(a.createdAt), ts(a.expiresAt), ts(a.revokedAt), a.revokedBy ?? null],
    );
  }

  async writeDeployment(d: Deployment): Promise<number> {
    return this.#recordWrite(
      `INSERT INTO readiness_deployments (id, version, at, created_at, by_name, source, records_version) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
      [d.id, d.version, ts(d.at), ts(d.createdAt), d.by ?? null, d.source],
    );
  }

  /**
   * Writes a record at the next records version (its last parameter) in one transaction. The
   * version row's lock orders these writes: versions are handed out in commit order, so a
   * snapshot that sees version v sees every record written at a version <= v.
   */
  async #recordWrite(sql: string, params: unknown[]): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const v = Number((await client.query<{ version: string }>('UPDATE readiness_records_version SET version = version + 1 RETURNING version')).rows[0]!.version);
      await client.query(sql, [...params, v]);
      await client.query('COMMIT');
      return v;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
