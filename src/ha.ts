// HA: several replicas share one PostgreSQL store, and each check runs on exactly one of
// them at a time. A replica owns a check while it holds the check's lease, a row in
// readiness_leases that expires `ttl` after its last renewal (PostgreSQL's clock). Every
// change of owner adds one to the lease's epoch, and a result is published only with the
// epoch of the current lease (see LATEST_SQL in store/postgres.ts): a replica that was
// paused, partitioned or slow cannot publish a result for a check it no longer owns.
//
// Why leases with expiry and not session advisory locks: a hung process (SIGSTOP, a stuck
// event loop) keeps its session and with it its locks forever; and a PostgreSQL restart
// drops every session at once, so the first replica back would see every lock free. With
// leases in a table both are decided by time: a lease is taken only once its holder stopped
// renewing for `ttl`, and only by a replica whose own session is at least `ttl` old, so after
// a restart every live replica has had a full `ttl` to renew what it held. Terminating a hung
// replica's backend (pg_terminate_backend) was weighed and rejected: it needs a privileged
// role, and it would not stop the hung process from publishing once it resumes.
//
// A replica whose lease session is gone while the session of the replica looking is older
// than the gone one's last heartbeat has really died (kill -9, crash): no server restart can
// explain it, so its checks are taken at once instead of after `ttl`.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { Logger } from 'pino';

export interface Acquired {
  check: string;
  /** When the check's last stored run started (epoch ms), read with the lease. */
  lastStartedAt?: number;
}

export interface Fence {
  owner: string;
  epoch: number;
}

/** Which checks this replica runs. */
export interface Ownership {
  readonly replicaId: string;
  /** Whether this replica runs the check now. */
  owns(checkId: string): boolean;
  /** The fencing token for a run starting now; undefined when there is none to present. */
  fence(checkId: string): Fence | undefined;
  owned(): string[];
  /** Starts claiming for these checks (again on reload); resolves after the first round. */
  start(checks: readonly string[]): Promise<void>;
  /** Gives every lease back and stops claiming. */
  stop(): Promise<void>;
  /** Set by the service: checks just acquired, so the scheduler continues their cadence. */
  onAcquire?: (acquired: Acquired[]) => void;
  /** Set by the service: whether a check can be given back now (no run in flight, its result written). */
  canRelease?: (checkId: string) => boolean;
  /** Asks whichever replica owns the check to run it now. */
  requestRun?(checkId: string): Promise<void>;
  /** Set by the service: another replica asked for a run of a check this replica owns. */
  onRunRequest?: (checkId: string) => void;
  /** What /healthz shows. */
  describe?(): Record<string, unknown>;
}

export interface LeaseOptions {
  log: Logger;
  replicaId?: string;
  /**
   * How long a lease lasts without renewal (default 10 s): a replica that stops renewing
   * (hung, cut off from PostgreSQL) loses its checks this long after its last renewal.
   */
  ttlMs?: number;
  /** How often leases are renewed and ownership reconsidered (default min(1 s, ttl / 4)). */
  renewMs?: number;
}

const RUN_CHANNEL = 'readiness_run';
/** A lease is trusted locally until this share of its ttl has passed (clocks run at slightly different rates). */
const LOCAL_SHARE = 0.95;

/** Replica r's lease session ended while the session $2 (the caller's, started then) lived: r died. */
const DEAD = (owner: string) => `EXISTS (SELECT 1 FROM readiness_replicas d WHERE d.id = ${owner} AND d.heartbeat_at >= $2::timestamptz
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = d.backend_pid AND a.backend_start = d.backend_start))`;

