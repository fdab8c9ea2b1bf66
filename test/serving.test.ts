// /metrics and /readiness at scale, pinned without timing: a read with nothing changed does no
// work per check (no store reads, no prom-client series, no view or text rebuilt), a change
// costs work for that check only, a scrape yields to the gate instead of holding the event
// loop, every family of one scrape describes one instant, and cached answers still follow
// time-driven transitions (stale, the deployment window) and every kind of change.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { Counter, Gauge } from 'prom-client';
import t from 'tap';
import type { CheckDef } from '../src/config/types.js';
import { buildServer } from '../src/http/server.js';
import { Service, type ServiceChange } from '../src/service.js';
import { CachedStore } from '../src/store/cached.js';
import { MemoryBackend, MemoryStore } from '../src/store/memory.js';
import type { CheckStatus } from '../src/store/types.js';
import { checklistOf, makeDef } from './helpers/checks.js';
import { PROMTOOL_BIN } from './helpers/prometheus.js';

const log = pino({ level: 'silent' });
const PHASES = ['pre-deploy', 'verify', 'monitor'] as const;

/** n checks whose probe answers `ok` (a function of the check and the run), spread over phases. */
function defs(n: number, ok: (i: number, run: number) => boolean = () => true, over: Partial<Omit<CheckDef, "expect" | "warn">> = {}) {
  return Array.from({ length: n }, (_, i) =>
    makeDef((_ctx, run) => ({ value: i, fields: { ok: ok(i, run) } }), {
      id: `check-${i}`,
      section: `section-${i % 5}`,
      severity: (['critical', 'high', 'medium', 'low'] as const)[i % 4],
      phase: PHASES[i % 3],
      expect: ['ok == true'],
      ...over,
    }),
  );
}

/** A service over `list`, with the store's latest() reads counted. */
async function setup(t: { teardown: (fn: () => unknown) => void }, list: CheckDef[], opts: { store?: CachedStore; monitorWindowMs?: number } = {}) {
  const store = opts.store ?? new MemoryStore();
  let reads = 0;
  const latest = store.latest.bind(store);
  store.latest = (id: string) => {
    reads++;
    return latest(id);
  };
  const checklist = { ...checklistOf(...list), ...(opts.monitorWindowMs !== undefined && { monitorWindowMs: opts.monitorWindowMs }) };
  const service = new Service({ file: 'x.yaml', checklist, store, log });
  const app = await buildServer({ service, log, apiToken: 'tok-123456' });
  t.teardown(() => app.close());
  return {
    store,
    service,
    app,
    reads: () => reads,
    runAll: async () => {
      await Promise.all(list.map((d) => service.scheduler.runNow(d.id)));
    },
  };
}

