// The part every store shares: reads are served from memory (so /readiness and /metrics
// never wait on a database), writes go through a Backend. Check results that cannot be
// written wait in a bounded queue and drain in order when the backend is back; attestations
// and deployments are acknowledged only once the backend has them (never queued).
import type { Logger } from 'pino';
import {
  StoreIdentityError,
  StoreUnavailableError,
  supersedes,
  type Attestation,
  type CheckStatus,
  type Deployment,
  type RunResult,
  type Store,
  type StoreChange,
  type StoreHealth,
  type WriteFence,
  type WriteOutcome,
} from './types.js';

export interface Snapshot {
  statuses: CheckStatus[];
  attestations: Attestation[];
  deployments: Deployment[];
  /** Shared backends: the snapshot holds every record written at a version <= this. */
  recordsVersion?: number;
}

export interface OpenOptions {
  /** Accept a store whose identity does not match (emptied, replaced, reset) instead of refusing it. */
  initStore?: boolean;
}

/** Where a store keeps its data. Every method may throw when the database is unreachable. */
export interface Backend {
  readonly kind: string;
  /** Applies migrations and returns everything to cache; throws StoreIdentityError for a store that is not the one it was. */
  open(opts?: OpenOptions): Promise<Snapshot>;
  /**
   * Upserts the latest status and appends its run to the history (pruned to the limit).
   * Shared backends check the fence and the order (see WriteFence) in the same transaction
   * and say when the status was not published (void: written).
   */
  writeStatus(s: CheckStatus, fence?: WriteFence): Promise<WriteOutcome | void>;
  /**
   * The same for several statuses, in order, in one transaction (all or nothing): one commit
   * for every result that arrived in one turn of the event loop instead of one each.
   * `fences[i]` goes with `batch[i]`; the outcomes too (void: all written).
   */
  writeStatuses?(batch: readonly CheckStatus[], fences?: readonly (WriteFence | undefined)[]): Promise<WriteOutcome[] | void>;
  history(check: string, limit: number): Promise<RunResult[]>;
  /** Inserts or replaces (revocation rewrites the row); shared backends return the records version it got. */
  writeAttestation(a: Attestation): Promise<number | void>;
  writeDeployment(d: Deployment): Promise<number | void>;
  /**
   * Rows written by other replicas since the previous call, and every record written at a
   * version above `recordsSince` (shared backends only).
   */
  changes?(recordsSince: number): Promise<Snapshot>;
  /** A cheap round trip, to tell that a database which failed is back. */
  ping?(): Promise<void>;
  /** The identity of the store opened (durable backends). */
  readonly storeId?: string | undefined;
  close(): Promise<void>;
}

export interface CachedStoreOptions {
  log?: Logger;
  /** Most check results kept in memory while the backend is down (default 10 000). */
  maxQueue?: number;
  /** How often a shared backend is read for other replicas' writes (default 1 s). */
  refreshMs?: number;
  /** How often a failed backend is retried (default 1 s). */
  retryMs?: number;
  /** The backend needs no open() (memory): usable without init(). */
  preopened?: boolean;
  /** Most check results written in one transaction (default 500). */
  maxBatch?: number;
}

export class CachedStore implements Store {
  readonly #latest = new Map<string, CheckStatus>();
  readonly #attestations = new Map<string, Attestation>();
  #deployments: Deployment[] = [];
  readonly #queue: CheckStatus[] = [];
  /** The fence each queued status is written with (HA); an entry lives as long as its status is queued. */
  readonly #fences = new Map<CheckStatus, WriteFence | undefined>();
  readonly #discarded = { fenced: 0, superseded: 0 };
  /** Every record written at a version <= this is in the cache. */
  #recordsVersion = 0;
  readonly #waiters = new Map<CheckStatus, () => void>();
  #dropped = 0;
  #errors = 0;
  #degraded: string | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #drainSoon: NodeJS.Immediate | undefined;
  #closed = false;
  /** Set by the constructor (preopened) and by open(). */
  #opened: boolean;
  #openOptions: OpenOptions = {};
  readonly #listeners = new Set<(c: StoreChange) => void>();
  readonly #opts: Required<Omit<CachedStoreOptions, 'log' | 'preopened'>> & { log?: Logger };

  constructor(
    readonly backend: Backend,
    opts: CachedStoreOptions = {},
  ) {
    const { preopened, ...rest } = opts;
    this.#opts = { maxQueue: 10_000, refreshMs: 1_000, retryMs: 1_000, maxBatch: 500, ...rest };
    this.#opened = preopened ?? false;
  }

  get kind(): string {
    return this.backend.kind;
  }

  /** The opened store's identity, for logs (undefined for memory, or before open). */
  get storeId(): string | undefined {
    return this.backend.storeId;
  }