const SQL = {
  heartbeat: `INSERT INTO readiness_replicas (id, started_at, heartbeat_at, backend_pid, backend_start)
    SELECT $1, now(), now(), pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), backend_pid = excluded.backend_pid, backend_start = excluded.backend_start
    RETURNING backend_start, now() - backend_start >= make_interval(secs => $2) AS settled`,
  renew: `UPDATE readiness_leases l SET expires_at = now() + make_interval(secs => $2)
    FROM unnest($3::text[], $4::bigint[]) AS h(check_id, epoch)
    WHERE l.check_id = h.check_id AND l.epoch = h.epoch AND l.owner = $1
    RETURNING l.check_id`,
  live: `SELECT count(*) AS n FROM readiness_replicas r
    WHERE r.heartbeat_at > now() - make_interval(secs => $1) AND NOT ${DEAD('r.id')}`,
  picture: `SELECT c.id AS check_id, l.owner,
      (l.check_id IS NULL OR l.owner IS NULL) AS free,
      coalesce(l.expires_at < now(), false) AS expired,
      coalesce(l.owner IS NOT NULL AND ${DEAD('l.owner')}, false) AS dead
    FROM unnest($1::text[]) AS c(id) LEFT JOIN readiness_leases l ON l.check_id = c.id`,
  // Sorted ids everywhere: replicas lock lease rows in one order, so they never deadlock.
  take: `INSERT INTO readiness_leases AS l (check_id, owner, epoch, expires_at, acquired_at)
    SELECT id, $1, 1, now() + make_interval(secs => $3), now() FROM unnest($4::text[]) AS id ORDER BY id
    ON CONFLICT (check_id) DO UPDATE SET owner = excluded.owner, epoch = l.epoch + 1, expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
    WHERE l.owner IS NULL
       OR (l.expires_at < now() AND now() - $2::timestamptz >= make_interval(secs => $3))
       OR ${DEAD('l.owner')}
    RETURNING l.check_id, l.epoch,
      (SELECT (x.status->'last'->>'startedAt')::float8 FROM readiness_check_latest x WHERE x.check_id = l.check_id) AS last_started`,
  release: `UPDATE readiness_leases l SET owner = NULL, expires_at = now()
    FROM unnest($2::text[], $3::bigint[]) AS h(check_id, epoch)
    WHERE l.check_id = h.check_id AND l.epoch = h.epoch AND l.owner = $1`,
} as const;

export class PgLeases implements Ownership {
  readonly replicaId: string;
  readonly ttlMs: number;
  readonly renewMs: number;
  /** Check -> epoch of the lease held (0: taken without PostgreSQL, at a start with it down). */
  readonly #held = new Map<string, number>();
  /** performance.now() until which the leases held are surely still ours. */
  #validUntil = -Infinity;
  /** PostgreSQL cannot be reached while the leases were valid: keep running them (nobody can take them meanwhile). */
  #disconnected = false;
  #freeLastRound = new Set<string>();
  #checks: string[] = [];
  #client: pg.Client | undefined;
  #sessionStart: Date | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #round: Promise<void> | undefined;
  #connectedOnce = false;
  readonly #log: Logger;
  onAcquire?: (acquired: Acquired[]) => void;
  canRelease?: (checkId: string) => boolean;
  onRunRequest?: (checkId: string) => void;

  constructor(
    readonly url: string,
    opts: LeaseOptions,
  ) {
    this.replicaId = opts.replicaId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.renewMs = opts.renewMs ?? Math.min(1_000, this.ttlMs / 4);
    this.#log = opts.log;
  }

  owns(checkId: string): boolean {
    return this.#held.has(checkId) && (this.#disconnected || performance.now() < this.#validUntil);
  }

  fence(checkId: string): Fence | undefined {
    const epoch = this.#held.get(checkId);
    return epoch && this.owns(checkId) ? { owner: this.replicaId, epoch } : undefined;
  }

