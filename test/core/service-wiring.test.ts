// What the service passes on and tells (src/service.ts), in process, found by mutation testing
// (docs/mutation.md): its options reach the scheduler (env, concurrency, jitter), the HA hooks
// it installs act, records another replica wrote are evaluated only where they should be, the
// views cache holds across the window's edges, a reload reads the service's environment and
// forgets the old checklist's secrets, and what goes wrong is logged.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { jitterFor } from '../../src/scheduler.js';
import { scrubLogLine } from '../../src/secrets.js';
import { Service, type ServiceChange } from '../../src/service.js';
import { CachedStore, type Snapshot } from '../../src/store/cached.js';
import { MemoryBackend, MemoryStore } from '../../src/store/memory.js';
import { checklistOf, makeDef, type Script } from '../helpers/checks.js';
import { TestOwnership } from '../helpers/ownership.js';
import { until } from '../helpers/until.js';

const silent = pino({ level: 'silent' });
const ok: Script = () => ({ fields: { ok: true } });

/** A logger at info whose lines (parsed) land in `lines`. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines, msgs: () => lines.map((l) => String(l.msg)) };
}

function recordsOnlyDef(id: string, over: Parameters<typeof makeDef>[1] = {}) {
  const def = makeDef(ok, { id, expect: ['ok == true'], ...over });
  return Object.assign(def, { probe: { ...def.probe, recordsOnly: true } });
}

class SharedBackend extends MemoryBackend {
  pending: Snapshot = { statuses: [], attestations: [], deployments: [] };
  async changes(): Promise<Snapshot> {
    const s = this.pending;
    this.pending = { statuses: [], attestations: [], deployments: [] };
    return s;
  }
}

t.test('the environment given to the service is the one checks run with', async (t) => {
  t.equal(process.env.SVC_WIRING_ENV, undefined, 'precondition: not in the process environment');
  const def = makeDef((ctx) => ({ fields: { s: String(ctx.env.SVC_WIRING_ENV) } }), { id: 'e', expect: ['s == "from-the-service"'] });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(def), store: new MemoryStore(), log: silent, env: { SVC_WIRING_ENV: 'from-the-service' } });
  t.teardown(() => service.stop(0));
  await service.scheduler.runNow('e');
  t.equal(service.scheduler.view('e')!.state, 'pass');
});

t.test('concurrency: at most that many checks run at once', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: Script = async () => (await gate, { fields: { ok: true } });
  const a = makeDef(slow, { id: 'a', expect: ['ok == true'] });
  const b = makeDef(slow, { id: 'b', expect: ['ok == true'] });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(a, b), store: new MemoryStore(), log: silent, concurrency: 1 });
  t.teardown(async () => {
    release();
    await service.stop(0);
  });
  const runs = [service.scheduler.runNow('a'), service.scheduler.runNow('b')];
  await until(() => a.runs() === 1, 'the first run to start');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(b.runs(), 0, 'the second waits for a free slot');
  t.equal(service.schedulerStats().queued, 1);
  release();
  await Promise.all(runs);
  t.equal(b.runs(), 1, 'and runs once the first is done');
});

t.test('start-up jitter: the default spreads within the interval; maxJitterMs 0 runs at once', async (t) => {
  // Without maxJitterMs: a 200 ms interval caps the spread at 200 ms, so it runs soon.
  const quick = makeDef(ok, { id: 'quick', expect: ['ok == true'], intervalMs: 200 });
  const s1 = new Service({ file: 'x.yaml', checklist: checklistOf(quick), store: new MemoryStore(), log: silent });
  t.teardown(() => s1.stop(0));
  await s1.start();
  await until(() => quick.runs() >= 1, 'the default-jitter check to run');

  // With maxJitterMs 0, a check the default would hold back 9.5 s or more runs now.
  const id = Array.from({ length: 500 }, (_, i) => `late-${i}`).find((x) => jitterFor(x, 10_000) >= 9_500);
  if (!id) return t.fail('precondition: an id with a default jitter of 9.5 s or more');
  const late = makeDef(ok, { id, expect: ['ok == true'], intervalMs: 3_600_000 });
  const s2 = new Service({ file: 'x.yaml', checklist: checklistOf(late), store: new MemoryStore(), log: silent, maxJitterMs: 0 });
  t.teardown(() => s2.stop(0));
  await s2.start();
  await until(() => late.runs() === 1, 'the no-jitter check to run', 9_000);
  t.pass('ran before the default jitter would have let it');
});

t.test('HA: a check handed to this replica (onAcquire) is scheduled here', async (t) => {
  const a = makeDef(ok, { id: 'a', expect: ['ok == true'], intervalMs: 3_600_000 });
  const ownership = new TestOwnership();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(a), store: new MemoryStore(), log: silent, ownership, maxJitterMs: 0 });
  t.teardown(() => service.stop(0));
  await service.start();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(a.runs(), 0, 'precondition: owned elsewhere, not run here');
  ownership.mine.add('a');
  ownership.onAcquire!([{ check: 'a' }]);
  await until(() => a.runs() === 1, 'the acquired check to run');
});

t.test('HA: records another replica wrote are evaluated here only for the checks this replica owns', async (t) => {
  const mine = recordsOnlyDef('mine', { kind: 'attestation' });
  const theirs = recordsOnlyDef('theirs', { kind: 'attestation' });
  const backend = new SharedBackend();
  const store = new CachedStore(backend, { preopened: true, refreshMs: 3_600_000 });
  const ownership = new TestOwnership();
  ownership.mine.add('mine');
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(theirs, mine), store, log: silent, ownership });
  t.teardown(() => service.stop(0));

  backend.pending = { statuses: [], attestations: [], deployments: [{ id: 'd', version: '2', at: Date.now(), createdAt: Date.now(), source: 'api' }] };
  await store.refresh();
  await until(() => mine.runs() === 1, 'the owned check to be evaluated');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(theirs.runs(), 0, 'a deployment: the check owned elsewhere is its owner\'s to evaluate');

  const att = (id: string, check: string) => ({ id, check, by: 'Grace', role: 'lead', createdAt: 2, expiresAt: 2e12 });
  backend.pending = { statuses: [], attestations: [att('x', 'theirs'), att('y', 'mine')], deployments: [] };
  await store.refresh();
  await until(() => mine.runs() === 2, 'the owned check to be evaluated again');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(theirs.runs(), 0, 'an attestation: likewise');
});

t.test('the views cache holds at and after the window\'s edges: a read 1 ms later builds nothing', async (t) => {
  const defs = [makeDef(ok, { id: 'm', phase: 'monitor', expect: ['ok == true'] }), makeDef(ok, { id: 'pre', expect: ['ok == true'] })];
  const store = new MemoryStore();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store, log: silent });
  t.teardown(() => service.stop(0));
  for (const d of defs) await service.scheduler.runNow(d.id);
  const windowMs = service.checklist().monitorWindowMs;
  const now = Date.now();
  // A window that ends in 30 s (it opened windowMs - 30 s ago).
  await store.addDeployment({ id: 'd', version: '1', at: now - windowMs + 30_000, createdAt: now, source: 'api' });
  const endsAt = service.deploymentWindow(now).endsAt!;
  // Views read at an instant, then 1 ms later: nothing changed in between, so nothing is rebuilt.
  const twice = (at: number) => {
    service.views(at);
    const n = service.viewsBuilt();
    service.views(at + 1);
    return service.viewsBuilt() - n;
  };
  t.equal(twice(now), 0, 'inside the window');
  t.equal(twice(endsAt), 0, 'at the end of the window');
  t.equal(twice(endsAt + 1_000), 0, 'after it');

  // A deployment recorded for 30 s from now: before, at and after its instant.
  const at = now + 30_000;
  await store.addDeployment({ id: 'd2', version: '2', at, createdAt: now, source: 'api' });
  t.equal(twice(now), 0, 'before the deployment');
  t.equal(twice(at), 0, 'at the deployment');
  t.equal(service.views(at).find((v) => v.def.id === 'm')!.gating, true, 'the window is open at its instant');
});

t.test('invalidate(): the change names no check; a throwing listener is logged, the others still hear', async (t) => {
  const { log, msgs } = capture();
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(makeDef(ok, { id: 'a', expect: ['ok == true'] })), store: new MemoryStore(), log });
  t.teardown(() => service.stop(0));
  service.onChange(() => {
    throw new Error('a broken cache (test)');
  });
  const changes: ServiceChange[] = [];
  service.onChange((c) => changes.push(c));
  service.invalidate();
  t.equal(changes.length, 1);
  t.same(Object.keys(changes[0]!), ['kind'], 'no check key at all');
  t.ok(msgs().includes('change listener failed'), 'the broken listener is logged');
});

t.test('unconfigured checks are logged at start-up, once per missing variable', async (t) => {
  const { log, lines } = capture();
  const defs = [
    makeDef(ok, { id: 'u1', unconfigured: 'SVC_WIRING_TOKEN is not set', missing: [{ variable: 'SVC_WIRING_TOKEN', message: 'SVC_WIRING_TOKEN is not set' }] }),
    makeDef(ok, { id: 'u2', unconfigured: 'SVC_WIRING_TOKEN is not set', missing: [{ variable: 'SVC_WIRING_TOKEN', message: 'SVC_WIRING_TOKEN is not set' }] }),
  ];
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(...defs), store: new MemoryStore(), log });
  t.teardown(() => service.stop(0));
  await service.start();
  const warned = lines.filter((l) => l.missing === 'SVC_WIRING_TOKEN');
  t.equal(warned.length, 1);
  t.same(warned[0]!.checks, ['u1', 'u2']);
  t.match(String(warned[0]!.msg), /SVC_WIRING_TOKEN is not set, so 2 checks are unconfigured: u1, u2/);
});

t.test('a refused detected deployment is logged as such', async (t) => {
  const { log, msgs } = capture();
  class Refusing extends MemoryBackend {
    override async writeDeployment(): Promise<void> {
      throw new Error('ECONNREFUSED (test)');
    }
  }
  const store = new CachedStore(new Refusing(), { preopened: true, retryMs: 3_600_000 });
  const roll = makeDef(() => ({ fields: { ok: true, version: '7.0.0' } }), { id: 'roll', phase: 'deploy', expect: ['ok == true'], marksDeployment: true });
  const service = new Service({ file: 'x.yaml', checklist: checklistOf(roll), store, log });
  t.teardown(() => service.stop(0));
  await service.scheduler.runNow('roll');
  await until(() => msgs().includes('could not record the detected deployment; will try again'), 'the warning');
  t.same(store.deployments(), []);
});

t.test('reload: reads the file with the service\'s environment, and forgets the old checklist\'s secrets', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readiness-svc-wiring-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'checklist.yaml');
  t.equal(process.env.SVC_WIRING_PORT, undefined, 'precondition: not in the process environment');
  writeFileSync(
    file,
    `apiVersion: readiness/v1
checklist: wiring
checks:
  - id: port
    title: port
    section: s
    severity: low
    phase: pre-deploy
    probe: tcp
    with:
      host: 127.0.0.1
      port: \${SVC_WIRING_PORT}
    expect: ["open == false"]
    interval: 1h
`,
  );
  const oldSecret = 'svc-wiring-old-secret-value';
  const old = makeDef(ok, { id: 'old', expect: ['ok == true'], secrets: [oldSecret] });
  const service = new Service({ file, checklist: checklistOf(old), store: new MemoryStore(), log: silent, env: { SVC_WIRING_PORT: '1' } });
  t.teardown(() => service.stop(0));
  t.equal(scrubLogLine(`x ${oldSecret} x`), 'x *** x', 'precondition: the running checklist\'s secret is hidden in logs');
  const res = await service.reload();
  t.same(res, { ok: true, checks: 1 });
  const def = service.checklist().byId.get('port')!;
  t.equal(def.unconfigured, undefined, 'the variable came from the service\'s environment');
  t.equal(scrubLogLine(`x ${oldSecret} x`), `x ${oldSecret} x`, 'a secret of no running check is no longer registered');
});
