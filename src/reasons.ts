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
