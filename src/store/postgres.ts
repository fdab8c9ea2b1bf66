// The PostgreSQL store (READINESS_DATABASE_URL): shared by replicas, versioned SQL
// migrations from migrations/postgres applied at start, other replicas' writes read back
// through change_seq. A database outage degrades the store; it never stops probing.
//
// Every operation has a deadline (READINESS_STORE_TIMEOUT, default 5 s): a database that
// hangs (frozen, a stuck network) cannot hang a write. A write the client gave up on must
// not land later either, or a 503 would be a lie: attestations and deployments are single
// statements guarded by the server's own clock (`clock_timestamp() < cutoff`, the cutoff a
// margin before the client's deadline, corrected by each connection's measured clock offset),
// so a statement that reaches the server after the deadline (it sat in a frozen server's
// socket buffer) writes nothing. The same statements check the store's identity.
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import pg from 'pg';
import { packagePath } from '../paths.js';
import type { Backend, OpenOptions, Snapshot } from './cached.js';
import { pruneEvery, serialise, StoreIdentityError, supersedes, type Attestation, type CheckStatus, type Deployment, type RunResult, type WriteFence, type WriteOutcome } from './types.js';

export const MIGRATIONS_DIR = packagePath('migrations', 'postgres');
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
  /** Per-statement bound the server enforces (default: the operation deadline). */
  statementTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * Deadline of every store operation, connecting included (default 5 s): past it the
   * operation fails (a write is answered 503 and writes nothing) and its connection is dropped.
   */
  timeoutMs?: number;
  /** The store id the operator expects (READINESS_STORE_ID): any other is refused at open. */
  expectStoreId?: string;
}

export const DEFAULT_STORE_TIMEOUT_MS = 5_000;

/** The operation missed its deadline: the database is hung or unreachable. */
export class StoreTimeoutError extends Error {
  override name = 'StoreTimeoutError';
}

const STORE_ID_SQL = "SELECT value FROM readiness_store_meta WHERE key = 'store_id'";
/** SQL true while the statement runs before the cutoff ($n) in the right store ($m). */
const guard = (cutoff: number, storeId: number) =>
  `clock_timestamp() < $${cutoff}::timestamptz AND EXISTS (SELECT 1 FROM readiness_store_meta WHERE key = 'store_id' AND value = $${storeId})`;

export class PostgresBackend implements Backend {
  readonly kind = 'postgres';
  readonly pool: pg.Pool;
  #cursor = 0;
  /** Writes per check since its last prune (see pruneEvery). */
  readonly #sincePrune = new Map<string, number>();
  readonly historyLimit: number;
  readonly timeoutMs: number;
  readonly #expectStoreId: string | undefined;
  /** The identity of the store opened; every write checks it. */
  storeId: string | undefined;
  /** Server clock minus local clock, per connection (ms). */
  readonly #offsets = new WeakMap<pg.PoolClient, number>();

