// postgres: every database line of the checklist, measured over one connection URL.
// `measure` picks what is measured (ready, connection_headroom, connection_usage, indexes,
// slow_queries, migrations, wal_archive_age, query). One small pool per distinct connection
// is shared by every check of the kind; each measurement runs in a READ ONLY transaction
// with a statement_timeout, so a probe can neither change data nor hang on a slow database.
// `ready` alone opens a fresh connection each run: like pg_isready, it answers "would a new
// client get in?", which a pooled connection cannot.
//
// Connections held per connection URL are bounded: at most POOL_MAX pooled (measurements
// queue for them) plus one for `ready` (its runs take turns), so a checklist of many checks
// on one database never exhausts a small max_connections. Every connection carries
// application_name readiness-exporter (the store's and the HA leases' too), and the counts
// of connection_usage leave every one of them out: they are the exporter's, not the app's.
import { readFileSync } from 'node:fs';
import { isIP, Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Type, type Static } from '@sinclair/typebox';
import type pg from 'pg';
import { reasonFromError, type Reason } from '../reasons.js';
import { gateWrites } from './lease.js';
import { assertLease, defineProbe, LeaseLostError, ProbeError, type Observation, type ProbeContext } from './types.js';
import { lazy } from './lazy.js';
import { scrubSecrets, untilAborted } from './shared.js';

const loadPg = lazy(async () => (await import('pg')).default);

export const MEASURES = ['ready', 'connection_headroom', 'connection_usage', 'indexes', 'slow_queries', 'migrations', 'wal_archive_age', 'query'] as const;
export type Measure = (typeof MEASURES)[number];

const SSLMODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSLMODES)[number];

const CHECK_ID = '^[a-z0-9][a-z0-9-]{0,62}$';
const QUALIFIED = '^[A-Za-z_][A-Za-z0-9_$]*\\.[A-Za-z_][A-Za-z0-9_$]*$';
const TABLE = '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$';

// No `default` keywords on measure-specific params: the loader applies defaults, and a default
// would make every check carry params that validate() rejects for other measures. Defaults are
// in DEFAULTS below and in the descriptions.
const params = Type.Object(
  {
    measure: Type.Unsafe<Measure>({ type: 'string', enum: [...MEASURES], description: `What to measure: ${MEASURES.join(' | ')}.` }),
    url: Type.String({
      minLength: 1,
      description: 'Connection URL (postgres://user:password@host:5432/db). Take it from the environment: url: "${DATABASE_URL}". Never shown.',
    }),
    sslmode: Type.Optional(
      Type.Unsafe<SslMode>({
        type: 'string',
        enum: [...SSLMODES],
        description: "TLS: disable | require (encrypt, don't verify) | verify-ca | verify-full (default: the URL's sslmode, else disable).",
      }),
    ),
    sslrootcert: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of CA certificates for verify-ca/verify-full (default: the system CAs).' })),
    sslcert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate file, for certificate authentication.' })),
    sslkey: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file of sslcert.' })),
    connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Give up connecting after this many ms (default 5000; the check timeout bounds it too).' })),
    statementTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: "The server cancels a measurement's SQL after this many ms (default: the check timeout)." })),
    replicas: Type.Optional(
      Type.Unsafe<number | string>({
        type: ['integer', 'string'],
        description: "connection_headroom/connection_usage: application replicas, a number or the id of a check whose value is it (e.g. the HPA's maxReplicas).",
      }),
    ),
    poolSize: Type.Optional(Type.Integer({ minimum: 1, description: 'connection_headroom/connection_usage: connections per replica (max_open_conns).' })),
    reserve: Type.Optional(Type.Integer({ minimum: 0, description: 'connection_headroom: spare connections required on top (default 20).' })),
    role: Type.Optional(Type.String({ minLength: 1, description: "connection_usage: the application's role; pool_* fields count its sessions only (default: every client session)." })),
    indexes: Type.Optional(
      Type.Array(Type.String({ pattern: QUALIFIED, 'x-hint': 'a schema-qualified index name, e.g. public.idx_emissions_org_id' }), {
        minItems: 1,
        description: 'indexes: schema-qualified names of the indexes that must exist and be valid.',
      }),
    ),
    foreignKeys: Type.Optional(Type.Boolean({ description: 'indexes: also report foreign keys with no index on their columns (default false).' })),
    top: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'slow_queries: how many statements, by total execution time, are considered (default 20).' })),
    minCalls: Type.Optional(Type.Integer({ minimum: 1, description: 'slow_queries: ignore statements called fewer times (default 1).' })),
    table: Type.Optional(Type.String({ pattern: TABLE, 'x-hint': 'a table name, optionally schema-qualified, e.g. public.schema_migrations', description: 'migrations: golang-migrate table (default schema_migrations).' })),
    compareUrl: Type.Optional(Type.String({ minLength: 1, description: 'migrations: URL of a second database (production) whose version this one must reach. Never shown.' })),
    minVersion: Type.Optional(Type.Integer({ minimum: 0, description: 'migrations: the version the release needs (e.g. "${RELEASE_MIGRATION_VERSION}").' })),
    sql: Type.Optional(Type.String({ minLength: 1, description: 'query: one read-only SQL statement returning one row (or nothing: no-data).' })),
    args: Type.Optional(Type.Array(Type.String(), { description: 'query: values for $1, $2, ... in sql.' })),
  },
  { additionalProperties: false },
);

