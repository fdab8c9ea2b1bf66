// Attestations and deployments through the HTTP API: every rejection with its reason, the
// check's state following sign-off, expiry and revocation, and the deployment window that
// makes monitor checks gate and recommends a rollback.
import pino from 'pino';
import t from 'tap';
import { loadChecklist } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { MemoryStore } from '../src/store/memory.js';
import { checklistYaml, closedPortCheck, drRunbookReviewed } from './helpers/checklists.js';

const log = pino({ level: 'silent' });
const TOKEN = 'records-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

const YAML = checklistYaml(
  'records',
  [
    drRunbookReviewed(),
    `  - id: signoff-security
    title: "Sign-off: Security"
    section: signoff
    severity: critical
    phase: pre-deploy
    probe: attestation
    with: { roles: [security-lead], maxAge: 14d, release: "1.4.2" }
  - id: retro-scheduled
    title: Retro scheduled
    section: post-deploy
    severity: low
    phase: post-deploy
    probe: attestation
    with: { roles: [engineering-lead], maxAge: 30d, dueAfterDeploy: 48h }
  - id: monitor-support-clear
    title: Support reports no issues
    section: monitor
    severity: high
    phase: monitor
    probe: attestation
    with: { roles: [support-lead], maxAge: 1d }
`,
    closedPortCheck('port', 'A tcp check'),
  ],
  '{ monitorWindow: 2h }',
);

async function setup(t: { teardown: (fn: () => unknown) => void }) {
  const res = loadChecklist(YAML, 'records.yaml', {});
  if (!res.ok) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  const store = new MemoryStore();
  const service = new Service({ file: 'records.yaml', checklist: res.checklist, store, log });
  const app = await buildServer({ service, log, apiToken: TOKEN });
  t.teardown(() => app.close());
  const post = (url: string, payload: object, headers: Record<string, string> = auth) => app.inject({ method: 'POST', url, payload, headers });
  return { app, service, store, post };
}

t.test('bad attestations are rejected with the reason', async (t) => {
  const { post } = await setup(t);
  const day = 86_400_000;
  const cases: [object, number, string, Record<string, string>?][] = [
    [{ check: 'nope', by: 'Ada', role: 'devops-lead' }, 400, 'attestation rejected: unknown check "nope"'],
    [{ check: 'port', by: 'Ada', role: 'devops-lead' }, 400, 'attestation rejected: check port is measured by the tcp probe, not by attestations'],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'intern' }, 400, 'attestation rejected: role "intern" cannot attest dr-runbook-reviewed; allowed: devops-lead'],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead', expiresAt: new Date(Date.now() - day).toISOString() }, 400, 'is in the past'],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead', expiresAt: new Date(Date.now() + 100 * day).toISOString() }, 400, "is beyond the check's maxAge of 90d"],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead', expiresAt: 'next tuesday' }, 400, 'is not an ISO 8601 time'],
    [{ check: 'signoff-security', by: 'Ada', role: 'security-lead', release: '1.4.1' }, 400, 'is signed per release: this is release "1.4.2", not "1.4.1"'],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead', evidenceUrl: 'javascript:alert(1)' }, 400, 'evidenceUrl must be an http(s) URL'],
    [{ check: 'dr-runbook-reviewed', by: 'Ada' }, 400, "body must have required property 'role'"],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead', colour: 'red' }, 400, 'must NOT have additional properties'],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead' }, 401, 'missing or malformed Authorization', {}],
    [{ check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead' }, 403, 'the bearer token is not valid', { authorization: 'Bearer wrong' }],
  ];
  for (const [body, status, msg, headers] of cases) {
    const res = await post('/attestations', body, headers ?? auth);
    t.equal(res.statusCode, status, JSON.stringify(body));
    t.match(res.json().message, msg, JSON.stringify(body));
  }
});

