// A throwaway PostgreSQL 15 for one test file: initdb into a private temp directory, started
// on 127.0.0.1 with a free port, scram password auth, pg_stat_statements preloaded, and
// optionally WAL archiving and TLS. Runs as the `postgres` system user when the tests run as
// root (initdb refuses root). Stopped and removed in t.teardown.
import { chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/store/postgres.js';
import { freePort, logTail, mustRun, runCommand, ownedDir, removeDir, serviceDir, serviceUser, spawnService, waitFor, type RunAs, type ServiceProcess, type Teardown } from './service.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresOptions {
  /** Superuser password (user `postgres`). */
  password?: string;
  /**
   * WAL archiving: `true` copies segments into `archiveDir`; a string is the archive_command
   * itself (e.g. `false` to make archiving fail).
   */
  archive?: boolean | string;
  /** Serve TLS with this certificate and key (PEM); `ssl=on`. */
  tls?: { cert: string; key: string };
  /** Extra postgresql.conf settings (`max_connections`, `archive_timeout`, ...). */
  settings?: Record<string, string | number | boolean>;
}

export interface PostgresServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: 'postgres';
  readonly password: string;
  /** Superuser URL to the `postgres` database. */
  readonly url: string;
  readonly dataDir: string;
  /** Where `archive: true` copies WAL segments. */
  readonly archiveDir: string;
  readonly logFile: string;
  /** Milliseconds the first start took: initdb, start, first accepted connection. */
  readonly startupMs: number;
  /** A URL with other credentials, database or port (defaults: the superuser's). */
  urlFor(o?: { user?: string; password?: string; database?: string; port?: number; params?: Record<string, string> }): string;
  /** Runs SQL as the superuser on a fresh connection and returns the rows. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
  /** A connected client (superuser unless a URL is given) that stays open until stop() or end(). */
  connect(url?: string): Promise<pg.Client>;
  /** Stops the server: `fast` (SIGINT) or `immediate` (SIGQUIT, a crash-like stop). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /**
   * Starts it again and waits until it answers: `accepting` (default) connections, or
   * `rejecting` them (a standby without hot_standby says "the database system is starting up").
   */
  start(until?: 'accepting' | 'rejecting'): Promise<void>;
  restart(): Promise<void>;
  running(): boolean;
  /** Appends settings to postgresql.auto.conf-like overrides, applied at the next start(). */
  configure(settings: Record<string, string | number | boolean>): void;
}

function confLine(k: string, v: string | number | boolean): string {
  return typeof v === 'string' ? `${k} = '${v.replace(/'/g, "''")}'` : `${k} = ${String(v)}`;
}

/**
 * One PostgreSQL for a whole test file, started by the first test that asks for it (each test
 * then makes a database of its own on it); stopped with the file's teardown `t`.
 */
export function postgresOnce(t: Teardown, opts: PostgresOptions = {}): () => Promise<PostgresServer> {
  let server: Promise<PostgresServer> | undefined;
  return () => (server ??= startPostgres(t, opts));
}

