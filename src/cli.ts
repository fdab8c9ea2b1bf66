// The `readiness` command: serve, check, gate, validate. Exit codes are an API that deploy
// scripts depend on: check 0 ready / 1 not ready / 2 config or usage error; gate 0 ready /
// 1 not ready at timeout / 2 usage / 3 unreachable; validate 0 ok / 2 errors.
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { parseDuration } from './config/duration.js';
import { loadChecklistFile } from './config/load.js';
import { formatDiagnostic, type Checklist } from './config/types.js';
import { buildServer } from './http/server.js';
import { closeProbeKinds } from './probes/index.js';
import { runOnce } from './scheduler.js';
import { Service } from './service.js';
import { describe, isReady, matches, readiness, type CheckView, type Filters } from './state.js';
import { MemoryStore } from './store/memory.js';
import { createStore, storeConfigFromEnv } from './store/index.js';
import { PgLeases } from './ha.js';
import { records as recordCommands } from './cli-records.js';
import { PHASES, SEVERITIES, type Phase, type Severity } from './config/schema.js';
import { fetchCause } from './reasons.js';
import { VERSION } from './version.js';

export const EXIT = { OK: 0, NOT_READY: 1, USAGE: 2, UNREACHABLE: 3 } as const;

/** The shipped checklist, used when neither -c nor READINESS_CONFIG names one. */
export const DEFAULT_CONFIG = fileURLToPath(new URL('../probes/offgridflow.yaml', import.meta.url));

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  env: process.env,
};

export class UsageError extends Error {}

function configPath(opt: string | undefined, env: NodeJS.ProcessEnv): string {
  return opt ?? env.READINESS_CONFIG ?? DEFAULT_CONFIG;
}

function makeLogger(level: string, toStderr: boolean): Logger {
  return pino(
    {
      level,
      base: { service: 'readiness-exporter' },
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token', '*.password'], censor: '***' },
    },
    toStderr ? pino.destination(2) : pino.destination(1),
  );
}

async function load(file: string, io: Io): Promise<Checklist | undefined> {
  const res = await loadChecklistFile(file, io.env);
  if (res.ok) return res.checklist;
  for (const d of res.diagnostics) io.err(formatDiagnostic(d));
  io.err(`${res.diagnostics.length} error${res.diagnostics.length === 1 ? '' : 's'} in ${file}`);
  return undefined;
}

function csv(name: string, allowed?: readonly string[]) {
  return (value: string, prev: string[] = []): string[] => {
    const vals = value.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = allowed ? vals.filter((v) => !allowed.includes(v)) : [];
    if (bad.length) throw new UsageError(`unknown ${name} ${bad.join(', ')}; allowed: ${allowed!.join(', ')}`);
    return [...prev, ...vals];
  };
}

function filtersFrom(o: { severity?: string[]; phase?: string[]; section?: string[]; check?: string[]; only?: string[] }): Filters {
  const f: Filters = {};
  if (o.severity?.length) f.severity = o.severity as Severity[];
  if (o.phase?.length) f.phase = o.phase as Phase[];
  if (o.section?.length) f.section = o.section;
  const ids = [...(o.check ?? []), ...(o.only ?? [])];
  if (ids.length) f.check = ids;
  return f;
}

export function durationOpt(name: string) {
  return (v: string): number => {
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) throw new UsageError(`--${name}: bad duration ${JSON.stringify(v)} (e.g. 30s, 15m, 1h)`);
    return ms;
  };
}

