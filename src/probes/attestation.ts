// `attestation`: a checklist line only a person can vouch for (a DR runbook reviewed, a
// sign-off) holds while a signed attestation by an allowed role is valid. Attestations are
// made through POST /attestations or `readiness attest`; this kind reads them from the store.
import { Type } from '@sinclair/typebox';
import { formatDuration, parseDuration } from '../config/duration.js';
import type { Attestation, Records } from '../store/types.js';
import { defineProbe, type Observation } from './types.js';

const params = Type.Object(
  {
    roles: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Roles whose attestation counts (e.g. security-lead).' }),
    maxAge: Type.String({ default: '30d', description: 'Longest validity an attestation may have; expiresAt is capped to it.' }),
    release: Type.Optional(Type.String({ description: 'Per-release sign-off: only attestations made for this release count (e.g. "${RELEASE_VERSION}").' })),
    dueAfterDeploy: Type.Optional(
      Type.String({ description: 'Post-deployment duty: must be attested within this long after the latest deployment; until then a missing attestation passes as "due".' }),
    ),
  },
  { additionalProperties: false },
);

export interface AttestationParams {
  roles: string[];
  maxAge: string;
  release?: string;
  dueAfterDeploy?: string;
}

/** The attestations that currently make the check pass, newest first. */
export function validAttestations(records: Records, checkId: string, p: AttestationParams, now: number): Attestation[] {
  const deployedAt = p.dueAfterDeploy !== undefined ? records.deployments(1)[0]?.at : undefined;
  return records
    .attestations(checkId)
    .filter(
      (a) =>
        a.revokedAt === undefined &&
        a.expiresAt > now &&
        p.roles.includes(a.role) &&
        (p.release === undefined || a.release === p.release) &&
        // A post-deployment duty is met only by an attestation made after that deployment.
        (deployedAt === undefined || a.createdAt >= deployedAt),
    );
}

export default defineProbe({
  kind: 'attestation',
  description: 'A signed human attestation by an allowed role, valid and unexpired (per release or after a deployment when configured).',
  params,
  recordsOnly: true,
  fields: {
    attested: { type: 'boolean', description: 'A valid attestation exists.' },
    seconds_left: { type: 'number', unit: 's', description: 'Seconds until the newest valid attestation expires.' },
    by: { type: 'string', description: 'Who signed the newest valid attestation.' },
    role: { type: 'string', description: 'Their role.' },
    count: { type: 'number', description: 'Valid attestations.' },
    due_in_seconds: { type: 'number', unit: 's', description: 'With dueAfterDeploy: seconds until the duty is overdue (negative once overdue).' },
  },
  validate(p) {
    const errors: string[] = [];
    const max = parseDuration(p.maxAge);
    if (max === undefined || max <= 0) errors.push(`maxAge: bad duration ${JSON.stringify(p.maxAge)} (e.g. 30d, 90d)`);
    if (p.dueAfterDeploy !== undefined && !parseDuration(p.dueAfterDeploy)) errors.push(`dueAfterDeploy: bad duration ${JSON.stringify(p.dueAfterDeploy)} (e.g. 48h)`);
    return errors;
  },
  async run(p, ctx): Promise<Observation> {
    if (!ctx.records) return { fields: {}, error: { reason: 'error', message: 'attestations are not available here (no store)' } };
    const now = Date.now();
    const valid = validAttestations(ctx.records, ctx.checkId, p, now);
    const newest = valid.sort((a, b) => b.expiresAt - a.expiresAt)[0];
    if (newest) {
      const left = (newest.expiresAt - now) / 1000;
      return {
        value: left,
        fields: { attested: true, seconds_left: left, by: newest.by, role: newest.role, count: valid.length },
        message: `attested by ${newest.by} (${newest.role})${newest.release ? ` for ${newest.release}` : ''}, valid for ${formatDuration(left * 1000)} more`,
      };
    }
    const fields: Record<string, unknown> = { attested: false, count: 0, seconds_left: 0 };
    if (p.dueAfterDeploy !== undefined) {
      const dep = ctx.records.deployments(1)[0];
      if (!dep) return { fields, message: 'not due: no deployment recorded yet' };
      const dueAt = dep.at + parseDuration(p.dueAfterDeploy)!;
      fields.due_in_seconds = (dueAt - now) / 1000;
      if (now < dueAt) {
        return { value: 0, fields, message: `due by ${new Date(dueAt).toISOString()} (${formatDuration(dueAt - dep.at)} after deployment ${dep.version}); not attested yet, ${formatDuration(dueAt - now)} left` };
      }
    }
    // Say why: expired and revoked attestations are more useful to name than "none".
    const mine = ctx.records.attestations(ctx.checkId).filter((a) => p.roles.includes(a.role) && (p.release === undefined || a.release === p.release));
    const last = mine[0];
    const roles = p.roles.join(' or ');
    const scope = p.release !== undefined ? ` for release ${p.release}` : '';
    if (last?.revokedAt !== undefined) {
      return { value: 0, fields, failure: { reason: 'not-attested', message: `the attestation by ${last.by} was revoked by ${last.revokedBy ?? 'someone'}; needs a new one by ${roles}${scope}` } };
    }
    if (last && last.expiresAt <= now) {
      return { value: 0, fields, failure: { reason: 'expired', message: `the attestation by ${last.by} (${last.role}) expired ${new Date(last.expiresAt).toISOString()}; needs a new one by ${roles}${scope}` } };
    }
    return { value: 0, fields, failure: { reason: 'not-attested', message: `not attested: needs an attestation by ${roles}${scope}` } };
  },
});
