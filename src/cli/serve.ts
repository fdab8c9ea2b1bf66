// `readiness serve`: the service. The store, the server and (with PostgreSQL) the HA leases
// load here, not before: every other command starts without them.
import { parseDuration } from '../config/duration.js';
import { buildServer } from '../http/server.js';
import { Service } from '../service.js';
import { createStore, storeConfigFromEnv, type StoreConfig } from '../store/index.js';
import { configPath, EXIT, UsageError, type Io } from './common.js';
import { loadOrReport } from './load.js';
import { makeLogger } from './logger.js';
import { serveStarted } from '../startup-flags.js';

export interface ServeOptions {
  config?: string;
  port?: string;
  host?: string;
  concurrency: number;
  shutdownTimeout: number;
  logLevel?: string;
  dataDir?: string;
  /** --store-timeout: PostgreSQL operation deadline (ms). */
  storeTimeout?: number;
  /** --init-store: accept a store that is not the one this service wrote to. */
  initStore?: boolean;
}

/** READINESS_HA_LEASE_TTL: how long a hung or cut-off replica keeps its checks (default 10s). */
function leaseTtl(env: NodeJS.ProcessEnv): { ttlMs?: number } {
  const v = env.READINESS_HA_LEASE_TTL;
  if (v === undefined || v === '') return {};
  const ms = parseDuration(v);
  if (ms === undefined || ms < 1_000) throw new UsageError(`READINESS_HA_LEASE_TTL must be a duration of at least 1s (e.g. 10s), got ${JSON.stringify(v)}`);
  return { ttlMs: ms };
}

export async function serve(
  o: ServeOptions,
  io: Io,
): Promise<number> {
  // The young generation stays small and the optimizing compiler waits until the service has
  // started (src/startup-flags.ts): src/run.ts set both before this module loaded.
  const file = configPath(o.config, io.env);
  const port = Number(o.port ?? io.env.READINESS_PORT ?? 9747);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`bad port ${JSON.stringify(o.port ?? io.env.READINESS_PORT)}`);
  const host = o.host ?? io.env.READINESS_HOST ?? '0.0.0.0';
  const log = makeLogger(o.logLevel ?? io.env.READINESS_LOG_LEVEL ?? 'info', false);
  const checklist = await loadOrReport(file, io);
  if (!checklist) return EXIT.USAGE;
  const lease = leaseTtl(io.env);
  let storeConfig: StoreConfig;
  try {
    storeConfig = storeConfigFromEnv(o.dataDir ? { ...io.env, READINESS_DATA_DIR: o.dataDir } : io.env, log);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (o.storeTimeout !== undefined) storeConfig.timeoutMs = o.storeTimeout;
  const store = await createStore(storeConfig);
  try {
    // PostgreSQL down at start degrades the store instead of stopping the service; a broken
    // embedded file (unwritable directory, newer schema) and a store that is not the one this
    // service wrote to (emptied, replaced, reset) are errors.
    await store.init({ tolerateDown: store.kind === 'postgres', initStore: o.initStore ?? false });
  } catch (err) {
    io.err(`cannot open the ${store.kind} store: ${(err as Error).message}`);
    return EXIT.USAGE;
  }
  log.info({ store: store.kind, storeId: store.storeId, ...(store.kind === 'sqlite' && { dataDir: storeConfig.dataDir }) }, 'store opened');
  const ownership = storeConfig.databaseUrl ? new (await import('../ha.js')).PgLeases(storeConfig.databaseUrl, { log, ...lease }) : undefined;
  const service = new Service({ file, checklist, store, log, env: io.env, concurrency: o.concurrency, ...(ownership && { ownership }) });
  const app = await buildServer({ service, log, ...(io.env.READINESS_API_TOKEN && { apiToken: io.env.READINESS_API_TOKEN }) });
  // Signals are handled before the port opens: a SIGTERM that arrives while the service is
  // still starting (a deploy rolled back at once) must drain it, not kill it mid-write.
  let started: Promise<void> = Promise.resolve();
  const done = new Promise<number>((resolve) => {
    let stopping = false;
    const onHup = () => {
      // A reload never takes the running service down, whatever happens in it.
      started.then(() => service.reload()).catch((err: unknown) => log.error({ err }, 'checklist reload failed: keeping the running checklist'));
    };
    const onStop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      service.markStopping();
      log.info({ signal: sig }, 'shutting down: no new runs, waiting for runs in flight');
      void (async () => {
        await started.catch(() => {});
        await service.stop(o.shutdownTimeout);
        await app.close();
        process.off('SIGHUP', onHup);
        log.info('stopped');
        log.flush?.();
        resolve(EXIT.OK);
      })();
    };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => onStop('SIGTERM'));
    process.once('SIGINT', () => onStop('SIGINT'));
  });
  try {
    await app.listen({ port, host });
  } catch (err) {
    io.err(`cannot listen on ${host}:${port}: ${(err as Error).message}`);
    await service.stop(0);
    return EXIT.USAGE;
  }
  started = service.start();
  await started;
  serveStarted();
  if (ownership) log.info({ replica: ownership.replicaId, owned: ownership.owned().length }, 'HA: running the checks this replica owns');
  if (!io.env.READINESS_API_TOKEN) log.warn('READINESS_API_TOKEN is not set: POST routes are refused');
  return done;
}