  owned(): string[] {
    return [...this.#held.keys()].filter((id) => this.owns(id)).sort();
  }

  describe(): Record<string, unknown> {
    return {
      leaseTtlSeconds: this.ttlMs / 1000,
      ...(this.#disconnected && { disconnected: true }),
      validForSeconds: this.#disconnected ? null : Math.max(0, Math.round((this.#validUntil - performance.now()) / 100) / 10),
    };
  }

  async start(checks: readonly string[]): Promise<void> {
    this.#checks = [...checks].sort();
    const gone = [...this.#held.keys()].filter((id) => !checks.includes(id));
    if (gone.length > 0) {
      const epochs = gone.map((id) => this.#held.get(id)!);
      for (const id of gone) this.#held.delete(id);
      await this.#client?.query(SQL.release, [this.replicaId, gone, epochs]).catch(() => {});
    }
    if (!this.#timer && !this.#stopped) await this.#tick();
  }

  async requestRun(checkId: string): Promise<void> {
    if (!this.#client) throw new Error('PostgreSQL is unreachable: the owner cannot be asked');
    await this.#client.query('SELECT pg_notify($1, $2)', [RUN_CHANNEL, checkId]);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), this.renewMs);
    this.#timer.unref();
  }

  #tick(): Promise<void> {
    if (this.#round) return this.#round;
    // A round that hangs (PostgreSQL frozen) must not stop probing: if it is still pending
    // while the leases are valid, carry on as with PostgreSQL down. A process that was paused
    // finds its leases expired when it resumes, and keeps nothing.
    const left = this.#validUntil - performance.now() - this.renewMs / 2;
    const watchdog = setTimeout(
      () => {
        if (this.#round && !this.#disconnected && performance.now() < this.#validUntil) {
          this.#log.warn({ keeping: this.#held.size }, 'PostgreSQL does not answer the lease round: keeping this replica\'s checks until it does');
          this.#disconnected = true;
        }
      },
      Number.isFinite(left) ? Math.max(0, left) : 0,
    );
    watchdog.unref();
    this.#round = this.#claimRound()
      .catch((err: unknown) => this.#lost(err))
      .finally(() => {
        clearTimeout(watchdog);
        this.#round = undefined;
        this.#schedule();
      });
    return this.#round;
  }

  /** A round failed: PostgreSQL is unreachable, or the connection broke. */
  #lost(err: unknown): void {
    const valid = this.#disconnected || performance.now() < this.#validUntil;
    if (!this.#connectedOnce && this.#held.size === 0 && this.#checks.length > 0) {
      // Never connected (PostgreSQL down at start): nobody can coordinate, so this replica
      // runs every check until it can; its results carry no fence and queue meanwhile.
      this.#log.warn({ err, checks: this.#checks.length }, 'PostgreSQL unreachable at start: running every check until leases can be taken');
      for (const id of this.#checks) this.#held.set(id, 0);
      this.#disconnected = true;
    } else if (valid) {
      // With PostgreSQL down nobody can take a lease, and probing must go on: keep what we
      // hold. When it is back the leases are renewed, or found taken and dropped.
      if (!this.#disconnected && this.#held.size > 0) this.#log.warn({ err, keeping: this.#held.size }, 'lease connection lost: keeping this replica\'s checks until PostgreSQL is back');
      this.#disconnected = true;
    } else if (this.#held.size > 0) {
      this.#log.warn({ err, dropped: this.#held.size }, 'the leases expired before PostgreSQL answered (the process was paused, or PostgreSQL too slow): giving every check up');
      this.#held.clear();
    }
    this.#client?.end().catch(() => {});
    this.#client = undefined;
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const client = new pg.Client({
      connectionString: this.url,
      application_name: `readiness-exporter lease ${this.replicaId}`,
      connectionTimeoutMillis: Math.max(1_000, this.renewMs * 2),
      // A round must end (or fail) within the lease: a hung query is a lost connection.
      query_timeout: this.ttlMs,
    });
    client.on('error', () => {
      // Surfaces as a failed query in the next round, which resets the state.
    });
    client.on('notification', (msg) => {
      if (msg.channel === RUN_CHANNEL && msg.payload && this.owns(msg.payload)) this.onRunRequest?.(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${RUN_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    this.#client = client;
    this.#sessionStart = undefined;
    this.#connectedOnce = true;
    return client;
  }

  async #claimRound(): Promise<void> {
    const c = await this.#connect();
    const ttlS = this.ttlMs / 1000;
    const t0 = performance.now();
    const hb = (await c.query<{ backend_start: Date; settled: boolean }>(SQL.heartbeat, [this.replicaId, ttlS])).rows[0]!;
    this.#sessionStart ??= hb.backend_start;
    const since = this.#sessionStart;

    // Renew what we hold; whatever is not renewed was taken by another replica.
    const mine = [...this.#held.keys()].sort();
    const renewed = new Set(
      (await c.query<{ check_id: string }>(SQL.renew, [this.replicaId, ttlS, mine, mine.map((id) => this.#held.get(id)!)])).rows.map((r) => r.check_id),
    );
    const lost = mine.filter((id) => !renewed.has(id));
    // Epoch 0: run without a lease while PostgreSQL was unreachable since start; now claimed properly.
    const taken = lost.filter((id) => this.#held.get(id)! > 0);
    for (const id of lost) this.#held.delete(id);
    this.#validUntil = t0 + this.ttlMs * LOCAL_SHARE;
    if (this.#disconnected) this.#log.info({ renewed: renewed.size, lost: taken.length }, 'PostgreSQL is back: leases renewed');
    if (taken.length > 0) this.#log.warn({ lost: taken }, 'leases taken by another replica: no longer running these checks');
    this.#disconnected = false;

    const live = Number((await c.query<{ n: string }>(SQL.live, [ttlS, since])).rows[0]!.n);
    const picture = (await c.query<{ check_id: string; owner: string | null; free: boolean; expired: boolean; dead: boolean }>(SQL.picture, [this.#checks, since])).rows;
    const fair = Math.ceil(this.#checks.length / Math.max(1, live));

    // Give back what exceeds the fair share so a replica that joined gets work, but only
    // while every check has a live owner, and only checks with nothing in flight or unwritten:
    // the next owner reads when each last ran and keeps its cadence.
    const heldByLive = (r: (typeof picture)[number]) => !r.free && !r.dead && !r.expired;
    if (picture.every(heldByLive) && this.#held.size > fair) {
      const give = [...this.#held.keys()]
        .sort()
        .filter((id) => this.canRelease?.(id) ?? true)
        .slice(-(this.#held.size - fair));
      const epochs = give.map((id) => this.#held.get(id)!);
      for (const id of give) this.#held.delete(id);
      if (give.length > 0) {
        await c.query(SQL.release, [this.replicaId, give, epochs]);
        this.#log.info({ released: give, fair, live }, 'gave checks back for a fair share');
      }
    }

    // Take free checks within the fair share, and any free for two rounds (its replica is
    // gone and nobody within their share took it) whatever the share.
    const takeable = (r: (typeof picture)[number]) => r.free || r.dead || (r.expired && hb.settled);
    const free = picture.filter((r) => !this.#held.has(r.check_id) && takeable(r)).map((r) => r.check_id);
    const want: string[] = [];
    for (const id of free) if (this.#held.size + want.length < fair || this.#freeLastRound.has(id)) want.push(id);
    if (want.length > 0) {
      const got = (await c.query<{ check_id: string; epoch: string; last_started: number | null }>(SQL.take, [this.replicaId, since, ttlS, want])).rows;
      for (const r of got) this.#held.set(r.check_id, Number(r.epoch));
      if (got.length > 0) {
        this.#log.info({ acquired: got.map((r) => r.check_id), fair, live }, 'leases acquired');
        this.onAcquire?.(got.map((r) => ({ check: r.check_id, ...(r.last_started !== null && { lastStartedAt: Number(r.last_started) }) })));
      }
    }
    this.#freeLastRound = new Set(free);
    await c.query(`DELETE FROM readiness_replicas WHERE heartbeat_at < now() - interval '10 minutes'`);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round?.catch(() => {});
    const mine = [...this.#held.keys()].filter((id) => this.#held.get(id)! > 0);
    const epochs = mine.map((id) => this.#held.get(id)!);
    this.#held.clear();
    if (this.#client) {
      // Released leases are free at once: the others take them at their next round.
      await this.#client.query(SQL.release, [this.replicaId, mine, epochs]).catch(() => {});
      await this.#client.query('DELETE FROM readiness_replicas WHERE id = $1', [this.replicaId]).catch(() => {});
      await this.#client.end().catch(() => {});
    }
    this.#client = undefined;
  }
}