t.test('an attestation makes the check pass; revocation and expiry make it fail', async (t) => {
  const { post, app, service, store } = await setup(t);
  await service.scheduler.runNow('dr-runbook-reviewed');
  let v = service.scheduler.view('dr-runbook-reviewed')!;
  t.match(v, { state: 'fail', reason: 'not-attested', message: 'not attested: needs an attestation by devops-lead' });

  const res = await post('/attestations', { check: 'dr-runbook-reviewed', by: 'Grace', role: 'devops-lead', note: 'walked through it', evidenceUrl: 'https://wiki/dr' });
  t.equal(res.statusCode, 201);
  const body = res.json();
  t.equal(body.check.state, 'pass', 'the check is re-evaluated at once');
  const expires = Date.parse(body.attestation.expiresAt);
  t.ok(Math.abs(expires - (Date.now() + 90 * 86_400_000)) < 60_000, 'expiresAt defaults to maxAge');
  v = service.scheduler.view('dr-runbook-reviewed')!;
  t.ok(v.value! > 89 * 86_400 && v.value! <= 90 * 86_400, `value is seconds until expiry (${v.value})`);
  t.match(v.message, /attested by Grace \(devops-lead\), valid for (89d\S*|90d) more/);

  const list = (await app.inject('/attestations?check=dr-runbook-reviewed&active=true')).json();
  t.equal(list.attestations.length, 1);
  t.equal(list.attestations[0].by, 'Grace');

  const rev = await post(`/attestations/${body.attestation.id}/revoke`, { by: 'Ada' });
  t.equal(rev.statusCode, 200);
  v = service.scheduler.view('dr-runbook-reviewed')!;
  t.match(v, { state: 'fail', reason: 'not-attested' });
  t.match(v.message, 'the attestation by Grace was revoked by Ada');
  t.equal((await post('/attestations/00000000-0000-0000-0000-000000000000/revoke', { by: 'Ada' })).statusCode, 404);

  // An attestation that has run out.
  await store.addAttestation({ id: 'old', check: 'dr-runbook-reviewed', by: 'Linus', role: 'devops-lead', createdAt: Date.now() + 1, expiresAt: Date.now() - 1000 });
  await service.scheduler.runNow('dr-runbook-reviewed');
  v = service.scheduler.view('dr-runbook-reviewed')!;
  t.match(v, { state: 'fail', reason: 'expired' });
  t.match(v.message, /the attestation by Linus \(devops-lead\) expired/);
});

t.test('per-release sign-off counts only for its release', async (t) => {
  const { post, service } = await setup(t);
  const res = await post('/attestations', { check: 'signoff-security', by: 'Ada', role: 'security-lead' });
  t.equal(res.statusCode, 201);
  t.equal(res.json().attestation.release, '1.4.2', 'the release defaults to the check\'s');
  t.equal(service.scheduler.view('signoff-security')!.state, 'pass');
});

t.test('deployments open the monitor window: gating, rollback, post-deployment duties', async (t) => {
  const { post, app, service } = await setup(t);
  for (const id of ['monitor-support-clear', 'retro-scheduled']) await service.scheduler.runNow(id);
  let r = (await app.inject('/readiness?phase=monitor')).json();
  t.equal(r.ready, true, 'before any deployment a failing monitor check does not gate');
  t.same(r.advisory.map((f: { id: string }) => f.id), ['monitor-support-clear']);
  t.equal(r.rollback, undefined);
  t.match(service.scheduler.view('retro-scheduled')!.message, 'not due: no deployment recorded yet');

  const bad = await post('/deployments', { version: '1.4.2', at: new Date(Date.now() + 3_600_000).toISOString() });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().message, 'is in the future');

  const dep = await post('/deployments', { version: '1.4.2', by: 'ci' });
  t.equal(dep.statusCode, 201);
  t.equal(dep.json().window.open, true);
  await new Promise((res) => setTimeout(res, 100));
  await service.scheduler.runNow('monitor-support-clear');
  const res = await app.inject('/readiness?phase=monitor');
  t.equal(res.statusCode, 503, 'inside the window the failing monitor check gates');
  r = res.json();
  t.same(r.rollback, { recommended: true, failing: ['monitor-support-clear'] });
  t.match(r.deployment, { version: '1.4.2', windowOpen: true });
  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, 'readiness_rollback_recommended 1');
  t.match(metrics, 'readiness_deployment_window_open 1');
  t.match(metrics, /readiness_deployment_timestamp_seconds \d{10}/);
  t.match(metrics, 'readiness_deployment_info{version="1.4.2"} 1', 'the version the rollback page names');
  await service.scheduler.runNow('retro-scheduled');
  t.match(service.scheduler.view('retro-scheduled')!, { state: 'pass', message: /due by .* \(2d after deployment 1\.4\.2\); not attested yet/ });

  // Support signs off: no rollback.
  t.equal((await post('/attestations', { check: 'monitor-support-clear', by: 'Sam', role: 'support-lead' })).statusCode, 201);
  r = (await app.inject('/readiness?phase=monitor')).json();
  t.same(r.rollback, { recommended: false, failing: [] });
  t.equal(r.ready, true);

  const list = (await app.inject('/deployments')).json();
  t.equal(list.deployments[0].version, '1.4.2');
  t.equal(list.deployments[0].by, 'ci');
});

