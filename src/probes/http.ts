// http: one HTTP(S) request, optionally following redirects; reports status, timing,
// headers and the (capped) body, parsed as JSON when it parses. An unexpected status fails
// the check by itself; conditions then refine it (`json.status == "ok"`, `duration_ms < 500ms`).
// Every run measures a fresh connection (DNS, TCP, TLS included): requests are sent with
// `reset` (Connection: close), so no socket outlives its run, and an aborted run's socket is
// destroyed. Each check keeps its undici Client between runs (see clientFor); a run that
// follows redirects uses an Agent of its own, destroyed at the end.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Type, type Static } from '@sinclair/typebox';
import type { Dispatcher } from 'undici';
import type { Reason } from '../reasons.js';
import { commonjs, lazy } from './lazy.js';
import { leaseConnector } from './lease.js';
import { defineProbe, LeaseLostError, ProbeError, type Observation } from './types.js';

const undici = lazy(() => import('undici').then(commonjs));

interface TlsOptions {
  insecure: boolean;
  ca: string | undefined;
  servername: string | undefined;
  /** Backstop for undici's own timers (the check's signal is the timeout). */
  backstop: number;
}

/**
 * Each check's undici Client for its origin, kept between runs, with the settings it was
 * built for. Per check, so that discarding one (after a failed or aborted run) never touches
 * another check's request. Requests go out with `reset` (Connection: close): the Client holds
 * no connection between runs. A Client is reused rather than an Agent because an Agent
 * closes its per-origin pool whenever its last connection closes, i.e. after every run, and
 * a new Agent per run cost more CPU than the request it carried (bench/probe-cpu-http.ts).
 */
const clients = new Map<string, { key: string; client: Dispatcher }>();
/** HA: the lease question of each check's run in progress, asked by its connection (lease.ts). */
const owners = new Map<string, () => boolean>();

async function clientFor(checkId: string, origin: string, o: TlsOptions): Promise<Dispatcher> {
  const key = JSON.stringify([origin, o.insecure, o.ca ?? null, o.servername ?? null, o.backstop]);
  const cur = clients.get(checkId);
  if (cur?.key === key) return cur.client;
  if (cur) discard(checkId);
  const { Client } = await undici();
  const client = new Client(origin, { connect: await leaseConnector(connectOptions(o), () => owners.get(checkId)), headersTimeout: o.backstop, bodyTimeout: o.backstop });
  clients.set(checkId, { key, client });
  return client;
}

function connectOptions(o: TlsOptions) {
  return { rejectUnauthorized: !o.insecure, ca: o.ca, servername: o.servername, timeout: o.backstop };
}

/**
 * Destroys a check's Client: after a failed or aborted request undici may open a spare
 * connection for it, which must not outlive the run.
 */
function discard(checkId: string): void {
  const d = clients.get(checkId);
  clients.delete(checkId);
  void d?.client.destroy().catch(() => {});
}

/** What a check's params always give: computed once per params object, not per run. */
interface Prepared {
  target: URL;
  /** The URL without credentials, for messages. */
  shown: string;
  /** Path and query, as sent. */
  path: string;
  /** user-agent, the configured headers (lower-cased) and Basic auth from the URL. */
  headers: Readonly<Record<string, string>>;
}

const prepared = new WeakMap<object, Prepared | null>();

