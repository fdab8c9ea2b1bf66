// tls: handshakes with host:port and reports the served certificate chain: days until the
// earliest expiry in it, whether it verifies, and whether it matches the host name. Expiry
// thresholds belong in conditions (`days_left >= 30`); an unverified chain or a host name
// mismatch fails the check by itself unless `verify: false`.
import dns from 'node:dns';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import tls, { type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { defineProbe, LeaseLostError, leaseLost, ProbeError, type Observation } from './types.js';
import type { Reason } from '../reasons.js';

const DAY_MS = 86_400_000;

const params = Type.Object(
  {
    host: Type.String({ minLength: 1, description: 'Host name or IP address to connect to.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 443, description: 'TCP port.' }),
    servername: Type.Optional(
      Type.String({ minLength: 1, description: 'Name sent as SNI and matched against the certificate (default: host).' }),
    ),
    ca: Type.Optional(
      Type.String({ minLength: 1, description: 'Path to a PEM file of CA certificates to verify against instead of the system CAs.' }),
    ),
    verify: Type.Boolean({
      default: true,
      description: 'Fail the check when the chain does not verify or the name does not match. false: only report it in fields.',
    }),
  },
  { additionalProperties: false },
);

/** One certificate of the chain, as the fields and messages need it. */
interface ChainCert {
  subject: string;
  issuer: string;
  notAfter: Date;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Parses OpenSSL's date form, `Dec  7 03:00:00 2026 GMT` (what Node reports as valid_to and
 * `openssl x509 -enddate` prints). Parsed by hand: Date.parse of this form is not specified.
 */
export function parseOpensslDate(s: string): Date {
  const m = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(s.trim());
  const month = m ? MONTHS.indexOf(m[1] as string) : -1;
  if (!m || month < 0) throw new ProbeError('protocol', `unreadable certificate date "${s}"`);
  const [, , d, hh, mm, ss, yyyy] = m.map(Number) as number[];
  return new Date(Date.UTC(yyyy as number, month, d, hh, mm, ss));
}

/** X.509 names as one line, `CN=api.example.com, O=Example`. */
function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The chain as Node reports it: the certificates the server sent, linked leaf to root, plus
 * the root from the local trust store that completes it when the server did not send one.
 * `issuerCertificate` of a self-signed certificate points to itself, hence the seen-set.
 */
function walkChain(leaf: DetailedPeerCertificate): ChainCert[] {
  const chain: ChainCert[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = leaf; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    const x = new X509Certificate(c.raw);
    chain.push({ subject: oneLine(x.subject), issuer: oneLine(x.issuer), notAfter: parseOpensslDate(x.validTo) });
  }
  return chain;
}

/** Error codes that mean the peer does not speak TLS at all (an HTTP or SSH port, garbage). */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_RECORD_LENGTH_MISMATCH',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_UNEXPECTED_RECORD',
]);

function classify(err: NodeJS.ErrnoException): Reason {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE') return 'refused';
  if (code === 'ENOTFOUND' || code.startsWith('EAI_')) return 'dns';
  if (NOT_TLS.has(code)) return 'protocol';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'tls';
  return 'error';
}

/** dns.lookup, then the lease question: a refusal connects nowhere. */
function gatedLookup(stillOwner: () => boolean): NonNullable<tls.ConnectionOptions['lookup']> {
  return (hostname, options, callback) =>
    dns.lookup(hostname, options, ((err: NodeJS.ErrnoException | null, ...rest: unknown[]) => {
      if (!err && !stillOwner()) return (callback as (e: Error) => void)(leaseLost('connection'));
      (callback as (e: Error | null, ...r: unknown[]) => void)(err, ...rest);
    }) as never);
}

/** Handshakes without rejecting any certificate; verification is read afterwards. */
function handshake(opts: tls.ConnectionOptions, signal: AbortSignal, target: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    let stage = 'TCP connect';
    const socket = tls.connect(opts);
    const onAbort = () => {
      socket.destroy();
      reject(new ProbeError('timeout', `no TLS handshake with ${target} before the check timeout (stuck at ${stage})`));
    };
    const settle = () => signal.removeEventListener('abort', onAbort);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => (stage = 'TLS handshake: no answer to ClientHello'));
    socket.once('secureConnect', () => {
      settle();
      // A reset after the handshake must not crash the process; the socket is closed right after.
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', (err) => {
      settle();
      socket.destroy();
      reject(err);
    });
  });
}

