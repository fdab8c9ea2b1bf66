// The `readiness` command: every command's options and help, in one place. Exit codes are an
// API that deploy scripts depend on: check 0 ready / 1 not ready / 2 config or usage error;
// gate 0 ready / 1 not ready at timeout / 2 usage / 3 unreachable; validate 0 ok / 2 errors.
//
// Parsing arguments needs only commander: each command's action imports its own module
// (src/cli/*.ts) when it runs, so --help and --version load nothing else, gate loads no
// checklist code, validate no store, server or probe client. test/startup.test.ts pins it.
import { Command, CommanderError, Option } from 'commander';
import { PHASES, SEVERITIES } from './config/enums.js';
import { csv, defaultIo, durationOpt, EXIT, positiveInt, UsageError, type FilterOptions, type Io } from './cli/common.js';
import type { AttestOptions } from './cli/records.js';
import type { ServeOptions } from './cli/serve.js';
import { VERSION } from './version.js';

export { DEFAULT_CONFIG, durationOpt, EXIT, UsageError, type Io } from './cli/common.js';

/** --allow-intrusive: the operator's opt-in for intrusive checks, as READINESS_ALLOW_INTRUSIVE=true says it. */
function addIntrusiveOption(cmd: Command): Command {
  return cmd.option('--allow-intrusive', 'run intrusive checks too (attack payloads, request bursts; env READINESS_ALLOW_INTRUSIVE=true or a list of check ids)');
}

