// Service.reload (SIGHUP) in process: a file with errors is rejected and the running checklist
// goes on (counted as a failure); a good file replaces it, keeps the results of the checks
// that remain, forgets the removed ones, and is counted as a success.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { loadChecklistFile } from '../../src/config/load.js';
import { formatDiagnostic } from '../../src/config/types.js';
import { Service } from '../../src/service.js';
import { MemoryStore } from '../../src/store/memory.js';

const log = pino({ level: 'silent' });

const check = (id: string) => `  - id: ${id}
    title: ${id}
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with: { host: 127.0.0.1, port: 1 }
    expect: ["open == false"]
    interval: 1h
`;
const yaml = (...ids: string[]) => `apiVersion: readiness/v1\nchecklist: reload\nchecks:\n${ids.map(check).join('')}`;

t.test('a bad file is rejected and counted; a good one replaces the checklist and keeps remaining results', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'checklist.yaml');
  writeFileSync(file, yaml('keep', 'drop'));
  const loaded = await loadChecklistFile(file, {});
  if (!loaded.ok) return t.fail(loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const store = new MemoryStore();
  const service = new Service({ file, checklist: loaded.checklist, store, log, env: {} });
  t.teardown(() => service.stop(0));
  const changes: string[] = [];
  service.onChange((c) => changes.push(c.kind));
  await service.scheduler.runNow('keep');
  await service.scheduler.runNow('drop');
  t.equal(service.scheduler.view('keep')!.state, 'pass', 'precondition: port 1 is closed, so keep passes');
  const before = service.reloads().lastSuccessAt;

  writeFileSync(file, 'apiVersion: readiness/v1\nchecklist: reload\nchecks: [{ id: 1 }]\n');
  const bad = await service.reload();
  t.equal(bad.ok, false);
  if (!bad.ok) t.ok(bad.diagnostics.length > 0, 'with the loader\'s diagnostics');
  t.match(service.reloads(), { success: 0, failure: 1, lastSuccessful: false, lastSuccessAt: before });
  t.same(service.checklist().checks.map((c) => c.id), ['keep', 'drop'], 'the running checklist goes on');
  t.notOk(changes.includes('reload'), 'a rejected file changes nothing served');

  const tracked = service.scheduler.trackedSince().get('keep')!;
  await new Promise((r) => setTimeout(r, 20));
  writeFileSync(file, yaml('keep', 'added'));
  const good = await service.reload();
  t.same(good, { ok: true, checks: 2 });
  t.match(service.reloads(), { success: 1, failure: 1, lastSuccessful: true });
  t.ok(service.reloads().lastSuccessAt >= before);
  t.same(service.checklist().checks.map((c) => c.id), ['keep', 'added']);
  t.equal(service.scheduler.view('keep')!.state, 'pass', 'the remaining check keeps its result');
  t.equal(service.scheduler.view('added')!.state, 'pending', 'the new one has none yet');
  t.equal(service.scheduler.trackedSince().get('keep'), tracked, 'a remaining check is tracked since it first was (it goes stale on time)');
  t.ok(service.scheduler.trackedSince().get('added')! >= tracked + 20, 'a new one since the reload');
  t.equal(store.latest('drop'), undefined, 'the removed check is forgotten');
  t.ok(changes.includes('reload'), 'caches are told');
  t.same(service.views().map((v) => v.def.id), ['keep', 'added'], 'and the views follow');
});
