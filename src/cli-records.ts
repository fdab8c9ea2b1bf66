// CLI commands that write records through a running service (attest, revoke, deploy-mark)
// and `migrate`, which applies the PostgreSQL store's migrations.
import type { Command } from 'commander';
import pg from 'pg';
import { parseDuration } from './config/duration.js';
import { fetchCause } from './reasons.js';
import { migrate } from './store/postgres.js';
import type { Io } from './cli.js';

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/** POSTs JSON to the service with the bearer token; prints the outcome; returns the exit code. */
async function post(io: Io, base: string, path: string, body: unknown): Promise<{ code: number; json?: Record<string, unknown> }> {
  const token = io.env.READINESS_API_TOKEN;
  if (!token) {
    io.err('error: READINESS_API_TOKEN is not set: the service refuses writes without its bearer token');
    return { code: EXIT_USAGE };
  }
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : `${base}/`);
  } catch {
    io.err(`error: --url: not a URL: ${JSON.stringify(base)}`);
    return { code: EXIT_USAGE };
  }
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const json = (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (!res.ok) {
      io.err(`rejected (HTTP ${res.status}): ${String(json?.message ?? res.statusText)}`);
      return { code: EXIT_FAILED };
    }
    return { code: 0, ...(json && { json }) };
  } catch (err) {
    io.err(`error: cannot reach ${url.origin}: ${fetchCause(err)}`);
    return { code: EXIT_FAILED };
  }
}

/** `30d` from now, or an ISO time as given. */
function expiry(v: string): string {
  const ms = parseDuration(v);
  if (ms !== undefined) return new Date(Date.now() + ms).toISOString();
  if (Number.isNaN(Date.parse(v))) throw new Error(`--expires: ${JSON.stringify(v)} is neither a duration (30d) nor an ISO time`);
  return v;
}

export function records(program: Command, io: Io, result: { code: number }): void {
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
  ).action(async (check: string, o: { by: string; role: string; expires?: string; note?: string; evidence?: string; release?: string; url: string }) => {
    let expiresAt: string | undefined;
    try {
      expiresAt = o.expires === undefined ? undefined : expiry(o.expires);
    } catch (err) {
      io.err(`error: ${(err as Error).message}`);
      result.code = EXIT_USAGE;
      return;
    }
    const body = { check, by: o.by, role: o.role, ...(expiresAt && { expiresAt }), ...(o.note && { note: o.note }), ...(o.evidence && { evidenceUrl: o.evidence }), ...(o.release && { release: o.release }) };
    const r = await post(io, o.url, 'attestations', body);
    if (r.code === 0) {
      const a = r.json?.attestation as { id: string; expiresAt: string };
      const c = r.json?.check as { state?: string };
      io.out(`attested ${check} as ${o.role} (${o.by}): id ${a.id}, valid until ${a.expiresAt}; check is now ${c.state ?? 'unknown'}`);
    }
    result.code = r.code;
  });

  urlOption(
    program
      .command('revoke')
      .description('Revoke an attestation by id (bearer token). Exit 0 revoked, 1 rejected or unreachable.')
      .argument('<id>', 'attestation id (GET /attestations lists them)')
      .requiredOption('--by <name>', 'who revokes'),
  ).action(async (id: string, o: { by: string; url: string }) => {
    const r = await post(io, o.url, `attestations/${encodeURIComponent(id)}/revoke`, { by: o.by });
    if (r.code === 0) io.out(`revoked ${id}`);
    result.code = r.code;
  });

  urlOption(
    program
      .command('deploy-mark')
      .description('Record a deployment (bearer token): opens the post-deploy monitoring window. Exit 0 recorded, 1 rejected or unreachable.')
      .requiredOption('--version <version>', 'the release that went out')
      .option('--at <iso>', 'when it went out (default now)')
      .option('--by <name>', 'who deployed'),
  ).action(async (o: { version: string; at?: string; by?: string; url: string }) => {
    const r = await post(io, o.url, 'deployments', { version: o.version, ...(o.at && { at: o.at }), ...(o.by && { by: o.by }) });
    if (r.code === 0) {
      const w = r.json?.window as { endsAt?: string };
      io.out(`deployment ${o.version} recorded; monitoring window open until ${w.endsAt ?? '?'}`);
    }
    result.code = r.code;
  });

  program
    .command('migrate')
    .description('Apply the PostgreSQL store migrations (READINESS_DATABASE_URL). serve also applies them at start. Exit 0 done, 1 failed, 2 no database configured.')
    .action(async () => {
      const url = io.env.READINESS_DATABASE_URL;
      if (!url) {
        io.err('error: READINESS_DATABASE_URL is not set (the embedded store needs no migrations)');
        result.code = EXIT_USAGE;
        return;
      }
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
      try {
        await client.connect();
        const applied = await migrate(client);
        io.out(applied.length ? `applied: ${applied.join(', ')}` : 'up to date');
        result.code = 0;
      } catch (err) {
        io.err(`error: migration failed: ${(err as Error).message}`);
        result.code = EXIT_FAILED;
      } finally {
        await client.end().catch(() => {});
      }
    });
}