export default defineProbe({
  kind: 'tls',
  description: 'TLS handshake with host:port: certificate chain expiry, verification and host name match.',
  params,
  fields: {
    days_left: { type: 'number', unit: 'days', description: 'Days until the earliest notAfter in the chain (fractional; negative once expired).' },
    not_after: { type: 'string', description: 'That earliest expiry, ISO 8601 UTC.' },
    subject: { type: 'string', description: 'Subject of the leaf certificate, e.g. "CN=api.example.com".' },
    issuer: { type: 'string', description: 'Issuer of the leaf certificate.' },
    verified: { type: 'boolean', description: 'The chain verifies against the system CAs, or against `ca` when given.' },
    verify_error: { type: 'string', description: 'OpenSSL verification error code (e.g. CERT_HAS_EXPIRED); "" when verified.' },
    hostname_match: { type: 'boolean', description: 'The leaf certificate is valid for servername (or host).' },
    protocol: { type: 'string', description: 'Negotiated protocol, e.g. TLSv1.3.' },
    expired: { type: 'boolean', description: 'A certificate of the chain is past its notAfter.' },
  },

  validate({ host, ca }) {
    const problems: string[] = [];
    if (/[/:]/.test(host) && !isIP(host)) problems.push(`host "${host}" must be a host name or IP address, not a URL (the port goes in port)`);
    if (ca && !existsSync(ca)) problems.push(`ca file ${ca} does not exist`);
    return problems;
  },

  async run({ host, port, servername, ca, verify }, { signal, stillOwner }): Promise<Observation> {
    const name = servername ?? host;
    const target = `${host}:${port}`;
    let caPem: string | undefined;
    if (ca) {
      try {
        caPem = await readFile(ca, { encoding: 'utf8', signal });
      } catch (err) {
        if (signal.aborted) throw new ProbeError('timeout', `reading ca file ${ca} did not finish before the check timeout`);
        return { fields: {}, error: { reason: 'error', message: `cannot read ca file ${ca}: ${(err as Error).message}` } };
      }
    }

    let socket: TLSSocket;
    try {
      socket = await handshake(
        {
          host,
          port,
          // SNI must not carry an IP address (RFC 6066); the name is still matched below.
          servername: isIP(name) ? undefined : name,
          ca: caPem,
          rejectUnauthorized: false,
          // Keep `authorized` about the chain alone: the name is checked separately.
          checkServerIdentity: () => undefined,
          // HA: resolving may have taken a while, or the process was stopped meanwhile (lease.ts).
          ...(stillOwner && { lookup: gatedLookup(stillOwner) }),
        },
        signal,
        target,
      );
    } catch (err) {
      if (err instanceof ProbeError || err instanceof LeaseLostError) throw err;
      const e = err as NodeJS.ErrnoException & { reason?: unknown };
      const reason = classify(e);
      const hint = reason === 'protocol' ? ' (the server does not speak TLS on this port)' : '';
      // OpenSSL's messages span lines and carry source paths; its `reason` is the readable part.
      const said = (typeof e.reason === 'string' && e.reason ? e.reason : e.message).replace(/\s+/g, ' ').trim();
      const code = e.code && !said.includes(e.code) ? ` (${e.code})` : '';
      return { fields: {}, error: { reason, message: `TLS handshake with ${target} failed: ${said}${code}${hint}` } };
    }

    try {
      const leaf = socket.getPeerCertificate(true);
      const chain = walkChain(leaf);
      const first = chain[0];
      if (!first) return { fields: {}, error: { reason: 'protocol', message: `${target} sent no certificate` } };

      const earliest = chain.reduce((a, b) => (b.notAfter < a.notAfter ? b : a));
      const daysLeft = (earliest.notAfter.getTime() - Date.now()) / DAY_MS;
      const authErr = socket.authorizationError as Error | string | null;
      const verifyError = socket.authorized ? '' : typeof authErr === 'string' ? authErr : (authErr?.message ?? 'unknown verification error');
      const mismatch = tls.checkServerIdentity(name, leaf);
      const fields = {
        days_left: daysLeft,
        not_after: isoSeconds(earliest.notAfter),
        subject: first.subject,
        issuer: first.issuer,
        verified: socket.authorized,
        verify_error: verifyError,
        hostname_match: mismatch === undefined,
        protocol: socket.getProtocol() ?? '',
        expired: daysLeft <= 0,
      };

      const which = earliest === first ? `certificate for ${name}` : `certificate ${earliest.subject} in the chain of ${name}`;
      const when =
        daysLeft > 0
          ? `expires in ${daysLeft.toFixed(1)} days (${fields.not_after})`
          : `expired ${(-daysLeft).toFixed(1)} days ago (${fields.not_after})`;
      const message = `${which} ${when}, issuer ${earliest.issuer}`;

      const problems: string[] = [];
      if (!fields.verified) problems.push(`chain does not verify against ${ca ?? 'the system CAs'}: ${verifyError}`);
      if (mismatch) problems.push(`certificate ${first.subject} does not match ${name} (${(mismatch as Error & { reason?: string }).reason ?? mismatch.message})`);
      if (verify && problems.length > 0) {
        return { value: daysLeft, fields, failure: { reason: 'tls', message: `${target}: ${problems.join('; ')}; ${message}` } };
      }
      return { value: daysLeft, fields, message: problems.length > 0 ? `${message}; ${problems.join('; ')}` : message };
    } finally {
      socket.destroy();
    }
  },
});
