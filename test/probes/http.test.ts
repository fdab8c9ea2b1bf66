// http probe against real HTTP and HTTPS listeners on 127.0.0.1.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import httpProbe from '../../src/probes/http.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeTestPki } from '../helpers/certs.js';
import { makeCtx } from '../helpers/ctx.js';
import { closedPort, listenGarbage, listenHanging, listenHttp, type HttpListener, type Listener } from '../helpers/listeners.js';

// Params as the checklist loader builds them: ajv with type coercion and defaults.
const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true }).compile(httpProbe.params);
type Params = Static<typeof httpProbe.params>;
function params(input: Record<string, unknown>): Params {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Params;
}

const TOKEN = 's3cr3t-t0ken-value';
const PASSWORD = 'pa55-w0rd-value';
const HEALTH = { status: 'ok', info: { version: '1.2.3' } };

const listeners: Listener[] = [];
t.teardown(() => Promise.all(listeners.map((l) => l.close())));
async function track<L extends Listener>(l: Promise<L>): Promise<L> {
  const listener = await l;
  listeners.push(listener);
  return listener;
}

/** What the other-origin server saw, to check that credentials do not follow redirects there. */
const otherSaw: { authorization?: string }[] = [];
const other = await track(
  listenHttp((req, res) => {
    otherSaw.push({ authorization: req.headers.authorization });
    res.end('other origin');
  }),
);

function routes(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const redirect = (to: string) => {
    res.writeHead(302, { location: to });
    res.end();
  };
  const hop = /^\/hops\/(\d+)$/.exec(url.pathname);
  if (hop) return redirect(Number(hop[1]) > 1 ? `/hops/${Number(hop[1]) - 1}` : '/api/health');

  switch (url.pathname) {
    case '/api/health':
      res.setHeader('cache-control', 'no-store');
      res.setHeader('x-multi', ['a', 'b']);
      res.setHeader('set-cookie', ['session=abcdef123; Path=/; Secure; HttpOnly']);
      return json(200, HEALTH);
    case '/api/down':
      res.writeHead(503, { 'content-type': 'text/plain' });
      return void res.end('maintenance');
    case '/api/secure':
      return req.headers.authorization === `Bearer ${TOKEN}` ? json(200, { user: 'probe' }) : json(401, { error: 'unauthorized' });
    case '/api/basic':
      return req.headers.authorization === `Basic ${Buffer.from(`probe:${PASSWORD}`).toString('base64')}`
        ? json(200, { user: 'probe' })
        : json(401, {});
    case '/api/forbidden':
      return json(403, {});
    case '/api/busy':
      return json(429, {});
    case '/api/text':
      return void res.end('plain text, not json');
    case '/api/query':
      return json(200, { q: url.searchParams.get('q') });
    case '/api/big':
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return void res.end(Buffer.alloc(2 * 1024 * 1024, 'x'));
    case '/api/stall':
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.write('partial body, then nothing');
    case '/api/echo': {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => json(200, { method: req.method, contentType: req.headers['content-type'] ?? null, body: Buffer.concat(chunks).toString() }));
      return;
    }
    case '/loop':
      return redirect('/loop');
    case '/elsewhere':
      return redirect(`${other.url}/landing`);
    default:
      return json(404, {});
  }
}

const api = await track(listenHttp(routes));
const ctx = () => makeCtx({ env: { API_TOKEN: TOKEN } });
const run = (p: Record<string, unknown>, c = ctx()) => httpProbe.run(params(p), c);

interface Case {
  name: string;
  with: Record<string, unknown>;
  status: number;
  failure?: { reason: string; message: RegExp };
  fields?: Record<string, unknown>;
  /** Pattern of the pass message. */
  message?: RegExp;
}