/** The environment a command loads the checklist with: --allow-intrusive opts in to every intrusive check. */
function withOptIn(io: Io, o: { allowIntrusive?: boolean }): Io {
  return o.allowIntrusive ? { ...io, env: { ...io.env, READINESS_ALLOW_INTRUSIVE: 'true' } } : io;
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
  READINESS_ALLOW_INTRUSIVE  true, or a comma-separated list of check ids: the intrusive checks
                       that may run (attack payloads, request bursts); unset: none (--allow-intrusive: all)

Exit codes: 0 ok/ready, 1 not ready, 2 config or usage error, 3 unreachable (gate).`,
    );

  addIntrusiveOption(program
    .command('serve')
    .description('Run the service: schedule every check, serve /metrics, /readiness, /checks. SIGHUP reloads the checklist; SIGTERM drains and exits.')
    .option('-c, --config <file>', 'checklist file (env READINESS_CONFIG)')
    .option('-p, --port <port>', 'listen port (env READINESS_PORT, default 9747)')
    .option('--host <addr>', 'listen address (env READINESS_HOST, default 0.0.0.0)')
    .option('--concurrency <n>', 'most checks running at once', (v) => positiveInt('concurrency', v), 16)
    .option('--shutdown-timeout <duration>', 'how long SIGTERM waits for runs in flight', durationOpt('shutdown-timeout'), 10_000)
    .option('--log-level <level>', 'log level (env READINESS_LOG_LEVEL)')
    .option('--data-dir <dir>', 'embedded store directory (env READINESS_DATA_DIR, default ./data); READINESS_DATABASE_URL selects PostgreSQL instead')
    .option('--store-timeout <duration>', 'PostgreSQL store: deadline of every store operation; a write past it is answered 503 and writes nothing (env READINESS_STORE_TIMEOUT, default 5s)', durationOpt('store-timeout'))
    .option('--init-store', 'accept a store that is not the one this service wrote to (an emptied, replaced or reset file or database) and start from it; without it, that is an error (exit 2)'))
    .action(async (o: ServeOptions & { allowIntrusive?: boolean }) => {
      result.code = await (await import('./cli/serve.js')).serve(o, withOptIn(io, o));
    });

  addFilterOptions(
    addIntrusiveOption(program
      .command('check'))
      .description('Run every check once, print the results, and exit 0 when ready, 1 when not (2 on config errors). No server.')
      .option('-c, --config <file>', 'checklist file (env READINESS_CONFIG)')
      .option('--only <id>', 'run only this check and what it depends on (repeatable, comma-separated)', csv('check'))
      .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
      .option('--concurrency <n>', 'most checks running at once', (v) => positiveInt('concurrency', v), 16),
  ).action(async (o: { config?: string; format: 'table' | 'json'; concurrency: number; allowIntrusive?: boolean } & FilterOptions) => {
    result.code = await (await import('./cli/check.js')).check(o, withOptIn(io, o));
  });

  addFilterOptions(
    program
      .command('gate')
      .description('Poll a running service\'s /readiness until it is ready or the timeout passes; print what still fails.')
      .requiredOption('--url <url>', 'base URL of the service (or its /readiness URL)')
      .option('--timeout <duration>', 'give up after this long', durationOpt('timeout'), 15 * 60_000)
      .option('--interval <duration>', 'time between polls', durationOpt('interval'), 10_000)
      .option('--check <id>', 'only this check (repeatable, comma-separated)', csv('check')),
  ).action(async (o: { url: string; timeout: number; interval: number } & FilterOptions) => {
    result.code = await (await import('./cli/gate.js')).gate(o, io);
  });

  const urlOption = (cmd: Command) => cmd.option('--url <url>', 'base URL of the service (env READINESS_URL)', io.env.READINESS_URL ?? 'http://127.0.0.1:9747');

  urlOption(
    program
      .command('attest')
      .description('Sign an attestation for a check answered by people (bearer token READINESS_API_TOKEN). Exit 0 recorded, 1 rejected or unreachable.')
      .argument('<check>', 'the check id, e.g. signoff-security')
      .requiredOption('--by <name>', 'who attests')
      .requiredOption('--role <role>', "the attester's role; must be one the check allows")
      .option('--expires <when>', "a duration from now (30d) or an ISO time; default and maximum: the check's maxAge")
      .option('--note <text>', 'what was reviewed')
      .option('--evidence <url>', 'link to the evidence (ticket, document)')
      .option('--release <version>', 'the release signed for (per-release checks default to theirs)'),
  ).action(async (check: string, o: AttestOptions) => {
    result.code = await (await import('./cli/records.js')).attest(check, o, io);
  });

  urlOption(
    program
      .command('revoke')
      .description('Revoke an attestation by id (bearer token). Exit 0 revoked, 1 rejected or unreachable.')
      .argument('<id>', 'attestation id (GET /attestations lists them)')
      .requiredOption('--by <name>', 'who revokes'),
  ).action(async (id: string, o: { by: string; url: string }) => {
    result.code = await (await import('./cli/records.js')).revoke(id, o, io);
  });

  urlOption(
    program
      .command('deploy-mark')
      .description('Record a deployment (bearer token): opens the post-deploy monitoring window. Exit 0 recorded, 1 rejected or unreachable.')
      .requiredOption('--version <version>', 'the release that went out')
      .option('--at <iso>', 'when it went out (default now)')
      .option('--by <name>', 'who deployed'),
  ).action(async (o: { version: string; at?: string; by?: string; url: string }) => {
    result.code = await (await import('./cli/records.js')).deployMark(o, io);
  });

  program
    .command('migrate')
    .description('Apply the PostgreSQL store migrations (READINESS_DATABASE_URL). serve also applies them at start. Exit 0 done, 1 failed, 2 no database configured.')
    .action(async () => {
      result.code = await (await import('./cli/records.js')).migrateCommand(io);
    });

  addIntrusiveOption(program
    .command('validate')
    .description('Load and validate the checklist only: every problem is listed as file:line:col, then each missing variable with the checks it would configure, and the intrusive checks. Exit 0 ok, 2 errors.')
    .option('-c, --config <file>', 'checklist file (env READINESS_CONFIG)'))
    .action(async (o: { config?: string; allowIntrusive?: boolean }) => {
      result.code = await (await import('./cli/validate.js')).validate(o, withOptIn(io, o));
    });

  return program;
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
