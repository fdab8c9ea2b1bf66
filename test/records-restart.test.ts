// The records version across a restart of a single replica with the embedded store: results
// are ordered by the version of the attestations and deployments they read (issue 18), and a
// process that restarts must count on from the highest version its stored results claim.
// Counting again from 0, every new result of a check attested before the restart is older
// than the stored one: a revocation after the restart would never be served.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { loadChecklist } from '../src/config/load.js';
import { formatDiagnostic } from '../src/config/types.js';
import { buildServer } from '../src/http/server.js';
import { Service } from '../src/service.js';
import { CachedStore } from '../src/store/cached.js';
import { SqliteBackend } from '../src/store/sqlite.js';

const log = pino({ level: 'silent' });
const TOKEN = 'records-restart-token';
const YAML = `apiVersion: readiness/v1
checklist: records-restart
checks:
  - id: dr-reviewed
    title: DR runbook reviewed
    section: dr
    severity: high
    phase: pre-deploy
    probe: attestation
    with: { roles: [devops-lead], maxAge: 90d }
`;

t.test('a revocation after a restart is served (the embedded store resumes the records version)', async (t) => {
  const res = loadChecklist(YAML, 'records-restart.yaml', {});
  if (!res.ok) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  const file = join(mkdtempSync(join(process.env.READINESS_TEST_TMPDIR || tmpdir(), 'readiness-records-restart-')), 'readiness.sqlite');
  const start = async () => {
    const store = new CachedStore(new SqliteBackend(file));
    await store.init();
    const service = new Service({ file: 'records-restart.yaml', checklist: res.checklist, store, log });
    await service.start();
    const app = await buildServer({ service, log, apiToken: TOKEN });
    const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload, headers: { authorization: `Bearer ${TOKEN}` } });
    const close = async () => {
      await app.close();
      await service.stop();
      await store.close();
    };
    t.teardown(close);
    return { store, service, post, close };
  };

  const a = await start();
  // Three record writes before the restart: the stored result claims version 3.
  const first = await a.post('/attestations', { check: 'dr-reviewed', by: 'Linus', role: 'devops-lead' });
  t.equal(first.statusCode, 201);
  t.equal((await a.post(`/attestations/${first.json().attestation.id}/revoke`, { by: 'Ada' })).statusCode, 200);
  const made = await a.post('/attestations', { check: 'dr-reviewed', by: 'Grace', role: 'devops-lead' });
  t.equal(made.statusCode, 201);
  t.equal(made.json().check.state, 'pass', 'attested before the restart');
  const id = made.json().attestation.id as string;
  const stored = a.store.latest('dr-reviewed')!.last.recordsVersion ?? 0;
  t.ok(stored >= 3, `the stored result claims the records version it read (${stored})`);
  await a.close();

  const b = await start();
  t.ok(b.store.recordsVersion() >= stored, `after the restart the records version resumes at ${b.store.recordsVersion()}, not below the stored result's ${stored}`);
  const rev = await b.post(`/attestations/${id}/revoke`, { by: 'Ada' });
  t.equal(rev.statusCode, 200);
  const v = b.service.scheduler.view('dr-reviewed')!;
  t.match(v, { state: 'fail', reason: 'not-attested' }, 'the revocation is served at once');
  t.match(v.message, 'the attestation by Grace was revoked by Ada');
  t.equal(b.store.health().discarded?.superseded ?? 0, 0, 'no result was discarded as older than the stored one');
  await b.close();

  const c = await start();
  t.match(c.store.latest('dr-reviewed'), { state: 'fail' }, 'and it is what the store keeps');
});

t.test('a clock stepped back does not make new runs "older" than the stored one (one writer)', async (t) => {
  const res = loadChecklist(YAML, 'records-restart.yaml', {});
  if (!res.ok) throw new Error(res.diagnostics.map(formatDiagnostic).join('\n'));
  const file = join(mkdtempSync(join(process.env.READINESS_TEST_TMPDIR || tmpdir(), 'readiness-records-clock-')), 'readiness.sqlite');
  // What the previous process stored, its clock an hour ahead of this one's.
  const ahead = Date.now() + 3_600_000;
  const before = new CachedStore(new SqliteBackend(file));
  await before.init();
  const last = { check: 'dr-reviewed', state: 'pass' as const, message: 'attested (from the future)', startedAt: ahead - 5, finishedAt: ahead, durationMs: 5, conditions: [] };
  await before.put({ check: 'dr-reviewed', state: 'pass', message: last.message, last, streak: 1, runs: { pass: 1 } });
  await before.close();

  const store = new CachedStore(new SqliteBackend(file));
  await store.init();
  t.teardown(() => store.close());
  t.equal(store.latest('dr-reviewed')?.message, 'attested (from the future)', 'precondition: the stored result is an hour "newer" than now');
  const service = new Service({ file: 'records-restart.yaml', checklist: res.checklist, store, log });
  await service.start();
  t.teardown(() => service.stop());
  await service.scheduler.runNow('dr-reviewed');
  t.match(store.latest('dr-reviewed'), { state: 'fail', reason: 'not-attested' }, 'the new run is served');
  t.equal(store.health().discarded?.superseded ?? 0, 0, 'nothing discarded');
});
