// Issue 12 item 2: a secret that reaches a probe never comes back out of the service, even
// when the target echoes everything it received, for every probe kind that takes one.
//
// 1. The secret inputs are enumerated from the kinds' parameter schemas (src/probes/*): every
//    secret param (kind.secretParams), every param naming an environment variable (a key
//    ending in `Env`, at any depth, or a list of variable names such as exec's `env`). Each
//    must have a canary planted below: a parameter added later without one fails this test.
//    A param whose name looks like a credential must be one of those or be listed in
//    NOT_SECRET with the reason.
// 2. One `readiness serve` (log level trace) runs one check per secret input against echo
//    targets that send back everything they received, in every encoding (raw, URL-encoded,
//    base64, and the Basic `user:password` pair): one HTTP server speaking each API's error
//    shape (JSON, OAuth, AWS XML, a Kubernetes Status) and one PostgreSQL wire-protocol server
//    that asks for a cleartext password and quotes it in its error. Each canary must be seen
//    by a target (it really was sent), and no form of any canary may appear on any surface:
//    /checks, /checks/:id (JSON and HTML), /readiness?verbose=1, POST /checks/:id/run,
//    /metrics, the status page (/ and /ui/state), `readiness check --format json|table`
//    (stdout, and its trace log on stderr) and the service's log. Nor may a part of one be
//    left where a text was cut short (`body = "...Y25yeT..."`). SECRETS_DEBUG=1 prints each
//    check's message. The log hook itself is pinned by secrets-log.test.ts.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import t from 'tap';
import { probeKinds } from '../../src/probes/index.js';
import { runCli, startServe } from '../helpers/cli.js';
import { faultSuite } from '../helpers/faults.js';
import { waitFor } from '../helpers/service.js';

const dir = mkdtempSync(join(tmpdir(), 'readiness-faults-secrets-'));
const suite = faultSuite(t, 'secrets');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const b64url = (s: string) => Buffer.from(s).toString('base64url');

// ---------------------------------------------------------------------------------------------
// Canaries: '/' and '+' make the URL-encoded and form-encoded forms differ from the raw one.
// (A canary is a value planted where a secret goes; the test fails if it comes back out.)

interface Canary {
  name: string;
  value: string;
  /** Never sent to a target by design (an AWS secret key only signs; a GCP private key only signs a JWT). */
  neverSent?: boolean;
}
const canaries: Canary[] = [];
function canary(name: string, o: { neverSent?: boolean } = {}): string {
  // A distinct head, so that the head of one canary's base64 is not another's.
  const head = ((canaries.length + 1) * 104_729).toString(36);
  const value = `${head}-${name.replace(/[^a-z0-9]/gi, '').slice(0, 12)}/k+cnry`;
  canaries.push({ name, value, ...o });
  return value;
}
/** `user:password` pairs a probe sends as Basic credentials. */
const basicPairs: { name: string; pair: string }[] = [];

/** Every form of every canary that must not leak, named for the failure message. */
function forbiddenForms(): [string, string][] {
  const out: [string, string][] = [];
  for (const c of canaries) {
    const forms: [string, string][] = [
      ['raw', c.value],
      ['URL-encoded', encodeURIComponent(c.value)],
      ['form-encoded', new URLSearchParams({ x: c.value }).toString().slice(2)],
      ['JSON-escaped', JSON.stringify(c.value).slice(1, -1)],
      ['base64', b64(c.value)],
      ['base64url', b64url(c.value)],
    ];
    for (const [form, v] of forms) out.push([`${c.name} ${form}`, v]);
  }
  for (const p of basicPairs) out.push([`${p.name} user:password base64`, b64(p.pair)]);
  return out;
}

/**
 * Parts of a form left at a cut: a text shortened before it was masked (a condition quotes 77
 * characters of a body and `...`) keeps the head of a secret that straddled the cut, or its
 * tail after an ellipsis. Six characters or more count (the service hides as many).
 */
