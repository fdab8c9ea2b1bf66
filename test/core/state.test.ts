// The read-time verdicts of src/state.ts, table by table and at their edges: derived states
// (pending, stale, unconfigured), readiness over every state (warn gates as passing), the
// rollback question for every state, and filters. Pure functions: no service, no server.
import t from 'tap';
import { cannotShowHealthy, describe, isReady, matches, parseFilters, readiness, rollbackCauses, STALE_INTERVALS, viewCheck, viewValidUntil, type CheckView } from '../../src/state.js';
import { isPassing, STATES, type CheckStatus, type RunState, type State } from '../../src/store/types.js';
import { checklistOf, makeDef } from '../helpers/checks.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const INTERVAL = 60_000;
const def = (over: Parameters<typeof makeDef>[1] = {}) => makeDef(() => ({ fields: {} }), { intervalMs: INTERVAL, ...over });

function status(state: RunState, over: Partial<CheckStatus> = {}, lastState: RunState = state): CheckStatus {
  return {
    check: 'c1',
    state,
    message: `${state} message`,
    last: { check: 'c1', state: lastState, message: 'last', startedAt: T0 - 10, finishedAt: T0, durationMs: 10, conditions: [] },
    streak: 1,
    runs: { [state]: 1 },
    ...over,
  };
}

/** A view in `state` as viewCheck derives it (the derived states from their causes). */
function viewIn(state: State, over: Parameters<typeof makeDef>[1] = {}, st: Partial<CheckStatus> = {}): CheckView {
  const d = def({ id: `c-${state}`, ...over });
  if (state === 'unconfigured') return viewCheck({ ...d, unconfigured: 'environment variable X is not set' }, undefined, T0, T0);
  if (state === 'pending') return viewCheck(d, undefined, T0, T0);
  if (state === 'stale') return viewCheck(d, status('pass'), T0 + 4 * INTERVAL, T0);
  return viewCheck(d, status(state, st), T0, T0);
}

t.test('isPassing: pass and warn only', async (t) => {
  t.same(STATES.filter(isPassing), ['pass', 'warn']);
});

t.test('viewCheck: each derived state from its cause, with the boundary of staleness', async (t) => {
  for (const s of STATES) t.equal(viewIn(s).state, s, `${s} derives as ${s}`);
  const d = def();
  const staleAfter = STALE_INTERVALS * INTERVAL;
  t.equal(STALE_INTERVALS, 3);

  // Never run: pending up to and including three intervals after tracking began, then stale.
  t.match(viewCheck(d, undefined, T0 + staleAfter, T0), { state: 'pending', reason: 'pending', message: 'not run yet', gating: true });
  const never = viewCheck(d, undefined, T0 + staleAfter + 1, T0);
  t.match(never, { state: 'stale', reason: 'stale' });
  t.equal(never.message, `no run has completed since ${new Date(T0).toISOString()}`);

  // A result ages the same way from its end.
  const fresh = viewCheck(d, status('warn', { value: 7, lastPassAt: T0 - 5, reason: 'condition' }), T0 + staleAfter, T0);
  t.match(fresh, { state: 'warn', reason: 'condition', value: 7, lastPass: T0 - 5, lastRun: T0, durationMs: 10, message: 'warn message' });
  t.ok(fresh.status, 'the status is kept');
  const old = viewCheck(d, status('fail'), T0 + staleAfter + 1, T0);
  t.match(old, { state: 'stale', reason: 'stale' });
  t.equal(old.message, `last run ended ${new Date(T0).toISOString()}, more than 3 intervals ago (last state fail)`);

  // A result restored after a restart ages from its run, not from when tracking began: too old,
  // a restored pass is not served as passing, and not as stale (the exporter was down, not the
  // check) until this process has had three intervals to run it; a restored fail stays fail.
  const restored = viewCheck(d, status('pass'), T0 + 10 * INTERVAL, T0 + 9 * INTERVAL);
  t.match(restored, { state: 'pending', reason: 'pending', lastRun: T0 });
  t.match(restored.message, /^restored result \(last state pass, run ended .*\) is older than 3 intervals; waiting for the first run since the restart$/);
  t.equal(viewCheck(d, status('warn'), T0 + 10 * INTERVAL, T0 + 9 * INTERVAL).state, 'pending');
  t.equal(viewCheck(d, status('fail'), T0 + 10 * INTERVAL, T0 + 9 * INTERVAL).state, 'fail');
  t.equal(viewCheck(d, status('error'), T0 + 10 * INTERVAL, T0 + 9 * INTERVAL).state, 'error');
  t.equal(viewCheck(d, status('pass'), T0 + 9 * INTERVAL + staleAfter, T0 + 9 * INTERVAL).state, 'pending', 'pending up to three intervals of tracking');
  t.equal(viewCheck(d, status('pass'), T0 + 9 * INTERVAL + staleAfter + 1, T0 + 9 * INTERVAL).state, 'stale', 'then stale');
  t.equal(viewCheck(d, status('fail'), T0 + 9 * INTERVAL + staleAfter + 1, T0 + 9 * INTERVAL).state, 'stale');
  t.equal(viewCheck(d, status('pass'), T0 + staleAfter, T0 + 9 * INTERVAL).state, 'pass');

  // No value, reason or last pass: none is made up.
  const bare = viewCheck(d, status('fail'), T0, T0);
  t.notOk('value' in bare);
  t.notOk('reason' in bare);
  t.notOk('lastPass' in bare);
});

