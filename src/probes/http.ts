// http: one HTTP(S) request, optionally following redirects; reports status, timing,
// headers and the (capped) body, parsed as JSON when it parses. An unexpected status fails
// the check by itself; conditions then refine it (`json.status == "ok"`, `duration_ms < 500ms`).
// Each run uses its own connection pool, closed at the end: every run measures a fresh
// connection (DNS, TCP, TLS included) and an aborted run leaves no socket behind.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Type } from '@sinclair/typebox';
import type { Dispatcher } from 'undici';
import type { Reason } from '../reasons.js';
import { lazy } from './lazy.js';
import { defineProbe, ProbeError, type Observation } from './types.js';

const undici = lazy(() => import('undici'));

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
    let target: URL;
    try {
      target = joinUrl(p.url, p.path);
    } catch {
      return { fields: {}, error: { reason: 'error', message: 'url (with path) is not an absolute http:// or https:// URL' } };
    }
    const shown = safeUrl(target);

    const headers: Record<string, string> = { 'user-agent': 'readiness-exporter' };
    for (const [k, v] of Object.entries(p.headers ?? {})) headers[k.toLowerCase()] = v;
    if (target.username || target.password) {
      const user = decodeURIComponent(target.username);
      const pass = decodeURIComponent(target.password);
      headers.authorization ??= `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
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
    const { Agent, errors, interceptors, request } = await undici();
    const backstop = ctx.timeoutMs * 2;
    const agent = new Agent({
      connect: { rejectUnauthorized: !p.insecure, ca, servername: p.servername, timeout: backstop },
      headersTimeout: backstop,
      bodyTimeout: backstop,
    });
    const dispatcher: Dispatcher = p.followRedirects ? agent.compose(interceptors.redirect({ maxRedirections: p.maxRedirects })) : agent;
    const requestUrl = new URL(target.href);
    requestUrl.username = '';
    requestUrl.password = '';

    const started = performance.now();
    try {
      const options = { method: p.method, headers, body, signal, dispatcher, servername: p.servername };
      const res = await request(requestUrl, options);
      const { bytes, truncated } = await readCapped(res.body as AsyncIterable<Buffer>, p.maxBodyBytes);
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
      if (!truncated && text.trim() !== '') {
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
      await agent.destroy();
    }
  },
});
