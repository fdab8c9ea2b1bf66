// Issue 12 item 2: a secret that reaches a probe never comes back out of the service, even
// when the target echoes everything it received. One echo target answers 500 with the
// request's URL, headers and body in its body (raw, URL-encoded and, for credentials, base64);
// one `readiness serve` at debug level runs checks that send a canary per secret: an http
// bearerTokenEnv, an http URL with user:password, a grafana tokenEnv and a grafana
// usernameEnv/passwordEnv pair. Each canary, raw, URL-encoded and base64 (the token and the
// Basic `user:password` pair), must appear on no surface: /checks, /checks/:id,
// /readiness?verbose=1, POST /checks/:id/run, /metrics, the service's log, and
// `readiness check --format json|table` (stdout and its debug log on stderr).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli, startServe } from '../helpers/cli.js';
import { faultSuite } from '../helpers/faults.js';
import { waitFor } from '../helpers/service.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-secrets-'));
const suite = faultSuite(t, 'secrets');

// Canaries: '/', '+' and '=' make the URL-encoded form differ from the raw one.
const BEARER = 'cnry-bearer-7f3a/q+z=';
const GRAFANA_TOKEN = 'cnry-grafana-tok-91/b+c';
const GRAFANA_USER = 'cnry-gf-user';
const GRAFANA_PW = 'cnry-gf-pw-55/k+m';
const URL_USER = 'cnry-url-user';
const URL_PW = 'cnry-url-pw-3x/y'; // in the URL as %2F
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Every form of every canary that must not leak, with a name for the failure message. */
const forbidden: [string, string][] = [];
for (const [name, v] of [
  ['bearer token', BEARER],
  ['grafana token', GRAFANA_TOKEN],
  ['grafana password', GRAFANA_PW],
  ['URL password', URL_PW],
] as const) {
  forbidden.push([`${name} raw`, v], [`${name} URL-encoded`, encodeURIComponent(v)], [`${name} base64`, b64(v)]);
}
forbidden.push(['URL user:password base64', b64(`${URL_USER}:${URL_PW}`)], ['grafana user:password base64', b64(`${GRAFANA_USER}:${GRAFANA_PW}`)]);

function leaks(text: string): string[] {
  return forbidden.filter(([, v]) => text.includes(v)).map(([name]) => name);
}

/** Everything the echo target received, to prove the canaries were really sent. */
let received = '';

function credentialForms(req: IncomingMessage): string[] {
  const auth = req.headers.authorization ?? '';
  const [scheme, cred = ''] = auth.split(' ');
  if (scheme === 'Basic') {
    const pair = Buffer.from(cred, 'base64').toString();
    return [cred, pair, encodeURIComponent(pair)];
  }
  return [cred, encodeURIComponent(cred), b64(cred)];
}