function cutLeaks(text: string, forbidden: [string, string][]): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\.\.\.|\u2026/g)) {
    const before = m.index;
    const after = m.index + m[0].length;
    for (const [name, v] of forbidden) {
      for (let k = v.length - 1; k >= 6; k--) {
        if (text.startsWith(v.slice(0, k), before - k)) {
          out.push(`${name}: ${k} characters before a cut`);
          break;
        }
      }
      for (let k = v.length - 1; k >= 6; k--) {
        if (text.startsWith(v.slice(v.length - k), after)) {
          out.push(`${name}: ${k} characters after a cut`);
          break;
        }
      }
    }
  }
  return [...new Set(out)];
}

// ---------------------------------------------------------------------------------------------
// 1. Which params take a secret, from the schemas.

/** Params whose name looks like a credential but that hold none, and why. */
const NOT_SECRET: Record<string, string> = {
  'credential.keyFile': 'a path; the key it names only signs the JWT sent (its contents are masked as the kind declares: src/probes/credential.ts secrets)',
  'postgres.sslkey': 'a path to the client key file, read by the driver, never sent',
  'postgres.sslcert': 'a path to a certificate (public)',
  's3.credentials': "'env' or 'default': which credential source, not a credential",
  'report.s3.credentials': "'env' or 'default': which credential source, not a credential",
  'flow.cookies': 'a boolean: whether to send cookies back',
  'flow.steps[].headers': 'request headers; credentials reach them as {{name}} from `secrets`, masked as secrets',
  'flow.steps[].capture': 'names of values to capture (captured values are masked by the flow kind at run time)',
  'postgres.foreignKeys': 'a boolean: whether to measure foreign keys without an index',
  'kubernetes.annotations': 'annotation names to require on objects',
  'kubernetes.require': 'names of things required of objects',
};
const LOOKS_SECRET = /token|secret|passw|key|auth|cred|header|cookie|bearer|capture/i;

interface Input {
  /** kind.param path, e.g. `http.bearerTokenEnv`, `report.s3.accessKeyIdEnv`. */
  id: string;
  why: string;
}

function isEnvNameSchema(s: TSchema | undefined): boolean {
  return typeof s?.pattern === 'string' && /^\^\[A-Za-z_\]\[A-Za-z0-9_\]\*\$$/.test(s.pattern);
}

/** Every secret-bearing input of every kind, and every credential-looking name left unclassified. */
function secretInputs(): { inputs: Input[]; unclassified: string[] } {
  const inputs: Input[] = [];
  const unclassified: string[] = [];
  for (const [name, kind] of probeKinds) {
    const walk = (s: TSchema | undefined, path: string, top: boolean) => {
      if (!s || typeof s !== 'object') return;
      for (const k of ['anyOf', 'oneOf', 'allOf'] as const) for (const x of (s[k] as TSchema[] | undefined) ?? []) walk(x, path, top);
      for (const [key, sub] of Object.entries((s.properties ?? {}) as Record<string, TSchema>)) {
        const id = `${name}.${path}${key}`;
        if (top && kind.secretParams?.includes(key)) inputs.push({ id, why: 'secretParams' });
        else if (key.endsWith('Env')) inputs.push({ id, why: 'names an environment variable (*Env)' });
        else if (sub.type === 'array' && isEnvNameSchema(sub.items as TSchema)) inputs.push({ id, why: 'a list of environment variable names' });
        else if (LOOKS_SECRET.test(key) && NOT_SECRET[id] === undefined) unclassified.push(id);
        walk(sub, `${path}${key}.`, false);
        if (sub.type === 'array') walk(sub.items as TSchema, `${path}${key}[].`, false);
      }
    };
    walk(kind.params, '', true);
  }
  return { inputs, unclassified };
}

// ---------------------------------------------------------------------------------------------
// 2. The echo targets.

/** Canary names each target saw, in whatever form a probe sent them. */
const reached = new Set<string>();

/** The echo of one request: every canary form found in it, first (so a message cut short keeps them). */
function echoOf(text: string): string {
  // Decode what a probe encodes: Basic credentials, URL- and form-encoding.
  const expanded = [text];
  for (const m of text.matchAll(/Basic ([A-Za-z0-9+/=]+)/g)) expanded.push(Buffer.from(m[1]!, 'base64').toString());
  for (const s of [...expanded]) {
    try {
      expanded.push(decodeURIComponent(s.replace(/\+/g, ' ')), decodeURIComponent(s));
    } catch {
      // not URL-encoded
    }
  }
  const all = expanded.join('\n');
  const forms: string[] = [];
  for (const c of canaries) {
    if (!all.includes(c.value)) continue;
    reached.add(c.name);
    forms.push(c.value, encodeURIComponent(c.value), b64(c.value), b64url(c.value));
  }
  for (const m of text.matchAll(/Basic ([A-Za-z0-9+/=]+)/g)) forms.push(m[1]!);
  return `ECHO[${forms.join(' ')}] ${text.slice(0, 2000)}`;
}