const cases: Case[] = [
  {
    name: 'healthy JSON endpoint: path joined to url, fields filled',
    with: { url: `${api.url}/api`, path: '/health' },
    status: 200,
    fields: {
      json: HEALTH,
      body: JSON.stringify(HEALTH),
      body_truncated: false,
      redirects: 0,
      url: `${api.url}/api/health`,
      'header.content-type': 'application/json',
      'header.cache-control': 'no-store',
      'header.x-multi': 'a, b',
      'header.set-cookie': 'session=[redacted]; Path=/; Secure; HttpOnly',
    },
    message: /^GET http:\/\/127\.0\.0\.1:\d+\/api\/health answered 200 in [\d.]+ ms$/,
  },
  {
    name: 'unexpected 503: failure http-status naming what was seen',
    with: { url: api.url, path: '/api/down' },
    status: 503,
    failure: { reason: 'http-status', message: /^GET http:\/\/127\.0\.0\.1:\d+\/api\/down: expected a 2xx status, got 503$/ },
    fields: { body: 'maintenance', json: undefined },
  },
  { name: 'expected 503 passes', with: { url: api.url, path: '/api/down', expectStatus: ['503'] }, status: 503 },
  {
    name: 'expectStatus mismatch lists the expected statuses',
    with: { url: api.url, path: '/api/health', expectStatus: [204, 304] },
    status: 200,
    failure: { reason: 'http-status', message: /expected status 204 or 304, got 200$/ },
  },
  {
    name: '401 is an auth failure',
    with: { url: api.url, path: '/api/secure' },
    status: 401,
    failure: { reason: 'auth', message: /expected a 2xx status, got 401 \(credentials rejected\)$/ },
  },
  { name: '403 is an auth failure', with: { url: api.url, path: '/api/forbidden' }, status: 403, failure: { reason: 'auth', message: /got 403/ } },
  { name: '401 passes when expected', with: { url: api.url, path: '/api/secure', expectStatus: [401] }, status: 401 },
  { name: '429 is rate-limited', with: { url: api.url, path: '/api/busy' }, status: 429, failure: { reason: 'rate-limited', message: /got 429/ } },
  { name: 'bearer token from the environment', with: { url: api.url, path: '/api/secure', bearerTokenEnv: 'API_TOKEN' }, status: 200, fields: { json: { user: 'probe' } } },
  { name: 'user:password in the url becomes Basic auth', with: { url: `http://probe:${PASSWORD}@127.0.0.1:${api.port}/api/basic` }, status: 200, fields: { url: `${api.url}/api/basic` } },
  { name: 'path may carry a query', with: { url: api.url, path: 'api/query?q=ready' }, status: 200, fields: { json: { q: 'ready' } } },
  {
    name: 'json param is sent as JSON',
    with: { url: api.url, path: '/api/echo', method: 'POST', json: { ping: 1 } },
    status: 200,
    fields: { json: { method: 'POST', contentType: 'application/json', body: '{"ping":1}' } },
  },
  {
    name: 'body param is sent as is with the given headers',
    with: { url: api.url, path: '/api/echo', method: 'PUT', body: 'a=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
    status: 200,
    fields: { json: { method: 'PUT', contentType: 'application/x-www-form-urlencoded', body: 'a=1' } },
  },
  { name: 'a body that is not JSON leaves json unset', with: { url: api.url, path: '/api/text' }, status: 200, fields: { body: 'plain text, not json', json: undefined } },
  {
    name: 'maxBodyBytes caps the body',
    with: { url: api.url, path: '/api/big', maxBodyBytes: '1000' },
    status: 200,
    fields: { body: 'x'.repeat(1000), body_truncated: true },
  },
  {
    name: 'redirect not followed by default',
    with: { url: api.url, path: '/hops/2' },
    status: 302,
    failure: { reason: 'http-status', message: /got 302 \(redirect to http:\/\/127\.0\.0\.1:\d+\/hops\/1; set followRedirects: true to follow it\)$/ },
    fields: { redirects: 0, 'header.location': '/hops/1' },
  },
  {
    name: 'redirects followed: count and final url',
    with: { url: api.url, path: '/hops/3', followRedirects: 'true' },
    status: 200,
    fields: { redirects: 3, url: `${api.url}/api/health`, json: HEALTH },
    message: /^GET http:\/\/127\.0\.0\.1:\d+\/hops\/3 answered 200 after 3 redirects to http:\/\/127\.0\.0\.1:\d+\/api\/health in [\d.]+ ms$/,
  },
  {
    name: 'more redirects than maxRedirects',
    with: { url: api.url, path: '/hops/3', followRedirects: true, maxRedirects: 2 },
    status: 302,
    failure: { reason: 'http-status', message: /got 302 \(redirect to http:\/\/127\.0\.0\.1:\d+\/api\/health not followed: maxRedirects 2 reached\)$/ },
    fields: { redirects: 2 },
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const obs = await run(c.with);
    t.equal(obs.error, undefined, 'measured');
    t.equal(obs.fields.status, c.status, 'status');
    t.type(obs.fields.duration_ms, 'number');
    t.equal(obs.value, obs.fields.duration_ms, 'value is duration_ms');
    t.equal(obs.failure?.reason, c.failure?.reason, 'failure reason');
    if (c.failure) t.match(obs.failure?.message, c.failure.message, 'failure message');
    for (const [k, v] of Object.entries(c.fields ?? {})) t.same(obs.fields[k], v, `fields[${k}]`);
    if (c.message) t.match(obs.message, c.message, 'message');
  });
}