t.test('a deployment older than the window: monitor checks stop gating; overdue duties fail', async (t) => {
  const { post, app, service } = await setup(t);
  const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();
  t.equal((await post('/deployments', { version: '1.4.1', at: threeDaysAgo })).statusCode, 201);
  for (const id of ['monitor-support-clear', 'retro-scheduled']) await service.scheduler.runNow(id);
  const r = (await app.inject('/readiness?phase=monitor')).json();
  t.equal(r.ready, true);
  t.same(r.rollback, { recommended: false, failing: [] });
  t.equal(r.deployment.windowOpen, false);
  t.match(service.scheduler.view('retro-scheduled')!, { state: 'fail', reason: 'not-attested' });
  // An attestation made before the deployment does not meet a post-deployment duty.
  t.equal((await post('/attestations', { check: 'retro-scheduled', by: 'Eng', role: 'engineering-lead' })).statusCode, 201);
  t.equal(service.scheduler.view('retro-scheduled')!.state, 'pass', 'one made after it does');
});

t.test('the store being down refuses the write with 503 and saves nothing', async (t) => {
  const { post, store } = await setup(t);
  store.addAttestation = async () => {
    const { StoreUnavailableError } = await import('../src/store/types.js');
    throw new StoreUnavailableError('the postgres store is unavailable, nothing was saved: connect ECONNREFUSED');
  };
  const res = await post('/attestations', { check: 'dr-runbook-reviewed', by: 'Ada', role: 'devops-lead' });
  t.equal(res.statusCode, 503);
  t.same(res.json(), { error: 'RDY_STORE_UNAVAILABLE', message: 'the postgres store is unavailable, nothing was saved: connect ECONNREFUSED' });
});

t.test('a marksDeployment check records each new version it sees, once', async (t) => {
  const { makeDef, checklistOf } = await import('./helpers/checks.js');
  let version = '1.4.2';
  let ok = true;
  const rolledOutAt = Math.floor(Date.now() / 1000) - 600;
  const def = makeDef(() => ({ fields: { ok, version, rolled_out_at: rolledOutAt } }), { id: 'rollout-api', phase: 'deploy', expect: ['ok == true'], marksDeployment: true });
  const store = new MemoryStore();
  const service = new Service({ file: 'x', checklist: checklistOf(def), store, log });
  const settle = () => new Promise((r) => setTimeout(r, 50));
  await service.scheduler.runNow('rollout-api');
  await settle();
  t.match(store.deployments(), [{ version: '1.4.2', source: 'kubernetes', by: 'check rollout-api', at: rolledOutAt * 1000 }], 'recorded, timed at the rollout');
  await service.scheduler.runNow('rollout-api');
  await settle();
  t.equal(store.deployments().length, 1, 'the same version is not recorded twice');
  version = '1.4.3';
  ok = false;
  await service.scheduler.runNow('rollout-api');
  await settle();
  t.equal(store.deployments().length, 1, 'a rollout that is not complete records nothing');
  ok = true;
  await service.scheduler.runNow('rollout-api');
  await settle();
  t.same(store.deployments().map((d) => d.version), ['1.4.2', '1.4.3'].reverse(), 'the new version, once rolled out');
});

t.test('marksDeployment needs a kind that reports a version', async (t) => {
  const res = loadChecklist(
    `apiVersion: readiness/v1
checklist: m
checks:
  - id: p
    title: P
    section: s
    severity: low
    phase: deploy
    probe: tcp
    with: { host: h, port: 1 }
    marksDeployment: true
`,
    'm.yaml',
    {},
  );
  t.equal(res.ok, false);
  if (!res.ok) t.equal(formatDiagnostic(res.diagnostics[0]!), 'm.yaml:11:22: probe tcp reports no "version" field, so it cannot mark deployments (the kubernetes rollout measurement does)');
});

t.test('imageVersion: tag, short digest, or latest', async (t) => {
  const { imageVersion } = await import('../src/probes/kubernetes/workloads.js');
  t.equal(imageVersion('ghcr.io/offgridflow/api:1.4.2'), '1.4.2');
  t.equal(imageVersion('registry:5000/offgridflow/api:v2'), 'v2');
  t.equal(imageVersion('registry:5000/offgridflow/api'), 'latest');
  t.equal(imageVersion('api@sha256:0123456789abcdef0123'), '0123456789ab');
});