function httpEcho(req: IncomingMessage, res: ServerResponse, body: string): void {
  const text = `${req.method} ${req.url}\n${Object.entries(req.headers)
    .map(([k, v]) => `${k}: ${String(v)}`)
    .join('\n')}\n\n${body}`;
  const echo = echoOf(text);
  const url = req.url ?? '/';
  const auth = String(req.headers.authorization ?? '');
  if (auth.startsWith('AWS4-HMAC-SHA256')) {
    // AWS: STS (query protocol) and S3 (REST-XML) error documents.
    const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    res.writeHead(403, { 'content-type': 'text/xml', 'x-amzn-requestid': 'echo' });
    if (/\/sts\/aws4_request/.test(auth)) {
      res.end(`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>${xml(echo)}</Message></Error><RequestId>echo</RequestId></ErrorResponse>`);
    } else {
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${xml(echo)}</Message><RequestId>echo</RequestId></Error>`);
    }
    return;
  }
  if (url.startsWith('/k8s')) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: echo, reason: 'Unauthorized', code: 401 }));
    return;
  }
  if (url.startsWith('/oauth')) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'invalid_client', error_description: echo }));
    return;
  }
  const status = /\/s(\d{3})\//.exec(url)?.[1];
  res.writeHead(status ? Number(status) : 500, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ message: echo, error: { message: echo, type: echo, code: echo }, errors: [{ message: echo }], status: 'error', errorType: 'echo' }));
}

/** A PostgreSQL wire-protocol server that asks for a cleartext password and quotes it in its error. */
function pgEcho(sock: Socket): void {
  let buf = Buffer.alloc(0);
  let started = false;
  sock.on('error', () => {});
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (!started) {
        if (buf.length < 8) return;
        const len = buf.readInt32BE(0);
        if (buf.length < len) return;
        const code = buf.readInt32BE(4);
        buf = buf.subarray(len);
        if (code === 80877103) {
          sock.write('N'); // no TLS
          continue;
        }
        started = true;
        const auth = Buffer.alloc(9);
        auth.write('R', 0);
        auth.writeInt32BE(8, 1);
        auth.writeInt32BE(3, 5); // AuthenticationCleartextPassword
        sock.write(auth);
        continue;
      }
      if (buf.length < 5) return;
      const len = buf.readInt32BE(1);
      if (buf.length < len + 1) return;
      const type = String.fromCharCode(buf[0]!);
      const payload = buf.subarray(5, len + 1).toString().replace(/\0+$/, '');
      buf = buf.subarray(len + 1);
      if (type !== 'p') continue;
      const fields = ['SFATAL', 'VFATAL', 'C28P01', `Mpassword authentication failed: ${echoOf(`password ${payload}`)}`];
      const body = Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`)), Buffer.from([0])]);
      const head = Buffer.alloc(5);
      head.write('E', 0);
      head.writeInt32BE(body.length + 4, 1);
      sock.end(Buffer.concat([head, body]));
      return;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The checklist: one check per secret input (or a few inputs per check), each naming what it covers.

interface Planted {
  id: string;
  kind: string;
  /** The kind.param inputs this check plants a canary in. */
  covers: string[];
  with: Record<string, unknown>;
  expect?: string[];
  /** The target's answer is not expected in the check's message (the kind shows no answer text). */
  quiet?: boolean;
}