  constructor(
    readonly url: string,
    opts: PostgresBackendOptions = {},
  ) {
    this.historyLimit = opts.historyLimit ?? 500;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    this.#expectStoreId = opts.expectStoreId;
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: Math.min(opts.connectTimeoutMs ?? 3_000, this.timeoutMs),
      statement_timeout: opts.statementTimeoutMs ?? this.timeoutMs,
      application_name: 'readiness-exporter',
    });
    // A client losing its connection must not crash the process, idle (pool 'error') or
    // checked out between two queries (the client's own 'error'): the next query fails instead.
    this.pool.on('error', () => {});
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  /**
   * Runs `fn` on one pooled connection within the deadline. Past it the connection is
   * destroyed (what it was doing can no longer be answered to anyone) and the call fails.
   * `fn` gets the cutoff for guarded writes: in the server's clock, a margin before the deadline.
   */
  async #op<T>(what: string, fn: (client: pg.PoolClient, cutoff: Date) => Promise<T>): Promise<T> {
    const started = Date.now();
    let client: pg.PoolClient | undefined;
    let released = false;
    let expired = false;
    const release = (destroy?: Error) => {
      if (!client || released) return;
      released = true;
      if (destroy) (client as unknown as { connection?: { stream?: Socket } }).connection?.stream?.destroy();
      client.release(destroy);
    };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        const err = new StoreTimeoutError(`PostgreSQL did not complete the ${what} within ${this.timeoutMs} ms (READINESS_STORE_TIMEOUT)`);
        release(err);
        reject(err);
      }, this.timeoutMs);
    });
    const work = (async () => {
      const c = await this.pool.connect();
      client = c;
      if (expired) {
        release(new Error('deadline passed while connecting'));
        throw new StoreTimeoutError('deadline passed while connecting');
      }
      let offset = this.#offsets.get(c);
      if (offset === undefined) {
        const t0 = Date.now();
        const r = await c.query<{ now: number }>('SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now');
        const t1 = Date.now();
        offset = r.rows[0]!.now - (t0 + t1) / 2;
        this.#offsets.set(c, offset);
      }
      // The margin covers the statement's own run time, so one that began before the cutoff
      // has committed and answered before the client gives up.
      const margin = Math.min(1_000, this.timeoutMs / 4);
      const cutoff = new Date(started + this.timeoutMs - margin + offset);
      try {
        const out = await fn(c, cutoff);
        release();
        return out;
      } catch (err) {
        release(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    })();
    work.catch(() => {});
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async open(opts: OpenOptions = {}): Promise<Snapshot> {
    const id = await this.#op('migration', async (client) => {
      const before = await tableExists(client, 'readiness_store_meta');
      await migrate(client);
      const r = await client.query<{ value: string }>(STORE_ID_SQL);
      const found = r.rows[0]?.value;
      if (!found) throw new StoreIdentityError('the PostgreSQL store has no store id (readiness_store_meta is empty): restore the database, or start with --init-store to give it a new one');
      const expected = this.#expectStoreId;
      if (expected !== undefined && found !== expected && !opts.initStore) {
        throw new StoreIdentityError(
          `the PostgreSQL database holds store ${found}${before ? '' : ' (just created: the database was empty)'}, but READINESS_STORE_ID expects ${expected}: the database was dropped, reset or replaced. Restore it, or start with --init-store (and update READINESS_STORE_ID) to use this one`,
        );
      }
      return found;
    });
    this.storeId = id;
    this.#cursor = 0;
    return this.changes(-1);
  }

  /** Throws StoreIdentityError when the database is no longer the store this process opened. */
  #checkIdentity(found: string | undefined): void {
    if (this.storeId === undefined || found === this.storeId) return;
    throw new StoreIdentityError(
      `the PostgreSQL store was replaced: it holds ${found ? `store ${found}` : 'no store id'}, not store ${this.storeId} that this service opened (the database was dropped, reset or swapped). Nothing is written to it; restore it, or restart with --init-store to use the new one`,
    );
  }

  /**
   * Statuses by change_seq, and the records above `recordsSince` read in one snapshot with
   * the records version: the snapshot then holds every record written at a version <= it.
   */
  async changes(recordsSince: number): Promise<Snapshot> {
    const from = Math.max(0, this.#cursor - CHANGE_LAG);
    return this.#op('refresh', async (client) => {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const id = await client.query<{ value: string }>(STORE_ID_SQL).catch(undefinedTable);
        this.#checkIdentity(id.rows[0]?.value);
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
      }
    });
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
    return this.#op('status write', async (client) => {
      await client.query('BEGIN');
      try {
        // In the same transaction: results are never written into a store that replaced this one.
        this.#checkIdentity((await client.query<{ value: string }>(STORE_ID_SQL).catch(undefinedTable)).rows[0]?.value);
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
      }
    });
  }

  async ping(): Promise<void> {
    await this.#op('ping', (c) => c.query('SELECT 1'));
  }

  async history(check: string, limit: number): Promise<RunResult[]> {
    const r = await this.#op('history read', (c) =>
      c.query<{ result: RunResult }>('SELECT result FROM readiness_check_history WHERE check_id = $1 ORDER BY id DESC LIMIT $2', [check, Math.min(limit, this.historyLimit)]),
    );
    return r.rows.map((x) => x.result);
  }

  async writeAttestation(a: Attestation): Promise<number> {
    return this.#recordWrite(
      'attestation write',
      `INSERT INTO readiness_attestations (id, check_id, by_name, role, note, evidence_url, release, created_at, expires_at, revoked_at, revoked_by, records_version)
       SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::timestamptz, $9::timestamptz, $10::timestamptz, $11::text, v.version FROM v
       ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by, records_version = excluded.records_version,
         change_seq = nextval('readiness_change_seq')`,
      [a.id, a.check, a.by, a.role, a.note ?? null, a.evidenceUrl ?? null, a.release ?? null, ts(a.createdAt), ts(a.expiresAt), ts(a.revokedAt), a.revokedBy ?? null],
    );
  }

  async writeDeployment(d: Deployment): Promise<number> {
    // ids are new uuids and an acknowledged write is never retried: a conflict cannot happen,
    // so no row written means a guard stopped it.
    return this.#recordWrite(
      'deployment write',
      `INSERT INTO readiness_deployments (id, version, at, created_at, by_name, source, records_version)
       SELECT $1::uuid, $2::text, $3::timestamptz, $4::timestamptz, $5::text, $6::text, v.version FROM v
       ON CONFLICT (id) DO NOTHING`,
      [d.id, d.version, ts(d.at), ts(d.createdAt), d.by ?? null, d.source],
    );
  }

  /**
   * Writes a record at the next records version in one statement (the version bump a CTE
   * before it: `v`), guarded by the deadline's cutoff and the store's identity: it writes only
   * when the server runs it before the cutoff and in the store this process opened. The version
   * row's lock orders these writes: versions are handed out in commit order, so a snapshot that
   * sees version v sees every record written at a version <= v. When it wrote nothing, says
   * which guard stopped it.
   */
  async #recordWrite(what: string, insert: string, params: unknown[]): Promise<number> {
    const n = params.length;
    const sql = `WITH v AS (UPDATE readiness_records_version SET version = version + 1 WHERE ${guard(n + 1, n + 2)} RETURNING version)
       ${insert} RETURNING records_version`;
    return this.#op(what, async (c, cutoff) => {
      const r = await c.query<{ records_version: string }>(sql, [...params, cutoff, this.storeId ?? '']).catch(undefinedTable);
      if (r.rowCount === 1) return Number(r.rows[0]!.records_version);
      this.#checkIdentity((await c.query<{ value: string }>(STORE_ID_SQL).catch(undefinedTable)).rows[0]?.value);
      throw new StoreTimeoutError(`PostgreSQL ran the ${what} after its deadline (${this.timeoutMs} ms, READINESS_STORE_TIMEOUT): nothing was written`);
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

async function tableExists(client: pg.ClientBase, name: string): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [name]);
  return r.rows[0]?.ok ?? false;
}

/** A missing table (42P01) means the database was dropped or reset under the service. */
function undefinedTable(err: unknown): never {
  if ((err as { code?: string }).code === '42P01') {
    throw new StoreIdentityError(`the PostgreSQL store's tables are gone (${(err as Error).message}): the database was dropped or reset. Nothing is written to it; restore it, or restart with --init-store to start a new store`);
  }
  throw err;
}