t.test('viewCheck: a run that found the configuration gone is unconfigured; the loader\'s verdict wins over any result', async (t) => {
  const d = def();
  const v = viewCheck(d, status('error', { reason: 'unconfigured', message: 'API_TOKEN is empty' }), T0, T0);
  t.match(v, { state: 'unconfigured', reason: 'unconfigured', message: 'API_TOKEN is empty' });
  t.equal(viewCheck(d, status('error', { reason: 'refused' }), T0, T0).state, 'error', 'another error reason stays error');
  t.equal(viewCheck(d, status('fail', { reason: 'unconfigured' }), T0, T0).state, 'fail', 'only an error becomes unconfigured');
  const loader = viewCheck({ ...d, unconfigured: 'environment variable X is not set' }, status('pass'), T0 + 100 * INTERVAL, T0);
  t.match(loader, { state: 'unconfigured', reason: 'unconfigured', message: 'environment variable X is not set' });
  t.notOk(loader.status, 'an unconfigured check shows no result');
});

t.test('viewValidUntil: the first instant the view changes by time alone', async (t) => {
  const d = def();
  const staleAt = T0 + STALE_INTERVALS * INTERVAL + 1;
  t.equal(viewValidUntil(d, undefined, T0, T0), staleAt);
  t.equal(viewValidUntil(d, status('pass'), T0, T0 - INTERVAL), staleAt, 'from the end of the last run');
  t.equal(viewValidUntil(d, status('pass'), T0, T0 + INTERVAL), staleAt, 'whenever tracking began');
  t.equal(viewValidUntil(d, undefined, T0 + INTERVAL, T0 + INTERVAL), staleAt + INTERVAL, 'never run: from tracking');
  t.equal(viewValidUntil(d, status('pass'), staleAt - 1, T0), staleAt, 'still valid one ms before');
  t.equal(viewValidUntil(d, status('pass'), staleAt, T0), Infinity, 'once stale, nothing changes by time');
  t.equal(viewValidUntil({ ...d, unconfigured: 'x' }, undefined, T0, T0), Infinity);
  // A result restored from before tracking began: pending once too old, stale three intervals after tracking began.
  t.equal(viewValidUntil(d, status('pass'), staleAt, T0 + INTERVAL), staleAt + INTERVAL, 'restored: pending until three intervals of tracking');
  t.equal(viewCheck(d, status('pass'), staleAt + INTERVAL - 1, T0 + INTERVAL).state, 'pending');
  t.equal(viewCheck(d, status('pass'), staleAt + INTERVAL, T0 + INTERVAL).state, 'stale');
  // The promise it makes: the view just before is not stale, the view at it is.
  t.equal(viewCheck(d, status('pass'), staleAt - 1, T0).state, 'pass');
  t.equal(viewCheck(d, status('pass'), staleAt, T0).state, 'stale');
});

t.test('readiness: a gating warn is ready; every other non-passing gating state is not', async (t) => {
  for (const s of STATES) {
    const v = viewIn(s);
    t.equal(isReady([v]), isPassing(s), `gating ${s}: ready=${isPassing(s)}`);
    t.equal(isReady([{ ...v, gating: false }]), true, `non-gating ${s} never blocks`);
  }
  t.equal(isReady([]), true, 'nothing to gate on: ready');
  t.equal(isReady([viewIn('pass'), viewIn('fail')]), false, 'one failing gating check is enough');
});

