// runCheck's own contract, beyond evaluating conditions: what a probe is handed (signal, env,
// values of other checks, records, a logger naming the check), how its end is classified
// (the check's timeout, a shutdown, a probe's precise error after the abort), that nothing of
// a finished run lingers (timer, listeners), and how its message is shortened and logged.
import { getEventListeners } from 'node:events';
import pino from 'pino';
import t from 'tap';
import { nextStatus, runCheck } from '../../src/harness.js';
import { ProbeError, type ProbeContext } from '../../src/probes/types.js';
import type { Records } from '../../src/store/types.js';
import { makeDef } from '../helpers/checks.js';

const silent = pino({ level: 'silent' });

/** A logger that keeps its lines. */
function capture(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

/** A probe that settles only when its signal aborts, with what `onAbort` returns. */
const waitsForAbort = (onAbort: (ctx: ProbeContext) => unknown) => (ctx: ProbeContext) =>
  new Promise<never>((_, reject) => ctx.signal.addEventListener('abort', () => reject(onAbort(ctx))));

t.test('the probe is handed the env, other checks\' values, records, its id and timeout', async (t) => {
  let seen: ProbeContext | undefined;
  const records: Records = { attestations: () => [], deployments: () => [] };
  const def = makeDef((ctx) => ((seen = ctx), { fields: {} }), { id: 'api', timeoutMs: 1234 });
  const r = await runCheck(def, { log: silent, env: { ONLY_HERE: 'yes' }, latestValue: (id) => (id === 'db' ? 7 : undefined), records });
  t.equal(r.state, 'pass', 'precondition: the run passed');
  t.equal(seen?.env.ONLY_HERE, 'yes', 'the env given, not process.env');
  t.equal(seen?.env.PATH, undefined);
  t.equal(seen?.valueOf('db'), 7);
  t.equal(seen?.checkId, 'api');
  t.equal(seen?.timeoutMs, 1234);
  t.equal(seen?.records, records);

  await runCheck(def, { log: silent });
  t.equal(seen?.env, process.env, 'no env given: the process environment');
  t.equal(seen?.valueOf('db'), undefined, 'no values given: none');
  t.notOk(seen && 'records' in seen, 'no records given: none');
});

t.test('the probe\'s logger and the harness\'s lines name the check and the kind', async (t) => {
  const { log, lines } = capture();
  await runCheck(makeDef((ctx) => (ctx.log.info('from the probe'), { fields: {} }), { id: 'api' }), { log });
  t.match(lines, [{ msg: 'from the probe', check: 'api', probe: 'scripted' }]);

  lines.length = 0;
  await runCheck(makeDef(() => Promise.reject(new TypeError('x is not a function')), { id: 'bug' }), { log });
  t.match(lines, [{ level: 40, msg: 'probe threw', check: 'bug', probe: 'scripted', err: { message: 'x is not a function' } }], 'an unexpected exception is a warning');
  lines.length = 0;
  const refused = await runCheck(makeDef(() => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))), { log });
  t.equal(refused.reason, 'refused', 'precondition: a known reason');
  t.same(lines, [], 'a known reason is a result, not a log line');

  const debug = capture('debug');
  await runCheck(makeDef(() => ({ fields: { n: 1 } }), { id: 'api', expect: ['n > 5'] }), { log: debug.log });
  t.match(debug.lines, [{ level: 20, msg: 'check ran', check: 'api', state: 'fail', reason: 'condition' }], 'each run at debug level');
  t.type(debug.lines[0]?.durationMs, 'number');
});

t.test('the check timeout: a probe\'s own error after the abort is reported as the timeout, a ProbeError as itself', async (t) => {
  const generic = await runCheck(makeDef(waitsForAbort(() => new Error('socket hang up')), { timeoutMs: 50 }), { log: silent });
  t.match(generic, { state: 'error', reason: 'timeout', message: 'timed out after 50 ms' }, 'not "socket hang up" (reason error)');
  const precise = await runCheck(makeDef(waitsForAbort(() => new ProbeError('tls', 'timed out during the TLS handshake')), { timeoutMs: 50 }), { log: silent });
  t.match(precise, { state: 'error', reason: 'tls', message: 'timed out during the TLS handshake' }, 'the step that was pending');
  // An error before any abort is the probe's own, whatever it is.
  const early = await runCheck(makeDef(() => Promise.reject(new Error('socket hang up')), { timeoutMs: 5_000 }), { log: silent });
  t.match(early, { state: 'error', reason: 'error', message: 'socket hang up' });
});