t.test('credentials never appear in the observation', async (t) => {
  const runs: [string, Record<string, unknown>, ReturnType<typeof makeCtx>][] = [
    ['bearer accepted', { url: api.url, path: '/api/secure', bearerTokenEnv: 'API_TOKEN' }, ctx()],
    ['bearer rejected', { url: api.url, path: '/api/secure', bearerTokenEnv: 'API_TOKEN' }, makeCtx({ env: { API_TOKEN: `${TOKEN}-wrong` } })],
    ['bearer to a closed port', { url: `http://127.0.0.1:${await closedPort()}/`, bearerTokenEnv: 'API_TOKEN' }, ctx()],
    ['basic auth in url', { url: `http://probe:${PASSWORD}@127.0.0.1:${api.port}/api/basic` }, ctx()],
    ['basic auth, wrong path', { url: `http://probe:${PASSWORD}@127.0.0.1:${api.port}/api/down` }, ctx()],
    ['explicit Authorization header', { url: api.url, path: '/api/secure', headers: { Authorization: `Bearer ${TOKEN}` } }, ctx()],
  ];
  for (const [name, p, c] of runs) {
    const text = JSON.stringify(await httpProbe.run(params(p), c));
    t.notOk(text.includes(TOKEN), `${name}: no token`);
    t.notOk(text.includes(PASSWORD), `${name}: no password`);
    t.notOk(text.includes(Buffer.from(`probe:${PASSWORD}`).toString('base64')), `${name}: no encoded password`);
  }
});

t.test('credentials are dropped on a redirect to another origin', async (t) => {
  otherSaw.length = 0;
  const obs = await run({ url: api.url, path: '/elsewhere', bearerTokenEnv: 'API_TOKEN', followRedirects: true });
  t.equal(obs.fields.status, 200);
  t.equal(obs.fields.url, `${other.url}/landing`);
  t.equal(obs.fields.body, 'other origin');
  t.same(otherSaw, [{ authorization: undefined }]);
});

t.test('missing bearer token env var: unconfigured, nothing sent', async (t) => {
  for (const env of [{}, { API_TOKEN: '' }]) {
    const obs = await run({ url: api.url, path: '/api/secure', bearerTokenEnv: 'API_TOKEN' }, makeCtx({ env }));
    t.same(obs, { fields: {}, error: { reason: 'unconfigured', message: 'environment variable API_TOKEN (bearerTokenEnv) is not set' } });
  }
});

t.test('a redirect loop is a failure', async (t) => {
  const obs = await run({ url: api.url, path: '/loop', followRedirects: true });
  t.equal(obs.failure?.reason, 'http-status');
  t.match(obs.failure?.message, /redirect loop/);
});

