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
//
// A replica runs a check only while it can show it still holds the lease: a renewal sent less
// than 0.95 ttl ago (monotonic clock, which keeps counting while the process is stopped) was
// answered with the lease's epoch. A lease round that is merely slow proves nothing (PostgreSQL
// may answer the others, who take the lease once it expired), so the checks pause until a
// renewal is answered; a lease whose proof lapsed is kept as a candidate and renewed, epoch
// unchanged, if nobody took it meanwhile. The one exception is a connection lost while the
// leases were valid (PostgreSQL down or restarting): nobody can take a lease before PostgreSQL
// is back and the taker's session is a ttl old, so the replica keeps running what it held while
// it keeps trying to reconnect, but only as long as its event loop runs: a gap of half a ttl
// (process stopped, loop stalled) ends that, and nothing runs until PostgreSQL confirms it.
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
  /**
   * Check -> epoch of the lease held (0: taken without PostgreSQL, at a start with it down).
   * A lease is run only while owns() says so; one whose proof lapsed stays here until the
   * next renewal keeps it (same epoch) or finds it taken.
   */
  readonly #held = new Map<string, number>();
  /** performance.now() until which the leases held are surely still ours (renewal sent + 0.95 ttl). */
  #validUntil = -Infinity;
  /** The lease connection was lost while the leases were valid: keep running them while this process runs without a stall. */
  #disconnected = false;
  /** PostgreSQL was unreachable at start: every check runs without a lease until one can be taken. */
  #unleased = false;
  /** performance.now() of the last beat of the liveness timer: a gap since means the process was stopped or stalled. */
  #aliveAt = performance.now();
  #alive: NodeJS.Timeout | undefined;
  /** A gap in the liveness beats longer than this ends the disconnected mode (half a ttl). */
  readonly #stallMs: number;
  /** Retry at once after a lost connection (a lone lost session: the others may take its leases at once). */
  #retryNow = false;
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
    this.#stallMs = this.ttlMs / 2;
    this.#log = opts.log;
  }

  /**
   * Decided from the monotonic clock at the moment of the call, not from timers having run:
   * the first callback after a stop or a stall already sees the leases lapsed.
   */
  owns(checkId: string): boolean {
    if (!this.#held.has(checkId)) return false;
    const now = performance.now();
    if (now < this.#validUntil || this.#unleased) return true;
    return this.#disconnected && now - this.#aliveAt < this.#stallMs;
  }

  /** Beats every renewMs / 2: a beat that finds a gap of half a ttl ends the disconnected mode. */
  #beat(): void {
    const now = performance.now();
    const gap = now - this.#aliveAt;
    this.#aliveAt = now;
    if (gap < this.#stallMs || this.#stopped) return;
    if (this.#disconnected && !this.#unleased) {
      this.#disconnected = false;
      this.#log.warn({ gapMs: Math.round(gap), held: this.#held.size }, 'this process was stopped or stalled while PostgreSQL was unreachable: no check runs until PostgreSQL confirms its leases');
    }
    // Confirm (or lose) the leases now rather than at the next renewal.
    if (!this.#round) {
      clearTimeout(this.#timer);
      void this.#tick();
    }
  }

  fence(checkId: string): Fence | undefined {
    const epoch = this.#held.get(checkId);
    return epoch && this.owns(checkId) ? { owner: this.replicaId, epoch } : undefined;
  }

  owned(): string[] {
    return [...this.#held.keys()].filter((id) => this.owns(id)).sort();
  }

  describe(): Record<string, unknown> {
    const disconnected = this.#unleased || this.#disconnected;
    return {
      leaseTtlSeconds: this.ttlMs / 1000,
      ...(disconnected && { disconnected: true }),
      validForSeconds: disconnected ? null : Math.max(0, Math.round((this.#validUntil - performance.now()) / 100) / 10),
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
    if (!this.#alive && !this.#stopped) {
      this.#aliveAt = performance.now();
      this.#alive = setInterval(() => this.#beat(), Math.max(20, this.renewMs / 2));
      this.#alive.unref();
    }
    if (!this.#timer && !this.#stopped) await this.#tick();
  }

  async requestRun(checkId: string): Promise<void> {
    if (!this.#client) throw new Error('PostgreSQL is unreachable: the owner cannot be asked');
    await this.#client.query('SELECT pg_notify($1, $2)', [RUN_CHANNEL, checkId]);
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    const delay = this.#retryNow ? 0 : this.renewMs;
    this.#retryNow = false;
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref();
  }

  #tick(): Promise<void> {
    if (this.#round) return this.#round;
    // A round still pending when the leases lapse (PostgreSQL slow or frozen, this process
    // starved) proves nothing: PostgreSQL may be answering the others, who take a lease once it
    // expired. The checks pause (owns() is false) until a renewal is answered; say so once.
    const left = this.#validUntil - performance.now();
    const watchdog = setTimeout(
      () => {
        if (this.#round && !this.#disconnected && this.#held.size > 0 && performance.now() >= this.#validUntil) {
          this.#log.warn({ held: this.#held.size }, 'PostgreSQL does not answer the lease round in time: this replica\'s checks pause until it does');
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
    const now = performance.now();
    const valid = now < this.#validUntil || (this.#disconnected && now - this.#aliveAt < this.#stallMs);
    if (!this.#connectedOnce && this.#held.size === 0 && this.#checks.length > 0) {
      // Never connected (PostgreSQL down at start): nobody can coordinate, so this replica
      // runs every check until it can; its results carry no fence and queue meanwhile.
      this.#log.warn({ err, checks: this.#checks.length }, 'PostgreSQL unreachable at start: running every check until leases can be taken');
      for (const id of this.#checks) this.#held.set(id, 0);
      this.#unleased = true;
    } else if (this.#unleased) {
      // Still unreachable since start: keep running every check.
    } else if (valid) {
      // With PostgreSQL down nobody can take a lease, and probing must go on: keep what we
      // hold. When it is back the leases are renewed, or found taken and dropped. A session
      // lost while PostgreSQL is up (terminated, network) lets the others take our leases at
      // once (it looks dead): reconnect at once to find out.
      if (!this.#disconnected && this.#held.size > 0) this.#log.warn({ err, keeping: this.#held.size }, 'lease connection lost: keeping this replica\'s checks until PostgreSQL is back');
      if (!this.#disconnected) this.#retryNow = true;
      this.#disconnected = true;
    } else if (this.#held.size > 0 && !this.#disconnected) {
      // Nothing proves the leases any more (the process was stopped, or PostgreSQL too slow):
      // nothing runs; the next answered renewal keeps those nobody took.
      this.#log.warn({ err, held: this.#held.size }, 'the leases lapsed before PostgreSQL answered (the process was stopped, or PostgreSQL too slow): no check runs until it confirms them');
    }
    if (!valid && !this.#unleased) this.#disconnected = false;
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
    const hb = (await c.query<{ backend_start: Date; settled: boolean }>(SQL.heartbeat, [this.replicaId, ttlS])).rows[0]!;
    this.#sessionStart ??= hb.backend_start;
    const since = this.#sessionStart;

    // Renew what we hold (conditioned on owner and epoch); whatever is not renewed was taken
    // by another replica. The renewal is valid from its sending: PostgreSQL runs it later, and
    // the lease expires a ttl after that.
    const mine = [...this.#held.keys()].sort();
    const t0 = performance.now();
    const renewed = new Set(
      (await c.query<{ check_id: string }>(SQL.renew, [this.replicaId, ttlS, mine, mine.map((id) => this.#held.get(id)!)])).rows.map((r) => r.check_id),
    );
    const lost = mine.filter((id) => !renewed.has(id));
    // Epoch 0: run without a lease while PostgreSQL was unreachable since start; now claimed properly.
    const taken = lost.filter((id) => this.#held.get(id)! > 0);
    for (const id of lost) this.#held.delete(id);
    this.#validUntil = t0 + this.ttlMs * LOCAL_SHARE;
    if (this.#disconnected || this.#unleased) this.#log.info({ renewed: renewed.size, lost: taken.length }, 'PostgreSQL is back: leases renewed');
    if (taken.length > 0) this.#log.warn({ lost: taken }, 'leases taken by another replica: no longer running these checks');
    this.#disconnected = false;
    this.#unleased = false;

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
    clearInterval(this.#alive);
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
