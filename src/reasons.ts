// The fixed list of reasons a check may be non-passing. They are label values of
// `readiness_check_failure_info{reason}`, so the list is closed and documented.

export const REASONS = {
  condition: 'an expect condition is false',
  'no-data': 'the query returned nothing and onNoData is fail or error',
  timeout: 'the probe did not finish within the check timeout',
  refused: 'the connection was refused or reset',
  dns: 'the host name does not resolve',
  tls: 'TLS handshake, chain verification or hostname match failed',
  'http-status': 'the HTTP status is not the expected one',
  auth: 'the target rejected the credentials (401/403, bad password)',
  'rate-limited': 'the target answered 429 and retries were exhausted',
  protocol: 'the target answered with something that is not the expected protocol or format',
  dependency: 'a check this one depends on is not passing, so it was not run',
  unconfigured: 'an environment variable the check needs is not set',
  stale: 'no run completed for three intervals',
  pending: 'not run yet',
  'not-attested': 'no valid attestation exists',
  expired: 'the attestation has expired',
  error: 'the probe failed unexpectedly (see the message)',
} as const;

export type Reason = keyof typeof REASONS;

export function isReason(s: string): s is Reason {
  return Object.hasOwn(REASONS, s);
}

const CODE_REASONS: Record<string, Reason> = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'refused',
  EPIPE: 'refused',
  EHOSTUNREACH: 'refused',
  ENETUNREACH: 'refused',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
  ETIMEDOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ABORT_ERR: 'timeout',
  HPE_INVALID_CONSTANT: 'protocol',
  HPE_INVALID_VERSION: 'protocol',
  HPE_INVALID_STATUS: 'protocol',
  HPE_INVALID_HEADER_TOKEN: 'protocol',
  UND_ERR_SOCKET: 'refused',
};

/** Best reason for an error thrown by Node, undici or a driver: its code, its cause's code, or `error`. */
export function reasonFromError(err: unknown): Reason {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const explicit = (e as { reason?: unknown }).reason;
    if (typeof explicit === 'string' && isReason(explicit)) return explicit;
    const code = String((e as { code?: unknown }).code ?? '');
    if (CODE_REASONS[code]) return CODE_REASONS[code];
    if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) return 'tls';
    if ((e as { name?: string }).name === 'AbortError' || (e as { name?: string }).name === 'TimeoutError') return 'timeout';
  }
  return 'error';
}

/** A short cause for a failed fetch: its code (ECONNREFUSED), else the innermost message. */
export function fetchCause(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const next = (e as { cause?: unknown }).cause;
    if (!next) break;
    e = next;
  }
  return e instanceof Error ? e.message : String(e);
}
