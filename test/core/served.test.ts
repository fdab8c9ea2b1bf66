// What the service serves after the decisions: a gating check in `warn` is ready on
// /readiness and passing on /metrics; an attestation, revocation or deployment the store
// refused to make durable is never served afterwards (not by /attestations, not by the
// check's state, not by /readiness or the deployment window).
import pino from 'pino';
import t from 'tap';
import { loadChecklist } from '../../src/config/load.js';
import { formatDiagnostic } from '../../src/config/types.js';
import { buildServer } from '../../src/http/server.js';
import { Service } from '../../src/service.js';
import { CachedStore } from '../../src/store/cached.js';
import { MemoryBackend, MemoryStore } from '../../src/store/memory.js';
import { StoreUnavailableError, type Deployment } from '../../src/store/types.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const log = pino({ level: 'silent' });
const TOKEN = 'served-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

t.test('a gating check in warn: /readiness is ready (200) and readiness_check_passing is 1', async (t) => {
  const defs = [
    makeDef(() => ({ fields: { n: 15 } }), { id: 'disk', section: 'capacity', expect: ['n >= 10'], warn: ['n >= 20'] }),
    makeDef(() => ({ fields: { n: 50 } }), { id: 'cpu', section: 'capacity', expect: ['n >= 10'] }),
  ];
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store: new MemoryStore(), log });
  const app = await buildServer({ service, log });
  t.teardown(async () => {
    await app.close();
    await service.stop(0);
  });
  for (const d of defs) await service.scheduler.runNow(d.id);
  t.equal(service.scheduler.view('disk')!.state, 'warn', 'precondition: disk warns');
  t.ok(defs.every((d) => d.gate), 'precondition: both gate');

  const res = await app.inject('/readiness?verbose=1');
  t.equal(res.statusCode, 200, 'warn is passing: ready');
  const body = res.json();
  t.equal(body.ready, true);
  t.same(body.failing, []);
  t.same(body.advisory, [], 'a warning is not advisory either: it passes');
  t.match(body.summary, { total: 2, pass: 1, warn: 1 });
  t.same(body.sections.capacity, { passing: true, pass: 2, total: 2 });
  t.match(body.checks.find((c: { id: string }) => c.id === 'disk'), { state: 'warn', message: 'n >= 20 is false (n = 15)' });

  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, /^readiness_check_passing\{check="disk",[^}]*\} 1$/m, 'warn counts as passing');
  t.match(metrics, /^readiness_check_state\{check="disk",state="warn"\} 1$/m);
  t.notMatch(metrics, /^readiness_check_failure_info\{check="disk"/m, 'no failure reason for a warning');
  t.match(metrics, /^readiness_check_passing\{check="cpu",[^}]*\} 1$/m);
});

/** A memory backend whose durable writes can be refused, as a database that went away. */
class RefusingBackend extends MemoryBackend {
  refuse = false;
  override async writeAttestation(): Promise<void> {
    if (this.refuse) throw new Error('connection refused (test)');
  }
  override async writeDeployment(): Promise<void> {
    if (this.refuse) throw new Error('connection refused (test)');
  }
  async ping(): Promise<void> {
    if (this.refuse) throw new Error('connection refused (test)');
  }
}

const YAML = `apiVersion: readiness/v1
checklist: served
defaults: { monitorWindow: 2h }
checks:
  - id: dr-reviewed
    title: DR runbook reviewed
    section: dr
    severity: high
    phase: pre-deploy
    probe: attestation
    with: { roles: [devops-lead], maxAge: 90d }
`;

async function refusing(t: { teardown: (fn: () => unknown) => void }) {
  const res = loadChecklist(YAML, 'served.yaml', {});
  if (!res.ok) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  const backend = new RefusingBackend();
  const store = new CachedStore(backend, { preopened: true, retryMs: 60_000 });
  const service = new Service({ file: 'served.yaml', checklist: res.checklist, store, log });
  const app = await buildServer({ service, log, apiToken: TOKEN });
  t.teardown(async () => {
    await app.close();
    await service.stop(0);
  });
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload, headers: auth });
  return { backend, store, service, app, post };
}

t.test('an attestation the store refused is not served afterwards', async (t) => {
  const { backend, store, service, app, post } = await refusing(t);
  await service.scheduler.runNow('dr-reviewed');
  t.equal(service.scheduler.view('dr-reviewed')!.state, 'fail', 'precondition: unsigned fails');

  backend.refuse = true;
  const refused = await post('/attestations', { check: 'dr-reviewed', by: 'Ada', role: 'devops-lead' });
  t.equal(refused.statusCode, 503, 'refused: nothing claimed saved');
  t.equal(refused.json().error, 'RDY_STORE_UNAVAILABLE');
  t.same(store.attestations(), [], 'not in the cache');
  t.same((await app.inject('/attestations')).json().attestations, [], 'not listed');
  await service.scheduler.runNow('dr-reviewed');
  t.equal(service.scheduler.view('dr-reviewed')!.state, 'fail', 'the check still fails');
  const ready = (await app.inject('/readiness')).json();
  t.equal(ready.ready, false);
  t.same(ready.failing.map((f: { id: string }) => f.id), ['dr-reviewed']);
  t.equal(ready.store.ok, false, 'and /readiness says the store is degraded');

  // Back: the same request is saved and served.
  backend.refuse = false;
  const saved = await post('/attestations', { check: 'dr-reviewed', by: 'Ada', role: 'devops-lead' });
  t.equal(saved.statusCode, 201);
  const id = saved.json().attestation.id;
  t.equal(saved.json().check.state, 'pass');
  t.same((await app.inject('/attestations')).json().attestations.map((a: { id: string; active: boolean }) => [a.id, a.active]), [[id, true]]);

  // A revocation the store refused leaves the attestation active, and the check passing.
  backend.refuse = true;
  const revoke = await post(`/attestations/${id}/revoke`, { by: 'Grace' });
  t.equal(revoke.statusCode, 503);
  t.equal(store.attestations()[0]!.revokedAt, undefined, 'not revoked in the cache');
  t.same((await app.inject('/attestations?active=true')).json().attestations.map((a: { id: string }) => a.id), [id], 'still served as active');
  await service.scheduler.runNow('dr-reviewed');
  t.equal(service.scheduler.view('dr-reviewed')!.state, 'pass');
});

t.test('a deployment the store refused opens no window and recommends nothing', async (t) => {
  const { backend, store, service, app, post } = await refusing(t);
  backend.refuse = true;
  const res = await post('/deployments', { version: '2.0.0' });
  t.equal(res.statusCode, 503);
  t.same(store.deployments(), [], 'not in the cache');
  t.same((await app.inject('/deployments')).json(), { deployments: [], window: { open: false } });
  t.same(service.deploymentWindow(), { open: false });
  const ready = (await app.inject('/readiness')).json();
  t.equal(ready.deployment, undefined);
  t.equal(ready.rollback, undefined);

  // Directly against the store: the error says nothing was saved.
  await t.rejects(store.addDeployment({ id: 'd', version: '2', at: Date.now(), createdAt: Date.now() } as Deployment), StoreUnavailableError);
  await t.rejects(store.addAttestation({ id: 'a', check: 'dr-reviewed', by: 'x', role: 'devops-lead', createdAt: 1, expiresAt: Date.now() + 1e6 }), /nothing was saved/);
  t.same(store.deployments(), []);
  t.same(store.attestations(), []);
});
