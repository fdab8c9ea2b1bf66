// tls probe against real TLS listeners on 127.0.0.1 with certificates made by the test PKI.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import t from 'tap';
import tlsProbe, { parseOpensslDate } from '../../src/probes/tls.js';
import { ProbeError } from '../../src/probes/types.js';
import { makeCA, makeCert, makeTestPki, type CertPair } from '../helpers/certs.js';
import { makeCtx } from '../helpers/ctx.js';
import { closedPort, listenGarbage, listenHanging, listenTls, type Listener } from '../helpers/listeners.js';

const DAY_MS = 86_400_000;
const CA_ISSUER = 'CN=Readiness Test CA, O=readiness-exporter tests';

// Params as the checklist loader builds them: ajv with type coercion and defaults.
const validate = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true }).compile(tlsProbe.params);
function params(input: Record<string, unknown>): Static<typeof tlsProbe.params> {
  const p = structuredClone(input);
  if (!validate(p)) throw new Error(JSON.stringify(validate.errors));
  return p as Static<typeof tlsProbe.params>;
}

const dir = mkdtempSync(join(tmpdir(), 'tls-probe-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function pemFile(name: string, pem: string): string {
  const file = join(dir, name);
  writeFileSync(file, pem);
  return file;
}

/** notAfter as `openssl x509 -noout -enddate` reads it, parsed independently of the probe. */
function opensslNotAfter(pem: string): Date {
  const out = execFileSync('openssl', ['x509', '-noout', '-enddate', '-in', pemFile('enddate.pem', pem)], { encoding: 'utf8' });
  const m = /^notAfter=(.+)$/m.exec(out);
  if (!m?.[1]) throw new Error(`unexpected openssl output: ${out}`);
  return new Date(Date.parse(m[1]));
}

const pki = makeTestPki();
const caFile = pemFile('ca.pem', pki.ca.cert);

const listeners: Listener[] = [];
t.teardown(() => Promise.all(listeners.map((l) => l.close())));
async function serve(chain: string, key: string): Promise<number> {
  const l = await listenTls({ key, cert: chain });
  listeners.push(l);
  return l.port;
}

interface Case {
  name: string;
  cert: CertPair;
  days: number;
  verified: boolean;
  verifyError: string;
  hostnameMatch: boolean;
  issuer: string;
  subject: string;
  /** Pattern of the failure message; undefined: no failure. */
  failure?: RegExp;
}

const cases: Case[] = [
  { name: 'valid for 400 days', cert: pki.valid, days: 400, verified: true, verifyError: '', hostnameMatch: true, issuer: CA_ISSUER, subject: 'CN=localhost' },
  { name: 'expiring in 10 days', cert: pki.expiring, days: 10, verified: true, verifyError: '', hostnameMatch: true, issuer: CA_ISSUER, subject: 'CN=localhost' },
  {
    name: 'expired a day ago',
    cert: pki.expired,
    days: -1,
    verified: false,
    verifyError: 'CERT_HAS_EXPIRED',
    hostnameMatch: true,
    issuer: CA_ISSUER,
    subject: 'CN=localhost',
    failure: /chain does not verify against .*ca\.pem: CERT_HAS_EXPIRED; certificate for localhost expired 1\.0 days ago/,
  },
  {
    name: 'issued for another host',
    cert: pki.wrongHost,
    days: 400,
    verified: true,
    verifyError: '',
    hostnameMatch: false,
    issuer: CA_ISSUER,
    subject: 'CN=wrong.example',
    failure: /certificate CN=wrong\.example does not match localhost .*DNS:wrong\.example/,
  },
  {
    name: 'self-signed',
    cert: pki.selfSigned,
    days: 400,
    verified: false,
    verifyError: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    hostnameMatch: true,
    issuer: 'CN=localhost',
    subject: 'CN=localhost',
    failure: /chain does not verify .*: DEPTH_ZERO_SELF_SIGNED_CERT/,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const port = await serve(c.cert.cert, c.cert.key);
    const obs = await tlsProbe.run(params({ host: '127.0.0.1', port, servername: 'localhost', ca: caFile }), makeCtx());
    const f = obs.fields;

    t.equal(obs.error, undefined, 'measured');
    t.equal(f.verified, c.verified, 'verified');
    t.equal(f.verify_error, c.verifyError, 'verify_error');
    t.equal(f.hostname_match, c.hostnameMatch, 'hostname_match');
    t.equal(f.expired, c.days < 0, 'expired');
    t.equal(f.subject, c.subject, 'subject');
    t.equal(f.issuer, c.issuer, 'issuer');
    t.equal(f.protocol, 'TLSv1.3', 'protocol');
    t.equal(obs.value, f.days_left, 'value is days_left');
    t.ok(Math.abs((f.days_left as number) - c.days) < 0.01, `days_left ${f.days_left} ~ ${c.days}`);

    // Agreement with openssl on the same certificate, to the second.
    const notAfter = opensslNotAfter(c.cert.cert);
    t.equal(f.not_after, notAfter.toISOString().replace('.000Z', 'Z'), 'not_after matches openssl -enddate');
    const opensslDays = (notAfter.getTime() - Date.now()) / DAY_MS;
    t.ok(Math.abs((f.days_left as number) - opensslDays) < 0.001, `days_left ${f.days_left} vs openssl ${opensslDays}`);

    if (c.failure) {
      t.equal(obs.failure?.reason, 'tls', 'failure reason');
      t.match(obs.failure?.message, c.failure);
      t.notMatch(obs.failure?.message, /\n/, 'one line');
    } else {
      t.equal(obs.failure, undefined, 'no failure');
      t.match(obs.message, new RegExp(`^certificate for localhost expires in ${c.days}\\.0 days \\(${f.not_after}\\), issuer ${CA_ISSUER}$`));
    }
  });
}

