// HA: several replicas share one PostgreSQL store, and each check runs on exactly one of
// them at a time. A replica owns a check while it holds a session-level advisory lock for
// it on its own connection; when the replica dies its connection closes, PostgreSQL drops
// the locks, and the others take the checks over at their next claim round. Replicas
// heartbeat into readiness_replicas so each can aim for a fair share, and a check nobody
// holds for two rounds is taken whatever the share, so failover never waits on a heartbeat
// timing out.
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { Logger } from 'pino';

/** classid of every advisory lock this exporter takes ("RE" for readiness-exporter). */
export const LOCK_CLASS = 0x5245;

export function lockKey(checkId: string): number {
  return createHash('sha256').update(checkId).digest().readInt32BE(0);
}

export interface Ownership {
  /** Whether this replica runs the check. */
  owns(checkId: string): boolean;
}

export interface LeaseOptions {
  log: Logger;
  replicaId?: string;
  /** How often ownership is reconsidered (default 1 s). */
  claimMs?: number;
  /** A replica whose heartbeat is older than this is not counted, even with its session open (default 5 s). */
  staleMs?: number;
}

export class PgLeases implements Ownership {
  readonly replicaId: string;
  readonly #owned = new Set<string>();
  #freeLastRound = new Set<string>();
  #checks: string[] = [];
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #round: Promise<void> | undefined;
  /** The connection was lost: the locks of #owned must be taken again. */
  #relock = false;
  #connectedOnce = false;
  readonly #opts: Required<Omit<LeaseOptions, 'replicaId'>>;

  constructor(
    readonly url: string,
    opts: LeaseOptions,
  ) {
    this.replicaId = opts.replicaId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.#opts = { claimMs: 1_000, staleMs: 5_000, ...opts };
  }

  owns(checkId: string): boolean {
    return this.#owned.has(checkId);
  }

  owned(): string[] {
    return [...this.#owned].sort();
  }

  /** Starts claiming for these checks (again on reload); resolves after the first round. */
  async start(checks: readonly string[]): Promise<void> {
    this.#checks = [...checks];
    for (const id of [...this.#owned]) if (!checks.includes(id)) await this.#release(id).catch(() => {});
    if (!this.#timer && !this.#stopped) await this.#tick();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#opts.claimMs);
    this.#timer.unref();
  }

  #tick(): Promise<void> {
    this.#round ??= this.#claimRound()
      .catch((err: unknown) => {
        // The connection is gone, and our locks with it. Keep running the checks we had: with
        // PostgreSQL down nobody can coordinate, and probing must go on. On reconnect they
        // are locked again, and any another replica took meanwhile are dropped.
        if (this.#client) this.#opts.log.warn({ err, keeping: this.#owned.size }, 'lease connection lost: keeping this replica\'s checks until PostgreSQL is back');
        // Never connected (PostgreSQL down at start): nobody can coordinate, so this replica
        // runs every check until it can; the relock then hands back what others hold.
        if (!this.#connectedOnce && this.#owned.size === 0 && this.#checks.length > 0) {
          this.#opts.log.warn({ err, checks: this.#checks.length }, 'PostgreSQL unreachable at start: running every check until leases can be taken');
          for (const id of this.#checks) this.#owned.add(id);
        }
        this.#client?.end().catch(() => {});
        this.#client = undefined;
        this.#relock = true;
      })
      .finally(() => {
        this.#round = undefined;
        this.#schedule();
      });
    return this.#round;
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const client = new pg.Client({ connectionString: this.url, application_name: `readiness-exporter lease ${this.replicaId}`, connectionTimeoutMillis: 3_000 });
    client.on('error', () => {
      // Surfaces as a failed query in the next round, which resets the state.
    });
    await client.connect();
    this.#client = client;
    this.#connectedOnce = true;
    return client;
  }

  async #claimRound(): Promise<void> {
    const c = await this.#connect();
    if (this.#relock) {
      for (const id of [...this.#owned]) {
        const got = (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_CLASS, lockKey(id)])).rows[0]!.ok;
        if (!got) this.#owned.delete(id);
      }
      this.#relock = false;
    }
    await c.query(
      `INSERT INTO readiness_replicas (id, started_at, heartbeat_at, backend_pid) VALUES ($1, now(), now(), pg_backend_pid())
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), backend_pid = pg_backend_pid()`,
      [this.replicaId],
    );
    await c.query(`DELETE FROM readiness_replicas WHERE heartbeat_at < now() - interval '10 minutes'`);
    // Alive: a recent heartbeat and its lease session still open. A killed replica's session
    // ends with its socket, so the fair share grows at once and its checks are taken now.
    const live = Number(
      (
        await c.query<{ n: string }>(
          `SELECT count(*) AS n FROM readiness_replicas r
           WHERE r.heartbeat_at > now() - make_interval(secs => $1)
             AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid)`,
          [this.#opts.staleMs / 1000],
        )
      ).rows[0]!.n,
    );
    const held = new Set(
      (await c.query<{ objid: string }>(`SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND granted`, [LOCK_CLASS])).rows.map((r) =>
        // pg_locks shows objid as an unsigned oid; keys are signed int4.
        Number(r.objid) | 0,
      ),
    );
    const fair = Math.ceil(this.#checks.length / Math.max(1, live));

    // Give back what exceeds the fair share so a replica that joined gets work, but only
    // while every check has an owner: during a failover, giving back would just pass the
    // orphans around until the dead replica's heartbeat expires.
    if (this.#checks.every((id) => held.has(lockKey(id)))) {
      const mine = [...this.#owned].sort();
      for (const id of mine.slice(fair)) await this.#release(id);
    }

    const free = this.#checks.filter((id) => !held.has(lockKey(id)) && !this.#owned.has(id));
    const freeNow = new Set(free);
    for (const id of free) {
      // Within the fair share, or orphaned for two rounds (its replica died): take it.
      if (this.#owned.size >= fair && !this.#freeLastRound.has(id)) continue;
      const got = (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_CLASS, lockKey(id)])).rows[0]!.ok;
      if (got) this.#owned.add(id);
    }
    this.#freeLastRound = freeNow;
  }

  async #release(id: string): Promise<void> {
    this.#owned.delete(id);
    await this.#client?.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, lockKey(id)]);
  }

  /** Releases every lock (the connection's end does it) and stops claiming. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round?.catch(() => {});
    this.#owned.clear();
    if (this.#client) {
      await this.#client.query('DELETE FROM readiness_replicas WHERE id = $1', [this.replicaId]).catch(() => {});
      await this.#client.end().catch(() => {});
    }
    this.#client = undefined;
  }
}