function prepare(p: Static<typeof params>): Prepared | undefined {
  let r = prepared.get(p);
  if (r === undefined) {
    r = null;
    try {
      const target = joinUrl(p.url, p.path);
      const headers: Record<string, string> = { 'user-agent': 'readiness-exporter' };
      for (const [k, v] of Object.entries(p.headers ?? {})) headers[k.toLowerCase()] = v;
      if (target.username || target.password) {
        const user = decodeURIComponent(target.username);
        const pass = decodeURIComponent(target.password);
        headers.authorization ??= `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
      }
      r = { target, shown: safeUrl(target), path: `${target.pathname}${target.search}`, headers };
    } catch {
      // Not a usable URL: the run says so (validate() already did at load).
    }
    prepared.set(p, r);
  }
  return r ?? undefined;
}

/** Whether a body could be JSON at all: parsing every HTML page only to throw was a measurable cost. */
const JSON_START = /^\s*[[{"\dtfn-]/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const params = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Absolute http(s) URL. user:password in it is sent as Basic auth.' }),
    path: Type.Optional(Type.String({ description: 'Appended to the path of url (e.g. /health/ready); may carry a ?query.' })),
    method: Type.Union(
      METHODS.map((m) => Type.Literal(m)),
      { default: 'GET', description: 'HTTP method.' },
    ),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Request headers.' })),
    body: Type.Optional(Type.String({ description: 'Request body, sent as is.' })),
    json: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'Request body sent as JSON (content-type: application/json).' }),
    ),
    expectStatus: Type.Optional(
      Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
        minItems: 1,
        description: 'Statuses that pass (default: any 2xx). Any other status fails the check.',
      }),
    ),
    bearerTokenEnv: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
        description: 'Name of an environment variable holding a token, sent as Authorization: Bearer. Unset or empty: the check is unconfigured.',
      }),
    ),
    followRedirects: Type.Boolean({ default: false, description: 'Follow 3xx responses (Authorization and Cookie are dropped across origins).' }),
    maxRedirects: Type.Integer({ minimum: 1, maximum: 20, default: 5, description: 'Most redirects to follow.' }),
    insecure: Type.Boolean({ default: false, description: 'Skip certificate verification (expiry, chain, host name).' }),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'Path to a PEM file of CA certificates to trust instead of the system CAs.' })),
    servername: Type.Optional(Type.String({ minLength: 1, description: 'TLS SNI and certificate name (default: the URL host).' })),
    maxBodyBytes: Type.Integer({ minimum: 0, default: 1_048_576, description: 'Read at most this many body bytes (default 1 MiB).' }),
  },
  { additionalProperties: false },
);

/** The URL without user:password, for fields and messages. */
function safeUrl(u: URL): string {
  if (!u.username && !u.password) return u.href;
  const c = new URL(u.href);
  c.username = '';
  c.password = '';
  return c.href;
}

/** url + path, keeping url's own path prefix (`https://h/api` + `/health` = `https://h/api/health`). */
function joinUrl(url: string, path: string | undefined): URL {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`unsupported scheme ${u.protocol}`);
  if (path) {
    const q = path.indexOf('?');
    const p = q < 0 ? path : path.slice(0, q);
    u.pathname = u.pathname.replace(/\/+$/, '') + '/' + p.replace(/^\/+/, '');
    if (q >= 0) u.search = path.slice(q);
  }
  return u;
}

/** Set-Cookie values carry session secrets: keep names and attributes (Secure, HttpOnly) only. */
function redactCookie(v: string): string {
  return v.replace(/^([^=;]*)=[^;]*/, '$1=[redacted]');
}

/** Certificate verification failures as Node/OpenSSL name them. */
const CERT_ERROR = /CERT|SELF_SIGNED|ISSUER|UNABLE_TO_VERIFY|^ERR_TLS_|^ERR_SSL_/;
/** The peer answered a TLS ClientHello with something that is not TLS. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL']);

function classify(err: Error & { code?: string }, errors: typeof import('undici').errors): { reason: Reason; hint: string } {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') {
    return { reason: 'refused', hint: '' };
  }
  if (code === 'ENOTFOUND' || code.startsWith('EAI_')) return { reason: 'dns', hint: '' };
  if (NOT_TLS.has(code)) return { reason: 'protocol', hint: ' (the server does not speak TLS on this port)' };
  if (err instanceof errors.HTTPParserError || code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
    return { reason: 'protocol', hint: ' (the answer is not HTTP)' };
  }
  if (CERT_ERROR.test(code)) return { reason: 'tls', hint: '' };
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return { reason: 'timeout', hint: '' };
  }
  return { reason: 'error', hint: '' };
}

/** The body, at most `cap` bytes: read whole when its announced length fits, else streamed and cut. */
async function readBody(res: Dispatcher.ResponseData, cap: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  const length = Number(res.headers['content-length']);
  if (Number.isInteger(length) && length <= cap) {
    const bytes = Buffer.from(await res.body.arrayBuffer());
    if (bytes.length <= cap) return { bytes, truncated: false };
    return { bytes: bytes.subarray(0, cap), truncated: true };
  }
  return readCapped(res.body as AsyncIterable<Buffer>, cap);
}

/** Reads at most `cap` bytes of the body, then stops the transfer. */
async function readCapped(body: AsyncIterable<Buffer>, cap: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > cap) {
      chunks.push(chunk.subarray(0, cap - size));
      size = cap;
      // Leaving the loop destroys the stream, which aborts the rest of the download.
      return { bytes: Buffer.concat(chunks, size), truncated: true };
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return { bytes: Buffer.concat(chunks, size), truncated: false };
}

/** An error as one line: OpenSSL's messages span lines and carry source paths; its `reason` does not. */
function oneLine(err: Error & { reason?: unknown }): string {
  const text = typeof err.reason === 'string' && err.reason ? err.reason : err.message;
  return text.replace(/\s+/g, ' ').trim();
}

function describeStatus(statusCode: number): string {
  return `${statusCode}${statusCode === 401 || statusCode === 403 ? ' (credentials rejected)' : ''}`;
}

export default defineProbe({
  kind: 'http',
  description: 'One HTTP(S) request: status, response time, headers and body (parsed as JSON when it parses).',
  params,
  // url may carry user:password; headers an Authorization; bodies may carry credentials.
  secretParams: ['url', 'headers', 'body', 'json'],
  fields: {
    status: { type: 'number', description: 'HTTP status of the final response.' },
    duration_ms: { type: 'number', unit: 'ms', description: 'From sending the request until the whole (capped) body arrived, redirects included.' },
    body: { type: 'string', description: 'Response body as UTF-8, at most maxBodyBytes.' },
    body_truncated: { type: 'boolean', description: 'The body was longer than maxBodyBytes (json.* is then absent).' },
    'json.*': { type: 'any', description: 'The body parsed as JSON, when it parses: json.status, json.info.version, ...' },
    'header.*': { type: 'string', description: 'Response headers by lower-case name; repeated headers joined with ", ".' },
    redirects: { type: 'number', description: 'Redirects followed.' },
    url: { type: 'string', description: 'Final URL, without credentials.' },
  },

  requiredEnv: (p) => (p.bearerTokenEnv ? [p.bearerTokenEnv] : []),
  validate(p) {
    const problems: string[] = [];
    try {
      joinUrl(p.url, p.path);
    } catch {
      // Not echoed: the url may hold a password.
      problems.push('url (with path) is not an absolute http:// or https:// URL');
    }
    if (p.body !== undefined && p.json !== undefined) problems.push('set either body or json, not both');
    if (p.bearerTokenEnv && Object.keys(p.headers ?? {}).some((h) => h.toLowerCase() === 'authorization')) {
      problems.push('set either headers.Authorization or bearerTokenEnv, not both');
    }
    if (p.ca && p.insecure) problems.push('ca has no effect with insecure: true');
    if (p.ca && !existsSync(p.ca)) problems.push(`ca file ${p.ca} does not exist`);
    return problems;
  },

  load: undici,

  async run(p, ctx): Promise<Observation> {
    const { signal } = ctx;
    const prepared = prepare(p);
    if (!prepared) return { fields: {}, error: { reason: 'error', message: 'url (with path) is not an absolute http:// or https:// URL' } };
    const { target, shown } = prepared;
    const headers: Record<string, string> = { ...prepared.headers };
    if (p.bearerTokenEnv) {
      const token = ctx.env[p.bearerTokenEnv];
      if (!token) {
        // Same rule as an unset ${ENV} in a target: never measure without the credentials.
        return { fields: {}, error: { reason: 'unconfigured', message: `environment variable ${p.bearerTokenEnv} (bearerTokenEnv) is not set` } };
      }
      headers.authorization = `Bearer ${token}`;
    }
    let body = p.body;
    if (p.json !== undefined) {
      body = JSON.stringify(p.json);
      headers['content-type'] ??= 'application/json';
    }

    let ca: string | undefined;
    if (p.ca && !p.insecure) {
      try {
        ca = await readFile(p.ca, { encoding: 'utf8', signal });
      } catch (err) {
        if (signal.aborted) throw new ProbeError('timeout', `reading ca file ${p.ca} did not finish before the check timeout`);
        return { fields: {}, error: { reason: 'error', message: `cannot read ca file ${p.ca}: ${(err as Error).message}` } };
      }
    }

    // The signal is the timeout; undici's own timers are only a backstop.
    const { Agent, errors, interceptors } = await undici();
    const tls: TlsOptions = { insecure: p.insecure, ca, servername: p.servername, backstop: ctx.timeoutMs * 2 };
    // Redirects may lead to other origins: those runs get an Agent of their own, destroyed after.
    const agent = p.followRedirects ? new Agent({ connect: await leaseConnector(connectOptions(tls), () => ctx.stillOwner), headersTimeout: tls.backstop, bodyTimeout: tls.backstop }) : undefined;
    const dispatcher = agent ? agent.compose(interceptors.redirect({ maxRedirections: p.maxRedirects })) : await clientFor(ctx.checkId, target.origin, tls);
    if (ctx.stillOwner) owners.set(ctx.checkId, ctx.stillOwner);
    else owners.delete(ctx.checkId);

    const started = performance.now();
    try {
      // reset: Connection: close, so the next run measures a new connection and none is left open.
      // servername (SNI) is a request option undici reads though its types do not list it.
      const options = { origin: target.origin, path: prepared.path, method: p.method, headers, body, signal, servername: p.servername, reset: true };
      const res = await dispatcher.request(options as Dispatcher.RequestOptions);
      const { bytes, truncated } = await readBody(res, p.maxBodyBytes);
      const durationMs = performance.now() - started;

      const history = (res.context as { history?: URL[] } | undefined)?.history ?? [];
      const finalUrl = history.at(-1) ?? target;
      const text = bytes.toString('utf8');
      const fields: Record<string, unknown> = {
        status: res.statusCode,
        duration_ms: durationMs,
        body: text,
        body_truncated: truncated,
        redirects: Math.max(0, history.length - 1),
        url: safeUrl(finalUrl),
      };
      for (const [name, v] of Object.entries(res.headers)) {
        if (v === undefined) continue;
        const values = Array.isArray(v) ? v : [v];
        fields[`header.${name.toLowerCase()}`] = (name.toLowerCase() === 'set-cookie' ? values.map(redactCookie) : values).join(', ');
      }
      if (!truncated && JSON_START.test(text)) {
        try {
          fields.json = JSON.parse(text);
        } catch {
          // Not JSON: json.* conditions see a missing field.
        }
      }

      const seen = `${p.method} ${shown}`;
      const ok = p.expectStatus ? p.expectStatus.includes(res.statusCode) : res.statusCode >= 200 && res.statusCode < 300;
      if (ok) {
        const via = history.length > 1 ? ` after ${history.length - 1} redirect${history.length > 2 ? 's' : ''} to ${fields.url}` : '';
        return { value: durationMs, fields, message: `${seen} answered ${res.statusCode}${via} in ${durationMs.toFixed(1)} ms` };
      }
      const want = p.expectStatus ? `status ${p.expectStatus.join(' or ')}` : 'a 2xx status';
      let extra = '';
      const location = fields['header.location'];
      if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
        let to = location;
        try {
          to = safeUrl(new URL(location, finalUrl));
        } catch {
          // Unparseable Location: show it as sent.
        }
        extra = p.followRedirects
          ? ` (redirect to ${to} not followed: maxRedirects ${p.maxRedirects} reached)`
          : ` (redirect to ${to}; set followRedirects: true to follow it)`;
      }
      const reason: Reason =
        res.statusCode === 401 || res.statusCode === 403 ? 'auth' : res.statusCode === 429 ? 'rate-limited' : 'http-status';
      return {
        value: durationMs,
        fields,
        failure: { reason, message: `${seen}: expected ${want}, got ${describeStatus(res.statusCode)}${extra}` },
      };
    } catch (err) {
      if (!agent) discard(ctx.checkId);
      if (err instanceof LeaseLostError) throw err;
      if (signal.aborted) {
        throw new ProbeError('timeout', `${p.method} ${shown}: no complete response before the check timeout (${ctx.timeoutMs} ms)`);
      }
      const e = err as Error & { code?: string; reason?: unknown };
      if (e.code === 'UND_ERR_INVALID_ARG' && /redirect loop/i.test(e.message)) {
        return { fields: {}, failure: { reason: 'http-status', message: `${p.method} ${shown}: redirect loop` } };
      }
      const { reason, hint } = classify(e, errors);
      const said = oneLine(e);
      const code = e.code && !said.includes(e.code) ? ` (${e.code})` : '';
      return { fields: {}, error: { reason, message: `${p.method} ${shown}: ${said}${code}${hint}` } };
    } finally {
      owners.delete(ctx.checkId);
      await agent?.destroy();
    }
  },

  async close() {
    const all = [...clients.values()];
    clients.clear();
    await Promise.allSettled(all.map((d) => d.client.destroy()));
  },
});