export type PostgresParams = Static<typeof params>;
type ParamName = keyof PostgresParams;

const CONNECTION: readonly ParamName[] = ['measure', 'url', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'connectTimeoutMs', 'statementTimeoutMs'];

/** Which params each measure needs and which it accepts besides the connection ones. */
const MEASURE_PARAMS: Record<Measure, { required: readonly ParamName[]; optional: readonly ParamName[] }> = {
  ready: { required: [], optional: [] },
  connection_headroom: { required: ['replicas', 'poolSize'], optional: ['reserve'] },
  connection_usage: { required: [], optional: ['replicas', 'poolSize', 'role'] },
  indexes: { required: [], optional: ['indexes', 'foreignKeys'] },
  slow_queries: { required: [], optional: ['top', 'minCalls'] },
  migrations: { required: [], optional: ['table', 'compareUrl', 'minVersion'] },
  wal_archive_age: { required: [], optional: [] },
  query: { required: ['sql'], optional: ['args'] },
};

const DEFAULTS = { connectTimeoutMs: 5000, reserve: 20, top: 20, minCalls: 1, table: 'schema_migrations' } as const;

/** The application_name of every connection the exporter opens (the store's and, with a suffix, the HA leases'). */
export const APPLICATION_NAME = 'readiness-exporter';

/** Pooled connections per connection URL; `ready` holds at most one more. */
export const POOL_MAX = 2;

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/** A URL split into what node-postgres gets: the URL without TLS params, and a TLS config. */
interface Connection {
  key: string;
  config: pg.ClientConfig;
  /** user@host:port/db, for messages (never the password). */
  label: string;
  password: string;
}

const SSL_URL_PARAMS = ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslnegotiation'];

function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ProbeError('error', 'the connection URL is not a valid URL (expected postgres://user:password@host:5432/database)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new ProbeError('error', `the connection URL has scheme ${u.protocol} (expected postgres: or postgresql:)`);
  }
  return u;
}

