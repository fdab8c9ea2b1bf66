// Chooses the store: PostgreSQL when READINESS_DATABASE_URL is set (production, HA), else
// the embedded SQLite file under READINESS_DATA_DIR (default ./data).
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { parseDuration } from '../config/duration.js';
import { CachedStore } from './cached.js';

export interface StoreConfig {
  databaseUrl?: string;
  dataDir?: string;
  /** Results kept per check (default 500). */
  historyLimit?: number;
  /** PostgreSQL: deadline of every store operation (READINESS_STORE_TIMEOUT, default 5 s). */
  timeoutMs?: number;
  /** PostgreSQL: the store id the database must hold (READINESS_STORE_ID). */
  expectStoreId?: string;
  log?: Logger;
}

export function storeConfigFromEnv(env: NodeJS.ProcessEnv, log?: Logger): StoreConfig {
  const c: StoreConfig = {};
  if (env.READINESS_DATABASE_URL) c.databaseUrl = env.READINESS_DATABASE_URL;
  c.dataDir = env.READINESS_DATA_DIR || 'data';
  if (env.READINESS_HISTORY_LIMIT) {
    const n = Number(env.READINESS_HISTORY_LIMIT);
    if (!Number.isInteger(n) || n < 1) throw new Error(`READINESS_HISTORY_LIMIT must be a positive integer, got ${JSON.stringify(env.READINESS_HISTORY_LIMIT)}`);
    c.historyLimit = n;
  }
  if (env.READINESS_STORE_TIMEOUT) {
    const ms = parseDuration(env.READINESS_STORE_TIMEOUT);
    if (ms === undefined || ms < 100) throw new Error(`READINESS_STORE_TIMEOUT must be a duration of at least 100ms (e.g. 5s), got ${JSON.stringify(env.READINESS_STORE_TIMEOUT)}`);
    c.timeoutMs = ms;
  }
  if (env.READINESS_STORE_ID) c.expectStoreId = env.READINESS_STORE_ID.trim();
  if (log) c.log = log;
  return c;
}

/**
 * Builds the store (not yet opened: call init()). Only the chosen backend's driver is
 * loaded: an embedded store never loads pg, a PostgreSQL one never better-sqlite3.
 */
export async function createStore(c: StoreConfig): Promise<CachedStore> {
  const opts = c.log ? { log: c.log } : {};
  if (c.databaseUrl) {
    const { PostgresBackend } = await import('./postgres.js');
    const pg = new PostgresBackend(c.databaseUrl, {
      historyLimit: c.historyLimit ?? 500,
      ...(c.timeoutMs !== undefined && { timeoutMs: c.timeoutMs }),
      ...(c.expectStoreId !== undefined && { expectStoreId: c.expectStoreId }),
    });
    return new CachedStore(pg, opts);
  }
  const { SqliteBackend } = await import('./sqlite.js');
  const file = join(resolve(c.dataDir ?? 'data'), 'readiness.sqlite');
  return new CachedStore(new SqliteBackend(file, c.historyLimit ?? 500), opts);
}