t.test('a probe slower than the abort grace but inside its timeout passes', async (t) => {
  const slow = makeDef(() => new Promise((r) => setTimeout(() => r({ fields: { n: 1 } }), 300)), { timeoutMs: 5_000, expect: ['n == 1'] });
  const r = await runCheck(slow, { log: silent });
  t.match(r, { state: 'pass', message: 'n == 1 is true (n = 1)' });
  t.ok(r.durationMs >= 250, `duration ${r.durationMs} ms is the probe's`);
});

t.test('shutdown: a run in flight ends with the shutdown reason; one started after it ends at once', async (t) => {
  const parent = new AbortController();
  const inflight = runCheck(makeDef(() => new Promise(() => {}), { timeoutMs: 60_000 }), { log: silent, signal: parent.signal });
  setTimeout(() => parent.abort(new Error('stop requested')), 20);
  t.match(await inflight, { state: 'error', reason: 'error', message: 'stop requested' });

  let signalled: boolean | undefined;
  const late = await runCheck(
    makeDef((ctx) => ((signalled = ctx.signal.aborted), new Promise(() => {})), { timeoutMs: 2_000 }),
    { log: silent, signal: parent.signal },
  );
  t.equal(signalled, true, 'the probe is handed an aborted signal');
  t.match(late, { state: 'error', message: 'stop requested' }, 'not the check timeout');
});

t.test('nothing of a finished run lingers: no listener on the shutdown signal, no late abort', async (t) => {
  const parent = new AbortController();
  let signal: AbortSignal | undefined;
  const r = await runCheck(makeDef((ctx) => ((signal = ctx.signal), { fields: {} }), { timeoutMs: 50 }), { log: silent, signal: parent.signal });
  t.equal(r.state, 'pass', 'precondition: the run passed');
  t.equal(getEventListeners(parent.signal, 'abort').length, 0, 'its listener is removed');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(signal?.aborted, false, 'the timeout was cleared: the finished run\'s signal never aborts');
});

t.test('messages are one line of at most 500 characters', async (t) => {
  const msg = async (m: string) => (await runCheck(makeDef(() => Promise.reject(new Error(m))), { log: silent })).message;
  const exact = 'a'.repeat(500);
  t.equal(await msg(exact), exact, '500 characters are kept whole');
  const cut = await msg(`${'b'.repeat(600)}`);
  t.equal(cut.length, 500);
  t.equal(cut, `${'b'.repeat(497)}...`);
  t.equal(await msg('  two\n\tlines  '), 'two lines');
});

t.test('a client load that rejects with nothing is still an error result', async (t) => {
  const def = makeDef(() => ({ fields: {} }));
  const r = await runCheck({ ...def, probe: { ...def.probe, load: () => Promise.reject(undefined) } }, { log: silent });
  t.match(r, { state: 'error', reason: 'error', message: 'load failed' });
  t.equal(def.runs(), 0, 'the probe did not run');
});

t.test('nextStatus: a status carries a reason, a value or a last pass only when there is one', async (t) => {
  const def = makeDef(() => ({ fields: {} }));
  const fail = { check: 'c1', state: 'fail' as const, message: 'm', startedAt: 1, finishedAt: 2, durationMs: 1, conditions: [] };
  const first = nextStatus(def, undefined, fail);
  t.same(Object.keys(first).sort(), ['check', 'last', 'message', 'runs', 'state', 'streak'], 'a first fail without reason or value');
  const passed = nextStatus(def, first, { ...fail, state: 'pass', finishedAt: 9 });
  t.same(Object.keys(passed).sort(), ['check', 'last', 'lastPassAt', 'message', 'runs', 'state', 'streak']);
  t.equal(passed.lastPassAt, 9);
});