t.test('days_left is the earliest expiry in the served chain, not the leaf', async (t) => {
  const root = makeCA({ cn: 'Readiness Test Root' });
  const intermediate = makeCert({ cn: 'Readiness Test Intermediate', issuer: root, isCA: true, notAfterDays: 20 });
  const leaf = makeCert({ cn: 'localhost', altNames: ['localhost'], issuer: intermediate, notAfterDays: 400 });
  const port = await serve(leaf.cert + intermediate.cert, leaf.key);

  const obs = await tlsProbe.run(params({ host: '127.0.0.1', port, servername: 'localhost', ca: pemFile('root.pem', root.cert) }), makeCtx());
  t.equal(obs.fields.verified, true, 'leaf -> intermediate -> root verifies');
  t.equal(obs.fields.issuer, 'CN=Readiness Test Intermediate', 'issuer is the leaf issuer');
  const notAfter = opensslNotAfter(intermediate.cert);
  t.equal(obs.fields.not_after, notAfter.toISOString().replace('.000Z', 'Z'), "the intermediate's notAfter");
  t.ok(Math.abs((obs.fields.days_left as number) - 20) < 0.01, `days_left ${obs.fields.days_left} ~ 20`);
  t.match(obs.message, /^certificate CN=Readiness Test Intermediate in the chain of localhost expires in 20\.0 days/);
});

