// The embedded default store: one SQLite file through better-sqlite3, so `readiness serve`
// keeps attestations, deployments and the last state of every check across restarts with no
// server to run. WAL with synchronous=FULL for attestations and deployments: such a write
// returns only once it is on disk. Check results are written in batches without an fsync.
//
// The store knows its own identity: a random id kept in the database and in a marker file
// next to it (`readiness.sqlite.id`). A file that was emptied, replaced or reset is noticed
// at open instead of being silently treated as a new, empty store (every attestation gone).
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Backend, OpenOptions, Snapshot } from './cached.js';
import { pruneEvery, serialise, StoreIdentityError, type Attestation, type CheckStatus, type Deployment, type RunResult } from './types.js';

/** Each entry is one schema version; user_version records how many have been applied. */
const MIGRATIONS = [
  `CREATE TABLE check_latest (check_id TEXT PRIMARY KEY, status TEXT NOT NULL, finished_at INTEGER NOT NULL);
   CREATE TABLE check_history (id INTEGER PRIMARY KEY AUTOINCREMENT, check_id TEXT NOT NULL, result TEXT NOT NULL, finished_at INTEGER NOT NULL);
   CREATE INDEX check_history_check ON check_history (check_id, id DESC);
   CREATE TABLE attestations (id TEXT PRIMARY KEY, check_id TEXT NOT NULL, doc TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE INDEX attestations_check ON attestations (check_id, created_at DESC);
   CREATE TABLE deployments (id TEXT PRIMARY KEY, doc TEXT NOT NULL, at INTEGER NOT NULL);`,
  // The store's identity (store_id), compared with the marker file at every open.
  `CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
];

const WHAT_TO_DO = 'restore it (and its -wal file) from a backup, or start with --init-store to begin a new, empty store';

/** What one status write runs, prepared once at open. */
const WRITE_SQL = {
  latest:
    'INSERT INTO check_latest (check_id, status, finished_at) VALUES (?, ?, ?) ON CONFLICT (check_id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at',
  append: 'INSERT INTO check_history (check_id, result, finished_at) VALUES (?, ?, ?)',
  // Everything of this check older than its `limit` newest rows; both halves walk the index.
  prune: `DELETE FROM check_history WHERE check_id = @check AND id <= (
            SELECT id FROM check_history WHERE check_id = @check ORDER BY id DESC LIMIT 1 OFFSET @keep)`,
} as const;

type Statements = { [K in keyof typeof WRITE_SQL]: Database.Statement } & { history: Database.Statement };

export class SqliteBackend implements Backend {
  readonly kind = 'sqlite';
  #db: Database.Database | undefined;
  #stmts: Statements | undefined;
  #sync: 'FULL' | 'NORMAL' = 'FULL';
  /** Writes per check since its last prune. */
  readonly #sincePrune = new Map<string, number>();

  constructor(
    readonly file: string,
    readonly historyLimit = 500,
  ) {}

  get db(): Database.Database {
    if (!this.#db) throw new Error('sqlite store is not open');
    return this.#db;
  }

  /** The marker file that remembers which store belongs in `file`. */
  get markerFile(): string {
    return `${this.file}.id`;
  }

  /** The store's id (from store_meta), once open. */
  storeId: string | undefined;

  async open(opts: OpenOptions = {}): Promise<Snapshot> {
    const memory = this.file === ':memory:';
    if (!memory) {
      mkdirSync(dirname(this.file), { recursive: true });
      this.#checkFile(opts.initStore ?? false);
    }
    let db: Database.Database;
    try {
      db = new Database(this.file);
      db.pragma('journal_mode = WAL');
    } catch (err) {
      // Not a database (garbage, a truncated header) or unreadable (permissions, a directory).
      if (opts.initStore && !memory && isCorrupt(err)) {
        this.#moveAside();
        return this.open({ ...opts, initStore: false });
      }
      throw new StoreIdentityError(`the store file ${this.file} cannot be opened (${(err as Error).message}): ${WHAT_TO_DO}`);
    }
    try {
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      const id = this.#migrate(db, opts.initStore ?? false);
      if (!memory) this.#checkMarker(id, opts.initStore ?? false);
      this.storeId = id;
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
    this.#sync = 'FULL';
    this.#stmts = {
      latest: db.prepare(WRITE_SQL.latest),
      append: db.prepare(WRITE_SQL.append),
      prune: db.prepare(WRITE_SQL.prune),
      history: db.prepare('SELECT result FROM check_history WHERE check_id = ? ORDER BY id DESC LIMIT ?'),
    };
    const statuses = db.prepare('SELECT status FROM check_latest').all() as { status: string }[];
    const att = db.prepare('SELECT doc FROM attestations').all() as { doc: string }[];
    const dep = db.prepare('SELECT doc FROM deployments ORDER BY at DESC LIMIT 1000').all() as { doc: string }[];
    return {
      statuses: statuses.map((r) => JSON.parse(r.status) as CheckStatus),
      attestations: att.map((r) => JSON.parse(r.doc) as Attestation),
      deployments: dep.map((r) => JSON.parse(r.doc) as Deployment),
    };
  }

  /** Before opening: a file emptied (truncated to 0 bytes) or gone while its marker remains. */
  #checkFile(initStore: boolean): void {
    const marker = readMarker(this.markerFile);
    const size = fileSize(this.file);
    if (marker === undefined || initStore) {
      if (initStore && size === 0) this.#moveAside();
      return;
    }
    if (size === undefined) throw new StoreIdentityError(`the store file ${this.file} is missing, but ${this.markerFile} says store ${marker} lived there: ${WHAT_TO_DO}`);
    if (size === 0) throw new StoreIdentityError(`the store file ${this.file} is empty (0 bytes), but ${this.markerFile} says store ${marker} lived there: ${WHAT_TO_DO}`);
  }

  /**
   * Applies pending migrations and returns the store id, creating one only for a store that
   * has no marker yet (a new store, or one from before identities) or with --init-store.
   * In one IMMEDIATE transaction, so two processes opening a new file at once agree.
   */
  #migrate(db: Database.Database, initStore: boolean): string {
    return db
      .transaction(() => {
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version > MIGRATIONS.length) {
          throw new Error(`${this.file} has schema version ${version}, newer than this readiness-exporter knows (${MIGRATIONS.length}): upgrade it`);
        }
        for (let v = version; v < MIGRATIONS.length; v++) {
          db.exec(MIGRATIONS[v]!);
          db.pragma(`user_version = ${v + 1}`);
        }
        const row = db.prepare("SELECT value FROM store_meta WHERE key = 'store_id'").get() as { value: string } | undefined;
        if (row) return row.value;
        const marker = this.file === ':memory:' ? undefined : readMarker(this.markerFile);
        if (marker !== undefined && !initStore) {
          const what = version === 0 ? 'a new, empty database' : 'a database without a store id';
          throw new StoreIdentityError(`the store file ${this.file} is ${what}, but ${this.markerFile} says store ${marker} lived there (the file was replaced or reset): ${WHAT_TO_DO}`);
        }
        const id = randomUUID();
        const ins = db.prepare('INSERT INTO store_meta (key, value) VALUES (?, ?)');
        ins.run('store_id', id);
        ins.run('created_at', new Date().toISOString());
        return id;
      })
      .immediate();
  }

  /** The marker must name this database's id; a missing marker is (re)written. */
  #checkMarker(id: string, initStore: boolean): void {
    const marker = readMarker(this.markerFile);
    if (marker === id) return;
    if (marker !== undefined && !initStore) {
      throw new StoreIdentityError(
        `the store file ${this.file} holds store ${id}, but ${this.markerFile} says store ${marker} lived there (the file was swapped): restore the right file, or start with --init-store to adopt this one`,
      );
    }
    writeMarker(this.markerFile, id, marker === undefined);
  }

  /** --init-store over an empty or unreadable file: keep it aside, never delete data. */
  #moveAside(): void {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(this.file + suffix)) renameSync(this.file + suffix, `${this.file}.broken-${stamp}${suffix}`);
    }
  }

  get #s(): Statements {
    if (!this.#stmts) throw new Error('sqlite store is not open');
    return this.#stmts;
  }

  async writeStatus(s: CheckStatus): Promise<void> {
    return this.writeStatuses([s]);
  }

  /**
   * One transaction for a batch of check results, committed without an fsync
   * (synchronous=NORMAL): in WAL mode that survives a crash of the process (kill -9) and
   * can lose only the latest results on a power failure, which the next runs replace. An
   * fsync per result held the event loop for most of its time at 1,000 results/s.
   */
  async writeStatuses(batch: readonly CheckStatus[]): Promise<void> {
    const st = this.#s;
    this.#synchronous('NORMAL');
    this.db.transaction(() => {
      for (const s of batch) {
        const [status, last] = serialise(s);
        st.latest.run(s.check, status, s.last.finishedAt);
        st.append.run(s.check, last, s.last.finishedAt);
        this.#maybePrune(s.check);
      }
    })();
  }

  /** Attestations and deployments commit with an fsync (FULL), which also makes earlier results durable. */
  #synchronous(mode: 'FULL' | 'NORMAL'): void {
    if (this.#sync === mode) return;
    this.db.pragma(`synchronous = ${mode}`);
    this.#sync = mode;
  }

  /** Prunes one check's history every pruneEvery(limit) of its writes; returns the rows deleted. */
  #maybePrune(check: string): number {
    // A check not seen since open is pruned at its first write: the bound holds across restarts.
    const n = (this.#sincePrune.get(check) ?? Infinity) + 1;
    if (n < pruneEvery(this.historyLimit)) {
      this.#sincePrune.set(check, n);
      return 0;
    }
    this.#sincePrune.set(check, 0);
    return this.#s.prune.run({ check, keep: this.historyLimit }).changes;
  }

  async history(check: string, limit: number): Promise<RunResult[]> {
    const rows = this.#s.history.all(check, Math.min(limit, this.historyLimit)) as { result: string }[];
    return rows.map((r) => JSON.parse(r.result) as RunResult);
  }

  async writeAttestation(a: Attestation): Promise<void> {
    this.#synchronous('FULL');
    this.db.prepare('INSERT INTO attestations (id, check_id, doc, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc').run(a.id, a.check, JSON.stringify(a), a.createdAt);
  }

  async writeDeployment(d: Deployment): Promise<void> {
    this.#synchronous('FULL');
    this.db.prepare('INSERT INTO deployments (id, doc, at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, at = excluded.at').run(d.id, JSON.stringify(d), d.at);
  }

  async close(): Promise<void> {
    this.#db?.close();
    this.#db = undefined;
    this.#stmts = undefined;
  }
}

function fileSize(file: string): number | undefined {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
}

function readMarker(file: string): string | undefined {
  try {
    const v = readFileSync(file, 'utf8').trim();
    return v === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

/** Writes the marker durably; `exclusive` loses gracefully to a process that wrote it first. */
function writeMarker(file: string, id: string, exclusive: boolean): void {
  let fd: number;
  try {
    fd = openSync(file, exclusive ? 'wx' : 'w', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && readMarker(file) === id) return;
    throw err;
  }
  try {
    writeSync(fd, `${id}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isCorrupt(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT';
}