t.test('readiness body: summary, sections, failing and advisory, filters, verbose', async (t) => {
  const views = [
    viewIn('pass', { section: 'a' }),
    viewIn('warn', { section: 'a' }),
    viewIn('fail', { section: 'b', severity: 'low' }),
    { ...viewIn('error', { section: 'b' }), gating: false },
    viewIn('unconfigured', { section: 'c', missing: [{ variable: 'X' }] } as never),
  ];
  const cl = checklistOf(...views.map((v) => v.def));
  const body = readiness(cl, views, {}, T0);
  t.equal(body.ready, false);
  t.equal(body.checklist, 'test');
  t.equal(body.evaluatedAt, new Date(T0).toISOString());
  t.same(body.summary, { total: 5, pass: 1, warn: 1, fail: 1, error: 1, stale: 0, pending: 0, unconfigured: 1 });
  t.same(body.sections, {
    a: { passing: true, pass: 2, total: 2 },
    b: { passing: false, pass: 0, total: 2 },
    c: { passing: false, pass: 0, total: 1 },
  });
  t.same(body.failing.map((f) => [f.id, f.state]), [['c-fail', 'fail'], ['c-unconfigured', 'unconfigured']]);
  t.same(body.failing[1]!.missing, ['X'], 'an unconfigured check names what would configure it');
  t.same(body.advisory.map((f) => f.id), ['c-error']);
  t.equal(body.checks, undefined, 'terse by default');

  // A section whose only failure is advisory still passes.
  const adv = readiness(cl, [viewIn('pass', { section: 'a' }), { ...viewIn('fail', { section: 'a' }), gating: false }], {}, T0);
  t.same(adv.sections.a, { passing: true, pass: 1, total: 2 });
  t.equal(adv.ready, true);

  // Filters narrow every part of the body; verbose lists every matching check.
  const onlyA = readiness(cl, views, { section: ['a'] }, T0, true);
  t.equal(onlyA.ready, true);
  t.equal(onlyA.summary.total, 2);
  t.same(onlyA.filters, { section: ['a'] });
  t.same(onlyA.checks!.map((c) => c.id), ['c-pass', 'c-warn']);
  t.same(Object.keys(onlyA.sections), ['a']);
});

t.test('describe: what a failing check shows', async (t) => {
  const v = viewCheck(def({ id: 'x', runbook: 'https://runbooks.example/x', expect: ['n > 1'] }), status('fail', { value: 0, reason: 'condition' }), T0, T0);
  t.same(describe(v), {
    id: 'x',
    title: 'C1',
    section: 'testing',
    severity: 'critical',
    phase: 'pre-deploy',
    state: 'fail',
    reason: 'condition',
    message: 'fail message',
    value: 0,
    expect: ['n > 1'],
    lastRun: new Date(T0).toISOString(),
    runbook: 'https://runbooks.example/x',
  });
  t.notOk('reason' in describe(viewIn('pass')), 'no reason key when there is none');
  const pending = describe(viewIn('pending'));
  t.same(Object.keys(pending).sort(), ['expect', 'id', 'message', 'phase', 'reason', 'section', 'severity', 'state', 'title']);
  const unconf = describe(viewIn('unconfigured', { missing: [] } as never));
  t.notOk('missing' in unconf, 'no empty list of variables');
  const failing = describe(viewIn('fail', { missing: [{ variable: 'X' }] } as never));
  t.notOk('missing' in failing, 'only an unconfigured check names missing variables');
});