/** Counts prom-client Gauge/Counter writes (set, inc, reset) while `fn` runs. */
async function promWrites(fn: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const patched: [object, string, (...a: unknown[]) => unknown][] = [];
  for (const proto of [Gauge.prototype, Counter.prototype]) {
    for (const m of ['set', 'inc', 'reset']) {
      const orig = (proto as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!;
      patched.push([proto, m, orig]);
      (proto as unknown as Record<string, unknown>)[m] = function (this: unknown, ...a: unknown[]) {
        n++;
        return orig.apply(this, a);
      };
    }
  }
  try {
    await fn();
  } finally {
    for (const [proto, m, orig] of patched) (proto as Record<string, unknown>)[m] = orig;
  }
  return n;
}

t.test('a scrape with nothing changed reads no check and builds no series; a change costs one check', async (t) => {
  const writes: number[] = [];
  for (const n of [40, 80]) {
    const s = await setup(t, defs(n, (i) => i % 7 !== 0));
    await s.runAll();
    const first = await s.app.inject('/metrics');
    t.equal(first.statusCode, 200, 'scraped');
    t.match(first.body, `readiness_check_passing{check="check-${n - 1}"`, 'every check is exported');
    const before = s.reads();
    let second = '';
    writes.push(
      await promWrites(async () => {
        second = (await s.app.inject('/metrics')).body;
      }),
    );
    t.equal(s.reads() - before, 0, `${n} checks: the second scrape read no check from the store`);
    // The process families come and go with the runtime (nodejs_gc_* appear after a first GC): HELP and TYPE lines too.
    const strip = (m: string) => m.split('\n').filter((l) => l !== '' && !/^(# (HELP|TYPE) )?(process|nodejs|readiness_exporter)_/.test(l)).join('\n');
    t.equal(strip(second), strip(first.body), 'and exported the same check series');

    // One check runs: the next scrape rebuilds that check and nothing else.
    await s.service.scheduler.runNow('check-3');
    const r0 = s.reads();
    const third = (await s.app.inject('/metrics')).body;
    t.equal(s.reads() - r0, 1, 'one changed check: one store read');
    t.match(third, 'readiness_check_runs_total{check="check-3",result="pass"} 2', 'and its new run count');
  }
  t.equal(writes[0], writes[1], `prom-client writes per scrape do not grow with the checks (${writes.join(' vs ')})`);
});

t.test('a scrape yields to the event loop: /readiness is answered while 3,000 checks render', async (t) => {
  const s = await setup(t, defs(3000));
  await s.runAll();
  await s.app.inject('/metrics');
  await s.app.inject('/readiness');
  const order: string[] = [];
  const scrape = s.app.inject('/metrics').then((r) => {
    order.push('metrics');
    return r;
  });
  // Issued after the scrape started: it must not wait for the whole exposition.
  await new Promise((r) => setImmediate(r));
  const gate = s.app.inject('/readiness').then((r) => {
    order.push('readiness');
    return r;
  });
  const [m, g] = await Promise.all([scrape, gate]);
  t.equal(m.statusCode, 200, 'scraped');
  t.equal(g.statusCode, 200, 'gate answered');
  t.same(order, ['readiness', 'metrics'], 'the gate answered before the scrape finished');
});

t.test('every family of one scrape describes one instant, even when checks change while it renders', async (t) => {
  let flip = false;
  const list = defs(3000, () => !flip);
  const s = await setup(t, list);
  await s.runAll();
  const statuses = list.map((d) => s.store.latest(d.id)!);
  const failing = (st: CheckStatus): CheckStatus => ({ ...st, state: 'fail', reason: 'condition', message: 'flipped', last: { ...st.last, state: 'fail', finishedAt: st.last.finishedAt + 1 } });
  // Flip checks to fail, a slice per turn of the event loop, while the scrape renders.
  const scrape = s.app.inject('/metrics');
  let flipped = 0;
  let done = false;
  void scrape.then(() => (done = true));
  // A few checks per turn: the scrape yields often (every WORK_PER_TURN units, each send slice).
  while (!done && flipped < statuses.length) {
    for (const st of statuses.slice(flipped, flipped + 10)) void s.store.put(failing(st));
    flipped += 10;
    await new Promise((r) => setImmediate(r));
  }
  flip = true;
  const m = (await scrape).body;
  t.ok(flipped > 0 && flipped < statuses.length, `checks changed while the scrape rendered (${flipped} of ${statuses.length})`);
  const passing = new Map([...m.matchAll(/^readiness_check_passing\{check="([^"]+)"[^}]*\} (\d)$/gm)].map((x) => [x[1], x[2]]));
  const pass = new Map([...m.matchAll(/^readiness_check_state\{check="([^"]+)",state="pass"\} (\d)$/gm)].map((x) => [x[1], x[2]]));
  const fail = new Map([...m.matchAll(/^readiness_check_failure_info\{check="([^"]+)",reason="condition"\} 1$/gm)].map((x) => [x[1], '1']));
  t.equal(passing.size, 3000, 'every check has its passing series');
  let disagree = 0;
  for (const [id, p] of passing) if (p !== pass.get(id) || (p === '0') !== fail.has(id)) disagree++;
  t.equal(disagree, 0, 'passing, state and failure_info agree for every check');
  const allPassing = [...passing.values()].every((p) => p === '1');
  t.match(m, `readiness_ready{phase="all"} ${allPassing ? 1 : 0}`, 'readiness_ready agrees with the checks of the same scrape');
});

t.test('the exposition is promtool-clean with every state, values and escaped labels', async (t) => {
  const list = [
    ...defs(3),
    makeDef(() => ({ fields: { ok: false }, value: 1.5e-7 }), { id: 'failing', section: 'data "quoted" \\ back', expect: ['ok == true'] }),
    makeDef(() => ({ fields: {} }), { id: 'no-env', unconfigured: 'environment variable X is not set' }),
    makeDef(() => ({ fields: {} }), { id: 'never', intervalMs: 50 }),
  ];
  const s = await setup(t, list);
  for (const d of list.slice(0, 4)) await s.service.scheduler.runNow(d.id);
  await new Promise((r) => setTimeout(r, 200));
  const m = (await s.app.inject('/metrics')).body;
  t.match(m, 'readiness_check_state{check="never",state="stale"} 1');
  t.match(m, 'readiness_check_state{check="no-env",state="unconfigured"} 1');
  t.match(m, 'readiness_check_passing{check="failing",section="data \\"quoted\\" \\\\ back",severity="critical",phase="pre-deploy"} 0');
  t.match(m, 'readiness_check_value{check="failing"} 1.5e-7');
  t.match(m, /^# HELP readiness_check_runs_total Runs of the check made by this process, by resulting state \(in HA, sum over the replicas for the total\)\.\n# TYPE readiness_check_runs_total counter\n/m);
  t.notMatch(m, /^readiness_deployment_timestamp_seconds /m, 'no deployment yet: no sample');
  const lint = spawnSync(PROMTOOL_BIN, ['check', 'metrics'], { input: m, encoding: 'utf8' });
  t.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`);
});

t.test('a repeated /readiness with nothing changed reads no check and reuses its answer', async (t) => {
  const s = await setup(t, defs(50, (i) => i !== 4));
  await s.runAll();
  const first = await s.app.inject('/readiness?severity=critical,high');
  const r0 = s.reads();
  const again = await s.app.inject('/readiness?severity=critical,high');
  t.equal(s.reads() - r0, 0, 'no store read');
  t.equal(again.statusCode, first.statusCode, 'the same status');
  t.same({ ...again.json(), evaluatedAt: 0 }, { ...first.json(), evaluatedAt: 0 }, 'the same answer');
  t.ok(Math.abs(Date.parse(again.json().evaluatedAt) - Date.now()) < 5_000, 'evaluatedAt is the time of this request');
  t.equal(again.headers['content-type'], 'application/json; charset=utf-8', 'served as JSON');

  // A passing check passing again does not change the answer; a failing one's new run does.
  await s.service.scheduler.runNow('check-0');
  const r1 = s.reads();
  await s.app.inject('/readiness?severity=critical,high');
  t.equal(s.reads() - r1, 1, 'the view of the check that ran was rebuilt, nothing else');
  await s.service.scheduler.runNow('check-4');
  const after = (await s.app.inject('/readiness?severity=critical,high')).json();
    t.equal(after.failing[0].id, 'check-4', 'the one failing check');
  t.not(after.failing[0].lastRun, first.json().failing[0].lastRun, "the failing check's new run is shown");
  const v1 = (await s.app.inject('/readiness?verbose=1')).json().checks.find((c: { id: string }) => c.id === 'check-0').lastRun;
  await new Promise((r) => setTimeout(r, 5));
  await s.service.scheduler.runNow('check-0');
  const v2 = (await s.app.inject('/readiness?verbose=1')).json().checks.find((c: { id: string }) => c.id === 'check-0').lastRun;
  t.not(v2, v1, 'a verbose answer shows every new run, passing ones too');
  t.equal((await s.app.inject('/readiness?severity=urgent')).statusCode, 400, 'a bad filter is still refused');
});

t.test('cached answers follow time: a check turning stale, the deployment window closing', async (t) => {
  const list = [...defs(2), makeDef(() => ({ fields: { ok: false } }), { id: 'errors', phase: 'monitor', expect: ['ok == true'] }), makeDef(() => ({ fields: {} }), { id: 'slow', intervalMs: 500 })];
  const s = await setup(t, list, { monitorWindowMs: 400 });
  await s.runAll();
  const until = async (what: string, fn: () => Promise<boolean>) => {
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      if (await fn()) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  };
  await s.service.scheduler.runNow('slow');
  t.equal((await s.app.inject('/readiness?check=slow')).json().summary.pass, 1, 'fresh at first');
  t.ok(await until('stale', async () => (await s.app.inject('/readiness?check=slow')).json().summary.stale === 1), 'the check turns stale in the cached answer');
  t.ok(await until('metrics', async () => (await s.app.inject('/metrics')).body.includes('readiness_check_state{check="slow",state="stale"} 1')), 'and in /metrics');

  // A deployment opens the window: the failing monitor check gates and recommends a rollback.
  let res = await s.app.inject('/readiness?phase=monitor');
  t.equal(res.statusCode, 200, 'before a deployment, monitor checks only advise');
  const d = await s.app.inject({ method: 'POST', url: '/deployments', headers: { authorization: 'Bearer tok-123456' }, payload: { version: '1.2.3' } });
  t.equal(d.statusCode, 201, 'deployment recorded');
  res = await s.app.inject('/readiness?phase=monitor');
  t.equal(res.statusCode, 503, 'the deployment is seen at once');
  t.match(res.json(), { deployment: { version: '1.2.3', windowOpen: true }, rollback: { recommended: true, failing: ['errors'] } });
  t.match((await s.app.inject('/metrics')).body, 'readiness_rollback_recommended 1');
  t.ok(await until('window', async () => (await s.app.inject('/readiness?phase=monitor')).statusCode === 200), 'the window closes in the cached answer');
  t.match((await s.app.inject('/readiness?phase=monitor')).json(), { deployment: { windowOpen: false }, rollback: { recommended: false } });
  t.match((await s.app.inject('/metrics')).body, 'readiness_deployment_window_open 0');
});

t.test('the store going degraded and coming back shows in the cached answer', async (t) => {
  let down = false;
  const backend = new MemoryBackend();
  const write = backend.writeStatus.bind(backend);
  backend.writeStatus = async (st) => {
    if (down) throw new Error('disk on fire');
    return write(st);
  };
  const store = new CachedStore(backend, { preopened: true, retryMs: 50 });
  const s = await setup(t, defs(3), { store });
  await s.runAll();
  t.equal((await s.app.inject('/readiness')).json().store, undefined, 'healthy');
  down = true;
  await s.service.scheduler.runNow('check-1');
  await store.history('check-1', 1).catch(() => {});
  await new Promise((r) => setTimeout(r, 20));
  t.match((await s.app.inject('/readiness')).json().store, { ok: false, message: /disk on fire/ });
  down = false;
  t.ok(await store.flush(5_000), 'drained once the backend is back');
  t.equal((await s.app.inject('/readiness')).json().store, undefined, 'healthy again');
  await store.close();
});

t.test('one hook for every change: store events, reloads and invalidate() reach listeners and caches', async (t) => {
  const s = await setup(t, defs(3));
  const seen: ServiceChange[] = [];
  const off = s.service.onChange((c) => seen.push(c));
  await s.service.scheduler.runNow('check-0');
  await s.store.addDeployment({ id: randomUUID(), version: '9', at: Date.now(), createdAt: Date.now(), source: 'api' });
  await s.store.addAttestation({ id: randomUUID(), check: 'check-1', by: 'Ada', role: 'qa', createdAt: Date.now(), expiresAt: Date.now() + 60_000 });
  const built = s.service.viewsBuilt();
  s.service.views();
  s.service.invalidate('check-2');
  s.service.views();
  t.same(
    seen.map((c) => c.kind),
    ['status', 'deployment', 'attestation', 'invalidate'],
    'status, deployment, attestation and invalidate changes are announced',
  );
  t.ok(s.service.viewsBuilt() - built >= 3 + 1, 'an attestation rebuilds every view, invalidate(check) one more');
  const before = s.service.viewsBuilt();
  s.service.views();
  t.equal(s.service.viewsBuilt(), before, 'nothing changed: nothing rebuilt');
  off();
  s.service.invalidate();
  t.equal(seen.length, 4, 'unsubscribed');
  t.throws(() => {
    (s.service.views()[0] as { state: string }).state = 'pass';
  }, 'views are frozen: a reader cannot corrupt what others read');
});