suite.fault('a target that echoes every secret it received: no surface, no log level shows one', 240_000, async (t) => {
  const echo = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      const seen = JSON.stringify({ auth: credentialForms(req), url: req.url, headers: req.headers, body });
      received += seen + '\n';
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: seen, echoed: encodeURIComponent(seen) }));
    });
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const port = (echo.address() as { port: number }).port;
  const base = `http://127.0.0.1:${port}`;

  const file = join(dir, 'secrets.yaml');
  const check = (id: string, probe: string, w: string, expect?: string) =>
    `  - id: ${id}\n    title: ${id}\n    section: verify\n    severity: high\n    phase: verify\n    probe: ${probe}\n    with: ${w}\n${expect ? `    expect: ${JSON.stringify([expect])}\n` : ''}`;
  writeFileSync(
    file,
    `apiVersion: readiness/v1\nchecklist: secrets\ndefaults: { interval: 1s, timeout: 900ms }\nchecks:\n` +
      check('bearer', 'http', `{ url: "${base}/bearer", bearerTokenEnv: CNRY_BEARER }`, 'body == "never"') +
      check('basic-url', 'http', `{ url: "http://${URL_USER}:${encodeURIComponent(URL_PW)}@127.0.0.1:${port}/basic" }`, 'body == "never"') +
      check('grafana-token', 'grafana', `{ url: "${base}/gf", tokenEnv: CNRY_GF_TOKEN, uids: [abc] }`) +
      check('grafana-basic', 'grafana', `{ url: "${base}/gfb", usernameEnv: CNRY_GF_USER, passwordEnv: CNRY_GF_PW, uids: [abc] }`),
  );
  const env = { CNRY_BEARER: BEARER, CNRY_GF_TOKEN: GRAFANA_TOKEN, CNRY_GF_USER: GRAFANA_USER, CNRY_GF_PW: GRAFANA_PW };
  const API_TOKEN = 'api-token-for-the-run-route';
  const svc = await startServe(t, ['-c', file], { ...env, READINESS_LOG_LEVEL: 'debug', READINESS_API_TOKEN: API_TOKEN, READINESS_DATA_DIR: join(dir, 'data') });

  const ids = ['bearer', 'basic-url', 'grafana-token', 'grafana-basic'];
  const checks = await waitFor(
    'every check to have failed against the echo target',
    async () => {
      const text = await (await fetch(`${svc.url}/checks`)).text();
      const body = JSON.parse(text) as unknown;
      const list = (Array.isArray(body) ? body : (body as { checks: unknown[] }).checks) as { id: string; state?: string; status?: { state?: string } }[];
      const done = ids.every((id) => list.some((c) => c.id === id && (c.state ?? c.status?.state) !== undefined && (c.state ?? c.status?.state) !== 'unknown' && (c.state ?? c.status?.state) !== 'pending'));
      return done ? text : undefined;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );

  // Precondition: every canary really reached the target, in the form a probe sends it.
  for (const [name, v] of [
    ['bearer token', `Bearer ${BEARER}`],
    ['URL Basic pair', `Basic ${b64(`${URL_USER}:${URL_PW}`)}`],
    ['grafana token', `Bearer ${GRAFANA_TOKEN}`],
    ['grafana Basic pair', `Basic ${b64(`${GRAFANA_USER}:${GRAFANA_PW}`)}`],
  ] as const) {
    t.ok(received.includes(JSON.stringify(v).slice(1, -1)), `the echo target received the ${name}`);
  }
  t.ok(leaks(received).length >= forbidden.length - 2, 'the echo target echoes every forbidden form but the base64 of the two Basic passwords alone: the test can see a leak');

  const surfaces: [string, string][] = [['/checks', checks]];
  for (const id of ids) surfaces.push([`/checks/${id}`, await (await fetch(`${svc.url}/checks/${id}`)).text()]);
  surfaces.push(['/readiness?verbose=1', await (await fetch(`${svc.url}/readiness?verbose=1`)).text()]);
  for (const id of ids) {
    const res = await fetch(`${svc.url}/checks/${id}/run`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}` } });
    const text = await res.text();
    t.equal(res.status, 200, `POST /checks/${id}/run answers 200: ${text.slice(0, 200)}`);
    surfaces.push([`POST /checks/${id}/run`, text]);
  }
  surfaces.push(['/metrics', await (await fetch(`${svc.url}/metrics`)).text()]);
  t.match(surfaces.find(([n]) => n === 'POST /checks/bearer/run')?.[1], /never/, 'the run route shows the failing condition');

  for (const format of ['json', 'table']) {
    const r = await runCli(['check', '-c', file, '--format', format], { env: { ...env, READINESS_LOG_LEVEL: 'debug', READINESS_DATA_DIR: join(dir, 'check-data') } });
    t.ok(r.stdout.includes('bearer'), `check --format ${format} printed the checks`);
    surfaces.push([`check --format ${format} stdout`, r.stdout], [`check --format ${format} stderr (debug log)`, r.stderr]);
  }
  t.ok(/"level":20|debug/.test(svc.output()), 'the service logs at debug level');
  surfaces.push(['the service log (debug)', svc.output()]);

  for (const [name, text] of surfaces) t.same(leaks(text), [], `${name} shows no secret`);
  svc.child.kill('SIGTERM');
  await svc.exited;
});