t.test('without ca the test CA is not trusted: failure tls against the system CAs', async (t) => {
  const port = await serve(pki.valid.cert, pki.valid.key);
  const obs = await tlsProbe.run(params({ host: '127.0.0.1', port, servername: 'localhost' }), makeCtx());
  t.equal(obs.fields.verified, false);
  t.equal(obs.fields.verify_error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  t.equal(obs.failure?.reason, 'tls');
  t.match(obs.failure?.message, /chain does not verify against the system CAs: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

t.test('verify: false reports the problem as data without failing', async (t) => {
  const port = await serve(pki.selfSigned.cert, pki.selfSigned.key);
  const obs = await tlsProbe.run(params({ host: '127.0.0.1', port, servername: 'localhost', verify: false }), makeCtx());
  t.equal(obs.failure, undefined);
  t.equal(obs.error, undefined);
  t.equal(obs.fields.verified, false);
  t.equal(obs.fields.verify_error, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  t.match(obs.message, /chain does not verify .*DEPTH_ZERO_SELF_SIGNED_CERT/);
});

t.test('an IP address as host is matched against IP SANs (no SNI sent)', async (t) => {
  const port = await serve(pki.valid.cert, pki.valid.key);
  const obs = await tlsProbe.run(params({ host: '127.0.0.1', port, ca: caFile }), makeCtx());
  t.equal(obs.fields.hostname_match, true);
  t.equal(obs.failure, undefined);
});

t.test('protocol: TLS 1.2 is reported, a TLS 1.0-only server is a handshake error', async (t) => {
  const tls12 = await listenTls(pki.valid, { maxVersion: 'TLSv1.2' });
  const tls10 = await listenTls(pki.valid, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
  listeners.push(tls12, tls10);
  const obs12 = await tlsProbe.run(params({ host: '127.0.0.1', port: tls12.port, ca: caFile }), makeCtx());
  t.equal(obs12.fields.protocol, 'TLSv1.2');
  t.equal(obs12.failure, undefined);
  const obs10 = await tlsProbe.run(params({ host: '127.0.0.1', port: tls10.port, ca: caFile }), makeCtx());
  t.equal(obs10.error?.reason, 'tls');
  t.match(obs10.error?.message, /^TLS handshake with 127\.0\.0\.1:\d+ failed: .*protocol version \(ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION\)$/);
});

t.test('a server that accepts and never answers: rejects with timeout when the signal fires', async (t) => {
  const hang = await listenHanging();
  listeners.push(hang);
  const started = Date.now();
  const err = await tlsProbe.run(params({ host: '127.0.0.1', port: hang.port }), makeCtx({ timeoutMs: 200 })).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProbeError, 'a ProbeError');
  t.equal((err as ProbeError).reason, 'timeout');
  t.match((err as ProbeError).message, /no TLS handshake with 127\.0\.0\.1:\d+ .*stuck at TLS handshake/);
  t.ok(Date.now() - started < 3000, 'settles promptly');
});

t.test('not TLS, refused, unresolvable: errors with their reasons', async (t) => {
  const garbage = await listenGarbage('SSH-2.0-OpenSSH_9.2\r\n');
  const garbageFirst = await listenGarbage(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]), { waitForClient: false });
  listeners.push(garbage, garbageFirst);
  const refused = await closedPort();
  const table = [
    { name: 'garbage after ClientHello', host: '127.0.0.1', port: garbage.port, reason: 'protocol', message: /does not speak TLS/ },
    { name: 'garbage before ClientHello', host: '127.0.0.1', port: garbageFirst.port, reason: 'protocol', message: /does not speak TLS/ },
    { name: 'closed port', host: '127.0.0.1', port: refused, reason: 'refused', message: /ECONNREFUSED/ },
    { name: 'unresolvable name', host: 'nonexistent.invalid', port: 443, reason: 'dns', message: /nonexistent\.invalid/ },
  ];
  for (const row of table) {
    const obs = await tlsProbe.run(params({ host: row.host, port: row.port }), makeCtx());
    t.equal(obs.error?.reason, row.reason, `${row.name}: reason`);
    t.match(obs.error?.message, row.message, `${row.name}: message`);
    t.notMatch(obs.error?.message, /\n/, `${row.name}: one line`);
    t.same(obs.fields, {}, `${row.name}: no fields`);
  }
});

t.test('params: coerced from strings, defaults applied, unknown keys rejected', async (t) => {
  t.same(params({ host: 'api.example.com', port: '8443' }), { host: 'api.example.com', port: 8443, verify: true });
  t.same(params({ host: 'api.example.com' }), { host: 'api.example.com', port: 443, verify: true });
  t.throws(() => params({ host: 'api.example.com', minDaysLeft: 30 }), /additionalProperties/, 'thresholds are conditions, not params');
  t.throws(() => params({ host: 'api.example.com', port: 70000 }), /maximum/);
  t.same(tlsProbe.validate?.(params({ host: 'h', ca: join(dir, 'missing.pem') })), [`ca file ${join(dir, 'missing.pem')} does not exist`]);
  t.same(tlsProbe.validate?.(params({ host: 'https://api.example.com' })), [
    'host "https://api.example.com" must be a host name or IP address, not a URL (the port goes in port)',
  ]);
  t.same(tlsProbe.validate?.(params({ host: '::1' })), [], 'IPv6 literal is fine');
});

t.test('parseOpensslDate reads both day widths and rejects anything else', async (t) => {
  t.equal(parseOpensslDate('Dec  7 03:00:00 2026 GMT').toISOString(), '2026-12-07T03:00:00.000Z');
  t.equal(parseOpensslDate('Feb 29 23:59:59 2028 GMT').toISOString(), '2028-02-29T23:59:59.000Z');
  t.throws(() => parseOpensslDate('2026-12-07T03:00:00Z'), /unreadable certificate date/);
  t.throws(() => parseOpensslDate('Foo  7 03:00:00 2026 GMT'), /unreadable certificate date/);
});