/** libpq's sslmode semantics, which node-postgres's own URL parsing does not follow. */
function tlsOptions(mode: SslMode, p: PostgresParams, host: string): false | ConnectionOptions {
  if (mode === 'disable') return false;
  const read = (what: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new ProbeError('tls', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  const opts: ConnectionOptions = {};
  const ca = read('sslrootcert', p.sslrootcert);
  const cert = read('sslcert', p.sslcert);
  const key = read('sslkey', p.sslkey);
  if (ca !== undefined) opts.ca = ca;
  if (cert !== undefined) opts.cert = cert;
  if (key !== undefined) opts.key = key;
  if (mode === 'require') {
    opts.rejectUnauthorized = false;
  } else {
    opts.rejectUnauthorized = true;
    // verify-ca: the chain must verify, the name need not match.
    if (mode === 'verify-ca') opts.checkServerIdentity = () => undefined;
    else if (host && !isIP(host)) opts.servername = host;
  }
  return opts;
}

function connection(url: string, p: PostgresParams): Connection {
  const u = parseUrl(url);
  const fromUrl = u.searchParams.get('sslmode') ?? (u.searchParams.get('ssl') === 'true' ? 'require' : undefined);
  const mode = (p.sslmode ?? fromUrl ?? 'disable') as SslMode;
  if (!(SSLMODES as readonly string[]).includes(mode)) {
    throw new ProbeError('error', `sslmode ${mode} in the connection URL is not supported: use disable, require, verify-ca or verify-full`);
  }
  const files = {
    sslrootcert: p.sslrootcert ?? u.searchParams.get('sslrootcert') ?? undefined,
    sslcert: p.sslcert ?? u.searchParams.get('sslcert') ?? undefined,
    sslkey: p.sslkey ?? u.searchParams.get('sslkey') ?? undefined,
  };
  for (const k of SSL_URL_PARAMS) u.searchParams.delete(k);
  const host = decodeURIComponent(u.hostname.replace(/^\[|\]$/g, ''));
  const ssl = tlsOptions(mode, { ...p, ...files }, host);
  const connectTimeoutMs = p.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const user = decodeURIComponent(u.username) || 'postgres';
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || user;
  return {
    key: JSON.stringify([u.toString(), mode, files, connectTimeoutMs]),
    config: {
      connectionString: u.toString(),
      ssl,
      connectionTimeoutMillis: connectTimeoutMs,
      application_name: APPLICATION_NAME,
      keepAlive: true,
    },
    label: `${user}@${u.host}/${database}`,
    password: decodeURIComponent(u.password),
  };
}

const pools = new Map<string, pg.Pool>();

async function poolFor(conn: Connection): Promise<pg.Pool> {
  let pool = pools.get(conn.key);
  if (!pool) {
    const { Pool } = await loadPg();
    // Another run may have made it while the client loaded.
    pool = pools.get(conn.key);
    if (pool) return pool;
    pool = new Pool({ ...conn.config, max: POOL_MAX, idleTimeoutMillis: 10_000, allowExitOnIdle: true });
    // An idle client whose server went away (restart, failover) errors here; the pool drops
    // it, and the next run reports the outage. Without a listener it would crash the service.
    pool.on('error', () => {});
    // Same for a checked-out client whose connection drops between two queries.
    pool.on('connect', (client) => client.on('error', () => {}));
    pools.set(conn.key, pool);
  }
  return pool;
}

/** Milliseconds the server may spend on one statement: below the check timeout, so it gives up first. */
function statementTimeout(p: PostgresParams, ctx: ProbeContext): number {
  return Math.max(1, Math.min(p.statementTimeoutMs ?? ctx.timeoutMs, ctx.timeoutMs));
}

type Tx = (sql: string | pg.QueryConfig, values?: unknown[]) => Promise<pg.QueryResult>;

/**
 * Runs `fn` on a pooled connection inside BEGIN READ ONLY with a local statement_timeout,
 * then rolls back. On abort or error the connection is destroyed rather than reused.
 */
async function readOnly<T>(conn: Connection, p: PostgresParams, ctx: ProbeContext, fn: (q: Tx, client: pg.PoolClient) => Promise<T>): Promise<T> {
  const pending = (await poolFor(conn)).connect();
  let client: pg.PoolClient;
  try {
    client = await untilAborted(pending, ctx.signal, () => `connecting to ${conn.label} did not finish before the check timeout`);
  } catch (err) {
    // Whatever arrives after we gave up goes straight back.
    pending.then((c) => c.release(), () => {});
    throw err;
  }
  let ok = false;
  try {
    // HA: each statement asks the lease question before it is sent (lease.ts): the pooled
    // connection may have taken a while to open, or the process was stopped in between.
    const q: Tx = async (sql, values) => {
      assertLease(ctx.stillOwner, 'query');
      return client.query(sql as string, values);
    };
    const result = await untilAborted(
      (async () => {
        // set_config takes a snapshot, so the statement after it cannot SET TRANSACTION READ WRITE.
        await q('BEGIN READ ONLY');
        await q("SELECT set_config('statement_timeout', $1, true)", [String(statementTimeout(p, ctx))]);
        const r = await fn(q, client);
        await client.query('ROLLBACK');
        return r;
      })(),
      ctx.signal,
      () => `${p.measure} on ${conn.label} did not finish before the check timeout`,
    );
    ok = true;
    return result;
  } finally {
    client.release(ok ? undefined : true);
  }
}

// ---------------------------------------------------------------------------------------------
// Errors: what the server or the network said, as a reason from the closed list
// ---------------------------------------------------------------------------------------------

/** What pg_isready would answer: accepting, rejecting (starting up / shutting down), or no_response. */
type ServerStatus = 'accepting' | 'rejecting' | 'no_response';

interface Classified {
  reason: Reason;
  message: string;
  status: ServerStatus;
}

const SQLSTATE_REASON: Record<string, [Reason, ServerStatus]> = {
  '28P01': ['auth', 'accepting'], // invalid_password
  '28000': ['auth', 'accepting'], // invalid_authorization_specification (no pg_hba.conf entry)
  '42501': ['auth', 'accepting'], // insufficient_privilege
  '57P03': ['refused', 'rejecting'], // cannot_connect_now: starting up, shutting down, recovery
  '53300': ['refused', 'accepting'], // too_many_connections
  '57P01': ['refused', 'no_response'], // admin_shutdown: the server was stopped under us
  '57P02': ['refused', 'no_response'], // crash_shutdown
  '57P04': ['refused', 'no_response'], // database_dropped
  '57014': ['timeout', 'accepting'], // query_canceled: statement_timeout
  '08P01': ['protocol', 'accepting'], // protocol_violation
};

function classify(err: unknown, conn: Connection, timeoutMs: number): Classified {
  const e = err as { code?: string; message?: string; severity?: string };
  const redact = (s: string) => scrubSecrets(s, [conn.password], 3);
  const text = redact(String(e?.message ?? err));
  if (err instanceof ProbeError) return { reason: err.reason, message: redact(err.message), status: err.reason === 'timeout' ? 'no_response' : 'accepting' };
  const code = e?.code ?? '';
  if (typeof e?.severity === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    // The server answered with an error: it is up.
    const [reason, status] = SQLSTATE_REASON[code] ?? ['error', 'accepting'];
    const hint = code === '57014' ? ` (statement_timeout ${timeoutMs} ms)` : '';
    return { reason, status, message: `${conn.label}: ${text}${hint} [SQLSTATE ${code}]` };
  }
  if (/timeout|timed out/i.test(text)) return { reason: 'timeout', status: 'no_response', message: `${conn.label}: no answer within the connect timeout (${text})` };
  if (/does not support SSL|SSL|TLS|certificate/i.test(text) || /CERT|SSL|TLS/.test(code)) return { reason: 'tls', status: 'accepting', message: `${conn.label}: TLS failed: ${text}` };
  if (/Connection terminated|ECONNRESET|EPIPE/i.test(text + code)) return { reason: 'refused', status: 'no_response', message: `${conn.label}: the server closed the connection (${text})` };
  const reason = reasonFromError(err);
  return { reason, status: reason === 'dns' || reason === 'refused' || reason === 'timeout' ? 'no_response' : 'accepting', message: `${conn.label}: ${text}${code && !text.includes(code) ? ` (${code})` : ''}` };
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

type Measurement = (p: PostgresParams, ctx: ProbeContext, conn: Connection) => Promise<Observation>;

const num = (v: unknown): number => (v === null || v === undefined ? NaN : Number(v));
const pct = (part: number, whole: number): number => (whole > 0 ? Math.round((part / whole) * 10_000) / 100 : 0);

/** The `ready` run holding its URL's one fresh connection, per URL: the next one waits its turn. */
const readyTurns = new Map<string, Promise<void>>();

/** Runs `fn` when no other `ready` run of the same URL is connected; gives up at the check's abort. */
async function readyTurn<T>(conn: Connection, ctx: ProbeContext, fn: () => Promise<T>): Promise<T> {
  const previous = readyTurns.get(conn.key) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  const chain = previous.then(() => mine);
  readyTurns.set(conn.key, chain);
  try {
    await untilAborted(previous, ctx.signal, () => `waiting for another ready check on ${conn.label} did not finish before the check timeout`);
    return await fn();
  } finally {
    done();
    if (readyTurns.get(conn.key) === chain) readyTurns.delete(conn.key);
  }
}

/** connect + SELECT on a new connection: what pg_isready answers, plus whether we may log in. */
const ready: Measurement = (p, ctx, conn) => readyTurn(conn, ctx, () => readyNow(p, ctx, conn));

const readyNow: Measurement = async (p, ctx, conn) => {
  const t0 = performance.now();
  const { Client } = await loadPg();
  // HA: its own connection is the probe (what pg_isready does), so its socket's writes ask the
  // lease question, the startup message first (lease.ts).
  const { stillOwner } = ctx;
  const client = new Client(stillOwner ? { ...conn.config, stream: () => gateWrites(new Socket(), stillOwner) } : conn.config);
  client.on('error', () => {});
  const work = (async () => {
    await client.connect();
    await client.query("SELECT set_config('statement_timeout', $1, false)", [String(statementTimeout(p, ctx))]);
    return client.query<{ version: string; in_recovery: boolean }>("SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS in_recovery");
  })();
  try {
    const { rows } = await untilAborted(work, ctx.signal, () => `connecting to ${conn.label} did not finish before the check timeout`);
    const latency = performance.now() - t0;
    const row = rows[0]!;
    return {
      value: latency,
      fields: { status: 'accepting', latency_ms: latency, server_version: row.version, in_recovery: row.in_recovery },
      message: `${conn.label} accepts connections (PostgreSQL ${row.version}${row.in_recovery ? ', in recovery' : ''}, ${latency.toFixed(1)} ms)`,
    };
  } finally {
    work.catch(() => {});
    // end() on a connecting client destroys its socket: nothing outlives the run. Awaited
    // before the next `ready` run of the URL may connect (readyTurn): the server frees the
    // session's slot before it closes the socket, so the connections held stay within the
    // bound even for an instant; on a database with few slots left, a next run that connected
    // while this session was still exiting was refused one (SQLSTATE 53300). A server that
    // never answers the goodbye holds the turn for at most END_WAIT_MS.
    await endWithin(client, END_WAIT_MS);
  }
};

/** How long a `ready` run waits for its session to end before the next may connect. */
const END_WAIT_MS = 2000;

/** client.end(), waited for at most `ms` (untilAborted's timer; either outcome is fine). */
const endWithin = (client: pg.Client, ms: number): Promise<unknown> =>
  untilAborted(client.end(), AbortSignal.timeout(ms), () => 'the session did not end in time').catch(() => {});

/** Superusers and members of pg_read_all_stats (pg_monitor includes it) see every session and statement. */
async function canReadAllStats(q: Tx): Promise<boolean> {
  const { rows } = await q(
    `SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS ok FROM pg_roles WHERE rolname = current_user`,
  );
  return rows[0]?.ok === true;
}

function lacksReadAllStats(conn: Connection, what: string): Observation {
  return { fields: {}, error: { reason: 'auth', message: `${conn.label}: the role lacks pg_read_all_stats, so ${what}; grant it pg_read_all_stats (or pg_monitor)` } };
}

async function resolveReplicas(p: PostgresParams, ctx: ProbeContext): Promise<number | Observation> {
  const r = p.replicas!;
  if (typeof r === 'number' || /^\d+$/.test(r)) return Number(r);
  const v = ctx.valueOf(r);
  if (v === undefined || !Number.isFinite(v)) {
    return { fields: {}, error: { reason: 'dependency', message: `replicas come from check ${r}, which has no value yet` } };
  }
  return v;
}

const connectionHeadroom: Measurement = async (p, ctx, conn) => {
  const replicas = await resolveReplicas(p, ctx);
  if (typeof replicas !== 'number') return replicas;
  const poolSize = p.poolSize!;
  const reserve = p.reserve ?? DEFAULTS.reserve;
  const { rows } = await readOnly(conn, p, ctx, (q) => q("SELECT current_setting('max_connections')::int AS max_connections"));
  const max = num(rows[0]!.max_connections);
  const required = replicas * poolSize + reserve;
  const headroom = max - required;
  return {
    value: headroom,
    fields: { max_connections: max, replicas, pool_size: poolSize, reserve, required_connections: required, headroom },
    message: `max_connections ${max} ${headroom >= 0 ? '>=' : '<'} ${replicas} replicas x ${poolSize} + ${reserve} = ${required} (headroom ${headroom})`,
  };
};

const connectionUsage: Measurement = async (p, ctx, conn) => {
  let replicas: number | undefined;
  if (p.replicas !== undefined) {
    const r = await resolveReplicas(p, ctx);
    if (typeof r !== 'number') return r;
    replicas = r;
  }
  const out = await readOnly(conn, p, ctx, async (q) => {
    // Without pg_read_all_stats, other roles' sessions (and their state) are hidden: counting
    // only what is visible would be a silent pass.
    if (!(await canReadAllStats(q))) return undefined;
    const { rows } = await q(
      `SELECT current_setting('max_connections')::int AS max_connections,
              count(*) AS connections,
              count(*) FILTER (WHERE state = 'active') AS active,
              count(*) FILTER (WHERE state = 'idle') AS idle,
              count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction,
              coalesce(max(extract(epoch FROM clock_timestamp() - state_change)) FILTER (WHERE state LIKE 'idle in transaction%'), 0)::float8 AS idle_in_transaction_max_seconds,
              count(*) FILTER (WHERE ($1::text IS NULL OR usename = $1) AND state IS DISTINCT FROM 'idle') AS pool_in_use,
              (SELECT count(*) FROM pg_stat_activity
                WHERE backend_type = 'client backend' AND (application_name = $2 OR application_name LIKE $2 || ' %')) AS exporter_connections
         FROM pg_stat_activity
        WHERE backend_type = 'client backend'
          -- Every connection of the exporter (this one, its pool siblings, ready runs, the
          -- store, other replicas) is left out: they are not the app's.
          AND NOT (application_name = $2 OR application_name LIKE $2 || ' %')
          AND pid <> pg_backend_pid()`,
      [p.role ?? null, APPLICATION_NAME],
    );
    return rows[0]!;
  });
  if (!out) return lacksReadAllStats(conn, 'sessions of other roles and their state are hidden');
  const r = out;
  const max = num(r.max_connections);
  const connections = num(r.connections);
  const fields: Record<string, unknown> = {
    connections,
    max_connections: max,
    usage_percent: pct(connections, max),
    active: num(r.active),
    idle: num(r.idle),
    idle_in_transaction: num(r.idle_in_transaction),
    idle_in_transaction_max_seconds: num(r.idle_in_transaction_max_seconds),
    exporter_connections: num(r.exporter_connections),
  };
  let pool = '';
  if (replicas !== undefined && p.poolSize !== undefined) {
    const capacity = replicas * p.poolSize;
    Object.assign(fields, { pool_in_use: num(r.pool_in_use), pool_capacity: capacity, pool_usage_percent: pct(num(r.pool_in_use), capacity) });
    pool = `; pool ${String(fields.pool_in_use)} of ${capacity} in use (${String(fields.pool_usage_percent)}%)`;
  }
  const iit = fields.idle_in_transaction as number;
  return {
    value: fields.usage_percent as number,
    fields,
    message:
      `${connections} of ${max} connections (${String(fields.usage_percent)}%)` +
      (iit > 0 ? `, ${iit} idle in transaction (oldest ${Math.round(fields.idle_in_transaction_max_seconds as number)}s)` : ', none idle in transaction') +
      pool,
  };
};

const indexes: Measurement = async (p, ctx, conn) => {
  const wanted = p.indexes ?? [];
  const result = await readOnly(conn, p, ctx, async (q) => {
    const found = await q(
      `SELECT x.name, c.relkind::text AS relkind, i.indisvalid AS valid
         FROM unnest($1::text[]) WITH ORDINALITY AS x(name, n)
         LEFT JOIN pg_class c ON c.oid = to_regclass(x.name)
         LEFT JOIN pg_index i ON i.indexrelid = c.oid
        ORDER BY x.n`,
      [wanted],
    );
    // A foreign key is covered when some valid, non-partial index starts with its columns.
    const fks = p.foreignKeys
      ? await q(
          `SELECT format('%s.%s (%s)', c.conrelid::regclass, c.conname,
                         (SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)) AS fk
             FROM pg_constraint c
             JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
              AND NOT EXISTS (
                SELECT 1 FROM pg_index i
                 WHERE i.indrelid = c.conrelid AND i.indisvalid AND i.indpred IS NULL
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
            ORDER BY 1`,
        )
      : undefined;
    return { found: found.rows, fks: fks?.rows.map((r) => String(r.fk)) };
  });
  const missing: string[] = [];
  const invalid: string[] = [];
  for (const r of result.found) {
    if (r.relkind === null) missing.push(String(r.name));
    else if (r.relkind !== 'i' && r.relkind !== 'I') missing.push(`${String(r.name)} (not an index)`);
    else if (r.valid === false) invalid.push(String(r.name));
  }
  const absent = [...missing, ...invalid.map((n) => `${n} (invalid)`)];
  const fields: Record<string, unknown> = {
    expected: wanted.length,
    present: wanted.length - absent.length,
    missing: absent.length,
    invalid: invalid.length,
    missing_indexes: absent,
  };
  if (result.fks) Object.assign(fields, { unindexed_foreign_keys: result.fks.length, unindexed_foreign_key_names: result.fks });
  const parts: string[] = [];
  if (wanted.length > 0) parts.push(absent.length === 0 ? `all ${wanted.length} indexes exist` : `${absent.length} of ${wanted.length} indexes missing: ${absent.join(', ')}`);
  if (result.fks) parts.push(result.fks.length === 0 ? 'every foreign key is indexed' : `${result.fks.length} foreign key(s) without an index: ${result.fks.slice(0, 5).join(', ')}${result.fks.length > 5 ? ', ...' : ''}`);
  return { value: absent.length + (result.fks?.length ?? 0), fields, message: parts.join('; ') };
};

const slowQueries: Measurement = async (p, ctx, conn) => {
  const top = p.top ?? DEFAULTS.top;
  const minCalls = p.minCalls ?? DEFAULTS.minCalls;
  type Out = Observation | { rows: Record<string, unknown>[]; statements: number };
  const out = await readOnly<Out>(conn, p, ctx, async (q, client) => {
    const ext = await q(
      `SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_stat_statements'`,
    );
    const e = ext.rows[0];
    if (!e) {
      return {
        fields: {},
        error: {
          reason: 'error',
          message: `${conn.label}: pg_stat_statements is not installed in this database: add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements`,
        },
      };
    }
    if (!(await canReadAllStats(q))) return lacksReadAllStats(conn, 'statements of other roles are hidden');
    // The extension's own view; toplevel excludes statements nested in functions (counted in their caller).
    const view = `${client.escapeIdentifier(String(e.schema))}.pg_stat_statements`;
    const stats = await q(
      `WITH s AS (
         SELECT queryid, calls, mean_exec_time, total_exec_time
           FROM ${view}
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND toplevel AND calls >= $2 AND queryid IS NOT NULL
            AND query NOT ILIKE '%pg_stat_statements%'
          ORDER BY total_exec_time DESC
          LIMIT $1)
       SELECT queryid::text AS queryid, calls, mean_exec_time, (SELECT count(*) FROM s) AS statements
         FROM s ORDER BY mean_exec_time DESC LIMIT 1`,
      [top, minCalls],
    );
    return { rows: stats.rows, statements: num(stats.rows[0]?.statements ?? 0) };
  });
  if (!('rows' in out)) return out;
  const worst = out.rows[0];
  if (!worst) return { fields: { statements: 0 }, noData: true, message: `pg_stat_statements has no statement with at least ${minCalls} call(s) in this database yet` };
  const mean = num(worst.mean_exec_time);
  return {
    value: mean,
    fields: { max_mean_ms: mean, worst_queryid: String(worst.queryid), worst_calls: num(worst.calls), statements: out.statements },
    message: `slowest of the top ${out.statements} statements: queryid ${String(worst.queryid)}, mean ${mean.toFixed(1)} ms over ${num(worst.calls)} calls`,
  };
};

interface MigrationState {
  version: number;
  dirty: boolean;
}

async function migrationState(conn: Connection, p: PostgresParams, ctx: ProbeContext): Promise<MigrationState | undefined> {
  const table = p.table ?? DEFAULTS.table;
  return readOnly(conn, p, ctx, async (q, client) => {
    const name = table.split('.').map((s) => client.escapeIdentifier(s)).join('.');
    // golang-migrate keeps one row; the highest version wins if a tool left more.
    const { rows } = await q(`SELECT version::text AS version, dirty FROM ${name} ORDER BY version DESC LIMIT 1`);
    const r = rows[0];
    return r ? { version: Number(r.version), dirty: r.dirty === true } : undefined;
  });
}

const migrations: Measurement = async (p, ctx, conn) => {
  const table = p.table ?? DEFAULTS.table;
  const other = p.compareUrl !== undefined ? connection(p.compareUrl, p) : undefined;
  const [mine, compared] = await Promise.all([
    migrationState(conn, p, ctx),
    other ? migrationState(other, p, ctx).then((state) => ({ state }), (err: unknown) => ({ err })) : undefined,
  ]);
  if (other && compared && 'err' in compared) {
    const c = classify(compared.err, other, statementTimeout(p, ctx));
    return { fields: {}, error: { reason: c.reason, message: `compared database: ${c.message}` } };
  }
  const theirs = compared && 'state' in compared ? compared.state : undefined;
  if (!mine) return { fields: {}, noData: true, message: `${table} is empty: no migration has run on ${conn.label}` };
  const fields: Record<string, unknown> = { version: mine.version, dirty: mine.dirty };
  let behind = false;
  const notes: string[] = [];
  if (p.minVersion !== undefined) {
    fields.min_version = p.minVersion;
    if (mine.version < p.minVersion) {
      behind = true;
      notes.push(`below the release's ${p.minVersion}`);
    }
  }
  if (other) {
    if (!theirs) return { fields, noData: true, message: `${table} is empty on the compared database ${other.label}` };
    Object.assign(fields, { compare_version: theirs.version, compare_dirty: theirs.dirty });
    if (mine.version < theirs.version) {
      behind = true;
      notes.push(`behind ${other.label} at ${theirs.version}`);
    } else notes.push(`${other.label} is at ${theirs.version}${theirs.dirty ? ' (dirty)' : ''}`);
  }
  fields.behind = behind;
  return {
    value: mine.version,
    fields,
    message: `${conn.label} is at migration ${mine.version}${mine.dirty ? ' (dirty: a migration failed halfway)' : ''}${notes.length ? `; ${notes.join('; ')}` : ''}`,
  };
};

const walArchiveAge: Measurement = async (p, ctx, conn) => {
  const { rows } = await readOnly(conn, p, ctx, (q) =>
    q(
      `SELECT current_setting('archive_mode') AS archive_mode, archived_count, last_archived_wal,
              extract(epoch FROM clock_timestamp() - last_archived_time)::float8 AS age_seconds,
              failed_count, last_failed_wal,
              coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) AS failing
         FROM pg_stat_archiver`,
    ),
  );
  const r = rows[0]!;
  const fields: Record<string, unknown> = {
    archive_mode: String(r.archive_mode),
    archived_count: num(r.archived_count),
    failed_count: num(r.failed_count),
    failing: r.failing === true,
  };
  if (r.last_archived_wal !== null) fields.last_archived_wal = String(r.last_archived_wal);
  if (r.archive_mode === 'off') {
    return { fields, failure: { reason: 'no-data', message: `${conn.label}: archive_mode is off: WAL is not archived, so the recovery point is the last backup` } };
  }
  if (r.age_seconds === null) {
    const why = fields.failing ? `; archiving of ${String(r.last_failed_wal)} is failing (${String(fields.failed_count)} failures)` : '';
    return { fields, failure: { reason: 'no-data', message: `${conn.label}: no WAL segment archived since the statistics were reset${why}` } };
  }
  const age = num(r.age_seconds);
  fields.age_seconds = age;
  return {
    value: age,
    fields,
    message:
      `last WAL segment ${String(r.last_archived_wal)} archived ${Math.round(age)}s ago` +
      (fields.failing ? `; archiving is failing since (${String(fields.failed_count)} failures, last on ${String(r.last_failed_wal)})` : ''),
  };
};

const INT_TYPES = new Set([20, 1700]); // int8, numeric: node-postgres returns them as strings

const query: Measurement = async (p, ctx, conn) => {
  const res = await readOnly(conn, p, ctx, (q) =>
    // The extended protocol takes exactly one statement: no "...; COMMIT; DROP ..." past READ ONLY.
    // (queryMode is in pg 8.9+ but not in @types/pg.)
    q({ text: p.sql!, values: p.args ?? [], queryMode: 'extended' } as pg.QueryConfig),
  );
  if (res.rows.length === 0) return { fields: { rows: 0 }, noData: true, message: 'the query returned no rows' };
  if (res.rows.length > 1) {
    return { fields: { rows: res.rows.length }, error: { reason: 'error', message: `the query returned ${res.rows.length} rows; it must return one (aggregate, or add LIMIT 1)` } };
  }
  const row: Record<string, unknown> = {};
  for (const f of res.fields) {
    const v = (res.rows[0] as Record<string, unknown>)[f.name];
    row[f.name] = INT_TYPES.has(f.dataTypeID) && typeof v === 'string' ? Number(v) : v instanceof Date ? v.toISOString() : v;
  }
  const first = res.fields[0] ? row[res.fields[0].name] : undefined;
  const value = typeof first === 'number' ? first : typeof first === 'boolean' ? (first ? 1 : 0) : undefined;
  const fields: Record<string, unknown> = { rows: 1, row };
  if (value !== undefined) fields.value = value;
  const shown = Object.entries(row)
    .slice(0, 5)
    .map(([k, v]) => `${k}=${typeof v === 'string' && v.length > 40 ? `${v.slice(0, 37)}...` : JSON.stringify(v)}`)
    .join(', ');
  return { ...(value !== undefined && { value }), fields, message: `query returned ${shown}` };
};

const MEASUREMENTS: Record<Measure, Measurement> = {
  ready,
  connection_headroom: connectionHeadroom,
  connection_usage: connectionUsage,
  indexes,
  slow_queries: slowQueries,
  migrations,
  wal_archive_age: walArchiveAge,
  query,
};

export default defineProbe({
  kind: 'postgres',
  description: 'Measures a PostgreSQL database: readiness, connection headroom and usage, indexes, slow statements, migrations, WAL archiving, or one read-only query.',
  params,
  secretParams: ['url', 'compareUrl'],
  fields: {
    status: { type: 'string', description: 'ready: what pg_isready would say: accepting | rejecting | no_response.' },
    latency_ms: { type: 'number', unit: 'ms', description: 'ready: time to connect, authenticate and run a query.' },
    server_version: { type: 'string', description: 'ready: the server version (e.g. 15.8).' },
    in_recovery: { type: 'boolean', description: 'ready: the server is a standby (read-only).' },
    max_connections: { type: 'number', description: 'connection_headroom, connection_usage: SHOW max_connections.' },
    replicas: { type: 'number', description: 'connection_headroom: replicas used in the formula.' },
    pool_size: { type: 'number', description: 'connection_headroom: connections per replica.' },
    reserve: { type: 'number', description: 'connection_headroom: spare connections required.' },
    required_connections: { type: 'number', description: 'connection_headroom: replicas x pool_size + reserve.' },
    headroom: { type: 'number', description: 'connection_headroom: max_connections - required_connections (>= 0 passes the checklist line).' },
    connections: { type: 'number', description: "connection_usage: client sessions, all databases, the exporter's own excluded (application_name readiness-exporter)." },
    exporter_connections: { type: 'number', description: "connection_usage: the exporter's own client sessions, left out of every other count (at most 3 per connection URL and replica)." },
    usage_percent: { type: 'number', description: 'connection_usage: connections / max_connections x 100.' },
    active: { type: 'number', description: 'connection_usage: sessions running a statement.' },
    idle: { type: 'number', description: 'connection_usage: idle sessions.' },
    idle_in_transaction: { type: 'number', description: "connection_usage: sessions 'idle in transaction' (holding locks and snapshots)." },
    idle_in_transaction_max_seconds: { type: 'number', unit: 's', description: 'connection_usage: how long the oldest of them has been idle (0 when none).' },
    pool_in_use: { type: 'number', description: 'connection_usage (with replicas, poolSize): non-idle sessions of `role`.' },
    pool_capacity: { type: 'number', description: 'connection_usage: replicas x poolSize.' },
    pool_usage_percent: { type: 'number', description: 'connection_usage: pool_in_use / pool_capacity x 100.' },
    expected: { type: 'number', description: 'indexes: how many indexes were listed.' },
    present: { type: 'number', description: 'indexes: listed indexes that exist and are valid.' },
    missing: { type: 'number', description: 'indexes: listed indexes that are absent, not indexes, or invalid.' },
    invalid: { type: 'number', description: 'indexes: listed indexes left invalid (a failed CREATE INDEX CONCURRENTLY).' },
    missing_indexes: { type: 'any', description: 'indexes: the names counted in `missing` (a list: len(missing_indexes)).' },
    unindexed_foreign_keys: { type: 'number', description: 'indexes (foreignKeys: true): foreign keys no valid index starts with.' },
    unindexed_foreign_key_names: { type: 'any', description: 'indexes: those foreign keys, as table.constraint (columns).' },
    max_mean_ms: { type: 'number', unit: 'ms', description: 'slow_queries: highest mean execution time among the top statements.' },
    worst_queryid: { type: 'string', description: "slow_queries: that statement's queryid." },
    worst_calls: { type: 'number', description: 'slow_queries: how many times it ran.' },
    statements: { type: 'number', description: 'slow_queries: statements considered.' },
    version: { type: 'number', description: 'migrations: schema_migrations version.' },
    dirty: { type: 'boolean', description: 'migrations: a migration failed halfway.' },
    compare_version: { type: 'number', description: "migrations: the compared database's version." },
    compare_dirty: { type: 'boolean', description: 'migrations: the compared database is dirty.' },
    min_version: { type: 'number', description: 'migrations: minVersion, when set.' },
    behind: { type: 'boolean', description: 'migrations: version is below minVersion or compare_version.' },
    age_seconds: { type: 'number', unit: 's', description: 'wal_archive_age: seconds since the last WAL segment was archived.' },
    archived_count: { type: 'number', description: 'wal_archive_age: segments archived since the statistics were reset.' },
    failed_count: { type: 'number', description: 'wal_archive_age: failed archive attempts since the reset.' },
    failing: { type: 'boolean', description: 'wal_archive_age: the latest archive attempt failed (a failure newer than the last success).' },
    last_archived_wal: { type: 'string', description: 'wal_archive_age: name of the last archived segment.' },
    archive_mode: { type: 'string', description: 'wal_archive_age: on | always | off.' },
    rows: { type: 'number', description: 'query: rows returned (0 is no-data).' },
    value: { type: 'number', description: 'query: the first column, when it is a number (or a boolean as 1/0).' },
    'row.*': { type: 'any', description: 'query: each column of the row by name, e.g. row.pending.' },
  },

  validate(p) {
    const errors: string[] = [];
    const spec = MEASURE_PARAMS[p.measure];
    if (!spec) return errors; // the schema's enum already reported it
    const allowed = new Set<string>([...CONNECTION, ...spec.required, ...spec.optional]);
    for (const k of spec.required) {
      if (p[k] === undefined) errors.push(`measure ${p.measure} needs "${k}"`);
    }
    for (const k of Object.keys(p)) {
      if (!allowed.has(k)) errors.push(`"${k}" does not apply to measure ${p.measure}; it takes ${[...spec.required, ...spec.optional].map((x) => `"${x}"`).join(', ') || 'no other parameters'}`);
    }
    if (p.measure === 'indexes' && p.indexes === undefined && p.foreignKeys !== true) {
      errors.push('measure indexes needs "indexes" (schema-qualified names), "foreignKeys: true", or both');
    }
    if (typeof p.replicas === 'string' && !/^\d+$/.test(p.replicas) && !new RegExp(CHECK_ID).test(p.replicas)) {
      errors.push(`"replicas" must be a number or the id of a check, got ${JSON.stringify(p.replicas)}`);
    }
    if ((p.sslcert === undefined) !== (p.sslkey === undefined)) errors.push('"sslcert" and "sslkey" go together');
    for (const [k, url] of [['url', p.url], ['compareUrl', p.compareUrl]] as const) {
      if (url === undefined) continue;
      try {
        connectionSyntax(url);
      } catch (err) {
        errors.push(`"${k}": ${(err as Error).message}`);
      }
    }
    return errors;
  },

  load: loadPg,

  async run(p, ctx): Promise<Observation> {
    let conn: Connection | undefined;
    try {
      conn = connection(p.url, p);
      return await MEASUREMENTS[p.measure](p, ctx, conn);
    } catch (err) {
      if (err instanceof LeaseLostError) throw err;
      const c: Classified = conn
        ? classify(err, conn, statementTimeout(p, ctx))
        : { reason: err instanceof ProbeError ? err.reason : 'error', message: err instanceof Error ? err.message : String(err), status: 'no_response' };
      return { fields: p.measure === 'ready' ? { status: c.status } : {}, error: { reason: c.reason, message: c.message } };
    }
  },

  async close() {
    const all = [...pools.values()];
    pools.clear();
    await Promise.allSettled(all.map((pool) => pool.end()));
  },
});

/** URL checks that need no file or network access (validate() runs at load). */
function connectionSyntax(url: string): void {
  const u = parseUrl(url);
  const mode = u.searchParams.get('sslmode');
  if (mode !== null && !(SSLMODES as readonly string[]).includes(mode)) {
    throw new Error(`sslmode=${mode} in the URL is not supported (node-postgres has no fallback to plaintext): use disable, require, verify-ca or verify-full`);
  }
}