/** Starts a new PostgreSQL 15 server for the test `t`; it is stopped and deleted in t.teardown. */
export async function startPostgres(t: Teardown, opts: PostgresOptions = {}): Promise<PostgresServer> {
  const t0 = performance.now();
  const user: RunAs | undefined = serviceUser('postgres');
  const base = serviceDir('pg', user);
  t.teardown(() => removeDir(base));
  const dataDir = join(base, 'data');
  const archiveDir = ownedDir(join(base, 'archive'), user);
  const logFile = join(base, 'postgres.log');
  const password = opts.password ?? 'test-superuser-pw';
  const own = (f: string) => user && chownSync(f, user.uid, user.gid);

  const pwfile = join(base, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  own(pwfile);
  await mustRun(`${PG_BIN}/initdb`, ['-D', dataDir, '-U', 'postgres', `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], { ...(user && { user }), env: { LC_ALL: 'C' } });
  removeDir(pwfile);

  // Exactly the rules the probe meets in production: scram over TCP on loopback. The socket
  // (in this private directory) trusts local users, for debugging with psql -h <base>.
  writeFileSync(join(dataDir, 'pg_hba.conf'), ['local all all trust', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'));

  const port = await freePort();
  const settings: Record<string, string | number | boolean> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: base,
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.track': 'all',
    // A throwaway server: durability only costs time here.
    fsync: false,
    synchronous_commit: 'off',
    full_page_writes: false,
    shared_buffers: '32MB',
    max_wal_senders: 0,
    wal_level: 'replica',
    logging_collector: false,
    log_min_messages: 'warning',
  };
  if (opts.archive) {
    settings.archive_mode = 'on';
    settings.archive_command = typeof opts.archive === 'string' ? opts.archive : `cp %p ${archiveDir}/%f`;
  }
  if (opts.tls) {
    for (const [name, pem] of [['server.crt', opts.tls.cert], ['server.key', opts.tls.key]] as const) {
      writeFileSync(join(dataDir, name), pem, { mode: 0o600 });
      own(join(dataDir, name));
    }
    Object.assign(settings, { ssl: true, ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' });
  }
  Object.assign(settings, opts.settings);
  const overrides = join(dataDir, 'test-overrides.conf');
  const writeConf = () => {
    writeFileSync(overrides, Object.entries(settings).map(([k, v]) => confLine(k, v)).join('\n') + '\n');
    own(overrides);
  };
  writeConf();
  writeFileSync(join(dataDir, 'postgresql.conf'), "include 'test-overrides.conf'\n", { flag: 'a' });

  const urlFor: PostgresServer['urlFor'] = (o = {}) => {
    const u = new URL(`postgres://127.0.0.1:${o.port ?? port}/${encodeURIComponent(o.database ?? 'postgres')}`);
    u.username = encodeURIComponent(o.user ?? 'postgres');
    u.password = encodeURIComponent(o.password ?? password);
    for (const [k, v] of Object.entries(o.params ?? {})) u.searchParams.set(k, v);
    return u.toString();
  };
  const url = urlFor();

  const clients = new Set<pg.Client>();
  const connect = async (target = url) => {
    const c = new pg.Client({ connectionString: target, connectionTimeoutMillis: 5000 });
    // A stopped server terminates idle sessions: that is expected here, not a crash.
    c.on('error', () => {});
    await c.connect();
    clients.add(c);
    c.on('end', () => clients.delete(c));
    return c;
  };

  let proc: ServiceProcess | undefined;
  const start = async (until: 'accepting' | 'rejecting' = 'accepting') => {
    if (proc?.running()) throw new Error('postgres is already running');
    const p = spawnService(`${PG_BIN}/postgres`, ['-D', dataDir], { logFile, stopSignal: 'SIGINT', ...(user && { user }), env: { LC_ALL: 'C' } });
    proc = p;
    await waitFor(
      `postgres on port ${port}`,
      async () => {
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        c.on('error', () => {});
        try {
          await c.connect();
          await c.end();
          return until === 'accepting' ? true : undefined;
        } catch (err) {
          // 57P03 cannot_connect_now: up, but starting, stopping or a standby without hot_standby.
          if ((err as { code?: string }).code === '57P03' && until === 'rejecting') return true;
          return undefined;
        }
      },
      { timeoutMs: 30_000, everyMs: 25, abortIf: () => (p.running() ? undefined : `exited during start-up:\n${logTail(logFile)}`) },
    );
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    const p = proc;
    if (!p?.running()) return;
    if (mode === 'immediate') {
      const pid = p.servicePid();
      if (pid) process.kill(pid, 'SIGQUIT');
    }
    await p.stop();
  };

  t.teardown(async () => {
    await Promise.allSettled([...clients].map((c) => c.end()));
    await stop('immediate');
  });
  await start();

  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    url,
    dataDir,
    archiveDir,
    logFile,
    startupMs: performance.now() - t0,
    urlFor,
    async query<R extends Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<R[]> {
      const c = new pg.Client({ connectionString: database ? urlFor({ database }) : url, connectionTimeoutMillis: 5000 });
      c.on('error', () => {});
      await c.connect();
      try {
        return (await c.query<R>(sql, params)).rows;
      } finally {
        await c.end();
      }
    },
    connect,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    running: () => proc?.running() ?? false,
    configure(more) {
      Object.assign(settings, more);
      writeConf();
    },
  };
}

/** Runs pg_isready against the server (or any port) and returns its exit code: 0 accepting, 1 rejecting, 2 no response, 3 no attempt. */
export async function pgIsReady(port: number, opts: { user?: string; database?: string; timeoutS?: number } = {}): Promise<number> {
  const r = await runCommand(`${PG_BIN}/pg_isready`, ['-h', '127.0.0.1', '-p', String(port), '-U', opts.user ?? 'postgres', '-d', opts.database ?? 'postgres', '-t', String(opts.timeoutS ?? 3)]);
  return r.code;
}

/** A new database `name` on `pg` with the store's migrations applied (the lease tests' start): its URL. */
export async function migratedDatabase(pg: PostgresServer, name: string): Promise<string> {
  await pg.query(`CREATE DATABASE ${name}`);
  const url = pg.urlFor({ database: name });
  const c = await pg.connect(url);
  await migrate(c);
  await c.end();
  return url;
}