  /**
   * Opens the backend. With `tolerateDown`, a database that is down at start does not stop
   * the service: the store starts degraded and keeps trying; results queue meanwhile. A store
   * that is not the one it was (StoreIdentityError) is never tolerated.
   */
  async init(opts: { tolerateDown?: boolean; initStore?: boolean } = {}): Promise<void> {
    if (opts.initStore) this.#openOptions = { initStore: true };
    try {
      await this.#open();
    } catch (err) {
      if (!opts.tolerateDown || err instanceof StoreIdentityError) throw err;
      this.#markDegraded(err);
    }
  }

  async #open(): Promise<void> {
    this.#merge(await this.backend.open(this.#openOptions));
    this.#opened = true;
    // Stryker disable next-line ConditionalExpression: a local backend's refresh() reads nothing, so its timer would only wake to do nothing
    if (this.backend.changes) this.#scheduleRefresh();
  }

  /** `remote`: read back from the shared store (written by another replica, or an echo of ours). */
  #merge(s: Snapshot, remote = false): void {
    // The shared store applied the same order when it accepted each row, so a row that loses
    // here is one this replica holds a newer (not yet written) result for.
    for (const st of s.statuses) {
      const cur = this.#latest.get(st.check);
      // A refresh reads back recent rows it already has: only a newer result is a change.
      const same = cur !== undefined && cur.last.finishedAt === st.last.finishedAt && (cur.last.recordsVersion ?? 0) === (st.last.recordsVersion ?? 0);
      if (!cur || (!same && supersedes(st.last, cur.last))) {
        this.#latest.set(st.check, st);
        this.#emit({ kind: 'status', check: st.check });
      }
    }
    if (s.recordsVersion !== undefined) this.#recordsVersion = Math.max(this.#recordsVersion, s.recordsVersion);
    // A local backend keeps no version of its own: it resumes from the highest one a stored
    // result claims, or every result computed after a restart would be older than the stored
    // one (counted from 0 again) and never replace it.
    else for (const st of s.statuses) this.#recordsVersion = Math.max(this.#recordsVersion, st.last.recordsVersion ?? 0);
    for (const a of s.attestations) {
      const cur = this.#attestations.get(a.id);
      this.#attestations.set(a.id, a);
      // A refresh reads back recent rows it already has: only news is a change.
      if (!cur || cur.revokedAt !== a.revokedAt || cur.expiresAt !== a.expiresAt) this.#emit({ kind: 'attestation', check: a.check, ...(remote && { remote }) });
    }
    // Stryker disable next-line ConditionalExpression,EqualityOperator: an empty list changes nothing (no news, the same order); the guard only spares re-sorting on every refresh
    if (s.deployments.length > 0) {
      const byId = new Map(this.#deployments.map((d) => [d.id, d]));
      const news = s.deployments.some((d) => byId.get(d.id)?.at !== d.at);
      for (const d of s.deployments) byId.set(d.id, d);
      this.#deployments = [...byId.values()].sort((a, b) => b.at - a.at || b.createdAt - a.createdAt);
      if (news) this.#emit({ kind: 'deployment', ...(remote && { remote }) });
    }
  }

  onChange(listener: (change: StoreChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(change: StoreChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        // A broken cache must not stop the store from recording results.
        this.#opts.log?.error({ err, change }, 'store change listener failed');
      }
    }
  }

  /** Reads other replicas' writes now (shared backends). */
  async refresh(): Promise<void> {
    if (this.backend.changes) this.#merge(await this.backend.changes(this.#recordsVersion), true);
  }

  #scheduleRefresh(): void {
    if (this.#closed) return;
    this.#refreshTimer = setTimeout(() => {
      this.refresh()
        .catch((err: unknown) => {
          // A database that is not the store any more is an outage, not a blip: say so.
          if (err instanceof StoreIdentityError) this.#markDegraded(err);
          else this.#opts.log?.debug({ err }, 'store refresh failed');
        })
        .finally(() => this.#scheduleRefresh());
    }, this.#opts.refreshMs);
    this.#refreshTimer.unref();
  }

  /**
   * Updates the cache at once and hands the status to the single writer, which keeps the
   * history in order. Resolves when the status is written, or queued because the backend
   * is down: callers (the scheduler) need not wait for the database to go on probing.
   */
  put(status: CheckStatus, fence?: WriteFence): Promise<void> {
    const cur = this.#latest.get(status.check);
    // A local backend has one writer, this process, which puts results in the order their runs
    // ran: only the records version orders them, not the wall clock (a clock stepped back must
    // not make every new run "older" than the stored one). Shared backends order by both.
    const newer = !cur || (this.backend.changes ? supersedes(status.last, cur.last, fence?.recordsOnly === true && !fence.lease) : (status.last.recordsVersion ?? 0) >= (cur.last.recordsVersion ?? 0));
    if (!newer) {
      // Computed from older records than the result already here: never served, never written.
      this.#discarded.superseded++;
      this.#opts.log?.info({ check: status.check, recordsVersion: status.last.recordsVersion ?? 0, stored: cur.last.recordsVersion ?? 0 }, 'result not published: a result computed from newer records is stored');
      return Promise.resolve();
    }
    this.#latest.set(status.check, status);
    this.#emit({ kind: 'status', check: status.check });
    const done = new Promise<void>((resolve) => this.#waiters.set(status, resolve));
    this.#queue.push(status);
    // Set even when there is none: a result put again must not travel with an earlier put's lease.
    this.#fences.set(status, fence);
    if (this.#queue.length > this.#opts.maxQueue) {
      const lost = this.#queue.shift()!;
      this.#dropped++;
      // Its fence goes with it (kept, a long outage would grow the map by every dropped result).
      this.#fences.delete(lost);
      this.#settle(lost);
    }
    if (this.#degraded || !this.#opened) {
      this.#settle(status);
      this.#scheduleRetry();
    } else {
      // Group commit: every result that completes in this turn of the event loop is written
      // by the same transaction, at the end of the turn (before the next I/O is served).
      this.#drainSoon ??= setImmediate(() => {
        this.#drainSoon = undefined;
        void this.#drain();
      });
    }
    return done;
  }

  #settle(status: CheckStatus): void {
    this.#waiters.get(status)?.();
    this.#waiters.delete(status);
  }

  /** The shared store refused a result: count it, and serve what the store holds instead. */
  #notPublished(status: CheckStatus, out: Extract<WriteOutcome, { written: false }>): void {
    this.#discarded[out.reason]++;
    this.#opts.log?.info(
      { check: status.check, reason: out.reason, ranBy: status.last.ranBy, recordsVersion: status.last.recordsVersion ?? 0 },
      out.reason === 'fenced' ? "result not published: this replica no longer holds the check's lease" : 'result not published: a newer result is stored',
    );
    if (this.#latest.get(status.check) !== status) return;
    // Stryker disable next-line ConditionalExpression: a check mapped to undefined reads as absent everywhere (latest(), #merge, retain)
    if (out.current) this.#latest.set(status.check, out.current);
    else this.#latest.delete(status.check);
    this.#emit({ kind: 'status', check: status.check });
  }

  #markDegraded(err: unknown): void {
    this.#errors++;
    const msg = err instanceof Error ? err.message : String(err);
    const was = this.#degraded;
    if (!was) this.#opts.log?.error({ err }, `${this.kind} store unavailable: results are queued in memory`);
    this.#degraded = msg;
    if (was !== msg) this.#emit({ kind: 'health' });
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#drain();
    }, this.#opts.retryMs);
    this.#retryTimer.unref();
  }

  /** Writes queued results in order; stops at the first failure and tries again later. */
  #drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    const run = async () => {
      try {
        if (!this.#opened) await this.#open();
        // Degraded with nothing queued (a refused attestation): prove the backend is back.
        if (this.#degraded && this.#queue.length === 0) await this.backend.ping?.();
        while (this.#queue.length > 0) {
          const batch = this.#queue.slice(0, this.#opts.maxBatch);
          const fences = batch.map((s) => this.#fences.get(s));
          let outcomes: (WriteOutcome | void)[] | void;
          if (this.backend.writeStatuses) outcomes = await this.backend.writeStatuses(batch, fences);
          else {
            outcomes = [];
            for (const [i, s] of batch.entries()) outcomes.push(await this.backend.writeStatus(s, fences[i]));
          }
          // A status dropped from a full queue meanwhile was settled already; skip what was written.
          this.#queue.splice(0, Math.min(batch.length, this.#queue.indexOf(batch.at(-1)!) + 1));
          for (const [i, s] of batch.entries()) {
            const out = outcomes?.[i];
            if (out && !out.written) this.#notPublished(s, out);
            this.#fences.delete(s);
            this.#settle(s);
          }
        }
        if (this.#degraded) {
          this.#opts.log?.info({ dropped: this.#dropped }, `${this.kind} store is back: queue drained`);
          this.#degraded = undefined;
          this.#emit({ kind: 'health' });
        }
      } catch (err) {
        this.#markDegraded(err);
        // Everything still queued is kept for the retry; nobody waits on the database.
        for (const q of this.#queue) this.#settle(q);
      }
    };
    // The .finally callback always runs after this assignment, even when run() finishes at once.
    this.#draining = run().finally(() => {
      this.#draining = undefined;
      // A put that arrived while the last write finished must not wait for the next retry. (Its
      // setImmediate drain would also find it: microtasks, this one included, run before it.)
      // Stryker disable next-line ConditionalExpression: belt and braces, see above
      if (this.#queue.length > 0 && !this.#degraded) void this.#drain();
    });
    return this.#draining;
  }

  /** Waits until the queue is empty or the deadline passes (shutdown, tests). */
  async flush(deadlineMs = 5_000): Promise<boolean> {
    const end = Date.now() + deadlineMs;
    // Stryker disable next-line EqualityOperator: one millisecond at the deadline
    while (this.#queue.length > 0 && Date.now() < end) {
      await this.#drain();
      // Stryker disable next-line ConditionalExpression,EqualityOperator: only the pause before the next attempt (the loop re-checks the queue)
      if (this.#queue.length > 0) await new Promise((r) => setTimeout(r, 100));
    }
    return this.#queue.length === 0;
  }

  latest(check: string): CheckStatus | undefined {
    return this.#latest.get(check);
  }

  async history(check: string, limit: number): Promise<RunResult[]> {
    // Results of this turn are still queued for the group commit: write them first.
    // (Nothing queued: the drain returns at once.) Degraded: read without waiting on a write.
    if (!this.#degraded && this.#opened) await this.#drain();
    return this.backend.history(check, limit);
  }

  retain(checks: ReadonlySet<string>): void {
    for (const id of this.#latest.keys()) if (!checks.has(id)) this.#latest.delete(id);
  }

  recordsVersion(): number {
    return this.#recordsVersion;
  }

  /** Whether a result of this check is still waiting to be written. */
  pendingWrite(check: string): boolean {
    return this.#queue.some((s) => s.check === check);
  }

  async addAttestation(a: Attestation): Promise<void> {
    const v = await this.#durable(() => this.backend.writeAttestation(a));
    this.#attestations.set(a.id, a);
    this.#emit({ kind: 'attestation', check: a.check });
    await this.#recordsWritten(v);
  }

  async revokeAttestation(id: string, by: string, at: number): Promise<Attestation | undefined> {
    const cur = this.#attestations.get(id);
    if (!cur) return undefined;
    if (cur.revokedAt !== undefined) return cur;
    const next = { ...cur, revokedAt: at, revokedBy: by };
    const v = await this.#durable(() => this.backend.writeAttestation(next));
    this.#attestations.set(id, next);
    this.#emit({ kind: 'attestation', check: next.check });
    await this.#recordsWritten(v);
    return next;
  }

  async addDeployment(d: Deployment): Promise<void> {
    const v = await this.#durable(() => this.backend.writeDeployment(d));
    this.#merge({ statuses: [], attestations: [], deployments: [d] });
    await this.#recordsWritten(v);
  }

  /**
   * Read-your-writes at a version: a shared backend gave the write version `v`; records other
   * replicas wrote below it may not be here yet, so read them before recordsVersion() may
   * claim `v`. A local backend has no other writers: the next version is this write's.
   */
  async #recordsWritten(v: number | void): Promise<void> {
    if (typeof v !== 'number') this.#recordsVersion++;
    else if (this.#recordsVersion < v) {
      // The write is durable and acknowledged either way; without the read, results computed
      // now carry the older version and cannot supersede the owner's (they are still right).
      // Stryker disable next-line ArrowFunction: the handler only logs; any handler swallows the error the same way
      await this.refresh().catch((err: unknown) => this.#opts.log?.warn({ err }, 'could not read the records after a write'));
    }
  }

  async #durable<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      this.#markDegraded(err);
      throw new StoreUnavailableError(`the ${this.kind} store is unavailable, nothing was saved: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  attestations(check?: string): Attestation[] {
    const all = [...this.#attestations.values()].filter((a) => check === undefined || a.check === check);
    return all.sort((a, b) => b.createdAt - a.createdAt);
  }

  deployments(limit = 100): Deployment[] {
    return this.#deployments.slice(0, limit);
  }

  health(): StoreHealth {
    const discarded = { ...this.#discarded };
    if (!this.#degraded) return { ok: true, message: `${this.kind} store`, errors: this.#errors, discarded };
    return {
      ok: false,
      message: `${this.kind} store degraded: ${this.#degraded}; ${this.#queue.length} result(s) queued in memory${this.#dropped ? `, ${this.#dropped} dropped` : ''}`,
      queued: this.#queue.length,
      errors: this.#errors,
      discarded,
    };
  }

  async close(): Promise<void> {
    await this.flush(2_000);
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    clearImmediate(this.#drainSoon);
    await this.backend.close();
  }
}