t.test('HTTPS: verification against ca, insecure, servername', async (t) => {
  const pki = makeTestPki();
  const dir = mkdtempSync(join(tmpdir(), 'http-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, pki.ca.cert);
  const https = async (c: { cert: string; key: string }): Promise<HttpListener> => track(listenHttp((_req, res) => res.end('secure'), c));
  const valid = await https(pki.valid);
  const expired = await https(pki.expired);
  const wrongHost = await https(pki.wrongHost);
  const selfSigned = await https(pki.selfSigned);

  const table: { name: string; with: Record<string, unknown>; status?: number; error?: RegExp }[] = [
    { name: 'valid cert, trusted ca', with: { url: valid.url, ca: caFile }, status: 200 },
    { name: 'valid cert, by host name', with: { url: `https://localhost:${valid.port}/`, ca: caFile }, status: 200 },
    { name: 'valid cert, ca not given', with: { url: valid.url }, error: /UNABLE_TO_VERIFY_LEAF_SIGNATURE/ },
    { name: 'expired cert', with: { url: expired.url, ca: caFile }, error: /certificate has expired \(CERT_HAS_EXPIRED\)/ },
    { name: 'expired cert, insecure', with: { url: expired.url, insecure: true }, status: 200 },
    { name: 'self-signed', with: { url: selfSigned.url }, error: /DEPTH_ZERO_SELF_SIGNED_CERT/ },
    { name: 'self-signed, insecure', with: { url: selfSigned.url, insecure: true }, status: 200 },
    { name: 'wrong host name', with: { url: wrongHost.url, ca: caFile }, error: /ERR_TLS_CERT_ALTNAME_INVALID/ },
    { name: 'wrong host name, matching servername', with: { url: wrongHost.url, ca: caFile, servername: 'wrong.example' }, status: 200 },
    { name: 'valid cert, other servername', with: { url: valid.url, ca: caFile, servername: 'wrong.example' }, error: /ERR_TLS_CERT_ALTNAME_INVALID/ },
    { name: 'https to a plain HTTP port', with: { url: api.url.replace('http:', 'https:') }, error: /does not speak TLS/ },
  ];
  for (const row of table) {
    const obs = await run(row.with);
    if (row.status) {
      t.equal(obs.error, undefined, `${row.name}: measured`);
      t.equal(obs.fields.status, row.status, `${row.name}: status`);
      t.equal(obs.fields.body, 'secure', `${row.name}: body`);
    } else {
      t.equal(obs.error?.reason, row.name.includes('plain HTTP') ? 'protocol' : 'tls', `${row.name}: reason`);
      t.match(obs.error?.message, row.error, `${row.name}: message`);
      t.notMatch(obs.error?.message, /\n/, `${row.name}: one line`);
    }
  }
});

t.test('could not measure: garbage, refused, unresolvable', async (t) => {
  const garbage = await track(listenGarbage('SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02'));
  const table = [
    { name: 'garbage bytes', url: `http://127.0.0.1:${garbage.port}/`, reason: 'protocol', message: /does not match the HTTP\/1\.1 protocol.*\(the answer is not HTTP\)$/ },
    { name: 'closed port', url: `http://127.0.0.1:${await closedPort()}/`, reason: 'refused', message: /connect ECONNREFUSED 127\.0\.0\.1:\d+$/ },
    { name: 'unresolvable name', url: 'http://nonexistent.invalid/health', reason: 'dns', message: /^GET http:\/\/nonexistent\.invalid\/health: .*nonexistent\.invalid/ },
  ];
  for (const row of table) {
    const obs = await run({ url: row.url });
    t.equal(obs.error?.reason, row.reason, `${row.name}: reason`);
    t.match(obs.error?.message, row.message, `${row.name}: message`);
    t.same(obs.fields, {}, `${row.name}: no fields`);
  }
});

t.test('timeouts: the check signal aborts a hanging request', async (t) => {
  const hang = await track(listenHanging());
  const table = [
    { name: 'no response at all', url: `http://127.0.0.1:${hang.port}/` },
    { name: 'headers, then the body stalls', url: `${api.url}/api/stall` },
  ];
  for (const row of table) {
    const started = Date.now();
    const err = await run({ url: row.url }, makeCtx({ timeoutMs: 200 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof ProbeError, `${row.name}: a ProbeError`);
    t.equal((err as ProbeError).reason, 'timeout', `${row.name}: reason`);
    t.match((err as ProbeError).message, /no complete response before the check timeout \(200 ms\)$/, `${row.name}: message`);
    t.ok(Date.now() - started < 3000, `${row.name}: settles promptly`);
  }
});

t.test('validate: contradictions caught at load', async (t) => {
  const v = (p: Record<string, unknown>) => httpProbe.validate?.(params(p));
  t.same(v({ url: 'https://api.example.com', path: '/health' }), []);
  t.same(v({ url: 'ftp://user:hunter2@files.example.com' }), ['url (with path) is not an absolute http:// or https:// URL']);
  t.same(v({ url: 'https://api.example.com', body: 'x', json: { a: 1 } }), ['set either body or json, not both']);
  t.same(v({ url: 'https://api.example.com', bearerTokenEnv: 'T', headers: { Authorization: 'x' } }), [
    'set either headers.Authorization or bearerTokenEnv, not both',
  ]);
  t.same(v({ url: 'https://api.example.com', ca: '/nonexistent/ca.pem' }), ['ca file /nonexistent/ca.pem does not exist']);
  t.throws(() => params({ url: 'https://api.example.com', timeout: '5s' }), /additionalProperties/);
  t.throws(() => params({ url: 'https://api.example.com', method: 'FETCH' }), /anyOf|const/);
  t.same(params({ url: 'https://x' }), { url: 'https://x', method: 'GET', followRedirects: false, maxRedirects: 5, insecure: false, maxBodyBytes: 1048576 });
  t.same(httpProbe.secretParams, ['url', 'headers', 'body', 'json']);
});