function plan(base: string, pgPort: number, env: Record<string, string>): Planted[] {
  const e = (name: string, o: { neverSent?: boolean; as?: string } = {}) => {
    const envName = o.as ?? `CNRY_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
    env[envName] = canary(name, o);
    return envName;
  };
  const lit = (name: string) => canary(name);
  const pair = (name: string, user: string, pw: string) => basicPairs.push({ name, pair: `${user}:${pw}` });
  const checks: Planted[] = [];

  // http: a bearer token, headers and a body; a URL with user:password and a JSON body.
  checks.push({
    id: 'http-bearer',
    kind: 'http',
    covers: ['http.bearerTokenEnv', 'http.headers', 'http.body'],
    with: { url: `${base}/http/a`, method: 'POST', expectStatus: [500], bearerTokenEnv: e('http bearer'), headers: { 'X-Api-Key': lit('http header') }, body: lit('http body') },
    expect: ['body == "never"'],
  });
  const urlPw = lit('http url password');
  pair('http url', 'cnry-user', urlPw);
  checks.push({
    id: 'http-url',
    kind: 'http',
    covers: ['http.url', 'http.json'],
    with: { url: `http://cnry-user:${encodeURIComponent(urlPw)}@${base.slice('http://'.length)}/http/b`, method: 'POST', expectStatus: [500], json: { token: lit('http json') } },
    expect: ['body == "never"'],
  });
  checks.push({
    id: 'ratelimit',
    kind: 'ratelimit',
    covers: ['ratelimit.bearerTokenEnv', 'ratelimit.headers', 'ratelimit.body'],
    quiet: true, // it reports statuses, never an answer's text
    with: { url: `${base}/ratelimit`, method: 'POST', bearerTokenEnv: e('ratelimit bearer'), headers: { 'X-Api-Key': lit('ratelimit header') }, body: lit('ratelimit body'), requests: 3, ratePerSecond: 50, concurrency: 1 },
  });
  checks.push({
    id: 'report-url',
    kind: 'report',
    quiet: true, // it names what is missing from a report, never quotes the answer
    covers: ['report.bearerTokenEnv', 'report.headers'],
    with: { source: `${base}/s200/report/cover.json`, format: 'istanbul', metric: 'lines', bearerTokenEnv: e('report bearer'), headers: { 'X-Api-Key': lit('report header') } },
  });
  checks.push({
    id: 'report-s3',
    kind: 'report',
    covers: ['report.s3.accessKeyIdEnv', 'report.s3.secretAccessKeyEnv', 'report.s3.sessionTokenEnv'],
    with: {
      source: 's3://cnry-bucket/cover.json',
      format: 'istanbul',
      metric: 'lines',
      s3: { endpoint: `${base}/s3r`, forcePathStyle: true, region: 'us-east-1', accessKeyIdEnv: e('report s3 key id'), secretAccessKeyEnv: e('report s3 secret', { neverSent: true }), sessionTokenEnv: e('report s3 session') },
    },
  });
  checks.push({
    id: 's3-env',
    kind: 's3',
    covers: ['s3.accessKeyIdEnv', 's3.secretAccessKeyEnv', 's3.sessionTokenEnv'],
    with: { bucket: 'cnry-bucket', endpoint: `${base}/s3`, forcePathStyle: true, accessKeyIdEnv: e('s3 key id'), secretAccessKeyEnv: e('s3 secret', { neverSent: true }), sessionTokenEnv: e('s3 session') },
  });
  // The SDK's own chain, from the default variables: AWS_ACCESS_KEY_ID and friends.
  e('aws default key id', { as: 'AWS_ACCESS_KEY_ID' });
  e('aws default secret', { as: 'AWS_SECRET_ACCESS_KEY', neverSent: true });
  e('aws default session', { as: 'AWS_SESSION_TOKEN' });
  checks.push({ id: 's3-default', kind: 's3', covers: [], with: { bucket: 'cnry-bucket', endpoint: `${base}/s3d`, forcePathStyle: true, credentials: 'default' } });
  checks.push({ id: 'report-s3-default', kind: 'report', covers: [], with: { source: 's3://cnry-bucket/cover.json', format: 'istanbul', metric: 'lines', s3: { endpoint: `${base}/s3rd`, forcePathStyle: true } } });

  // credential: every provider.
  checks.push({ id: 'credential-stripe', kind: 'credential', covers: ['credential.keyEnv'], with: { provider: 'stripe', keyEnv: e('stripe key'), baseUrl: `${base}/s401/stripe` } });
  e('openai default key', { as: 'OPENAI_API_KEY' });
  checks.push({ id: 'credential-openai', kind: 'credential', covers: [], with: { provider: 'openai', baseUrl: `${base}/s401/openai` } });
  checks.push({ id: 'credential-azure', kind: 'credential', covers: [], with: { provider: 'azure', keyEnv: e('azure client secret'), tenantId: 'cnry-tenant', clientId: 'cnry-client', baseUrl: `${base}/oauth` } });
  checks.push({
    id: 'credential-aws',
    kind: 'credential',
    covers: ['credential.accessKeyIdEnv', 'credential.secretAccessKeyEnv', 'credential.sessionTokenEnv'],
    with: { provider: 'aws', accessKeyIdEnv: e('sts key id'), secretAccessKeyEnv: e('sts secret', { neverSent: true }), sessionTokenEnv: e('sts session'), baseUrl: `${base}/sts` },
  });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const gcpKeyEnv = 'CNRY_GCP_KEY';
  const gcpKeyId = canary('gcp private key id', { neverSent: true }); // signs the JWT, never sent
  env[gcpKeyEnv] = JSON.stringify({ type: 'service_account', client_email: 'cnry@example.iam.gserviceaccount.com', private_key_id: gcpKeyId, private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) });
  checks.push({ id: 'credential-gcp', kind: 'credential', covers: [], with: { provider: 'gcp', keyEnv: gcpKeyEnv, baseUrl: `${base}/oauth/token` } });

  checks.push({ id: 'github', kind: 'github', covers: ['github.tokenEnv'], with: { measure: 'workflow_run', repo: 'cnry/repo', workflow: 'ci.yml', branch: 'main', tokenEnv: e('github token'), baseUrl: `${base}/s401/github` } });
  checks.push({ id: 'pagerduty', kind: 'pagerduty', covers: ['pagerduty.tokenEnv'], with: { schedule: 'PCNRY01', tokenEnv: e('pagerduty token'), baseUrl: `${base}/s401/pagerduty` } });

  // The observability APIs: a token, and Basic user/password from the environment.
  const extra: Record<string, Record<string, unknown>> = {
    grafana: { uids: ['abc'] },
    loki: { query: 'sum(count_over_time({app="x"}[5m]))' },
    jaeger: { measure: 'services', services: ['x'] },
    prometheus: { measure: 'query', query: 'up' },
    alertmanager: { measure: 'receivers', receiver: 'x' },
  };
  for (const kind of ['grafana', 'loki', 'jaeger', 'prometheus', 'alertmanager']) {
    checks.push({ id: `${kind}-token`, kind, covers: [`${kind}.tokenEnv`], with: { url: `${base}/${kind}`, tokenEnv: e(`${kind} token`), ...extra[kind] } });
    const userEnv = `CNRY_${kind.toUpperCase()}_USER`;
    env[userEnv] = `cnry-${kind}-user`;
    const pwEnv = e(`${kind} password`);
    pair(kind, env[userEnv], env[pwEnv]!);
    checks.push({ id: `${kind}-basic`, kind, covers: [`${kind}.usernameEnv`, `${kind}.passwordEnv`], with: { url: `${base}/${kind}b`, usernameEnv: userEnv, passwordEnv: pwEnv, ...extra[kind] } });
  }

  // flow: secrets used as {{name}} in a step's body and headers, and flow-wide headers.
  checks.push({
    id: 'flow',
    kind: 'flow',
    covers: ['flow.secrets', 'flow.headers'],
    with: {
      url: `${base}/flow`,
      secrets: { password: lit('flow secret') },
      headers: { 'X-Api-Key': lit('flow header') },
      steps: [{ name: 'login', method: 'POST', path: '/login', json: { password: '{{password}}' }, headers: { 'X-Pw': '{{password}}' }, expectStatus: [500], expect: ['body == "never"'] }],
    },
  });

  // exec: variables passed by name and set for the program; the program prints them back.
  const execEnv = e('exec env');
  checks.push({
    id: 'exec',
    kind: 'exec',
    covers: ['exec.env', 'exec.setEnv'],
    with: {
      command: '/bin/sh',
      args: ['-c', `for v in "$${execEnv}" "$CNRY_SET"; do echo "ECHO[$v"; printf %s "$v" | base64; echo "$v" >> ${join(dir, 'exec-seen')}; done; exit 3`],
      env: [execEnv],
      setEnv: { CNRY_SET: lit('exec setEnv') },
      tailLines: 10,
    },
  });

  // postgres: passwords in url and compareUrl, against a server that asks for them in clear.
  const pgPw = lit('postgres password');
  const pgCmpPw = lit('postgres compare password');
  checks.push({ id: 'postgres', kind: 'postgres', covers: ['postgres.url'], with: { measure: 'ready', url: `postgres://cnry:${encodeURIComponent(pgPw)}@127.0.0.1:${pgPort}/db` } });
  checks.push({
    id: 'postgres-compare',
    kind: 'postgres',
    covers: ['postgres.compareUrl'],
    with: { measure: 'migrations', url: `postgres://cnry:${encodeURIComponent(pgPw)}@127.0.0.1:${pgPort}/db`, compareUrl: `postgres://cnry:${encodeURIComponent(pgCmpPw)}@127.0.0.1:${pgPort}/prod` },
    quiet: true,
  });

  // kubernetes: the token of the kubeconfig's user.
  const kubeconfig = join(dir, 'kubeconfig.yaml');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: `${base}/k8s`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: lit('kubeconfig token') } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  checks.push({ id: 'kubernetes', kind: 'kubernetes', covers: [], with: { measure: 'nodes', kubeconfig } });
  return checks;
}