/** Fixed-width table for `readiness check` and `readiness gate`. */
export function formatTable(views: readonly CheckView[]): string {
  const rows = views.map((v) => [v.state.toUpperCase(), v.def.id, v.def.severity, v.def.phase, v.value === undefined ? '' : String(Math.round(v.value * 100) / 100), v.message]);
  const head = ['STATE', 'CHECK', 'SEVERITY', 'PHASE', 'VALUE', 'MESSAGE'];
  const widths = head.map((h, i) => Math.min(i === 5 ? 200 : 48, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const line = (r: string[]) => r.map((c, i) => (i === 5 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

function addFilterOptions(cmd: Command): Command {
  return cmd
    .option('--severity <list>', `only checks of these severities (${SEVERITIES.join(',')})`, csv('severity', SEVERITIES))
    .option('--phase <list>', `only checks of these phases (${PHASES.join(',')})`, csv('phase', PHASES))
    .option('--section <list>', 'only checks of these sections', csv('section'));
}

export function buildProgram(io: Io = defaultIo, result: { code: number } = { code: 0 }): Command {
  const program = new Command('readiness')
    .description('Turns a production deployment checklist into live Prometheus signals and a /readiness gate.')
    .version(VERSION)
    // Program options only before the command, so `deploy-mark --version 1.4.2` is the command's.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .addHelpText(
      'after',
      `
Environment:
  READINESS_CONFIG     checklist file (default: the shipped probes/offgridflow.yaml)
  READINESS_PORT       port for serve (default 9747)
  READINESS_HOST       address for serve (default 0.0.0.0)
  READINESS_API_TOKEN  bearer token for POST routes; unset: writes are refused
  READINESS_LOG_LEVEL  trace|debug|info|warn|error (default info)

Exit codes: 0 ok/ready, 1 not ready, 2 config or usage error, 3 unreachable (gate).`,
    );

  program
    .command('serve')
    .description('Run the service: schedule every check, serve /metrics, /readiness, /checks. SIGHUP reloads the checklist; SIGTERM drains and exits.')
    .option('-c, --config <file>', 'checklist file (env READINESS_CONFIG)')
    .option('-p, --port <port>', 'listen port (env READINESS_PORT, default 9747)')
    .option('--host <addr>', 'listen address (env READINESS_HOST, default 0.0.0.0)')
    .option('--concurrency <n>', 'most checks running at once', (v) => positiveInt('concurrency', v), 16)
    .option('--shutdown-timeout <duration>', 'how long SIGTERM waits for runs in flight', durationOpt('shutdown-timeout'), 10_000)
    .option('--log-level <level>', 'log level (env READINESS_LOG_LEVEL)')
    .option('--data-dir <dir>', 'embedded store directory (env READINESS_DATA_DIR, default ./data); READINESS_DATABASE_URL selects PostgreSQL instead')
    .action(async (o: { config?: string; port?: string; host?: string; concurrency: number; shutdownTimeout: number; logLevel?: string; dataDir?: string }) => {
      result.code = await serve(o, io);
    });

  addFilterOptions(
    program
      .command('check')
      .description('Run every check once, print the results, and exit 0 when ready, 1 when not (2 on config errors). No server.')
      .option('-c, --config <file>', 'checklist file (env READINESS_CONFIG)')
      .option('--only <id>', 'run only this check and what it depends on (repeatable, comma-separated)', csv('check'))
      .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
      .option('--concurrency <n>', 'most checks running at once', (v) => positiveInt('concurrency', v), 16),
  ).action(async (o: { config?: string; only?: string[]; format: 'table' | 'json'; concurrency: number; severity?: string[]; phase?: string[]; section?: string[] }) => {
    result.code = await check(o, io);
  });

  addFilterOptions(
    program
      .command('gate')
      .description('Poll a running service\'s /readiness until it is ready or the timeout passes; print what still fails.')
      .requiredOption('--url <url>', 'base URL of the service (or its /readiness URL)')
      .option('--timeout <duration>', 'give up after this long', durationOpt('timeout'), 15 * 60_000)
      .option('--interval <duration>', 'time between polls', durationOpt('interval'), 10_000)
      .option('--check <id>', 'only this check (repeatable, comma-separated)', csv('check')),
  ).action(async (o: { url: string; timeout: number; interval: number; severity?: string[]; phase?: string[]; section?: string[]; check?: string[] }) => {
    result.code = await gate(o, io);
  });

  recordCommands(program, io, result);

  program
    .command('validate')
    .description('Load and validate the checklist only: every problem is listed as file:line:col. Exit 0 ok, 2 errors.')
    .option('-c, --config <file>', 'checklist file (env READINESS_CONFIG)')
    .action(async (o: { config?: string }) => {
      const file = configPath(o.config, io.env);
      const cl = await load(file, io);
      if (!cl) {
        result.code = EXIT.USAGE;
        return;
      }
      const unconfigured = cl.checks.filter((c) => c.unconfigured);
      io.out(`${file}: ok, ${cl.checks.length} checks${unconfigured.length ? `, ${unconfigured.length} unconfigured in this environment` : ''}`);
      for (const c of unconfigured) io.out(`  ${c.id}: ${c.unconfigured}`);
      result.code = EXIT.OK;
    });

  return program;
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

async function serve(
  o: { config?: string; port?: string; host?: string; concurrency: number; shutdownTimeout: number; logLevel?: string; dataDir?: string },
  io: Io,
): Promise<number> {
  const file = configPath(o.config, io.env);
  const port = Number(o.port ?? io.env.READINESS_PORT ?? 9747);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`bad port ${JSON.stringify(o.port ?? io.env.READINESS_PORT)}`);
  const host = o.host ?? io.env.READINESS_HOST ?? '0.0.0.0';
  const log = makeLogger(o.logLevel ?? io.env.READINESS_LOG_LEVEL ?? 'info', false);
  const checklist = await load(file, io);
  if (!checklist) return EXIT.USAGE;
  const storeConfig = storeConfigFromEnv(o.dataDir ? { ...io.env, READINESS_DATA_DIR: o.dataDir } : io.env, log);
  const store = createStore(storeConfig);
  try {
    // PostgreSQL down at start degrades the store instead of stopping the service; a broken
    // embedded file (unwritable directory, newer schema) is a configuration error.
    await store.init({ tolerateDown: store.kind === 'postgres' });
  } catch (err) {
    io.err(`cannot open the ${store.kind} store: ${(err as Error).message}`);
    return EXIT.USAGE;
  }
  log.info({ store: store.kind, ...(store.kind === 'sqlite' && { dataDir: storeConfig.dataDir }) }, 'store opened');
  const ownership = storeConfig.databaseUrl ? new PgLeases(storeConfig.databaseUrl, { log }) : undefined;
  const service = new Service({ file, checklist, store, log, env: io.env, concurrency: o.concurrency, ...(ownership && { ownership }) });
  const app = await buildServer({ service, log, ...(io.env.READINESS_API_TOKEN && { apiToken: io.env.READINESS_API_TOKEN }) });
  // Signals are handled before the port opens: a SIGTERM that arrives while the service is
  // still starting (a deploy rolled back at once) must drain it, not kill it mid-write.
  let started: Promise<void> = Promise.resolve();
  const done = new Promise<number>((resolve) => {
    let stopping = false;
    const onHup = () => {
      void started.then(() => service.reload());
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
  if (ownership) log.info({ replica: ownership.replicaId, owned: ownership.owned().length }, 'HA: running the checks this replica owns');
  if (!io.env.READINESS_API_TOKEN) log.warn('READINESS_API_TOKEN is not set: POST routes are refused');
  return done;
}

async function check(
  o: { config?: string; only?: string[]; format: 'table' | 'json'; concurrency: number; severity?: string[]; phase?: string[]; section?: string[] },
  io: Io,
): Promise<number> {
  const file = configPath(o.config, io.env);
  const checklist = await load(file, io);
  if (!checklist) return EXIT.USAGE;
  const unknown = (o.only ?? []).filter((id) => !checklist.byId.has(id));
  if (unknown.length) throw new UsageError(`--only: unknown check ${unknown.join(', ')}`);
  const filters = filtersFrom(o);
  const only = checklist.checks.filter((c) => matches(c, filters)).map((c) => c.id);
  const log = makeLogger(io.env.READINESS_LOG_LEVEL ?? 'warn', true);
  let views: CheckView[];
  // Attestations and deployments live in the service's store: read them from there, but keep
  // this one-off run's results out of its history.
  const records = checklist.checks.some((c) => c.kind === 'attestation') ? createStore(storeConfigFromEnv(io.env, log)) : undefined;
  await records?.init({ tolerateDown: true });
  try {
    views = await runOnce(checklist, { store: new MemoryStore(), ...(records && { records }), log, env: io.env, concurrency: o.concurrency, only });
  } finally {
    await closeProbeKinds();
    await records?.close();
  }
  views = views.filter((v) => matches(v.def, filters));
  const ready = isReady(views);
  if (o.format === 'json') {
    const body = readiness(checklist, views, filters, Date.now(), true);
    io.out(JSON.stringify(body, null, 2));
  } else {
    io.out(formatTable(views));
    const bad = views.filter((v) => v.gating && !['pass', 'warn'].includes(v.state));
    io.out(`\n${ready ? 'READY' : 'NOT READY'}: ${views.length - bad.length} of ${views.length} checks passing${bad.length ? `; failing: ${bad.map((v) => v.def.id).join(', ')}` : ''}`);
  }
  return ready ? EXIT.OK : EXIT.NOT_READY;
}

async function gate(
  o: { url: string; timeout: number; interval: number; severity?: string[]; phase?: string[]; section?: string[]; check?: string[] },
  io: Io,
): Promise<number> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new UsageError(`--url: not a URL: ${JSON.stringify(o.url)}`);
  }
  if (!url.pathname.endsWith('/readiness')) url.pathname = `${url.pathname.replace(/\/$/, '')}/readiness`;
  for (const [k, v] of Object.entries(filtersFrom(o))) url.searchParams.set(k, (v as string[]).join(','));
  const deadline = Date.now() + o.timeout;
  let lastFailing = '';
  let reachedOnce = false;
  let lastError = '';
  for (;;) {
    const remaining = deadline - Date.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(Math.max(1000, Math.min(10_000, remaining))), headers: { accept: 'application/json' } });
      const body = (await res.json().catch(() => undefined)) as
        | { ready?: boolean; failing?: ReturnType<typeof describe>[]; message?: string; rollback?: { recommended: boolean; failing: string[] } }
        | undefined;
      if (res.status === 400) {
        io.err(`gate: the service rejected the request: ${body?.message ?? res.statusText}`);
        return EXIT.USAGE;
      }
      if ((res.status === 200 || res.status === 503) && body && typeof body.ready === 'boolean') {
        reachedOnce = true;
        lastError = '';
        if (body.ready) {
          io.out(`ready: ${url.toString()}`);
          return EXIT.OK;
        }
        // The service's own rollback verdict (Service.rollbackCauses), never recomputed here.
        const rollback = body.rollback?.recommended ? `\nrollback recommended: ${body.rollback.failing.join(', ')}` : '';
        const failing = (body.failing ?? []).map((f) => `  ${f.state.toUpperCase().padEnd(12)} ${f.id}: ${f.message}`).join('\n') + rollback;
        if (failing !== lastFailing) {
          io.out(`not ready (${new Date().toISOString()}), still failing:\n${failing}`);
          lastFailing = failing;
        }
      } else {
        lastError = `unexpected answer: HTTP ${res.status} ${res.headers.get('content-type') ?? ''}`.trim();
        io.err(`gate: ${lastError}`);
      }
    } catch (err) {
      lastError = `cannot reach ${url.origin}: ${fetchCause(err)}`;
      io.err(`gate: ${lastError}`);
    }
    if (Date.now() + o.interval > deadline) break;
    await new Promise((r) => setTimeout(r, o.interval));
  }
  if (lastError) {
    io.err(`gate: timed out; the service ${reachedOnce ? 'is unreachable now' : 'was never reachable'} (${lastError})`);
    return EXIT.UNREACHABLE;
  }
  io.out(`gate: not ready after ${Math.round(o.timeout / 1000)}s`);
  return EXIT.NOT_READY;
}

/** Entry point: returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  const result = { code: 0 };
  const program = buildProgram(io, result).exitOverride();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}`);
      return EXIT.USAGE;
    }
    io.err(`error: ${(err as Error).stack ?? String(err)}`);
    return EXIT.USAGE;
  }
}
