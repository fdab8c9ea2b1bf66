// Generates a throwaway PKI for TLS tests: a test CA and leaf certificates with chosen
// validity windows and names. Keys come from node:crypto (forge's pure-JS RSA keygen takes
// seconds); node-forge builds and signs the certificates.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

const DAY_MS = 86_400_000;

/** A certificate with its private key, both PEM. */
export interface CertPair {
  cert: string;
  key: string;
  /** notAfter as the certificate stores it (whole seconds). */
  notAfter: Date;
  /** The forge objects, to sign further certificates with this one. */
  forgeCert: forge.pki.Certificate;
  forgeKey: forge.pki.rsa.PrivateKey;
}

export interface CertOptions {
  /** Subject common name. */
  cn: string;
  /** Extra subject organization, to make issuer strings distinguishable. */
  org?: string;
  /** Subject alternative names: host names or IP addresses. Leaves default to [cn]. */
  altNames?: string[];
  /** Validity start, in days from now (negative: in the past). Default -1. */
  notBeforeDays?: number;
  /** Validity end, in days from now (negative: already expired). Default 400. */
  notAfterDays?: number;
  /** Signing certificate; omitted: self-signed. */
  issuer?: CertPair;
  /** Make it a CA (basicConstraints cA, keyCertSign). */
  isCA?: boolean;
}

function newKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

/** Builds and signs one certificate. */
export function makeCert(opts: CertOptions): CertPair {
  const keys = newKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // Positive serial: the leading 01 keeps the DER integer's sign bit clear.
  cert.serialNumber = '01' + randomBytes(8).toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now + (opts.notBeforeDays ?? -1) * DAY_MS);
  cert.validity.notAfter = new Date(now + (opts.notAfterDays ?? 400) * DAY_MS);

  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: opts.cn }];
  if (opts.org) subject.push({ name: 'organizationName', value: opts.org });
  cert.setSubject(subject);
  cert.setIssuer(opts.issuer ? opts.issuer.forgeCert.subject.attributes : subject);

  const extensions: object[] = [{ name: 'subjectKeyIdentifier' }];
  if (opts.isCA) {
    extensions.push(
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    );
  } else {
    const altNames = (opts.altNames ?? [opts.cn]).map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
    extensions.push(
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    );
  }
  if (opts.issuer) {
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: opts.issuer.forgeCert.generateSubjectKeyIdentifier().getBytes() });
  }
  cert.setExtensions(extensions);
  cert.sign(opts.issuer?.forgeKey ?? keys.privateKey, forge.md.sha256.create());

  return {
    cert: forge.pki.certificateToPem(cert),
    key: forge.pki.privateKeyToPem(keys.privateKey),
    notAfter: cert.validity.notAfter,
    forgeCert: cert,
    forgeKey: keys.privateKey,
  };
}

/** A test CA valid for ten years (or as given). */
export function makeCA(opts: Partial<CertOptions> = {}): CertPair {
  return makeCert({ cn: 'Readiness Test CA', org: 'readiness-exporter tests', notAfterDays: 3650, ...opts, isCA: true });
}

/**
 * The certificate set the probe tests use: one CA and leaves for 127.0.0.1/localhost that
 * are valid, expiring, expired, for the wrong host, and self-signed.
 */
export function makeTestPki() {
  const ca = makeCA();
  const names = ['localhost', '127.0.0.1'];
  const leaf = (o: Partial<CertOptions>) => makeCert({ cn: 'localhost', altNames: names, issuer: ca, ...o });
  return {
    ca,
    valid: leaf({ notAfterDays: 400 }),
    expiring: leaf({ notAfterDays: 10 }),
    expired: leaf({ notBeforeDays: -30, notAfterDays: -1 }),
    wrongHost: leaf({ cn: 'wrong.example', altNames: ['wrong.example'] }),
    selfSigned: makeCert({ cn: 'localhost', altNames: names, issuer: undefined }),
  };
}