function checklistYaml(checks: Planted[]): string {
  const body = checks
    .map(
      (c) =>
        `  - id: ${c.id}\n    title: ${c.id}\n    section: verify\n    severity: high\n    phase: verify\n    probe: ${c.kind}\n    with: ${JSON.stringify(c.with)}\n` +
        (c.expect ? `    expect: ${JSON.stringify(c.expect)}\n` : ''),
    )
    .join('');
  return `apiVersion: readiness/v1\nchecklist: secrets\ndefaults: { interval: 3s, timeout: 2500ms }\nchecks:\n${body}`;
}

suite.fault('every secret param and *Env of every kind, echoed by its target: no surface, no log level shows one', 240_000, async (t) => {
  const echo = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => httpEcho(req, res, body));
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const pg = createTcpServer(pgEcho);
  await new Promise<void>((r) => pg.listen(0, '127.0.0.1', r));
  t.teardown(() => pg.close());
  const base = `http://127.0.0.1:${(echo.address() as { port: number }).port}`;

  const env: Record<string, string> = {};
  const checks = plan(base, (pg.address() as { port: number }).port, env);
  const ids = checks.map((c) => c.id);

  // Every secret input of every kind has a canary here.
  const { inputs, unclassified } = secretInputs();
  t.same(unclassified, [], 'every param named like a credential is a secret input or listed in NOT_SECRET with its reason');
  const covered = new Set(checks.flatMap((c) => c.covers));
  for (const i of inputs) t.ok(covered.has(i.id), `${i.id} (${i.why}) has a canary`);
  t.ok(inputs.length >= 30, `the schemas name ${inputs.length} secret inputs`);

  const file = join(dir, 'secrets.yaml');
  writeFileSync(file, checklistYaml(checks));
  const runEnv = { ...env, READINESS_ALLOW_INTRUSIVE: 'ratelimit', HOME: dir };
  const API_TOKEN = 'api-token-for-the-run-route';
  const svc = await startServe(t, ['-c', file], { ...runEnv, READINESS_LOG_LEVEL: 'trace', READINESS_API_TOKEN: API_TOKEN, READINESS_DATA_DIR: join(dir, 'data') });

  type Listed = { id: string; state?: string; message?: string; status?: { state?: string; message?: string } };
  // Each check until its message shows the echo (a first run may time out while a client loads).
  const giveUp = Date.now() + 45_000;
  const listed = await waitFor(
    'every check to have run against its echo target',
    async () => {
      const text = await (await fetch(`${svc.url}/checks`)).text();
      const body = JSON.parse(text) as unknown;
      const list = (Array.isArray(body) ? body : (body as { checks: unknown[] }).checks) as Listed[];
      const stateOf = (c: Listed) => c.state ?? c.status?.state;
      const ran = (c: Planted) => list.some((v) => v.id === c.id && !['unknown', 'pending', undefined].includes(stateOf(v)) && (c.quiet || /ECHO\[/.test(v.message ?? v.status?.message ?? '')));
      const done = checks.every(ran);
      if (Date.now() > giveUp) return { text, list };
      return done ? { text, list } : undefined;
    },
    { timeoutMs: 60_000, everyMs: 250 },
  );

  // Preconditions: every check ran (none unconfigured: its canary would not have been sent),
  // every canary but the never-sent ones reached a target, and the echo came back into the
  // message of every check whose kind shows the target's answer.
  const views = new Map<string, Listed>();
  for (const id of ids) views.set(id, JSON.parse(await (await fetch(`${svc.url}/checks/${id}`)).text()) as Listed);
  for (const c of checks) {
    const v = views.get(c.id)!;
    const state = v.state ?? v.status?.state;
    const message = v.message ?? v.status?.message ?? '';
    t.ok(state === 'fail' || state === 'error', `${c.id} ran and failed against the echo target (${state}: ${message.slice(0, 160)})`);
    if (!c.quiet) t.match(message, /ECHO\[/, `${c.id}: the target's echo reached the check's message`);
    if (process.env.SECRETS_DEBUG) t.comment(`${c.id}: ${message}`);
  }
  // The exec program is its own target: what it was handed, it wrote to a file.
  if (existsSync(join(dir, 'exec-seen'))) echoOf(readFileSync(join(dir, 'exec-seen'), 'utf8'));
  for (const c of canaries) if (!c.neverSent) t.ok(reached.has(c.name), `the ${c.name} canary reached its target`);

  const forbidden = forbiddenForms();
  const leaks = (text: string) => [...forbidden.filter(([, v]) => text.includes(v)).map(([name]) => name), ...cutLeaks(text, forbidden)];

  const surfaces: [string, string][] = [['/checks', listed.text]];
  for (const id of ids) {
    surfaces.push([`/checks/${id}`, JSON.stringify(views.get(id))]);
    surfaces.push([`/checks/${id} (HTML)`, await (await fetch(`${svc.url}/checks/${id}`, { headers: { accept: 'text/html' } })).text()]);
  }
  surfaces.push(['/readiness?verbose=1', await (await fetch(`${svc.url}/readiness?verbose=1`)).text()]);
  surfaces.push(['/ (status page)', await (await fetch(`${svc.url}/`, { headers: { accept: 'text/html' } })).text()]);
  surfaces.push(['/ui/state', await (await fetch(`${svc.url}/ui/state`)).text()]);
  const runs = await Promise.all(
    ids.map(async (id) => {
      const res = await fetch(`${svc.url}/checks/${id}/run`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}` } });
      return { id, status: res.status, text: await res.text() };
    }),
  );
  for (const { id, status, text } of runs) {
    t.equal(status, 200, `POST /checks/${id}/run answers 200: ${text.slice(0, 200)}`);
    surfaces.push([`POST /checks/${id}/run`, text]);
  }
  surfaces.push(['/metrics', await (await fetch(`${svc.url}/metrics`)).text()]);

  // The JSON run covers every kind; the table (the same harness, another printer) a few.
  const tableOnly = ['http-bearer', 'grafana-basic', 'exec', 'postgres', 'kubernetes'];
  const cli = await Promise.all(
    ['json', 'table'].map(async (format) => ({
      format,
      wanted: format === 'json' ? ids : tableOnly,
      r: await runCli(['check', '-c', file, '--format', format, ...(format === 'table' ? ['--only', tableOnly.join(',')] : [])], { env: { ...runEnv, READINESS_LOG_LEVEL: 'trace', READINESS_DATA_DIR: join(dir, `check-data-${format}`) } }),
    })),
  );
  for (const { format, r, wanted } of cli) {
    t.ok(wanted.every((id) => r.stdout.includes(id)), `check --format ${format} printed its checks`);
    t.match(r.stdout, /\*\*\*/, `check --format ${format} shows the echo, masked`);
    surfaces.push([`check --format ${format} stdout`, r.stdout], [`check --format ${format} stderr (trace log)`, r.stderr]);
  }
  t.match(svc.output(), /"level":20/, 'the service logs at debug level and below');
  surfaces.push(['the service log (trace)', svc.output()]);

  for (const [name, text] of surfaces) t.same(leaks(text), [], `${name} shows no secret`);
  svc.child.kill('SIGTERM');
  await svc.exited;
});