t.test('cannotShowHealthy: fail, error and stale once failAfter is met; never pass, warn, pending or unconfigured', async (t) => {
  const want: Record<State, boolean> = { pass: false, warn: false, fail: true, error: true, stale: true, pending: false, unconfigured: false };
  for (const s of STATES) t.equal(cannotShowHealthy(viewIn(s)), want[s], s);

  const d = def({ failAfter: 3 });
  // First results: no earlier state holds them, so they wait for failAfter.
  t.equal(cannotShowHealthy(viewCheck(d, status('error', { streak: 2 }), T0, T0)), false, 'streak 2 of 3');
  t.equal(cannotShowHealthy(viewCheck(d, status('error', { streak: 3 }), T0, T0)), true, 'streak 3 of 3');
  t.equal(cannotShowHealthy(viewCheck(d, status('fail', { streak: 4 }), T0, T0)), true);
  // Held failing by passAfter (the latest run passed): failAfter was met when it turned.
  t.equal(cannotShowHealthy(viewCheck(d, status('fail', { streak: 1 }, 'pass'), T0, T0)), true, 'held fail, latest pass');
  t.equal(cannotShowHealthy(viewCheck(d, status('error', { streak: 1 }, 'warn'), T0, T0)), true, 'held error, latest warn');
  // A fail view without a status (not produced by viewCheck, but possible for callers).
  t.equal(cannotShowHealthy({ ...viewIn('pending'), state: 'fail' }), true);
  // Stale wins even when the stale check never ran.
  t.equal(cannotShowHealthy(viewCheck(d, undefined, T0 + 4 * INTERVAL, T0)), true);
});

t.test('rollbackCauses: gating monitor-phase checks that cannot show they are healthy, in every state', async (t) => {
  const monitorViews = STATES.map((s) => viewIn(s, { phase: 'monitor' }));
  t.same(
    rollbackCauses(monitorViews).map((v) => v.state),
    ['fail', 'error', 'stale'],
    'fail, error and stale are causes; pass, warn, pending and unconfigured are not',
  );
  t.same(rollbackCauses(monitorViews.map((v) => ({ ...v, gating: false }))), [], 'outside the window (not gating): none');
  for (const phase of ['pre-deploy', 'deploy', 'verify', 'post-deploy'] as const) {
    t.same(rollbackCauses(STATES.map((s) => viewIn(s, { phase }))), [], `${phase} checks are never causes`);
  }
});

t.test('parseFilters: lists, repeats, trimming, and unknown values as errors', async (t) => {
  const cl = checklistOf(def({ id: 'a', section: 'db' }), def({ id: 'b', section: 'tls' }));
  t.same(parseFilters({}, cl), { ok: true, filters: {} });
  t.same(parseFilters({ severity: 'critical, high', phase: ['monitor', 'verify'], section: 'db,,', check: ['a,b'] }, cl), {
    ok: true,
    filters: { severity: ['critical', 'high'], phase: ['monitor', 'verify'], section: ['db'], check: ['a', 'b'] },
  });
  t.same(parseFilters({ severity: '' }, cl), { ok: true, filters: {} }, 'an empty value filters nothing');
  t.same(parseFilters({ severity: 'crtical' }, cl), { ok: false, error: 'unknown severity "crtical"; known: critical, high, medium, low' });
  t.same(parseFilters({ phase: 'monitr,verify' }, cl), { ok: false, error: 'unknown phase "monitr"; known: pre-deploy, deploy, verify, monitor, post-deploy' });
  t.same(parseFilters({ section: ['db', 'dbb'] }, cl), { ok: false, error: 'unknown section "dbb"; known: db, tls' });
  t.same(parseFilters({ severity: 'x,y' }, cl), { ok: false, error: 'unknown severity "x", "y"; known: critical, high, medium, low' }, 'every unknown value is named');
  t.same(parseFilters({ check: 'a,zz,yy' }, cl), { ok: false, error: 'unknown check "zz", "yy" (GET /checks lists them)' });
  t.same(parseFilters({ severity: 'x', check: 'zz' }, cl), { ok: false, error: 'unknown severity "x"; known: critical, high, medium, low' }, 'the first problem is reported');
});

t.test('matches: every given filter must hold', async (t) => {
  const d = def({ id: 'a', section: 'db', severity: 'high', phase: 'monitor' });
  t.ok(matches(d, {}));
  t.ok(matches(d, { severity: ['low', 'high'], phase: ['monitor'], section: ['db'], check: ['a'] }));
  t.notOk(matches(d, { severity: ['low'] }));
  t.notOk(matches(d, { phase: ['verify'] }));
  t.notOk(matches(d, { section: ['tls'] }));
  t.notOk(matches(d, { check: ['b'] }));
  t.notOk(matches(d, { severity: ['high'], phase: ['monitor'], section: ['db'], check: ['b'] }), 'one miss is enough');
});
