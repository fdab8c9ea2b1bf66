// Checklist fixtures as YAML text, shared by the tests that serve or load them (the store,
// durability, records and loader tests): an attestation check, and a tcp check that passes with
// no target to start (nothing listens on port 1 of the loopback). Each check is one YAML list
// item; checklistYaml() puts them under the document's header.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** An attestation by the devops lead, valid 90 days. `extra`: more keys of the check, indented 4. */
export const drRunbookReviewed = (extra = '') => `  - id: dr-runbook-reviewed
    title: DR runbook reviewed
    section: disaster-recovery
    severity: high
    phase: pre-deploy
    probe: attestation
    with: { roles: [devops-lead], maxAge: 90d }
${extra}`;

/** A tcp check that passes while port 1 on 127.0.0.1 is closed (it always is). */
export const closedPortCheck = (id = 'closed-port', title = 'Port 1 closed', extra = '') => `  - id: ${id}
    title: ${title}
    section: security
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: 127.0.0.1, port: 1 }
    expect: ["open == false"]
${extra}`;

/** A checklist document: `defaults` is a YAML flow map (`{ interval: 1s }`) or nothing. */
export function checklistYaml(name: string, checks: string[], defaults?: string): string {
  return `apiVersion: readiness/v1\nchecklist: ${name}\n${defaults === undefined ? '' : `defaults: ${defaults}\n`}checks:\n${checks.join('')}`;
}

/**
 * The store and durability tests' checklist: `dr-runbook-reviewed` (an attestation, run hourly)
 * and `closed-port` (tcp, every second): one check whose state is a stored record and one that
 * stores a result every second.
 */
export const attestationAndTcpChecklist = (name: string) =>
  checklistYaml(name, [drRunbookReviewed('    interval: 1h\n'), closedPortCheck()], '{ interval: 1s, timeout: 900ms }');

/** Writes attestationAndTcpChecklist(name) to `dir`/checklist.yaml and returns its path. */
export function writeAttestationAndTcpChecklist(dir: string, name: string): string {
  const file = join(dir, 'checklist.yaml');
  writeFileSync(file, attestationAndTcpChecklist(name));
  return file;
}
