// What attest, revoke and deploy-mark do: POST to a running service with the bearer token.
// And migrate, which applies the PostgreSQL store's migrations (it alone loads pg).
import { parseDuration } from '../config/duration.js';
import { fetchCause } from '../reasons.js';
import { EXIT, type Io } from './common.js';
import { requestJson } from './request.js';

/** attest, revoke, deploy-mark: rejected or unreachable; migrate: failed. */
const FAILED = 1;

/** POSTs JSON to the service with the bearer token; prints the outcome; returns the exit code. */
async function post(io: Io, base: string, path: string, body: unknown): Promise<{ code: number; json?: Record<string, unknown> }> {
  const token = io.env.READINESS_API_TOKEN;
  if (!token) {
    io.err('error: READINESS_API_TOKEN is not set: the service refuses writes without its bearer token');
    return { code: EXIT.USAGE };
  }
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : `${base}/`);
  } catch {
    io.err(`error: --url: not a URL: ${JSON.stringify(base)}`);
    return { code: EXIT.USAGE };
  }
  try {
    const res = await requestJson(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      timeoutMs: 30_000,
    });
    const json = res.json !== null && typeof res.json === 'object' && !Array.isArray(res.json) ? (res.json as Record<string, unknown>) : undefined;
    if (res.status < 200 || res.status > 299) {
      io.err(`rejected (HTTP ${res.status}): ${String(json?.message ?? res.statusText)}`);
      return { code: FAILED };
    }
    return { code: EXIT.OK, ...(json && { json }) };
  } catch (err) {
    io.err(`error: cannot reach ${url.origin}: ${fetchCause(err)}`);
    return { code: FAILED };
  }
}

/** `30d` from now, or an ISO time as given. */
function expiry(v: string): string {
  const ms = parseDuration(v);
  if (ms !== undefined) return new Date(Date.now() + ms).toISOString();
  if (Number.isNaN(Date.parse(v))) throw new Error(`--expires: ${JSON.stringify(v)} is neither a duration (30d) nor an ISO time`);
  return v;
}

export interface AttestOptions {
  by: string;
  role: string;
  expires?: string;
  note?: string;
  evidence?: string;
  release?: string;
  url: string;
}

export async function attest(check: string, o: AttestOptions, io: Io): Promise<number> {
  let expiresAt: string | undefined;
  try {
    expiresAt = o.expires === undefined ? undefined : expiry(o.expires);
  } catch (err) {
    io.err(`error: ${(err as Error).message}`);
    return EXIT.USAGE;
  }
  const body = { check, by: o.by, role: o.role, ...(expiresAt && { expiresAt }), ...(o.note && { note: o.note }), ...(o.evidence && { evidenceUrl: o.evidence }), ...(o.release && { release: o.release }) };
  const r = await post(io, o.url, 'attestations', body);
  if (r.code === 0) {
    const a = r.json?.attestation as { id: string; expiresAt: string };
    const c = r.json?.check as { state?: string };
    io.out(`attested ${check} as ${o.role} (${o.by}): id ${a.id}, valid until ${a.expiresAt}; check is now ${c.state ?? 'unknown'}`);
  }
  return r.code;
}

export async function revoke(id: string, o: { by: string; url: string }, io: Io): Promise<number> {
  const r = await post(io, o.url, `attestations/${encodeURIComponent(id)}/revoke`, { by: o.by });
  if (r.code === 0) io.out(`revoked ${id}`);
  return r.code;
}

export async function deployMark(o: { version: string; at?: string; by?: string; url: string }, io: Io): Promise<number> {
  const r = await post(io, o.url, 'deployments', { version: o.version, ...(o.at && { at: o.at }), ...(o.by && { by: o.by }) });
  if (r.code === 0) {
    const w = r.json?.window as { endsAt?: string };
    io.out(`deployment ${o.version} recorded; monitoring window open until ${w.endsAt ?? '?'}`);
  }
  return r.code;
}

export async function migrateCommand(io: Io): Promise<number> {
  const url = io.env.READINESS_DATABASE_URL;
  if (!url) {
    io.err('error: READINESS_DATABASE_URL is not set (the embedded store needs no migrations)');
    return EXIT.USAGE;
  }
  const [{ default: pg }, { migrate }] = await Promise.all([import('pg'), import('../store/postgres.js')]);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const applied = await migrate(client);
    io.out(applied.length ? `applied: ${applied.join(', ')}` : 'up to date');
    return EXIT.OK;
  } catch (err) {
    io.err(`error: migration failed: ${(err as Error).message}`);
    return FAILED;
  } finally {
    await client.end().catch(() => {});
  }
}
